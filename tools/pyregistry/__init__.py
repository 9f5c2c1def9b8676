"""pyregistry: an OCI Distribution v1.1 registry (aiohttp + uvloop) over a storage driver interface."""

__version__ = "0.1.0"
