"""OpenRouter wire models: what clients send (`request`) and what the OpenAPI document says we answer (`response`).
Data only, no engine logic."""
