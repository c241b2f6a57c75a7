"""Several vLLM engines behind one gateway: the members and their live state (members.py), which engine a request
goes to (routing.py), and how each engine is watched through its own health route and metrics (watch.py)."""
