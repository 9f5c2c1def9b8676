"""pycontainerd: a containerd-like daemon (content, images, snapshots, containers, tasks, events,
leases) speaking framed JSON over a unix socket, and `pyctr`, its docker-style client.

Nothing is imported eagerly: a shim (one process per container) must not pay for asyncio.
"""

__all__ = ["DEFAULT_ADDRESS", "DEFAULT_NAMESPACE", "VERSION", "__version__"]


def __getattr__(name: str):
    if name in __all__:
        from . import protocol

        return protocol.VERSION if name == "__version__" else getattr(protocol, name)
    raise AttributeError(f"module 'pycontainerd' has no attribute {name!r}")
