"""A local Polaris-compatible endpoint for trying the product and for its tests."""
