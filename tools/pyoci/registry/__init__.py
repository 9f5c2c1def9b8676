"""The registry client: `RegistryClient(host)` for the distribution API, `auth` for challenges and credentials.

`copy` (pull into / push from an OCI image layout) is imported on demand: it needs the layout module.
"""

from .auth import Challenge, Credentials, load_credentials, parse_www_authenticate
from .client import MANIFEST_ACCEPT, BlobInfo, BlobReader, RegistryClient

__all__ = ["BlobInfo", "BlobReader", "Challenge", "Credentials", "MANIFEST_ACCEPT", "RegistryClient",
           "load_credentials", "parse_www_authenticate"]
