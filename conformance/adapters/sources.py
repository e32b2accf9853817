"""Finding the save a `.sbif` file was exported from, for the live oracles: the framework's file whose SHA-256 its
provenance records, beside the `.sbif` file or anywhere under the paths the user gave (`--sources`)."""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from ..golden import sha256_of


class SourceNotFound(Exception):
    pass


class SourceFinder:
    """The save of each `.sbif` file: an explicit mapping first, then by the provenance's SHA-256, beside the file
    (under its recorded name, or the `.sbif` file's stem with each of `suffixes`), then under `sources` (indexed on
    first use). `what` names the kind of save in the error ("SB2 file", "SB3 save")."""

    def __init__(self, sources: Sequence[str], mapping: Optional[Mapping[str, str]], suffixes: Tuple[str, ...],
                 what: str):
        self.sources = list(sources)
        self.mapping = {os.path.abspath(k): os.path.abspath(v) for k, v in (mapping or {}).items()}
        self.suffixes, self.what = suffixes, what
        self._index: Optional[Dict[str, str]] = None

    def find(self, sbif_path: str, provenance: Mapping[str, Any]) -> str:
        sbif_path = os.path.abspath(sbif_path)
        if sbif_path in self.mapping:
            return self.mapping[sbif_path]
        source = provenance.get("source", {})
        digest, name = source.get("sha256"), source.get("file_name", "")
        stem = os.path.splitext(sbif_path)[0]
        candidates = [os.path.join(os.path.dirname(sbif_path), name)] if name else []
        candidates += [stem + suffix for suffix in self.suffixes]
        differing = []
        for candidate in candidates:
            if os.path.isfile(candidate):
                if sha256_of(candidate) == digest:
                    return candidate
                differing.append(candidate)
        found = self._source_index().get(digest)
        if found:
            return found
        raise SourceNotFound("no {} with sha256 {}... ({}) next to {} or under --sources{}".format(
            self.what, str(digest)[:12], name, sbif_path, "; these differ: " + ", ".join(differing) if differing
            else ""))

    def _source_index(self) -> Dict[str, str]:
        if self._index is None:
            self._index = {}
            for root in self.sources:
                paths = [root] if os.path.isfile(root) else [
                    os.path.join(d, f) for d, _, files in os.walk(root) for f in files]
                for path in paths:
                    if path.endswith(self.suffixes):
                        self._index.setdefault(sha256_of(path), path)
        return self._index
