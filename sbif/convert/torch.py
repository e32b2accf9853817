"""SBIF files as PyTorch modules: `to_module(path)` -> `torch.nn.Module`, `save(path, target)` -> TorchScript file.

    module = to_module("ppo2_cartpole.sbif")
    actor = to_module("ppo2_cartpole.sbif", outputs=["action"])         # forward takes {"obs": ...} alone
    obs = torch.zeros(8, 4)
    action = module.run({"obs": obs}, ["action"])["action"]             # only the nodes `action` needs
    outputs = module({"obs": obs, "noise_uniform": torch.rand(8, 2)})  # every declared output
    save("ppo2_cartpole.sbif", "ppo2_cartpole.pt")                      # torch.jit.load runs it without SBIF
    save("ppo2_cartpole.sbif", "actor.pt", outputs=["action"])          # pruned: no critic, no noise input

The module interprets the document's graph: a static list of nodes, each applied by `apply_node`, which calls one
small function per op with exactly the semantics of `spec/ops.md` and `spec/ops-sampling.md` (the NumPy ops of
`sbif.ops` are the reference). Everything is TorchScript: `torch.jit.script(to_module(path))` compiles the same
interpreter, so the saved file needs neither SBIF nor Python. The document's tensors are buffers (their names
sanitized: `model/pi_fc0/w:0` is `tensors.model_pi_fc0_w_0.value` in the state dict) in their stored dtypes;
`constant` nodes are evaluated once, when the module is built.

This module needs PyTorch (`pip install torch==2.13.0`); `import sbif` never imports it.
"""
import functools
import json
import os
import re
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple, Union

import numpy as np

from ..errors import ExportError, InputError, UnsupportedError
from ..format import SbifFile
from ..format.subgraph import deployed_subgraph
from ..ops import ValueSpec, get_op, resolve_attrs
from ..ops.base import FLOAT_DTYPES
from ..ops.elementwise import Selu, Sigmoid, Softplus
from ..ops.layers import conv_axis

try:
    import torch
    import torch.nn.functional as F
    from torch import Tensor, nn
except ImportError:
    raise UnsupportedError("converting SBIF files to PyTorch needs PyTorch (Python 3.8 or later): pip install torch") from None


# -- dtypes ----------------------------------------------------------------------------------------------------------
def sbif_dtypes() -> List[Tuple[str, torch.dtype]]:
    """(SBIF name, torch dtype) of every SBIF dtype: a function, as TorchScript cannot read a module-level table."""
    return [("float32", torch.float32), ("float64", torch.float64), ("int32", torch.int32), ("int64", torch.int64),
            ("uint8", torch.uint8), ("int8", torch.int8), ("int16", torch.int16), ("uint16", torch.uint16),
            ("bool", torch.bool)]


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of an SBIF dtype name."""
    for sbif_name, dtype in sbif_dtypes():
        if sbif_name == name:
            return dtype
    raise UnsupportedError("unknown dtype " + name)


def dtype_name(dtype: torch.dtype) -> str:
    """The SBIF name of a torch dtype (for messages)."""
    for name, torch_type in sbif_dtypes():
        if torch_type == dtype:
            return name
    return str(dtype)


def widened(x: Tensor) -> Tensor:
    """uint16 values as int32, which holds them exactly: torch implements no addition, comparison or argmax for
    uint16. Other dtypes are returned unchanged."""
    return x.to(torch.int32) if x.dtype == torch.uint16 else x


def scalar_like(value: float, x: Tensor) -> Tensor:
    """`value` rounded to x's dtype, as TF rounds an op's float attribute or constant to the tensor's dtype."""
    return torch.full([], value, dtype=x.dtype, device=x.device)


# -- element-wise ops --------------------------------------------------------------------------------------------
def add(x: Tensor, y: Tensor) -> Tensor:
    """x + y; integers wrap modulo 2^n, as TF on x86."""
    return torch.add(widened(x), widened(y)).to(x.dtype)


def sub(x: Tensor, y: Tensor) -> Tensor:
    return torch.sub(widened(x), widened(y)).to(x.dtype)


def mul(x: Tensor, y: Tensor) -> Tensor:
    return torch.mul(x, y)


def div(x: Tensor, y: Tensor) -> Tensor:
    return torch.div(x, y)


def less(x: Tensor, y: Tensor) -> Tensor:
    return torch.lt(widened(x), widened(y))


def clip(x: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """min(max(x, low), high), NaN from either operand propagating (NumPy's clip, as SB2 clips actions)."""
    return torch.minimum(torch.maximum(widened(x), widened(low)), widened(high)).to(x.dtype)


def where(condition: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """The selected elements copied bit for bit (MaskablePPO's `th.where(mask, logits, -1e8)`)."""
    return torch.where(condition, x, y)


def neg(x: Tensor) -> Tensor:
    return torch.neg(x)


def exp(x: Tensor) -> Tensor:
    return torch.exp(x)


def log(x: Tensor) -> Tensor:
    return torch.log(x)


def round_half_even(x: Tensor) -> Tensor:
    return torch.round(x)  # nearest integer, ties to even


def tanh(x: Tensor) -> Tensor:
    return torch.tanh(x)


def erf(x: Tensor) -> Tensor:
    return torch.erf(x)


def sigmoid(x: Tensor, cutoff: List[float]) -> Tensor:
    """1 / (1 + exp(-x)), exactly 0 below -cutoff and 1 above it where `cutoff` holds one (float32:
    `Sigmoid.FLOAT32_CUTOFF`, as TF 1.15's float32 kernel; float64 has none)."""
    y = 1.0 / (1.0 + torch.exp(-x))
    if len(cutoff) > 0:
        y = torch.where(x < -cutoff[0], torch.zeros_like(y), torch.where(x > cutoff[0], torch.ones_like(y), y))
    return y


def relu(x: Tensor) -> Tensor:
    return torch.clamp_min(x, 0.0)  # max(x, 0): NaN stays NaN, as TF's std::max


def relu6(x: Tensor) -> Tensor:
    return torch.clamp_max(torch.clamp_min(x, 0.0), 6.0)  # NaN stays NaN


def elu(x: Tensor) -> Tensor:
    return torch.where(x < 0.0, torch.exp(x) - 1.0, x)  # TF computes exp(x) - 1, not expm1


def selu(x: Tensor, scale_alpha: float, scale: float) -> Tensor:
    """scale_alpha * (exp(x) - 1) below 0, else scale * x, TF's constants (`Selu`) rounded to x's dtype."""
    return torch.where(x < 0.0, scalar_like(scale_alpha, x) * (torch.exp(x) - 1.0), scalar_like(scale, x) * x)


def softplus(x: Tensor, threshold: float) -> Tensor:
    """x above -threshold, exp(x) below threshold, else log(exp(x) + 1) literally (TF 1.15 uses no log1p); the
    threshold is `Softplus.threshold` of x's dtype."""
    exp_x = torch.exp(x)
    return torch.where(x > -threshold, x, torch.where(x < threshold, exp_x, torch.log(exp_x + 1.0)))


def softsign(x: Tensor) -> Tensor:
    return x / (torch.abs(x) + 1.0)


def swish(x: Tensor, cutoff: List[float]) -> Tensor:
    return x * sigmoid(x, cutoff)


def leaky_relu(x: Tensor, alpha: float) -> Tensor:
    """A selection, not max(x, alpha * x), so that any alpha (0, negative, above 1) behaves as in TF."""
    return torch.where(x > 0.0, x, x * scalar_like(alpha, x))


# -- network ops -------------------------------------------------------------------------------------------------
def linear(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """x @ w rounded, then + b: two roundings, as TF's matmul followed by a bias add."""
    return torch.matmul(x, w) + b


def matmul(x: Tensor, w: Tensor) -> Tensor:
    return torch.matmul(x, w)


def one_hot(x: Tensor, depth: int) -> Tensor:
    """float32 one-hot rows over the last axis; an index outside [0, depth) gives an all-zero row."""
    classes = torch.arange(depth, dtype=torch.int64, device=x.device)
    return torch.eq(x.to(torch.int64).unsqueeze(-1), classes).to(torch.float32)


def softmax(x: Tensor) -> Tensor:
    """exp(x - max) * (1 / sum), over the last axis, as TF: NaN or +inf anywhere in a row gives a NaN row."""
    shifted = torch.exp(x - torch.amax(x, dim=-1, keepdim=True))
    return shifted * torch.reciprocal(torch.sum(shifted, dim=-1, keepdim=True))


def argmax(x: Tensor, lowest: List[float]) -> Tensor:
    """First index of the maximum over the last axis (int64), scanning as TF 1.15 from (0, lowest finite value):
    NaN is never chosen, and a row with nothing above the lowest finite value (NaN, -inf) gives 0. `lowest` holds
    that value for a float x (empty for an integer x, whose every value is a candidate)."""
    if x.is_floating_point():
        bound = scalar_like(lowest[0], x)
        x = torch.where(x > bound, x, bound)
    return torch.argmax(widened(x), dim=-1)


def conv2d(x: Tensor, w: Tensor, b: Tensor, strides: List[int], pads: List[int]) -> Tensor:
    """NHWC input, HWIO kernel, then + b; `pads` is SAME's zero padding of x in F.pad's order, empty for VALID
    (`conv2d_pads`)."""
    if len(pads) > 0:
        x = F.pad(x, pads)
    y = F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), None, strides)
    return y.permute(0, 2, 3, 1) + b


def layer_norm(x: Tensor, gamma: Tensor, beta: Tensor, epsilon: float) -> Tensor:
    """(x - mean) / sqrt(population variance + epsilon) * gamma + beta over the last axis, every step rounded."""
    count = x.shape[-1]
    mean = torch.sum(x, dim=-1, keepdim=True) / count
    centred = x - mean
    variance = torch.sum(centred * centred, dim=-1, keepdim=True) / count
    return centred / torch.sqrt(variance + scalar_like(epsilon, x)) * gamma + beta


def reduce_mean(x: Tensor) -> Tensor:
    return torch.sum(x, dim=-1, keepdim=True) / x.shape[-1]


# -- ops that move data --------------------------------------------------------------------------------------------
def cast(x: Tensor, to: str) -> Tensor:
    """C's static_cast, as TF on x86: float to int truncates, int to int wraps, NaN to bool is true."""
    return x.to(torch_dtype(to))


def flatten(x: Tensor) -> Tensor:
    """[B, d1, ..., dk] -> [B, d1 * ... * dk] in row-major order; [B] -> [B, 1]."""
    return x.unsqueeze(1) if x.dim() == 1 else torch.flatten(x, 1)


def concat(xs: List[Tensor], axis: int) -> Tensor:
    return torch.cat(xs, dim=axis)


def stack(xs: List[Tensor], axis: int) -> Tensor:
    return torch.stack(xs, dim=axis)


def split(x: Tensor, sizes: List[int], axis: int) -> List[Tensor]:
    return list(torch.split(x, sizes, dim=axis))


def squeeze(x: Tensor, axis: int) -> Tensor:
    return torch.squeeze(x, axis)


def expand_dims(x: Tensor, axis: int) -> Tensor:
    return torch.unsqueeze(x, axis)


def reshape(x: Tensor, shape: List[int]) -> Tensor:
    return torch.reshape(x, shape)


def transpose(x: Tensor, perm: List[int]) -> Tensor:
    return x.permute(perm)


def constant(value: Union[float, int, bool], dtype: str) -> Tensor:
    """A scalar converted as `numpy.asarray(value, dtype)` converts it (the spec's definition). Evaluated when a
    module is built, not when it runs: a constant node has no inputs."""
    return torch.from_numpy(np.array(value, dtype=dtype))


# -- sampling ------------------------------------------------------------------------------------------------------
def inverse_cdf_sample(p: Tensor, u: Tensor) -> Tensor:
    """NumPy's `RandomState.choice(n, p=row)` at the uniform u, in float64: the number of steps of the normalised
    cumulative sum (accumulated strictly left to right) at or below u, clamped to n - 1."""
    p = p.to(torch.float64)
    u = u.to(torch.float64)
    total = p[..., 0]
    steps = [total]
    for j in range(1, p.shape[-1]):
        total = total + p[..., j]
        steps.append(total)
    cdf = torch.stack(steps, dim=-1) / total.unsqueeze(-1)
    count = torch.sum(torch.le(cdf, u), dim=-1)  # comparisons with NaN are false
    return torch.clamp_max(count, p.shape[-1] - 1)


# -- the interpreter -----------------------------------------------------------------------------------------------
#: every op of spec/ops.md and spec/ops-sampling.md: the branches of `apply_node`, and `constant`
OPS = ("add", "argmax", "cast", "clip", "concat", "constant", "conv2d", "div", "elu", "erf", "exp", "expand_dims",
       "flatten", "inverse_cdf_sample", "layer_norm", "leaky_relu", "less", "linear", "log", "matmul", "mul", "neg",
       "one_hot", "reduce_mean", "relu", "relu6", "reshape", "round_half_even", "selu", "sigmoid", "softmax",
       "softplus", "softsign", "split", "squeeze", "stack", "sub", "swish", "tanh", "transpose", "where")


class Node(NamedTuple):
    """One graph node with its attributes, and the constants the converter computes for it, in typed slots:
    `integer` holds `axis` (concat, expand_dims, split, squeeze, stack) or `depth` (one_hot); `integers` holds
    `strides` (conv2d), `shape` (reshape), `sizes` (split) or `perm` (transpose); `numbers` holds `epsilon`
    (layer_norm), `alpha` (leaky_relu) or the constants of the op's formula (`formula_constants`); `pads` holds
    conv2d's zero padding (`conv2d_pads`); `text` holds `to` (cast)."""

    op: str
    inputs: List[str]
    outputs: List[str]
    integer: int
    integers: List[int]
    numbers: List[float]
    pads: List[int]
    text: str


INTEGER_ATTRIBUTES = {"concat": "axis", "expand_dims": "axis", "split": "axis", "squeeze": "axis", "stack": "axis",
                      "one_hot": "depth"}
INTEGER_LIST_ATTRIBUTES = {"conv2d": "strides", "reshape": "shape", "split": "sizes", "transpose": "perm"}
NUMBER_ATTRIBUTES = {"layer_norm": "epsilon", "leaky_relu": "alpha"}
TEXT_ATTRIBUTES = {"cast": "to"}


def formula_constants(op: str, inputs: Sequence[ValueSpec]) -> List[float]:
    """The numbers an op's formula reads besides its attributes, for the dtype of its first input, taken from where
    they are defined: the op classes of `sbif.ops` and NumPy's finfo.

    They travel in the node because TorchScript cannot look them up. A scripted function's free name must denote
    something it compiles: `Selu.SCALE` makes it compile the class `Selu` as TorchScript, NumPy methods and all,
    which fails; a module-level float is refused ("python value of type 'float' cannot be used as a value"),
    since only the `Final` (or `__constants__`) attributes of a scripted module become constants, and `apply_node`
    is also scripted on its own, outside any module (`run_op`)."""
    if op == "selu":
        return [Selu.SCALE_ALPHA, Selu.SCALE]
    if op in ("sigmoid", "swish") and inputs[0].dtype == "float32":
        return [Sigmoid.FLOAT32_CUTOFF]
    if op == "softplus":
        return [float(Softplus.threshold(inputs[0].dtype))]
    if op == "argmax" and inputs[0].dtype in FLOAT_DTYPES:
        return [float(np.finfo(inputs[0].dtype).min)]
    return []


def conv2d_pads(x: ValueSpec, w: ValueSpec, strides: Sequence[int], padding: str) -> List[int]:
    """SAME's zero padding of conv2d's NHWC input in F.pad's order (channels, then columns, then rows; each before
    and after), from `conv_axis`, the one statement of TF's rule; empty for VALID, which pads nothing. An SBIF
    value's spatial sizes are static (only the batch varies), so the padding is a constant of the node."""
    if padding != "SAME":
        return []
    rows, columns = (conv_axis(size, kernel, stride, padding)
                     for size, kernel, stride in zip(x.shape[1:3], w.shape[:2], strides))
    return [0, 0] + list(columns.padding) + list(rows.padding)


def make_node(op: str, inputs: Sequence[str], outputs: Sequence[str], attrs: Mapping[str, Any],
              input_specs: Sequence[ValueSpec]) -> Node:
    """A node with its attributes checked (names, types, defaults) and put in the slots `Node` documents, with
    the constants its inputs' static types determine."""
    resolved = resolve_attrs(get_op(op), dict(attrs), "op " + op)
    if op not in OPS:
        raise UnsupportedError("op {!r} is not implemented by the PyTorch converter (it implements {})".format(
            op, ", ".join(OPS)))

    def slot(table: Mapping[str, str], default: Any) -> Any:
        return resolved[table[op]] if op in table else default

    attribute_numbers = [float(resolved[NUMBER_ATTRIBUTES[op]])] if op in NUMBER_ATTRIBUTES else []
    pads: List[int] = []
    if op == "conv2d":
        pads = conv2d_pads(input_specs[0], input_specs[1], resolved["strides"], resolved["padding"])
    return Node(op, list(inputs), list(outputs), int(slot(INTEGER_ATTRIBUTES, 0)),
                [int(v) for v in slot(INTEGER_LIST_ATTRIBUTES, [])],
                attribute_numbers + formula_constants(op, input_specs), pads, str(slot(TEXT_ATTRIBUTES, "")))


def apply_node(node: Node, args: List[Tensor]) -> List[Tensor]:
    """Apply a node's op to its input values: its output values, in order. (`constant` is folded at build time.)"""
    op = node.op
    if op == "linear":
        return [linear(args[0], args[1], args[2])]
    if op == "add":
        return [add(args[0], args[1])]
    if op == "sub":
        return [sub(args[0], args[1])]
    if op == "mul":
        return [mul(args[0], args[1])]
    if op == "div":
        return [div(args[0], args[1])]
    if op == "less":
        return [less(args[0], args[1])]
    if op == "clip":
        return [clip(args[0], args[1], args[2])]
    if op == "where":
        return [where(args[0], args[1], args[2])]
    if op == "neg":
        return [neg(args[0])]
    if op == "exp":
        return [exp(args[0])]
    if op == "log":
        return [log(args[0])]
    if op == "round_half_even":
        return [round_half_even(args[0])]
    if op == "tanh":
        return [tanh(args[0])]
    if op == "erf":
        return [erf(args[0])]
    if op == "sigmoid":
        return [sigmoid(args[0], node.numbers)]
    if op == "relu":
        return [relu(args[0])]
    if op == "relu6":
        return [relu6(args[0])]
    if op == "elu":
        return [elu(args[0])]
    if op == "selu":
        return [selu(args[0], node.numbers[0], node.numbers[1])]
    if op == "softplus":
        return [softplus(args[0], node.numbers[0])]
    if op == "softsign":
        return [softsign(args[0])]
    if op == "swish":
        return [swish(args[0], node.numbers)]
    if op == "leaky_relu":
        return [leaky_relu(args[0], node.numbers[0])]
    if op == "matmul":
        return [matmul(args[0], args[1])]
    if op == "one_hot":
        return [one_hot(args[0], node.integer)]
    if op == "softmax":
        return [softmax(args[0])]
    if op == "argmax":
        return [argmax(args[0], node.numbers)]
    if op == "conv2d":
        return [conv2d(args[0], args[1], args[2], node.integers, node.pads)]
    if op == "layer_norm":
        return [layer_norm(args[0], args[1], args[2], node.numbers[0])]
    if op == "reduce_mean":
        return [reduce_mean(args[0])]
    if op == "cast":
        return [cast(args[0], node.text)]
    if op == "flatten":
        return [flatten(args[0])]
    if op == "concat":
        return [concat(args, node.integer)]
    if op == "stack":
        return [stack(args, node.integer)]
    if op == "split":
        return split(args[0], node.integers, node.integer)
    if op == "squeeze":
        return [squeeze(args[0], node.integer)]
    if op == "expand_dims":
        return [expand_dims(args[0], node.integer)]
    if op == "reshape":
        return [reshape(args[0], node.integers)]
    if op == "transpose":
        return [transpose(args[0], node.integers)]
    if op == "inverse_cdf_sample":
        return [inverse_cdf_sample(args[0], args[1])]
    raise UnsupportedError("op " + op + " is not implemented by the PyTorch converter")


class StoredTensor(nn.Module):
    """One tensor of the file as a buffer. The module keeps these in ModuleDicts because TorchScript can iterate
    over a ModuleDict's entries, but not look up a buffer by a name known only at run time."""

    def __init__(self, value: Tensor, persistent: bool = True):
        super().__init__()
        self.register_buffer("value", value, persistent=persistent)


class SbifModule(nn.Module):
    """An SBIF policy as a module: `forward(inputs)` computes every declared output, `run(inputs, outputs)` only
    what the named values need. Inputs are the document's graph inputs by name (obs, or obs/KEY for each key of a
    dict observation space, and noise, state and mask where the document has them), each with its declared dtype
    and shape and one batch size. Built with `outputs`
    (document output names or the predict contract's aliases, `sbif.format.subgraph.select_outputs`), the module
    holds only those outputs, the inputs they read and the tensors they use.

    `input_names` and `output_names` list the graph's inputs and declared outputs; `document` is the whole SBIF
    document as JSON, with the predict contract (which output is the deterministic action, the recurrent state's
    names, the spaces) for callers of a saved file."""

    nodes: List[Node]
    producers: Dict[str, int]
    tensor_names: Dict[str, str]
    constant_names: Dict[str, str]
    input_names: List[str]
    input_dtypes: Dict[str, str]
    input_shapes: Dict[str, List[int]]
    output_names: List[str]
    document: str

    def __init__(self, model: SbifFile, outputs: Optional[Sequence[str]] = None):
        super().__init__()
        document = model.document
        kept = deployed_subgraph(document, outputs)
        self.document = json.dumps(document, allow_nan=False, separators=(",", ":"))
        keys: Set[str] = set()
        self.tensor_names = {}
        stored = {}
        for name in kept.tensors:
            key = state_key(name, keys)
            self.tensor_names[key] = name
            stored[key] = StoredTensor(torch.from_numpy(np.array(model.tensors[name])))
        self.tensors = nn.ModuleDict(stored)
        self.constant_names = {}
        constants = {}
        self.nodes = []
        for node in kept.nodes:
            if node["op"] == "constant":
                key = state_key(node["outputs"][0], keys)
                self.constant_names[key] = node["outputs"][0]
                attrs = resolve_attrs(get_op("constant"), node.get("attrs", {}), "constant")
                constants[key] = StoredTensor(constant(attrs["value"], attrs["dtype"]), persistent=False)
            else:
                self.nodes.append(make_node(node["op"], node["inputs"], node["outputs"], node.get("attrs", {}),
                                            [model.specs[name] for name in node["inputs"]]))
        self.constants = nn.ModuleDict(constants)
        self.producers = {name: index for index, node in enumerate(self.nodes) for name in node.outputs}
        inputs = [entry for entry in document["inputs"] if entry["name"] in kept.inputs]
        self.input_names = [entry["name"] for entry in inputs]
        self.input_dtypes = {entry["name"]: entry["dtype"] for entry in inputs}
        self.input_shapes = {entry["name"]: [-1 if d is None else d for d in entry["shape"]] for entry in inputs}
        self.output_names = list(kept.outputs)

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Every declared output (the sampled ones need the noise inputs)."""
        return self.run(inputs, self.output_names)

    @torch.jit.export
    def run(self, inputs: Dict[str, Tensor], outputs: List[str]) -> Dict[str, Tensor]:
        """The named values (declared outputs, or any graph value), running only the nodes they depend on."""
        values = self.stored_values()
        needed, wanted = self.plan(outputs, values)
        for name in self.input_names:
            if name in wanted:
                if name not in inputs:
                    raise InputError("missing input '" + name + "' (the requested outputs need it)")
                values[name] = inputs[name]
        self.check_inputs(values)
        for index in range(len(self.nodes)):
            if needed[index]:
                node = self.nodes[index]
                results = apply_node(node, [values[name] for name in node.inputs])
                for name, value in zip(node.outputs, results):
                    values[name] = value
        return {name: values[name] for name in outputs}

    def plan(self, outputs: List[str], stored: Dict[str, Tensor]) -> Tuple[List[bool], Dict[str, bool]]:
        """Which nodes the outputs need (walking the graph backwards) and every value name they read."""
        wanted: Dict[str, bool] = {}
        for name in outputs:
            if not (name in self.producers or name in self.input_dtypes or name in stored):
                raise InputError("unknown output '" + name + "'; this module computes "
                                 + ", ".join(self.output_names))
            wanted[name] = True
        needed = [False] * len(self.nodes)
        for index in range(len(self.nodes) - 1, -1, -1):
            node = self.nodes[index]
            for name in node.outputs:
                if name in wanted:
                    needed[index] = True
            if needed[index]:
                for name in node.inputs:
                    wanted[name] = True
        return needed, wanted

    def stored_values(self) -> Dict[str, Tensor]:
        """The file's tensors and the folded constants, by their document names."""
        values: Dict[str, Tensor] = {}
        for key, tensor in self.tensors.items():
            values[self.tensor_names[key]] = tensor.value
        for key, tensor in self.constants.items():
            values[self.constant_names[key]] = tensor.value
        return values

    def check_inputs(self, values: Dict[str, Tensor]) -> None:
        """Fed inputs must have their declared dtype and shape, and one batch size."""
        batch = -1
        for name in self.input_names:
            if name not in values:
                continue
            value = values[name]
            dtype = self.input_dtypes[name]
            if value.dtype != torch_dtype(dtype):
                raise InputError("input '" + name + "' must be " + dtype + ", got " + dtype_name(value.dtype))
            shape = self.input_shapes[name]
            fits = value.dim() == len(shape)
            for axis in range(min(value.dim(), len(shape))):
                if shape[axis] != -1 and shape[axis] != value.shape[axis]:
                    fits = False
            if not fits:
                raise InputError("input '" + name + "' must have shape " + shape_text(shape) + ", got "
                                 + str(list(value.shape)))
            if len(shape) > 0 and shape[0] == -1:
                if batch != -1 and value.shape[0] != batch:
                    raise InputError("input '" + name + "' has batch size " + str(value.shape[0])
                                     + " but another input has " + str(batch))
                batch = value.shape[0]


def shape_text(shape: List[int]) -> str:
    return "[" + ", ".join(["batch" if d == -1 else str(d) for d in shape]) + "]"


RESERVED_KEYS = frozenset(dir(nn.ModuleDict()))


def state_key(name: str, taken: Set[str]) -> str:
    """A unique identifier derived from a document name (`model/pi_fc0/w:0` -> `model_pi_fc0_w_0`), usable as a
    ModuleDict key and as a TorchScript attribute name."""
    base = re.sub(r"\W", "_", name, flags=re.ASCII) or "_"
    if base[0].isdigit():
        base = "_" + base
    key, suffix = base, 2
    while key in taken or key in RESERVED_KEYS:
        key, suffix = "{}_{}".format(base, suffix), suffix + 1
    taken.add(key)
    return key


# -- public API ----------------------------------------------------------------------------------------------------
def to_module(model: Union[str, SbifFile], outputs: Optional[Sequence[str]] = None) -> SbifModule:
    """The policy in `model` (an .sbif path, or an `SbifFile`) as a module; `torch.jit.script` compiles it.
    `outputs` prunes it to those outputs (see `SbifModule`); None keeps every output."""
    return SbifModule(model if isinstance(model, SbifFile) else SbifFile.read(model), outputs)


def save(source: Union[str, SbifFile], target_path: str, outputs: Optional[Sequence[str]] = None) -> None:
    """Write the TorchScript version of an .sbif file (a path or an `SbifFile`); `torch.jit.load(target_path)` runs
    it without SBIF. `outputs` as for `to_module`."""
    scripted = torch.jit.script(to_module(source, outputs))
    temporary = "{}.partial-{}".format(target_path, os.getpid())
    try:
        scripted.save(temporary)
        os.replace(temporary, target_path)
    except (OSError, RuntimeError) as exc:
        raise ExportError("cannot write {}: {}".format(target_path, exc)) from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def run_op(op: str, inputs: Sequence[Tensor], attrs: Mapping[str, Any], scripted: bool = False) -> List[Tensor]:
    """One op on given inputs, through the same functions the modules run (`scripted`: their TorchScript build)."""
    if op == "constant":
        resolved = resolve_attrs(get_op(op), dict(attrs), "op constant")
        return [constant(resolved["value"], resolved["dtype"])]
    apply = scripted_apply_node() if scripted else apply_node
    specs = [ValueSpec(dtype_name(value.dtype), tuple(value.shape)) for value in inputs]
    return apply(make_node(op, [], [], attrs, specs), list(inputs))


@functools.lru_cache(maxsize=None)
def scripted_apply_node() -> Any:
    """`apply_node` compiled by TorchScript (once per process)."""
    return torch.jit.script(apply_node)
