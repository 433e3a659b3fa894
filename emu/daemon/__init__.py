"""A lab's daemon (server.py) and the way to reach it (client.py)."""
