"""Other APIs than OpenRouter chat (OpenAI Responses, Anthropic Messages), translated to and from the chat path."""
