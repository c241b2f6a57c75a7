"""Several gateway processes on one port, for when one core cannot relay all the engine's output.

`mistral-local serve --workers N`: the process the operator starts becomes the control process. It runs the engine
(or attaches to it), keeps the state every request must agree on (admission: capacity, per-key limits, budgets;
generation records in SQLite) and serves it over a Unix socket in a private directory (`state_server.py`). It starts N
worker processes (`worker.py`), each a whole FastAPI gateway on the same port (SO_REUSEPORT: the kernel spreads
connections over them), restarts one that dies, and on SIGTERM drains them all (`control.py`). A worker asks the
control process for each admission (one round trip per request, none per chunk), tells it of releases and records,
and follows the engine's state from it (`state_client.py`, `engine_view.py`). A worker whose control process dies
exits; tickets of a worker that dies are released.

`mistral-local engine` (`node.py`) is the other process a fleet runs: one engine on its own node, supervised as
`serve` supervises its own, for gateways elsewhere to attach to.
"""
