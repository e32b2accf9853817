"""The `sbif` command: export, inspect, validate and run SBIF files."""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any, Dict, List, NoReturn, Optional, Sequence

import numpy as np

from . import __version__
from .errors import InputError, SbifError, preview
from .format.strict_json import loads_json_input

EPILOG = """examples:
  sbif export ppo2_cartpole.zip -o ppo2_cartpole.sbif     (in the SB2 environment)
  sbif inspect ppo2_cartpole.sbif
  sbif validate ppo2_cartpole.sbif --json
  sbif predict ppo2_cartpole.sbif --obs '[[0.01, 0.02, 0.03, 0.04]]' --deterministic
  sbif predict ppo2_cartpole.sbif --obs observations.npy -o actions.npy
  sbif convert ppo2_cartpole.sbif --to onnx -o ppo2_cartpole.onnx
"""

ACTIVATION_OPS = {"tanh", "relu", "relu6", "elu", "selu", "sigmoid", "softplus", "softsign", "swish", "leaky_relu"}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 1
    try:
        return args.handler(args)
    except SbifError as exc:
        print("sbif {}: error: {}".format(args.command, exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `sbif inspect ... | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug in SBIF: one line for the user, the traceback on request
        if os.environ.get("SBIF_DEBUG"):
            raise
        print("sbif {}: internal error: {}: {} (rerun with SBIF_DEBUG=1 for the traceback, and please "
              "report it)".format(args.command, type(exc).__name__, preview(str(exc))), file=sys.stderr)
        return 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line usage errors and exit status 1, like every other refusal: status 2 means only an
    internal error (a bug in SBIF), so a script or a fuzzer can tell the two apart."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(1, "{}: error: {} (see {} --help)\n".format(self.prog, message.replace("\n", " "), self.prog))


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="sbif", description="Stable-Baselines policies as one framework-neutral file (SBIF).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version="sbif {}".format(__version__))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    export = _command(commands, "export", "convert an SB2 .zip or .pkl model into an .sbif file", run_export,
                      "  sbif export model.zip -o model.sbif\n  sbif export old_model.pkl --algo TRPO -o model.sbif")
    export.add_argument("source", help="SB2 save file (.zip, or a legacy cloudpickle .pkl)")
    export.add_argument("-o", "--output", help="the .sbif file to write (default: SOURCE with .sbif suffix)")
    export.add_argument("--algo", help="the SB2 algorithm (A2C, PPO2, ...), where the file does not tell")
    from .export.exporter import DEFAULT_LOADER, LOADERS
    export.add_argument("--loader", choices=LOADERS, default=DEFAULT_LOADER,
                        help="how to read SOURCE: 'safe' (default) reads it as data, in any environment, without "
                             "running code from the file; 'live' loads it with Stable-Baselines itself (the SB2 "
                             "environment only) and verifies the export against SB2")
    export.add_argument("--policy-kwargs", metavar="JSON",
                        help="policy kwargs the file does not tell the safe loader, as a JSON object, e.g. "
                             "'{\"act_fun\": \"relu\"}' or '{\"net_arch\": [{\"pi\": [64], \"vf\": [64]}]}'")
    export.add_argument("--policy", metavar="CLASS",
                        help="the policy class, where the safe loader cannot read it from the file (e.g. MlpPolicy)")
    export.add_argument("--vecnormalize", metavar="PATH",
                        help="fold observation normalization into the file: an SB2 VecNormalize save or a zoo "
                             "obs_rms.pkl (predict then takes raw environment observations)")
    export.add_argument("--zoo-config", metavar="CONFIG_YML",
                        help="an rl-baselines-zoo config.yml: its 'normalize' setting (and kwargs) decides whether "
                             "the statistics beside it (or --vecnormalize) are folded in")
    export.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip comparing the exported policy with SB2's own predictions (live loader; "
                             "the safe loader never runs SB2, so it does not verify)")
    export.add_argument("--json", action="store_true", help="print a JSON summary instead of text")

    inspect = _command(commands, "inspect", "describe an .sbif file: spaces, layers, parameters, steps",
                       run_inspect, "  sbif inspect model.sbif\n  sbif inspect model.sbif --json")
    inspect.add_argument("file")
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")
    inspect.add_argument("--graph", action="store_true", help="also list every graph node")

    validate = _command(commands, "validate", "check an .sbif file completely (container, schema, graph)",
                        run_validate, "  sbif validate model.sbif")
    validate.add_argument("files", nargs="+")
    validate.add_argument("--json", action="store_true", help="print one JSON result per file")

    predict = _command(commands, "predict", "run a policy on observations", run_predict,
                       "  sbif predict model.sbif --obs '[0.1, 0.2, 0.3, 0.4]'\n"
                       "  sbif predict model.sbif --obs batch.npy --stochastic --seed 1 -o actions.npy")
    predict.add_argument("file")
    predict.add_argument("--obs", required=True,
                         help="observations: a .npy or .json file, or inline JSON (one observation or a batch)")
    mode = predict.add_mutually_exclusive_group()
    mode.add_argument("--deterministic", dest="deterministic", action="store_const", const=True, default=None,
                      help="take the distribution's mode")
    mode.add_argument("--stochastic", dest="deterministic", action="store_const", const=False,
                      help="sample (default: the algorithm's SB2 default)")
    predict.add_argument("--seed", type=int, help="seed for sampling")
    predict.add_argument("--backend", choices=("numpy", "numba", "auto"), default="numpy",
                         help="the runtime's executor (default numpy: one call does not repay numba's start-up; "
                              "auto: numba when installed)")
    predict.add_argument("-o", "--output", help="write actions to this .npy file instead of printing JSON")

    convert = _command(commands, "convert", "convert an .sbif file to ONNX or a TorchScript module", run_convert,
                       "  sbif convert model.sbif --to onnx -o model.onnx      (pip install onnx)\n"
                       "  sbif convert model.sbif --to torch -o model.pt       (pip install torch; torch.jit.load)")
    convert.add_argument("file")
    convert.add_argument("--to", required=True, choices=CONVERTERS, help="the target format")
    convert.add_argument("-o", "--output", help="the file to write (default: FILE with .onnx / .pt suffix)")
    convert.add_argument("--opset", type=int, default=17, help="ONNX opset to target (default 17; 14 or newer)")
    convert.add_argument("--json", action="store_true", help="print a JSON summary instead of text")

    from conformance.cli import add_conformance_command  # the conformance suite: `sbif conformance --help`
    add_conformance_command(commands)
    return parser


def _command(commands: Any, name: str, summary: str, handler: Any, examples: str) -> argparse.ArgumentParser:
    sub = commands.add_parser(name, help=summary, description=summary, epilog="examples:\n" + examples,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.set_defaults(handler=handler)
    return sub


# -- convert --------------------------------------------------------------------------------------------------
#: target format -> default suffix of the written file
CONVERTERS = {"onnx": ".onnx", "torch": ".pt"}


def run_convert(args: argparse.Namespace) -> int:
    output = args.output or os.path.splitext(args.file)[0] + CONVERTERS[args.to]
    try:
        if args.to == "onnx":
            from .convert import onnx as converter

            converter.convert(args.file, output, opset=args.opset)
        else:
            from .convert import torch as converter

            converter.save(args.file, output)
    except OSError as exc:
        raise SbifError("cannot write {}: {}".format(output, exc.strerror or exc)) from None
    summary = {"source": args.file, "output": output, "format": args.to, "bytes": os.path.getsize(output)}
    if args.json:
        print(json.dumps(summary))
    else:
        print("wrote {} ({}, {})".format(output, args.to, _size(summary["bytes"])))
    return 0


# -- export ---------------------------------------------------------------------------------------------------
def run_export(args: argparse.Namespace) -> int:
    from .export import export

    output = args.output or os.path.splitext(args.source)[0] + ".sbif"
    policy_kwargs = None
    if args.policy_kwargs is not None:  # read strictly here (nesting, NaN, long numbers), checked by the exporter
        try:
            policy_kwargs = loads_json_input(args.policy_kwargs)
        except ValueError as exc:
            raise InputError("--policy-kwargs is not valid JSON: {}".format(exc)) from None
    sbif_file, report = export(args.source, algorithm=args.algo, loader=args.loader, verify=args.verify,
                               policy_kwargs=policy_kwargs, policy=args.policy,
                               vecnormalize=args.vecnormalize, zoo_config=args.zoo_config)
    try:
        sbif_file.write(output)
    except OSError as exc:
        raise SbifError("cannot write {}: {}".format(output, exc.strerror or exc)) from None
    provenance = sbif_file.document["provenance"]
    summary = {"source": args.source, "output": output, "algorithm": provenance["algorithm"],
               "policy_class": provenance["policy_class"], "parameters": sbif_file.parameter_count(),
               "bytes": os.path.getsize(output), "verification": report or None}
    if args.json:
        print(json.dumps(summary))
        return 0
    print("wrote {} ({} {}, {:,} parameters, {})".format(output, summary["algorithm"], summary["policy_class"],
                                                        summary["parameters"], _size(summary["bytes"])))
    if report:
        details = ", ".join("{} {}".format(k, int(v)) if k == "action_mismatches" else "{} {:.2g}".format(k, v)
                            for k, v in report.items())
        print("verified against SB2 on 64 observations (worst difference as a fraction of what float32 rounding "
              "allows, SPEC section 6): {}".format(details))
    return 0


# -- inspect --------------------------------------------------------------------------------------------------
def run_inspect(args: argparse.Namespace) -> int:
    from .format import SbifFile

    sbif_file = SbifFile.read(args.file)
    summary = describe(sbif_file)
    summary["file"] = {"path": args.file, "bytes": os.path.getsize(args.file)}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(render_summary(summary, sbif_file if args.graph else None))
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
        after = [c["op"] for c in consumers.get(node["outputs"][0], []) if c["op"] in ACTIVATION_OPS]
        bias_name = reshaped.get(node["inputs"][2], node["inputs"][2]) if len(node["inputs"]) > 2 else ""
        bias = int(np.prod(tensors[bias_name]["shape"])) if bias_name in tensors else 0
        layer = {"name": node["outputs"][0], "op": node["op"], "inputs": weight[-2], "units": weight[-1],
                 "parameters": int(np.prod(weight)) + bias, "activation": after[0] if after else None}
        if node["op"] == "conv2d":
            layer["kernel"] = "{}x{}/{}".format(weight[0], weight[1], node["attrs"]["strides"][0])
        layers.append(layer)
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
        "postprocessing": [_step(node) for node in nodes if node["op"] == "clip"],
        "recurrent": document["predict"].get("recurrent"),
        "inputs": document["inputs"],
        "outputs": document["outputs"],
    }


def _step(node: Dict[str, Any]) -> str:
    attrs = ", ".join("{}={}".format(k, v) for k, v in node.get("attrs", {}).items())
    return "{}({}{}) -> {}".format(node["op"], ", ".join(node["inputs"]), "; " + attrs if attrs else "",
                                   ", ".join(node["outputs"]))


def render_summary(summary: Dict[str, Any], sbif_file: Any = None) -> str:
    provenance = summary["provenance"]
    source = provenance["source"]
    kwargs = ", ".join("{}={}".format(k, _compact(v)) for k, v in provenance.get("policy_kwargs", {}).items())
    lines = [
        "file          {} ({}, format version {})".format(summary["file"]["path"], _size(summary["file"]["bytes"]),
                                                          summary["format_version"]),
        "model         {} {}{}".format(provenance["algorithm"], provenance["policy_class"],
                                       "  ({})".format(kwargs) if kwargs else ""),
        "exported by   {} ({} loader{})".format(provenance["producer"], provenance["exporter"],
                                               ", Stable-Baselines " + provenance["sb2_version"]
                                               if provenance.get("sb2_version") else ""),
        "source        {} ({}, sha256 {}...)".format(source["file_name"], source["format"], source["sha256"][:16]),
        "observation   " + _space(summary["observation_space"]),
        "action        " + _space(summary["action_space"]),
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
              "{:,}".format(l["parameters"]), l["activation"] or "-"] for l in summary["layers"]]
    lines += ["  " + line for line in _table(rows)]
    if summary["recurrent"]:
        state = next(i for i in summary["inputs"] if i["name"] == summary["recurrent"]["state_input"])
        lines += ["", "recurrent     state {} of {} floats, reset mask {}, next state in output {}".format(
            state["name"], state["shape"][1], summary["recurrent"]["mask_input"], summary["recurrent"]["state_output"])]
    lines += ["", "postprocessing"]
    lines += ["  " + step for step in summary["postprocessing"]] or ["  (none)"]
    lines += ["", "inputs"]
    lines += ["  " + line for line in _table([["name", "dtype", "shape", "kind"]] + [
        [i["name"], i["dtype"], _shape(i["shape"]), i["kind"] + (" " + i["distribution"] if "distribution" in i
                                                                   else "")] for i in summary["inputs"]])]
    lines += ["", "outputs"]
    lines += ["  " + line for line in _table([["name", "dtype", "shape", "description"]] + [
        [o["name"], o["dtype"], _shape(o["shape"]), o.get("description", "")] for o in summary["outputs"]])]
    if sbif_file is not None:
        lines += ["", "graph"]
        lines += ["  {:3d}  {}".format(i, _step(node)) for i, node in enumerate(sbif_file.document["graph"])]
    return "\n".join(lines)


def _space(space: Dict[str, Any]) -> str:
    if space["kind"] == "box":
        return "box {} {}  low={} high={}".format(space["dtype"], _shape(space["shape"]), _compact(space["low"]),
                                                  _compact(space["high"]))
    if space["kind"] == "multi_discrete":
        return "multi_discrete nvec={}".format(space["nvec"])
    return "{} n={}".format(space["kind"], space["n"])


def _compact(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shape(shape: Sequence[Any]) -> str:
    return "(" + ", ".join("B" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _size(nbytes: int) -> str:
    return "{:.1f} KiB".format(nbytes / 1024) if nbytes < 1 << 20 else "{:.1f} MiB".format(nbytes / (1 << 20))


def _table(rows: List[List[str]]) -> List[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


# -- validate -------------------------------------------------------------------------------------------------
def run_validate(args: argparse.Namespace) -> int:
    from .format import SbifFile

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


# -- predict --------------------------------------------------------------------------------------------------
def run_predict(args: argparse.Namespace) -> int:
    from .runtime import load

    if args.seed is not None and args.seed < 0:
        raise InputError("--seed must be a non-negative integer, got {}".format(preview(args.seed)))
    policy = load(args.file, backend=args.backend)
    observations = read_observations(args.obs)
    actions, _ = policy.predict(observations, deterministic=args.deterministic, rng=args.seed)
    if args.output:
        try:
            np.save(args.output, np.asarray(actions))
        except OSError as exc:
            raise SbifError("cannot write {}: {}".format(args.output, exc.strerror or exc)) from None
        print("wrote {} actions of shape {} to {}".format(np.asarray(actions).dtype, np.shape(actions), args.output))
    else:
        print(json.dumps({"actions": np.asarray(actions).tolist()}))
    return 0


#: .npy dtype kinds that are numbers an observation can be, and what the others are (for the refusal).
NUMERIC_KINDS = "biuf"
NON_NUMERIC_KINDS = {"c": "complex (the imaginary part would be dropped)", "m": "timedelta", "M": "datetime",
                     "O": "Python objects", "S": "byte strings", "U": "strings", "V": "structured or raw records"}


def read_observations(spec: str) -> np.ndarray:
    """Observations from a .npy file, a .json file, or inline JSON, as a numeric array (InputError otherwise).

    A .npy header is read first and the file refused before anything is allocated when its declared size is not
    what the file holds (a 192-byte file declaring shape (4e9, 4) would make np.load try 60 GiB) or its dtype is
    not a number (complex, datetime, structured, object, strings: NumPy would convert some silently later).
    JSON is read strictly (loads_json_input) and must make a numeric array."""
    try:
        if spec.endswith(".npy"):
            return _numeric(read_npy(spec))
        if spec.endswith(".json"):
            with open(spec, "rb") as handle:
                raw = handle.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError("cannot read observations from {}: not UTF-8 text (byte {} is {})".format(
                    preview(spec), exc.start, preview(raw[exc.start:exc.start + 1]))) from None
            return _numeric(_json_array(text))
        return _numeric(_json_array(spec))
    except OSError as exc:
        raise InputError("cannot read observations from {}: {}".format(preview(spec), exc.strerror or exc)) from None
    except ValueError as exc:
        raise InputError("cannot read observations from {}: {}".format(preview(spec), exc)) from None


def read_npy(path: str) -> np.ndarray:
    """The array in a .npy file, its header checked before its data is read: a known format version, a numeric
    dtype, and exactly as many data bytes as the header's shape and dtype declare (ValueError otherwise)."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise ValueError(".npy format version {}.{} is not supported (1.0 or 2.0)".format(*version))
        shape, fortran_order, dtype = readers[version](handle)
        _check_numeric_dtype(dtype)
        if not all(isinstance(size, int) and size >= 0 for size in shape):
            raise ValueError("the .npy header declares shape {}, not a shape".format(preview(shape)))
        count = 1
        for size in shape:
            count *= size
        declared = count * dtype.itemsize
        available = os.fstat(handle.fileno()).st_size - handle.tell()
        if declared != available:
            raise ValueError("the .npy header declares shape {} of {} ({} bytes), but {} bytes follow it".format(
                preview(shape), dtype.name, declared if declared < 10 ** 30 else "more than 10^30", available))
        data = handle.read(declared)
    if len(data) != declared:
        raise ValueError("the .npy file changed while it was read")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def _check_numeric_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        kind = "subarrays" if dtype.subdtype is not None else NON_NUMERIC_KINDS.get(dtype.kind, dtype.kind)
        raise ValueError("observations must be numbers, not {} (dtype {})".format(kind, preview(dtype.str)))


def _json_array(text: str) -> np.ndarray:
    """The numeric array a JSON text denotes: a number, or nested lists of numbers of one shape. Integers beyond
    int64 are read as doubles (JSON numbers); null, strings, objects and ragged lists are refused."""
    value = loads_json_input(text)
    if not isinstance(value, (list, int, float)):  # bool is an int: a single flag of a MultiBinary observation
        raise ValueError("observations are a number or nested lists of numbers, not a JSON {}".format(
            "object" if isinstance(value, dict) else "string" if isinstance(value, str) else "null"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy 1.x warns before making an object array of ragged lists
        array = np.array(value)
    if array.dtype.kind == "O":  # huge integers, ragged lists, or a null among numbers
        odd = [item for item in array.ravel() if type(item) not in (int, float, bool)][:1]
        if odd:
            raise ValueError("observations are nested lists of numbers of one shape, not {}".format(preview(odd[0])))
        array = np.array(value, dtype=np.float64)
    return array


def _numeric(array: np.ndarray) -> np.ndarray:
    """`array` if it holds numbers (JSON strings make a str array; a .npy may hold anything)."""
    _check_numeric_dtype(array.dtype)
    return array


if __name__ == "__main__":
    sys.exit(main())
