"""`mistral-local bench`: serving benchmarks with vLLM's metric definitions, against any OpenAI/OpenRouter target."""
