"""Model checkpoints: the Mistral Small 3.1 layout, the scaled-down test checkpoint, directory checks."""
