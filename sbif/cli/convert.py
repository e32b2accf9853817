"""`sbif convert`: an .sbif file to ONNX or a TorchScript module, whole or pruned to the outputs a deployer wants."""
from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, List, Mapping, Sequence

from ..errors import InputError, SbifError
from ..format.subgraph import Subgraph, deployed_subgraph
from .common import add_command, size_text

#: target format -> default suffix of the written file
CONVERTERS = {"onnx": ".onnx", "torch": ".pt"}


def add_parser(commands: Any) -> argparse.ArgumentParser:
    convert = add_command(commands, "convert", "convert an .sbif file to ONNX or a TorchScript module", run_convert,
                       "  sbif convert model.sbif --to onnx -o model.onnx      (pip install onnx)\n"
                       "  sbif convert model.sbif --to onnx --outputs action   (session.run(['action'], {'obs': x}))\n"
                       "  sbif convert model.sbif --to torch -o model.pt       (pip install torch; torch.jit.load)")
    convert.add_argument("file")
    convert.add_argument("--to", required=True, choices=CONVERTERS, help="the target format")
    convert.add_argument("-o", "--output", help="the file to write (default: FILE with .onnx / .pt suffix)")
    convert.add_argument("--outputs", metavar="NAMES",
                         help="keep only these outputs, comma-separated, and the inputs and weights they need: the "
                              "file's output names, or action (the deterministic action), stochastic_action, "
                              "logits, probabilities, mean, std, state_output (default: every output)")
    convert.add_argument("--opset", type=int, default=17, help="ONNX opset to target (default 17; 14 or newer)")
    convert.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    return convert


def run_convert(args: argparse.Namespace) -> int:
    from ..format import SbifFile

    output = args.output or os.path.splitext(args.file)[0] + CONVERTERS[args.to]
    outputs = None if args.outputs is None else output_names_option(args.outputs)
    sbif_file = SbifFile.read(args.file)
    kept = deployed_subgraph(sbif_file.document, outputs)  # refuses an unknown name before loading a framework
    try:
        if args.to == "onnx":
            from ..convert import onnx as converter

            converter.convert(sbif_file, output, opset=args.opset, outputs=outputs)
        else:
            from ..convert import torch as converter

            converter.save(sbif_file, output, outputs=outputs)
    except OSError as exc:
        raise SbifError("cannot write {}: {}".format(output, exc.strerror or exc)) from None
    inputs = {entry["name"]: entry for entry in sbif_file.document["inputs"]}
    summary = {"source": args.file, "output": output, "format": args.to, "bytes": os.path.getsize(output),
               "outputs": list(kept.outputs),
               "inputs": [{key: inputs[name][key] for key in ("name", "dtype", "shape")} for name in kept.inputs]}
    if args.json:
        print(json.dumps(summary))
    else:
        print("wrote {} ({}, {}): {}".format(output, args.to, size_text(summary["bytes"]),
                                             call_text(args.to, sbif_file.document, kept)))
    return 0


def output_names_option(text: str) -> List[str]:
    """The names of `--outputs action,value`."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise InputError("--outputs takes comma-separated output names, e.g. --outputs action,value")
    return names


def call_text(target: str, document: Mapping[str, Any], kept: Subgraph) -> str:
    """How a caller runs the converted model, with the inputs it needs, their dtypes and shapes:
    `session.run(['action'], {'obs': float64 [B, 8]})` (ONNX) or `module({'obs': float64 [B, 8]}) -> action`
    (TorchScript; its forward returns a dict of the outputs)."""
    feeds = input_signature(document, kept.inputs)
    if target == "onnx":
        return "session.run({}, {})".format(list(kept.outputs), feeds)
    return "module({}) -> {}".format(feeds, ", ".join(kept.outputs))


def input_signature(document: Mapping[str, Any], names: Sequence[str]) -> str:
    """The feed a model takes, as `{'obs': float64 [B, 8], 'state': float32 [B, 8]}`: each input's dtype and its
    shape, B the batch."""
    entries: Dict[str, Mapping[str, Any]] = {entry["name"]: entry for entry in document["inputs"]}
    return "{" + ", ".join("{!r}: {} {}".format(name, entries[name]["dtype"], shape_text(entries[name]["shape"]))
                           for name in names) + "}"


def shape_text(shape: Sequence[Any]) -> str:
    """A declared shape with the batch as B: `[B, 8]`."""
    return "[" + ", ".join("B" if dim is None else str(dim) for dim in shape) + "]"
