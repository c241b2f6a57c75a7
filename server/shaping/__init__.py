"""Pure translation between OpenRouter's shape and the engine's: `inbound` (client -> engine) and
`outbound` (engine -> client)."""
