"""SBIF files converted to ONNX (`sbif.convert.onnx`) and run by onnxruntime, as a conformance-protocol runtime.

    python -m conformance.adapters.onnx_runtime [--opset N]

Each requested `.sbif` is read by SBIF's reader (so a `load` refuses exactly the files it refuses), converted once
(cached by path, size and modification time) and answered with an `onnxruntime.InferenceSession` on one thread
(deterministic); `op` requests run a one-op model built per request. Features: run, op, recurrent, sampling, load
(the predict interface is SBIF's `Policy`, not part of the ONNX model).
It reads one JSON request per line on stdin and writes one answer per line on stdout; diagnostics go to stderr.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set

import numpy as np

from sbif.convert.onnx import DEFAULT_OPSET, LOWERINGS, import_onnx, op_to_onnx, to_onnx
from sbif.errors import InputError, UnsupportedError
from sbif.format import SbifFile
from sbif.ops import ValueSpec

from ..protocol import PythonRuntime, serve

FEATURES = ("run", "op", "recurrent", "sampling", "load")


def session_for(model: Any) -> Any:
    """An onnxruntime CPU session on one thread, so that repeated runs give identical results."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime has no common base class for its errors
        raise _as_sbif_error(exc) from None


def _as_sbif_error(exc: Exception) -> Exception:
    """onnxruntime's errors as SBIF's: a kernel it lacks (e.g. float64 Conv) is unsupported, the rest errors."""
    message = "onnxruntime: {}".format(str(exc).strip())
    return UnsupportedError(message) if type(exc).__name__ == "NotImplemented" else InputError(message)


class OnnxPolicy:
    """A converted SBIF file in an onnxruntime session, run like `sbif.Policy.run`: graph inputs by name in,
    the requested outputs out. Inputs the requested outputs do not depend on may be left out (they are fed as
    zeros, since onnxruntime wants every graph input); a missing input they do depend on is an `InputError`."""

    def __init__(self, path: str, opset: int = DEFAULT_OPSET):
        sbif_file = SbifFile.read(path)
        self.document = sbif_file.document
        self.model = to_onnx(sbif_file, opset)
        self.session = session_for(self.model)
        self.inputs = {entry["name"]: entry for entry in self.document["inputs"]}
        self._depends = input_dependencies(self.document)

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str]) -> Dict[str, np.ndarray]:
        unknown = [name for name in outputs if name not in self._depends]
        if unknown:
            raise InputError("unknown output(s) {}".format(", ".join(unknown)))
        needed = set().union(*(self._depends[name] for name in outputs)) if outputs else set()
        missing = sorted(needed - set(feeds))
        if missing:
            raise InputError("missing input(s): {}".format(", ".join(missing)))
        batch = next((len(feeds[name]) for name in feeds if name in self.inputs), 1)  # every input is batched
        full = {}
        for name, entry in self.inputs.items():
            if name in feeds:
                full[name] = np.asarray(feeds[name])
            else:
                full[name] = np.zeros([batch if dim is None else dim for dim in entry["shape"]], entry["dtype"])
        try:
            return dict(zip(outputs, self.session.run(list(outputs), full)))
        except Exception as exc:
            raise _as_sbif_error(exc) from None


def input_dependencies(document: Mapping[str, Any]) -> Dict[str, Set[str]]:
    """For every graph value, the graph inputs it is computed from."""
    depends: Dict[str, Set[str]] = {entry["name"]: {entry["name"]} for entry in document["inputs"]}
    for node in document["graph"]:
        used: Set[str] = set()
        for name in node["inputs"]:
            used |= depends.get(name, set())
        for name in node["outputs"]:
            depends[name] = used
    return depends


class OnnxRuntime(PythonRuntime):
    """The protocol over `OnnxPolicy` (run requests) and one-op ONNX models (op requests), in-process."""

    def __init__(self, opset: int = DEFAULT_OPSET):
        import onnxruntime

        onnx = import_onnx()
        self.opset = opset
        super().__init__(load=lambda path: OnnxPolicy(path, self.opset), name="sbif-onnxruntime",
                         features=FEATURES, ops=sorted(LOWERINGS))
        self.hello["runtime"]["language"] = "python {}.{} + onnxruntime {} (onnx {}, opset {})".format(
            sys.version_info[0], sys.version_info[1], onnxruntime.__version__, onnx.__version__, self.opset)

    def _op(self, request: Mapping[str, Any]) -> Dict[str, Any]:
        arrays = [np.asarray(array) for array in request["inputs"]]
        model = op_to_onnx(request["op"], dict(request.get("attrs") or {}),
                           [ValueSpec(array.dtype.name, array.shape) for array in arrays],
                           int(request.get("n_outputs", 1)), self.opset)
        session = session_for(model)
        try:
            results = session.run(None, {"x{}".format(i): array for i, array in enumerate(arrays)})
        except Exception as exc:
            raise _as_sbif_error(exc) from None
        return {str(i): result for i, result in enumerate(results)}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.adapters.onnx_runtime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help="the ONNX opset to convert to (default: %(default)s)")
    args = parser.parse_args(argv)
    return serve(OnnxRuntime(args.opset), sys.stdin, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
