"""`sbif validate`: check .sbif files completely."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import SbifError
from .common import add_command


def add_parser(commands: Any) -> argparse.ArgumentParser:
    validate = add_command(commands, "validate", "check an .sbif file completely (container, schema, graph)",
                        run_validate, "  sbif validate model.sbif")
    validate.add_argument("files", nargs="+")
    validate.add_argument("--json", action="store_true", help="print one JSON result per file")
    return validate


def run_validate(args: argparse.Namespace) -> int:
    from ..format import SbifFile

    failures = 0
    for path in args.files:
        try:
            sbif_file = SbifFile.read(path)
            result = {"file": path, "valid": True, "ops": len(sbif_file.document["graph"]),
                      "tensors": len(sbif_file.document["tensors"])}
        except SbifError as exc:
            failures += 1
            result = {"file": path, "valid": False, "error": type(exc).__name__, "message": str(exc)}
        if args.json:
            print(json.dumps(result))
        elif result["valid"]:
            print("{}: valid (format version 1, {} ops, {} tensors)".format(path, result["ops"], result["tensors"]))
        else:
            print("{}: INVALID: {}".format(path, result["message"]), file=sys.stderr)
    return 1 if failures else 0
