"""`mistral-local serve` from flags to a listening gateway: the command and its flags, the engines it launches from a
profile (`engine_choice`), the start-up, and the HTTP server that drains on a signal."""
