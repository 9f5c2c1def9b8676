"""Image archives, in one place: oci-archive (a tar of an image layout) and docker-archive (`docker save`).

The code lives in archive_oci and archive_docker; this module only gathers their public API.
"""

from .archive_docker import (DockerArchive, DockerArchiveWriter, ImportedImage, normalize_repo_tag,
                             read_docker_archive, write_docker_archive)
from .archive_oci import OCIArchive, extract_oci_archive, import_oci_archive, write_oci_archive

__all__ = [
    "DockerArchive", "DockerArchiveWriter", "ImportedImage", "normalize_repo_tag", "read_docker_archive",
    "write_docker_archive", "OCIArchive", "extract_oci_archive", "import_oci_archive", "write_oci_archive",
]
