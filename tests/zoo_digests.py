"""The SHA-256 of the file each loader exports from every model of `../shared/zoo`, pinned in
`tests/data/zoo_export_digests.json`: a change that should not alter what the exporters write (a refactoring, a
new module for a piece of SB2 knowledge) proves it by leaving these unchanged (`test_zoo_exports_are_unchanged`).

A change that does alter the files on purpose records the new digests and says why in its commit:

    .venv/bin/python -m tests.zoo_digests --write safe        # modern environment
    .venv-sb2/bin/python -m tests.zoo_digests --write live    # SB2 environment
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import warnings
from typing import Dict

from tests.zoo import ZOO, require_zoo, zoo_models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGESTS = os.path.join(ROOT, "tests", "data", "zoo_export_digests.json")


def export_digest(model: str, loader: str) -> str:
    """The SHA-256 of the file `sbif.export.export` writes for zoo `model` (`algorithm/file`) with `loader`."""
    from sbif.export import export

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sbif_file, _ = export(os.path.join(ZOO, model), loader=loader, verify=False)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.sbif")
        sbif_file.write(path)
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()


def pinned() -> Dict[str, Dict[str, str]]:
    """{loader: {model: digest}} as recorded."""
    with open(DIGESTS) as handle:
        return json.load(handle)


def assert_every_model_pinned(loader: str) -> None:
    """Every zoo model has a digest for `loader` (a model added to the zoo must be recorded)."""
    models = zoo_models()
    require_zoo(models)
    assert sorted(pinned()[loader]) == sorted(models), "record them: {}".format(record_command(loader))


def assert_export_unchanged(model: str, loader: str) -> None:
    """`loader`'s export of zoo `model` is byte for byte the pinned one."""
    assert export_digest(model, loader) == pinned()[loader].get(model), (
        "the {} loader's export of {} changed; if on purpose, record it: {}".format(loader, model,
                                                                                   record_command(loader)))


def record_command(loader: str) -> str:
    return "{}/bin/python -m tests.zoo_digests --write {}".format(".venv" if loader == "safe" else ".venv-sb2", loader)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", choices=["safe", "live"], required=True,
                        help="record the digests of this loader's exports (the others are kept)")
    args = parser.parse_args()
    models = zoo_models()
    if not models:
        print("no zoo at {}".format(ZOO), file=sys.stderr)
        return 1
    recorded = pinned() if os.path.exists(DIGESTS) else {}
    recorded[args.write] = {model: export_digest(model, args.write) for model in models}
    os.makedirs(os.path.dirname(DIGESTS), exist_ok=True)
    with open(DIGESTS, "w") as handle:
        json.dump(recorded, handle, indent=2, sort_keys=True)
        handle.write("\n")
    print("recorded {} {} digests in {}".format(len(models), args.write, os.path.relpath(DIGESTS, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
