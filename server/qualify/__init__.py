"""`mistral-local qualify`: the full model's architecture with random weights (no download, no token), served on
this machine's profile, started and benchmarked through the gateway and direct to the engine, in one report."""
