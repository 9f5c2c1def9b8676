"""pycontainerd-shim: one process per container holding its stdio, log, exit status and runtime calls.

Kept on the standard library and light imports only (it is one process per container); the daemon
talks to it over `<bundle>/shim.sock` with the daemon protocol's framing (see server.py).
"""
