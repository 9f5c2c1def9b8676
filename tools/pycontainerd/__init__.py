"""pycontainerd: a containerd-like daemon (content, images, snapshots, containers, tasks, events,
leases) speaking framed JSON over a unix socket, and `pyctr`, its docker-style client."""

from .protocol import DEFAULT_ADDRESS, DEFAULT_NAMESPACE, VERSION

__version__ = VERSION
__all__ = ["DEFAULT_ADDRESS", "DEFAULT_NAMESPACE", "VERSION", "__version__"]
