"""Where the data the conformance suite ships lives: golden packs, op vectors, the malformed-file corpus.

All of it is package data of `conformance` (pyproject.toml), beside this module, so one lookup serves the checkout
(an editable install imports the package from it) and an installed wheel. The op vectors' one home in the source
tree is spec/vectors: `conformance/vectors` is a symlink to it, as `sbif/format/schema` is to spec/schema, and
setuptools copies the files it points at into the wheel, so git holds one copy and the wheel a real directory.
"""
from __future__ import annotations

import os

from sbif.errors import SbifError

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

#: the data sets (names inside the package): golden packs recorded from SB2, next to the models they were
#: recorded for; the disagreements with SB2 those packs are known to record; TensorFlow 1.15's op test vectors;
#: malformed .sbif files with the error each must raise
GOLDEN_PACKS = "golden"
KNOWN_FAILURES = "known-failures.txt"
OP_VECTORS = "vectors"
MALFORMED_FILES = "malformed"
DESCRIPTIONS = {
    GOLDEN_PACKS: "golden packs",
    KNOWN_FAILURES: "known failures of the golden packs",
    OP_VECTORS: "op vectors",
    MALFORMED_FILES: "malformed-file corpus",
}


class MissingDataError(SbifError):
    """Data the suite needs is not where it should be: checking against nothing would pass any runtime."""


def shipped(name: str) -> str:
    """The path of the shipped data set `name` (GOLDEN_PACKS, KNOWN_FAILURES, OP_VECTORS or MALFORMED_FILES).

    A missing one is an error rather than an empty set: it means a broken installation, and a check that finds
    nothing to compare passes."""
    path = os.path.join(PACKAGE_DIR, name)
    if not os.path.exists(path):
        raise MissingDataError("the conformance suite's {} cannot be found: {} does not exist (a broken "
                               "installation? reinstall: pip install 'sbif[conformance]')".format(
                                   DESCRIPTIONS[name], path))
    return path
