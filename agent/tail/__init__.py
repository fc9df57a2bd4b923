"""Files -> lines: discovery, identity, reading and watching."""
