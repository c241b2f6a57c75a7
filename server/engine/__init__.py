"""The vLLM engine: hardware profiles, the exact launch command, and the supervisor that keeps it running."""
