"""What survives a restart: checkpoints and the acknowledgements that move them."""
