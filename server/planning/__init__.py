"""Memory planning: which vLLM arguments fit the model on a given set of GPUs, with the arithmetic shown."""
