"""Media types of the OCI image spec and of Docker's schema2, as constants."""

OCI_LAYOUT_VERSION = "1.0.0"

OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"  # seen in the wild, uncompressed
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
LAYER_TYPES = (OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_LAYER_NONDIST, OCI_LAYER_NONDIST_GZIP,
               OCI_LAYER_NONDIST_ZSTD, DOCKER_LAYER_GZIP, DOCKER_LAYER_FOREIGN_GZIP, DOCKER_LAYER)

# Docker schema2 -> OCI equivalents, for conversion.
DOCKER_TO_OCI = {
    DOCKER_MANIFEST: OCI_MANIFEST,
    DOCKER_MANIFEST_LIST: OCI_INDEX,
    DOCKER_CONFIG: OCI_CONFIG,
    DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
    DOCKER_LAYER_FOREIGN_GZIP: OCI_LAYER_NONDIST_GZIP,
    DOCKER_LAYER: OCI_LAYER,
}
OCI_TO_DOCKER = {
    OCI_MANIFEST: DOCKER_MANIFEST,
    OCI_INDEX: DOCKER_MANIFEST_LIST,
    OCI_CONFIG: DOCKER_CONFIG,
    OCI_LAYER_GZIP: DOCKER_LAYER_GZIP,
    OCI_LAYER_NONDIST_GZIP: DOCKER_LAYER_FOREIGN_GZIP,
    OCI_LAYER: DOCKER_LAYER,
}


def layer_compression(media_type: str) -> str:
    """'gzip', 'zstd' or '' (uncompressed) for a layer media type."""
    if media_type.endswith("+gzip") or media_type.endswith(".tar.gzip"):
        return "gzip"
    if media_type.endswith("+zstd"):
        return "zstd"
    return ""
