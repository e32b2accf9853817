"""The conformance protocol, version 1 (`spec/conformance-protocol.md`): exact tensors in JSON, and runtimes.

A runtime under test, or an oracle, is a `Runtime`: after a handshake (`hello`: protocol version, name,
features and ops) it answers requests of three types with an `Answer`:

- `run`: graph inputs (observation batch, noise, state, mask) in, named outputs out (every runtime);
- `predict`: SB2's `predict` / `action_probability` / `value` interface (feature `predict`);
- `op`: one op on given inputs (feature `op`), for the op test vectors;
- `load`: read and validate a file, nothing else (feature `load`), for the reader-refusal check.

`Answer.status` is `result`, `loaded` (a `load` succeeded), `skipped` (the runtime says it does not support
something, and names it), `errored` (the runtime reported a failure; for a `load`, with the `error_class` of the
refusal) or, seen by the harness, `crashed` (the process died or wrote something that is not the protocol) and
`timeout`. So a crash is never mistaken for a wrong answer.

Runtimes: `PythonRuntime` (in-process, over `sbif.load` or any loader with the same interface),
`ProcessRuntime` (spawns an executable and speaks JSON lines with it), and `serve` turns a Python runtime into
such an executable (`conformance.adapters.sbif_numpy`).
"""
from __future__ import annotations

import collections
import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from sbif.errors import DocumentError, FileFormatError, SbifError, UnsupportedError, preview
from sbif.format.strict_json import loads_json_input

PROTOCOL_VERSION = 1
#: what a runtime can declare in its hello; `run` is mandatory
FEATURES = ("run", "predict", "op", "recurrent", "sampling", "load")
REQUEST_TYPES = ("run", "predict", "op", "load")
PREDICT_METHODS = ("predict", "action_probability", "value")
LOADED = "loaded"
STATUSES = ("result", LOADED, "skipped", "errored", "crashed", "timeout")
#: the classes a reader refuses a file with (SPEC section 7), and their names in `load` answers
REFUSALS = (FileFormatError, UnsupportedError, DocumentError)
ERROR_CLASSES = tuple(error.__name__ for error in REFUSALS)
DTYPES = ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "bool")
SPECIAL_FLOATS = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
#: the largest integer every JSON reader keeps exactly (JavaScript numbers are doubles)
MAX_SAFE_INTEGER = 2 ** 53 - 1


class ProtocolError(Exception):
    """A message that does not follow the protocol (bad JSON, a missing field, a malformed tensor)."""


# -- tensors -------------------------------------------------------------------------------------------------------
def encode_array(value: Any) -> Dict[str, Any]:
    """`{"dtype", "shape", "data"}`: data flat in row-major order; floats exact as JSON numbers (the double
    the value converts to) or "nan"/"inf"/"-inf"; integers as JSON integers; bools as true/false."""
    array = np.asarray(value)
    dtype = array.dtype.name
    if dtype not in DTYPES:
        raise ProtocolError("cannot send a {} tensor: the protocol carries {}".format(dtype, ", ".join(DTYPES)))
    flat = array.reshape(-1)
    if array.dtype.kind == "f":
        wide = flat.astype(np.float64)
        data = wide.tolist()
        if not np.all(np.isfinite(wide)):
            data = [v if v == v and v not in (float("inf"), float("-inf")) else
                    ("nan" if v != v else "inf" if v > 0 else "-inf") for v in data]
    else:
        data = flat.tolist()
    return {"dtype": dtype, "shape": [int(d) for d in array.shape], "data": data}


def decode_array(obj: Any, where: str = "tensor") -> np.ndarray:
    """The array a tensor object denotes, checked: known dtype, a shape of non-negative integers, exactly
    product(shape) elements of the right JSON type (integers in the dtype's range)."""
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        raise ProtocolError("{}: a tensor is an object with exactly dtype, shape and data".format(where))
    dtype, shape, data = obj["dtype"], obj["shape"], obj["data"]
    if dtype not in DTYPES:
        raise ProtocolError("{}: unknown dtype {}".format(where, preview(dtype)))
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ProtocolError("{}: shape must be a list of non-negative integers, got {}".format(where, preview(shape)))
    count = 1
    for d in shape:
        count *= d
    if not isinstance(data, list) or len(data) != count:
        raise ProtocolError("{}: shape {} needs {} elements, got {}".format(
            where, shape, count, len(data) if isinstance(data, list) else type(data).__name__))
    kind = np.dtype(dtype).kind
    if kind == "f":
        values = []
        for v in data:
            if type(v) in (int, float):
                values.append(v)
            elif isinstance(v, str) and v in SPECIAL_FLOATS:
                values.append(SPECIAL_FLOATS[v])
            else:
                raise ProtocolError("{}: {} is not a float (a number, or 'nan', 'inf', '-inf')".format(
                    where, preview(v)))
        with np.errstate(over="ignore"):
            return np.array(values, dtype=np.float64).astype(dtype).reshape(shape)
    if kind == "b":
        if not all(type(v) is bool for v in data):
            raise ProtocolError("{}: bool tensors hold true/false".format(where))
        return np.array(data, dtype=bool).reshape(shape)
    info = np.iinfo(dtype)
    if not all(type(v) is int and info.min <= v <= info.max for v in data):
        bad = next(v for v in data if not (type(v) is int and info.min <= v <= info.max))
        raise ProtocolError("{}: {} is not a {} value".format(where, preview(bad), dtype))
    return np.array(data, dtype=dtype).reshape(shape)


def encode_value(value: Any) -> Any:
    """A predict result: null, a tensor, or a list of them (SB2's action_probability returns lists); or, in case
    files, a load outcome: "loaded" or an error class."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    return encode_array(value)


def decode_value(obj: Any, where: str) -> Any:
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, list):
        return [decode_value(v, "{}[{}]".format(where, i)) for i, v in enumerate(obj)]
    return decode_array(obj, where)


def _arrays(obj: Any, where: str) -> Dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise ProtocolError("{} must be an object of tensors".format(where))
    return {name: decode_array(value, "{}.{}".format(where, name if len(name) <= 80 else preview(name)))
            for name, value in obj.items()}


# -- messages ------------------------------------------------------------------------------------------------------
def encode_request(request: Mapping[str, Any]) -> Dict[str, Any]:
    """A request with NumPy arrays as the wire object."""
    kind = request["type"]
    message = {key: value for key, value in request.items()}
    if kind == "run":
        message["inputs"] = {name: encode_array(v) for name, v in request["inputs"].items()}
    elif kind == "predict":
        for key in ("observation", "state", "mask", "actions"):
            if isinstance(message.get(key), Mapping):  # a HER dict observation: key -> tensor
                message[key] = {name: encode_array(v) for name, v in message[key].items()}
            elif message.get(key) is not None:
                message[key] = encode_array(message[key])
        if message.get("noise") is not None:
            message["noise"] = {name: encode_array(v) for name, v in message["noise"].items()}
    elif kind == "op":
        message["inputs"] = [encode_array(v) for v in request["inputs"]]
    return message


def decode_request(message: Mapping[str, Any]) -> Dict[str, Any]:
    """A wire request checked and with its tensors as arrays (`ProtocolError` if malformed)."""
    kind = message.get("type")
    if kind not in REQUEST_TYPES:
        raise ProtocolError("unknown request type {}".format(preview(kind)))
    request = dict(message)
    if kind in ("run", "predict", "load") and not isinstance(message.get("model"), str):
        raise ProtocolError("{} requests name the model file in 'model'".format(kind))
    if kind == "run":
        request["inputs"] = _arrays(message.get("inputs"), "inputs")
        outputs = message.get("outputs")
        if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
            raise ProtocolError("run requests list the wanted output names in 'outputs'")
    elif kind == "predict":
        if message.get("method") not in PREDICT_METHODS:
            raise ProtocolError("predict requests need 'method', one of {}".format(", ".join(PREDICT_METHODS)))
        if message.get("observation") is None:
            raise ProtocolError("predict requests need an 'observation'")
        observation = message["observation"]
        if isinstance(observation, dict) and "dtype" not in observation:  # a HER dict observation
            request["observation"] = _arrays(observation, "observation")
        else:
            request["observation"] = decode_array(observation, "observation")
        for key in ("state", "mask", "actions"):
            if message.get(key) is not None:
                request[key] = decode_array(message[key], key)
        if message.get("noise") is not None:
            request["noise"] = _arrays(message["noise"], "noise")
    elif kind == "op":
        if not isinstance(message.get("op"), str) or not isinstance(message.get("inputs"), list):
            raise ProtocolError("op requests need 'op' (a name) and 'inputs' (a list of tensors)")
        request["inputs"] = [decode_array(v, "inputs[{}]".format(i)) for i, v in enumerate(message["inputs"])]
        if not isinstance(message.get("attrs", {}), dict):
            raise ProtocolError("op request attrs must be an object")
    return request


class Answer:
    """A runtime's answer to one request. `outputs` maps names to arrays (or lists of arrays / None for
    predict results) when `status` is 'result'; `message` explains the other statuses, and `error_class` names
    the class of an `errored` answer to a `load` (one of `ERROR_CLASSES`)."""

    __slots__ = ("status", "outputs", "message", "details", "seconds", "missing", "error_class")

    def __init__(self, status: str, outputs: Optional[Dict[str, Any]] = None, message: str = "",
                 details: str = "", seconds: float = 0.0, missing: Optional[Dict[str, str]] = None,
                 error_class: Optional[str] = None):
        if status not in STATUSES:
            raise ValueError("unknown answer status {!r}".format(status))
        self.status, self.outputs, self.message, self.details = status, outputs or {}, message, details
        self.seconds = seconds
        #: requested outputs an oracle cannot compute, with the reason (never allowed for a runtime under test)
        self.missing = dict(missing or {})
        self.error_class = error_class

    @property
    def ok(self) -> bool:
        return self.status == "result"

    def __repr__(self) -> str:
        if self.ok:
            return "Answer(result: {})".format(", ".join(sorted(self.outputs)))
        return "Answer({}: {})".format(self.status, self.message)

    def to_wire(self, request_id: Any) -> Dict[str, Any]:
        message: Dict[str, Any] = {"id": request_id, "type": self.status}
        if self.status == "result":
            message["outputs"] = {name: encode_value(v) for name, v in self.outputs.items()}
            if self.missing:
                message["missing"] = dict(self.missing)
        elif self.status == "skipped":
            message["reason"] = self.message
        elif self.status != LOADED:
            message["message"] = self.message
            if self.details:
                message["details"] = self.details
            if self.error_class is not None:
                message["error_class"] = self.error_class
        return message

    @classmethod
    def from_wire(cls, message: Mapping[str, Any]) -> "Answer":
        kind = message.get("type")
        if kind == "result":
            outputs = message.get("outputs")
            if not isinstance(outputs, dict):
                raise ProtocolError("a result carries 'outputs', an object")
            missing = message.get("missing") or {}
            if not isinstance(missing, dict):
                raise ProtocolError("'missing' must map output names to reasons")
            return cls("result", {name: decode_value(v, "outputs." + name) for name, v in outputs.items()},
                       missing={str(k): str(v) for k, v in missing.items()})
        if kind == LOADED:
            return cls(LOADED)
        if kind == "skipped":
            return cls("skipped", message=str(message.get("reason", "")))
        if kind == "errored":
            error_class = message.get("error_class")
            if error_class is not None and not isinstance(error_class, str):
                raise ProtocolError("'error_class' must be a string, got {}".format(preview(error_class)))
            return cls("errored", message=str(message.get("message", "")), details=str(message.get("details", "")),
                       error_class=error_class)
        raise ProtocolError("unknown answer type {}".format(preview(kind)))


def load_outcome(answer: Answer) -> Answer:
    """A `load` answer as the harness compares it: a result whose output `load` is "loaded" or the refusal's error
    class. Every other answer is a failure and says why: a runtime that declares `load` answers each load with the
    file loaded or refused, never skipped, and names the class of a refusal."""
    if answer.status == LOADED:
        return Answer("result", {"load": LOADED}, seconds=answer.seconds)
    if answer.status == "errored" and answer.error_class is not None:
        return Answer("result", {"load": answer.error_class}, seconds=answer.seconds)
    if answer.status in ("skipped", "errored", "result"):
        return Answer("errored", message="a load was answered {} without an error_class ({})".format(
            answer.status, answer.message or "no message"), seconds=answer.seconds)
    return answer


def refusal_class(error: BaseException) -> Optional[str]:
    """The `ERROR_CLASSES` name a load reports for an SBIF error (None for any other failure)."""
    for error_class in REFUSALS:
        if isinstance(error, error_class):
            return error_class.__name__
    return None


def check_hello(message: Any) -> Dict[str, Any]:
    """A runtime's hello, checked (`ProtocolError` otherwise)."""
    if not isinstance(message, dict) or message.get("type") != "hello":
        raise ProtocolError("the first line a runtime writes must be its hello, got {}".format(preview(message)))
    if message.get("protocol") != PROTOCOL_VERSION:
        raise ProtocolError("the runtime speaks protocol {}; this harness speaks {}".format(
            message.get("protocol"), PROTOCOL_VERSION))
    runtime = message.get("runtime")
    if not isinstance(runtime, dict) or not isinstance(runtime.get("name"), str):
        raise ProtocolError("hello.runtime must be an object with at least a name")
    features = message.get("features")
    if not isinstance(features, list) or "run" not in features:
        raise ProtocolError("hello.features must be a list that includes 'run'")
    ops = message.get("ops")
    if ops is not None and not (isinstance(ops, list) and all(isinstance(o, str) for o in ops)):
        raise ProtocolError("hello.ops must be a list of op names, or null")
    return dict(message)


# -- runtimes ------------------------------------------------------------------------------------------------------
class Runtime:
    """Something that answers protocol requests. Subclasses set `hello` and implement `request`."""

    hello: Dict[str, Any] = {}

    @property
    def name(self) -> str:
        runtime = self.hello.get("runtime", {})
        version = runtime.get("version")
        return runtime.get("name", "?") + (" " + str(version) if version else "")

    @property
    def features(self) -> List[str]:
        return list(self.hello.get("features", []))

    @property
    def ops(self) -> Optional[List[str]]:
        return self.hello.get("ops")

    def supports(self, feature: str) -> bool:
        return feature in self.features

    def request(self, request: Mapping[str, Any]) -> Answer:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # conveniences
    def run(self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> Answer:
        return self.request({"type": "run", "model": model, "inputs": dict(inputs), "outputs": list(outputs)})

    def op(self, op: str, inputs: Sequence[np.ndarray], attrs: Optional[Mapping[str, Any]] = None,
           n_outputs: int = 1) -> Answer:
        return self.request({"type": "op", "op": op, "attrs": dict(attrs or {}), "inputs": list(inputs),
                             "n_outputs": n_outputs})

    def load(self, model: str) -> Answer:
        return self.request({"type": "load", "model": model})


def hello_message(name: str, version: str, language: str, features: Iterable[str],
                  ops: Optional[Iterable[str]]) -> Dict[str, Any]:
    return {"type": "hello", "protocol": PROTOCOL_VERSION,
            "runtime": {"name": name, "version": version, "language": language},
            "features": list(features), "ops": None if ops is None else sorted(ops)}


class PythonRuntime(Runtime):
    """The protocol over a Python loader with SBIF's `Policy` interface, in-process (no JSON involved).

    `load(path)` returns a policy (`run`, `predict`, `action_probability`, `value`); `get_op(name)` returns an
    op class (`attributes`, `compute`). Defaults: `sbif.load(path, backend="numpy")` and the op registry, i.e. the
    NumPy reference runtime. Policies are cached per file (path, size and modification time). A `load` request
    answers whether `load(path)` succeeds; its refusals are the loader's `SbifError`s, by class.
    """

    def __init__(self, load: Optional[Callable[[str], Any]] = None, get_op: Optional[Callable[[str], Any]] = None,
                 name: str = "sbif-numpy", version: Optional[str] = None,
                 features: Sequence[str] = ("run", "predict", "op", "recurrent", "sampling", "load"),
                 ops: Optional[Iterable[str]] = None):
        import sbif
        from sbif.ops import REGISTRY
        from sbif.ops import get_op as registry_get_op

        self._load = load or (lambda path: sbif.load(path, backend="numpy"))
        self._get_op = get_op or registry_get_op
        self.hello = hello_message(name, version or sbif.__version__, "python {}.{} + numpy {}".format(
            sys.version_info[0], sys.version_info[1], np.__version__), features,
            sorted(REGISTRY) if ops is None else ops)
        self._policies: Dict[Any, Any] = {}

    def policy(self, path: str) -> Any:
        try:
            stat = os.stat(path)
        except OSError:  # the loader says why the file cannot be read (a FileFormatError for SBIF's reader)
            return self._load(path)
        key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._policies:
            if len(self._policies) > 64:
                self._policies.clear()
            self._policies[key] = self._load(path)
        return self._policies[key]

    def request(self, request: Mapping[str, Any]) -> Answer:
        start = time.perf_counter()
        kind = request.get("type")
        try:
            if kind not in self.features or kind not in REQUEST_TYPES:
                return Answer("skipped", message="this runtime does not implement {} requests".format(preview(kind)))
            if kind == "load":
                self.policy(request["model"])
                return Answer(LOADED, seconds=time.perf_counter() - start)
            outputs = getattr(self, "_" + kind)(request)
            return Answer("result", outputs, seconds=time.perf_counter() - start)
        except (SbifError, OSError) as exc:
            message = "{}: {}".format(type(exc).__name__, exc)
            if kind == "load":  # a refusal, by class (an unsupported file too: the file is what is judged)
                return Answer("errored", message=message, error_class=refusal_class(exc))
            if isinstance(exc, UnsupportedError):
                return Answer("skipped", message=str(exc))
            return Answer("errored", message=message)
        except Exception as exc:  # a bug in the runtime: report it, with the traceback
            return Answer("errored", message="{}: {}".format(type(exc).__name__, exc),
                          details=traceback.format_exc(limit=8))

    def _run(self, request: Mapping[str, Any]) -> Dict[str, Any]:
        policy = self.policy(request["model"])
        return dict(policy.run(request["inputs"], list(request["outputs"])))

    def _predict(self, request: Mapping[str, Any]) -> Dict[str, Any]:
        policy = self.policy(request["model"])
        method = request["method"]
        obs, state, mask = request["observation"], request.get("state"), request.get("mask")
        if method == "predict":
            action, new_state = policy.predict(obs, state, mask, deterministic=request.get("deterministic"),
                                               noise=request.get("noise"))
            return {"action": _array_or_none(action), "state": _array_or_none(new_state)}
        if method == "value":
            return {"value": _array_or_none(policy.value(obs, state, mask))}
        result = policy.action_probability(obs, state, mask, actions=request.get("actions"),
                                           logp=bool(request.get("logp", False)))
        if isinstance(result, (list, tuple)):
            return {"probability": [np.asarray(r) for r in result]}
        return {"probability": _array_or_none(result)}

    def _op(self, request: Mapping[str, Any]) -> Dict[str, Any]:
        from sbif.ops import resolve_attrs

        op = self._get_op(request["op"])
        attrs = resolve_attrs(op, dict(request.get("attrs") or {}), "op request")
        _check_output_sizes(op, request["inputs"], attrs, request.get("n_outputs", 1))
        with np.errstate(all="ignore"):
            result = op.compute(*request["inputs"], **attrs)
        results = list(result) if isinstance(result, (tuple, list)) else [result]
        return {str(i): np.asarray(r) for i, r in enumerate(results)}


def _check_output_sizes(op: Any, inputs: Sequence[np.ndarray], attrs: Dict[str, Any], n_outputs: Any) -> None:
    """Refuse an op request whose outputs, by the op's static shape rule, exceed the limit for one value (SPEC
    section 3.5, `sbif.format.validate.MAX_VALUE_BYTES`) before computing them: `one_hot` with depth 2^36 of one
    index asks for 256 GiB. Inputs the rule refuses are left to `compute`, which says what is wrong with them."""
    from sbif.errors import InputError
    from sbif.format.validate import MAX_VALUE_BYTES
    from sbif.ops.base import ValueSpec

    if not hasattr(op, "infer") or type(n_outputs) is not int:
        return
    try:
        outputs = op.infer([ValueSpec(array.dtype.name, array.shape) for array in inputs], attrs, n_outputs)
    except (SbifError, ValueError, TypeError):
        return
    for index, spec in enumerate(outputs):
        if spec.nominal_bytes() > MAX_VALUE_BYTES:
            raise InputError("output {} of {} would be {} ({} bytes), above the limit of {} bytes for one "
                             "value".format(index, preview(getattr(op, "name", "the op")), spec,
                                            preview(spec.nominal_bytes()), MAX_VALUE_BYTES))


def _array_or_none(value: Any) -> Optional[np.ndarray]:
    return None if value is None else np.asarray(value)


class ProcessRuntime(Runtime):
    """An executable speaking the protocol on stdin/stdout (not through a shell). A request that takes longer
    than `timeout` seconds is answered `timeout` and the process is killed; a process that dies or writes
    something that is not a protocol message is answered `crashed` (with the end of its stderr). Either way the
    next request starts a fresh process."""

    def __init__(self, command: Any, timeout: float = 60.0, startup_timeout: float = 120.0,
                 env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None):
        self.command = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.command:
            raise ValueError("empty runtime command")
        self.timeout, self.startup_timeout = timeout, startup_timeout
        self.env = dict(os.environ, **(env or {}))
        self.cwd = cwd
        self.restarts = 0
        self._process: Optional[subprocess.Popen] = None
        self._lines: "queue.Queue[Optional[bytes]]" = queue.Queue()
        self._stderr: "collections.deque[str]" = collections.deque(maxlen=40)
        self._next_id = 0
        self.hello = {}
        self._start()

    # -- process management ------------------------------------------------------------------------------------
    def _start(self) -> None:
        try:
            process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, env=self.env, cwd=self.cwd)
        except OSError as exc:
            raise ProtocolError("cannot start runtime {}: {}".format(" ".join(self.command), exc)) from None
        self._process = process
        self._lines = queue.Queue()
        self._stderr.clear()
        threading.Thread(target=self._read_stdout, args=(process, self._lines), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(process,), daemon=True).start()
        self._send({"type": "hello", "protocol": PROTOCOL_VERSION, "harness": "sbif-conformance"})
        line = self._receive(self.startup_timeout)
        if line is None:
            self.kill()
            raise ProtocolError("runtime {} did not say hello ({})".format(" ".join(self.command), self._why()))
        try:
            self.hello = check_hello(loads_json_input(line.decode("utf-8")))
        except (ValueError, ProtocolError) as exc:
            self.kill()
            raise ProtocolError("runtime {}: bad hello: {}".format(" ".join(self.command), exc)) from None

    @staticmethod
    def _read_stdout(process: subprocess.Popen, lines: "queue.Queue[Optional[bytes]]") -> None:
        """Queue each answer line (TOO_LONG for one over MAX_LINE_BYTES, read past), then None at the end."""
        for line in request_lines(process.stdout):
            lines.put(TOO_LONG if line is None else line)
        lines.put(None)

    def _read_stderr(self, process: subprocess.Popen) -> None:
        for line in iter(process.stderr.readline, b""):
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    def _send(self, message: Mapping[str, Any]) -> bool:
        try:
            data = (json.dumps(message, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")
            self._process.stdin.write(data)
            self._process.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def _receive(self, timeout: float) -> Optional[bytes]:
        """The next line, or None on end of output / timeout (then `self._timed_out` says which)."""
        self._timed_out = False
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            self._timed_out = True
            return None

    def _why(self) -> str:
        if getattr(self, "_timed_out", False):
            return "no answer within the timeout"
        code = self._process.poll() if self._process is not None else None
        if code is None and self._process is not None:
            try:
                code = self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
        tail = " | ".join(list(self._stderr)[-6:])
        return "exit code {}{}".format(code, "; stderr: " + tail if tail else "")

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._process = None

    # -- requests ------------------------------------------------------------------------------------------------
    def request(self, request: Mapping[str, Any]) -> Answer:
        if self._process is None or self._process.poll() is not None:
            self.kill()
            self.restarts += 1
            try:
                self._start()
            except ProtocolError as exc:
                return Answer("crashed", message="could not restart the runtime: {}".format(exc))
        self._next_id += 1
        request_id = self._next_id
        try:
            message = dict(encode_request(request), id=request_id)
        except ProtocolError as exc:
            return Answer("errored", message="harness cannot encode the request: {}".format(exc))
        start = time.perf_counter()
        if not self._send(message):
            why = self._why()
            self.kill()
            return Answer("crashed", message="the runtime closed its input ({})".format(why))
        line = self._receive(self.timeout)
        seconds = time.perf_counter() - start
        if line is None:
            timed_out = self._timed_out
            why = self._why()
            self.kill()
            if timed_out:
                return Answer("timeout", message="no answer within {:g} s".format(self.timeout), seconds=seconds)
            return Answer("crashed", message="the runtime exited ({})".format(why), seconds=seconds)
        try:
            if line is TOO_LONG:
                raise ProtocolError("an answer line is longer than {} bytes".format(MAX_LINE_BYTES))
            reply = loads_json_input(line.decode("utf-8"))
            if not isinstance(reply, dict) or reply.get("id") != request_id:
                raise ProtocolError("answer id {!r} does not match request id {}".format(
                    reply.get("id") if isinstance(reply, dict) else None, request_id))
            answer = Answer.from_wire(reply)
        except (ValueError, ProtocolError) as exc:
            text = line.decode("utf-8", "replace").strip()
            self.kill()
            return Answer("crashed", message="not a protocol answer ({}): {}".format(
                exc, text[:200] + ("..." if len(text) > 200 else "")), seconds=seconds)
        answer.seconds = seconds
        return answer

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._send({"type": "shutdown"})
            try:
                self._process.stdin.close()
            except OSError:
                pass
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


# -- serving a Python runtime as an executable -----------------------------------------------------------------------
#: Longest request line a server reads (as the C runtime's sbif-protocol): a batch of 32 Atari frames is about 4 MB
#: of JSON; parsing costs up to 12 bytes of memory per byte of text. A longer line is read past in chunks of
#: LINE_CHUNK_BYTES and answered `errored`.
MAX_LINE_BYTES = 64 * 1024 * 1024
LINE_CHUNK_BYTES = 1024 * 1024
#: What the harness queues for a runtime's answer line longer than MAX_LINE_BYTES (read past, not kept).
TOO_LONG = b"<an answer line over the limit>"


def request_lines(stream: Any) -> Iterable[Optional[bytes]]:
    """The lines of `stream` (a binary stream, or a text stream with a `buffer`, or a text stream), each at most
    MAX_LINE_BYTES long with its newline; None stands for a longer line, which was read past without keeping it."""
    source = getattr(stream, "buffer", stream)
    while True:
        line = source.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        newline = "\n" if isinstance(line, str) else b"\n"
        if len(line) <= MAX_LINE_BYTES or line.endswith(newline):
            yield line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
            continue
        rest = line
        while rest and not rest.endswith(newline):
            rest = source.readline(LINE_CHUNK_BYTES)
        yield None


def serve(runtime: Runtime, stdin: Any = None, stdout: Any = None) -> int:
    """Answer protocol messages from `stdin` (one JSON object per line) until shutdown or end of input.

    Whatever a line holds, the answer is one line: a line longer than MAX_LINE_BYTES, text that is not UTF-8,
    JSON that is not strict (`sbif.format.strict_json.loads_json_input`: nesting, NaN, duplicate keys, huge
    numbers) or a malformed request is answered `errored`, and so is a failure of the runtime itself; the server
    never dies of its input."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout

    def write(message: Mapping[str, Any]) -> None:
        stdout.write(json.dumps(message, allow_nan=False, separators=(",", ":")) + "\n")
        stdout.flush()

    for line in request_lines(stdin):
        request_id = None
        try:
            if line is None:
                raise ProtocolError("a request line is longer than {} bytes".format(MAX_LINE_BYTES))
            text = line.decode("utf-8")
            if not text.strip():
                continue
            message = loads_json_input(text)
            if not isinstance(message, dict):
                raise ProtocolError("a message is a JSON object")
            request_id = message.get("id")
            kind = message.get("type")
            if kind == "hello":
                write(runtime.hello)
                continue
            if kind == "shutdown":
                write({"type": "bye"})
                return 0
            answer = runtime.request(decode_request(message))
        except (ValueError, ProtocolError) as exc:  # UnicodeDecodeError and StrictJsonError are ValueErrors
            answer = Answer("errored", message="malformed request: {}".format(exc))
        except Exception as exc:  # decoding a request ran out of memory or hit a bug: an answer, not a crash
            answer = Answer("errored", message="cannot handle the request: {}: {}".format(type(exc).__name__, exc))
        try:
            write(answer.to_wire(request_id))
        except (ProtocolError, ValueError, TypeError, RecursionError) as exc:
            write(Answer("errored", message="cannot encode the answer: {}".format(exc)).to_wire(None))
    return 0


def runtime_from_spec(spec: str, timeout: float = 60.0) -> Runtime:
    """`numpy` (the in-process NumPy reference runtime), `numba` (SBIF's compiled backend, in-process) or a
    command line to spawn."""
    if spec == "numpy":
        return PythonRuntime()
    if spec == "numba":
        import sbif

        return PythonRuntime(load=lambda path: sbif.load(path, backend="numba"), name="sbif-numba")
    return ProcessRuntime(spec, timeout=timeout)
