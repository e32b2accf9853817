"""`sbif convert`: an .sbif file to ONNX or a TorchScript module."""
from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..errors import SbifError
from .common import add_command, size_text

#: target format -> default suffix of the written file
CONVERTERS = {"onnx": ".onnx", "torch": ".pt"}


def add_parser(commands: Any) -> argparse.ArgumentParser:
    convert = add_command(commands, "convert", "convert an .sbif file to ONNX or a TorchScript module", run_convert,
                       "  sbif convert model.sbif --to onnx -o model.onnx      (pip install onnx)\n"
                       "  sbif convert model.sbif --to torch -o model.pt       (pip install torch; torch.jit.load)")
    convert.add_argument("file")
    convert.add_argument("--to", required=True, choices=CONVERTERS, help="the target format")
    convert.add_argument("-o", "--output", help="the file to write (default: FILE with .onnx / .pt suffix)")
    convert.add_argument("--opset", type=int, default=17, help="ONNX opset to target (default 17; 14 or newer)")
    convert.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    return convert


def run_convert(args: argparse.Namespace) -> int:
    output = args.output or os.path.splitext(args.file)[0] + CONVERTERS[args.to]
    try:
        if args.to == "onnx":
            from ..convert import onnx as converter

            converter.convert(args.file, output, opset=args.opset)
        else:
            from ..convert import torch as converter

            converter.save(args.file, output)
    except OSError as exc:
        raise SbifError("cannot write {}: {}".format(output, exc.strerror or exc)) from None
    summary = {"source": args.file, "output": output, "format": args.to, "bytes": os.path.getsize(output)}
    if args.json:
        print(json.dumps(summary))
    else:
        print("wrote {} ({}, {})".format(output, args.to, size_text(summary["bytes"])))
    return 0
