"""Layer tars: create (deterministic, from a tree, an overlay upper dir or a diff), apply (safely), compress.

`digest` is always the blob's (compressed) digest and `diff_id` the uncompressed tar's.
"""

from .apply import apply_layer
from .compression import GZIP_BACKEND, detect, open_reader, open_writer
from .create import LayerInfo, create_layer, create_layer_from_diff
from .errors import CompressionError, InvalidLayer

__all__ = ["apply_layer", "create_layer", "create_layer_from_diff", "LayerInfo", "detect", "open_reader",
           "open_writer", "GZIP_BACKEND", "CompressionError", "InvalidLayer"]
