"""The Polaris contract: management API client and `setup` provisioning."""
