"""The SBIF format: a safetensors container whose metadata holds a JSON architecture document.

Reading, writing and validating know nothing of TensorFlow or Stable-Baselines.
"""
from .container import read_container, write_container
from .document import FORMAT_VERSIONS, SB2_FORMAT_VERSION, SB3_FORMAT_VERSION, decode_document, encode_document
from .sbif_file import SbifFile

__all__ = ["FORMAT_VERSIONS", "SB2_FORMAT_VERSION", "SB3_FORMAT_VERSION", "SbifFile", "decode_document", "encode_document",
           "read_container", "write_container"]
