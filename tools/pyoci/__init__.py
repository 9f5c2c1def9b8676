"""pyoci: the OCI objects every tool of the toolchain shares.

Digests, descriptors, manifests, image layouts and archives, layer tars, image references and a
registry client. Submodules are imported on demand so that a tool pays only for what it uses.
"""

__version__ = "0.1.0"
