"""`sbif inspect`: a readable (or JSON) summary of an .sbif file."""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..format.document import decode_float
from ..format.subgraph import inputs_of_outputs, required_subgraph, select_outputs
from .common import add_command, size_text, table
from .convert import call_text

ACTIVATION_OPS = {"tanh", "relu", "relu6", "elu", "selu", "sigmoid", "softplus", "softsign", "swish", "leaky_relu"}
#: ops SB2 puts between a layer and its activation (LnMlpPolicy, DDPG's layer_norm=True)
NORMALIZATION_OPS = {"layer_norm"}
#: characters a non-uniform Box bound takes at most: beyond, its elements are elided at an element boundary
BOUND_TEXT_CHARS = 60


def add_parser(commands: Any) -> argparse.ArgumentParser:
    inspect = add_command(commands, "inspect", "describe an .sbif file: spaces, layers, parameters, steps",
                       run_inspect, "  sbif inspect model.sbif\n  sbif inspect model.sbif --json")
    inspect.add_argument("file")
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")
    inspect.add_argument("--graph", action="store_true", help="also list every graph node")
    return inspect


def run_inspect(args: argparse.Namespace) -> int:
    from ..format import SbifFile

    sbif_file = SbifFile.read(args.file)
    summary = describe(sbif_file)
    summary["file"] = {"path": args.file, "bytes": os.path.getsize(args.file)}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(render_summary(summary, sbif_file.document, args.graph))
    return 0


def describe(sbif_file: Any) -> Dict[str, Any]:
    """A structured summary of a file: provenance, spaces, layers, steps, outputs, parameter counts."""
    document = sbif_file.document
    nodes = document["graph"]
    consumers: Dict[str, List[Dict[str, Any]]] = {}
    for node in nodes:
        for name in node["inputs"]:
            consumers.setdefault(name, []).append(node)
    tensors = {entry["name"]: entry for entry in document["tensors"]}
    used = {name for node in nodes for name in node["inputs"] if name in tensors}
    first_layer = next((i for i, node in enumerate(nodes) if node["op"] in ("linear", "conv2d", "matmul")
                        and node["inputs"][1] in tensors), len(nodes))
    reshaped = {node["outputs"][0]: node["inputs"][0] for node in nodes if node["op"] == "reshape"}
    layers = []
    for node in nodes:
        if node["op"] not in ("linear", "conv2d", "matmul") or node["inputs"][1] not in tensors:
            continue
        weight = tensors[node["inputs"][1]]["shape"]
        normalization = next((c for c in consumers.get(node["outputs"][0], []) if c["op"] in NORMALIZATION_OPS),
                             None)
        activation = _activation_of(normalization["outputs"][0] if normalization else node["outputs"][0],
                                    consumers)
        bias_name = reshaped.get(node["inputs"][2], node["inputs"][2]) if len(node["inputs"]) > 2 else ""
        bias = int(np.prod(tensors[bias_name]["shape"])) if bias_name in tensors else 0
        layer = {"name": node["outputs"][0], "op": node["op"], "inputs": weight[-2], "units": weight[-1],
                 "parameters": int(np.prod(weight)) + bias, "activation": activation}
        if normalization:
            layer["normalization"] = normalization["op"]
        if node["op"] == "conv2d":
            layer["kernel"] = "{}x{}/{}".format(weight[0], weight[1], node["attrs"]["strides"][0])
        layers.append(layer)
    needs = inputs_of_outputs(document)
    return {
        "format_version": document["format_version"],
        "provenance": document["provenance"],
        "observation_space": document["observation_space"],
        "action_space": document["action_space"],
        "predict": {"deterministic_default": document["predict"]["deterministic_default"],
                    "distribution": document["predict"].get("distribution", {}).get("kind", "none")},
        "parameters": {"total": sbif_file.parameter_count(),
                       "tensors": sum(1 for e in document["tensors"] if e["origin"] == "parameter"),
                       "unused_by_inference": sorted(n for n, e in tensors.items()
                                                     if e["origin"] == "parameter" and n not in used)},
        "preprocessing": [_step(node) for node in nodes[:first_layer] if node["op"] != "reshape"],
        "layers": layers,
        "postprocessing": [_step(node) for node in nodes[first_layer:] if node["op"] == "clip"],
        "recurrent": document["predict"].get("recurrent"),
        "inputs": document["inputs"],
        "outputs": [dict(entry, needs=list(needs[entry["name"]])) for entry in document["outputs"]],
    }


def _activation_of(value: str, consumers: Dict[str, List[Dict[str, Any]]]) -> Optional[str]:
    """The activation op applied to `value`, if any."""
    return next((c["op"] for c in consumers.get(value, []) if c["op"] in ACTIVATION_OPS), None)


def _step(node: Dict[str, Any]) -> str:
    values = dict(node.get("attrs", {}))
    if node["op"] == "constant":  # a float32 constant is stored as the double it converts to
        values["value"] = scalar_text(values["value"], values["dtype"])
    attrs = ", ".join("{}={}".format(k, v) for k, v in values.items())
    return "{}({}{}) -> {}".format(node["op"], ", ".join(node["inputs"]), "; " + attrs if attrs else "",
                                   ", ".join(node["outputs"]))


def render_summary(summary: Dict[str, Any], document: Dict[str, Any], graph: bool = False) -> str:
    """The text view of `describe`'s summary of `document`, with how to deploy its action; `graph`: every node."""
    provenance = summary["provenance"]
    source = provenance["source"]
    kwargs = ", ".join("{}={}".format(k, _compact(v)) for k, v in provenance.get("policy_kwargs", {}).items())
    lines = [
        "file          {} ({}, format version {})".format(summary["file"]["path"], size_text(summary["file"]["bytes"]),
                                                          summary["format_version"]),
        "model         {} {}{}".format(provenance["algorithm"], provenance["policy_class"],
                                       "  ({})".format(kwargs) if kwargs else ""),
        "exported by   {} ({} loader{})".format(provenance["producer"], provenance["exporter"],
                                               ", Stable-Baselines " + provenance["sb2_version"]
                                               if provenance.get("sb2_version") else ""),
        "source        {} ({}, sha256 {}...)".format(source["file_name"], source["format"], source["sha256"][:16]),
        "observation   " + _space(summary["observation_space"]),
        "action        " + _space(summary["action_space"]),
    ]
    vecnormalize = provenance.get("vecnormalize")
    if vecnormalize:
        lines.append("normalization VecNormalize statistics folded in ({}): obs takes raw observations, as float64 "
                     "(SB2 normalizes in float64)".format(", ".join(
                         "{} {}".format(key, value) for key, value in sorted(vecnormalize.items()))))
    lines += [
        "predict       distribution: {}; deterministic by default: {}".format(
            summary["predict"]["distribution"], "yes" if summary["predict"]["deterministic_default"] else "no"),
        "parameters    {:,} in {} tensors ({} not used for inference)".format(
            summary["parameters"]["total"], summary["parameters"]["tensors"],
            len(summary["parameters"]["unused_by_inference"])),
        "",
        "preprocessing",
    ]
    lines += ["  " + step for step in summary["preprocessing"]] or ["  (none)"]
    lines += ["", "layers"]
    rows = [["name", "op", "in", "units", "params", "activation"]]
    rows += [[l["name"], l["op"] + (" " + l["kernel"] if "kernel" in l else ""), str(l["inputs"]), str(l["units"]),
              "{:,}".format(l["parameters"]), _activation_cell(l)] for l in summary["layers"]]
    lines += ["  " + line for line in table(rows)]
    if summary["recurrent"]:
        state = next(i for i in summary["inputs"] if i["name"] == summary["recurrent"]["state_input"])
        lines += ["", "recurrent     state {} of {} floats, reset mask {}, next state in output {}".format(
            state["name"], state["shape"][1], summary["recurrent"]["mask_input"], summary["recurrent"]["state_output"])]
    lines += ["", "postprocessing"]
    lines += ["  " + step for step in summary["postprocessing"]] or ["  (none)"]
    lines += ["", "inputs"]
    lines += ["  " + line for line in table([["name", "dtype", "shape", "kind"]] + [
        [i["name"], i["dtype"], _shape(i["shape"]), i["kind"] + (" " + i["distribution"] if "distribution" in i
                                                                   else "")] for i in summary["inputs"]])]
    lines += ["", "outputs"]
    lines += ["  " + line for line in table([["name", "dtype", "shape", "needs", "description"]] + [
        [o["name"], o["dtype"], _shape(o["shape"]), ", ".join(o["needs"]), o.get("description", "")]
        for o in summary["outputs"]])]
    lines += ["", "deploy        the deterministic action alone, as ONNX or TorchScript:"]
    kept = required_subgraph(document, select_outputs(document, ["action"]))
    lines += ["  " + line for line in table([
        ["sbif convert {} --to {} --outputs action".format(shlex.quote(summary["file"]["path"]), target),
         call_text(target, document, kept)] for target in ("onnx", "torch")])]
    if graph:
        lines += ["", "graph"]
        lines += ["  {:3d}  {}".format(i, _step(node)) for i, node in enumerate(document["graph"])]
    return "\n".join(lines)


def _activation_cell(layer: Dict[str, Any]) -> str:
    steps = [layer[key] for key in ("normalization", "activation") if layer.get(key)]
    return ", ".join(steps) or "-"


def _space(space: Dict[str, Any]) -> str:
    if space["kind"] == "box":
        return "box {} {}  low={} high={}".format(space["dtype"], _shape(space["shape"]),
                                                  bound_text(space["low"], space["dtype"]),
                                                  bound_text(space["high"], space["dtype"]))
    if space["kind"] == "multi_discrete":
        return "multi_discrete nvec={}".format(space["nvec"])
    return "{} n={}".format(space["kind"], space["n"])


def bound_text(bound: Any, dtype: str) -> str:
    """A Box bound as a reader wants it: one value when every element has it (`-inf`), else the elements in
    the space's dtype, elided at an element boundary to fit BOUND_TEXT_CHARS (`[-4.8, -3.4028235e+38, ...]`)."""
    if not isinstance(bound, list):
        return scalar_text(bound, dtype)
    values = [decode_float(value) for value in bound]
    if values and all(value == values[0] or (math.isnan(value) and math.isnan(values[0])) for value in values):
        return scalar_text(values[0], dtype)
    shown: List[str] = []
    width = len("[]")
    for index, value in enumerate(values):  # formatted lazily: an image space's bound holds 100,800 values
        text = scalar_text(value, dtype)
        last = index == len(values) - 1
        if shown and width + len(text) + (2 if last else len(", ...") + 2) > BOUND_TEXT_CHARS:
            shown.append("...")
            break
        shown.append(text)
        width += len(text) + 2
    return "[" + ", ".join(shown) + "]"


def scalar_text(value: Any, dtype: str) -> str:
    """A number of the document (a JSON number, or "inf", "-inf", "nan") as a value of `dtype` prints: a float32 by
    its shortest float32 repr (-1.2, where the stored double is -1.2000000476837158), an integer without a
    fraction."""
    kind = np.dtype(dtype).kind
    if kind in "iu" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # exactly, beyond a double's 53 bits
    number = decode_float(value)
    if not math.isfinite(number):
        return str(number)
    if kind == "f":
        return str(np.dtype(dtype).type(number))
    if kind == "b":
        return str(bool(number))
    return str(int(number)) if kind in "iu" and number.is_integer() else repr(number)


def _compact(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shape(shape: Sequence[Any]) -> str:
    return "(" + ", ".join("B" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
