"""nasx: neural architecture search experiments."""
