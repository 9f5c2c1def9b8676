"""Layer tars: create (deterministic, from a tree, an overlay upper dir or a diff), apply (safely), compress.

    create_layer(src_dir, out, "gzip"|"zstd"|"", *, whiteouts=None|"overlay", mtime=None) -> LayerInfo
    create_layer_from_diff(lower, upper_full, out, compression) -> LayerInfo
    apply_layer(blob_or_path, rootfs, *, expected_diff_id=None, expected_digest=None,
                whiteouts=None|"overlay", blob_verified=False) -> diff_id

`digest` is always the blob's (compressed) digest, for manifests; `diff_id` the uncompressed tar's,
for the config's rootfs.diff_ids. Errors: pyoci.errors.UnsafeArchive / DigestMismatch, InvalidLayer.
"""

from .apply import apply_layer
from .compression import GZIP_BACKEND, detect, open_reader, open_writer
from .create import LayerInfo, create_layer, create_layer_from_diff
from .errors import CompressionError, InvalidLayer

__all__ = ["apply_layer", "create_layer", "create_layer_from_diff", "LayerInfo", "detect", "open_reader",
           "open_writer", "GZIP_BACKEND", "CompressionError", "InvalidLayer"]
