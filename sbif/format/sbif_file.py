"""An SBIF file in memory: the document plus its tensors, read and written with full validation."""
from __future__ import annotations

from typing import Dict, Mapping

import numpy as np

from ..errors import DocumentError
from ..ops import ValueSpec
from .container import read_container, write_container
from .document import Document, check_schema, decode_document, encode_document
from .validate import check_document


class SbifFile:
    """A validated document and its tensors. `specs` holds the static type of every graph value."""

    def __init__(self, document: Document, tensors: Mapping[str, np.ndarray], source: str = "document"):
        check_schema(document, source)
        self.specs: Dict[str, ValueSpec] = check_document(document, tensors, source)
        self.document = document
        self.tensors = dict(tensors)

    @classmethod
    def read(cls, path: str) -> "SbifFile":
        """Read and fully validate a file; tensors are read-only views of the mapped file (no copy)."""
        metadata, tensors = read_container(path)
        return cls(decode_document(metadata, path), tensors, path)

    def write(self, path: str) -> None:
        stored = {entry["name"]: self.tensors[entry["name"]] for entry in self.document["tensors"]}
        if len(stored) != len(self.tensors):
            raise DocumentError("tensors not listed in the document cannot be written")
        write_container(path, stored, encode_document(self.document))

    def parameter_count(self) -> int:
        return int(sum(np.prod(entry["shape"], dtype=np.int64) for entry in self.document["tensors"]
                       if entry["origin"] == "parameter"))
