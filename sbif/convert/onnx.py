"""SBIF to ONNX: one standard ONNX model (ai.onnx domain only) that computes every output of an SBIF file with the
semantics of `spec/ops.md` and `spec/ops-sampling.md`.

    from sbif.convert.onnx import convert, to_onnx
    model = to_onnx("policy.sbif")               # an onnx.ModelProto, checked by onnx.checker (full check)
    convert("policy.sbif", "policy.onnx")        # the same, written to a file
    convert("policy.sbif", "policy.onnx", outputs=["action"])   # only the deterministic action and what it needs

Graph inputs and outputs keep the document's names, dtypes and shapes, with the batch as the symbolic dimension
"batch"; the tensors the graph reads become initializers under their SBIF names; the document itself is kept as
JSON in the model's `metadata_props` under "sbif", so the predict contract (which output is the deterministic
action, the recurrent state names, the spaces...) travels with the model. Each op's lowering is one small function
in `LOWERINGS`; `spec/converters.md` tabulates them. `onnx` is imported only when a conversion runs.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

from ..errors import DocumentError, UnsupportedError
from ..format import SbifFile
from ..format.document import METADATA_KEY, encode_document
from ..format.subgraph import deployed_subgraph
from ..ops import ValueSpec, get_op, resolve_attrs
from ..ops.elementwise import Selu, Sigmoid, Softplus
from ..ops.layers import conv_axis
from ..version import __version__

DEFAULT_OPSET = 17
#: Reshape's `allowzero` (opset 14) keeps a 0 in a target shape a 0, as SBIF's reshape means it
MIN_OPSET = 14
#: ReduceMax and ReduceMean take their axes as an input from this opset on (an attribute before)
REDUCE_AXES_AS_INPUT_OPSET = 18
BATCH_DIM = "batch"
INT64_MAX = np.iinfo(np.int64).max

Source = Union[str, "os.PathLike[str]", SbifFile]


def import_onnx() -> Any:
    """The onnx module, or an UnsupportedError saying how to get it."""
    try:
        import onnx
    except ImportError:
        raise UnsupportedError("converting to ONNX needs the onnx package (Python 3.8 or later): "
                               "pip install onnx") from None
    return onnx


# -- building an ONNX graph ----------------------------------------------------------------------------------------
class Node:
    """One SBIF node as a lowering sees it: value names, their static types and the resolved attributes."""

    __slots__ = ("op", "inputs", "outputs", "attrs", "input_specs")

    def __init__(self, op: str, inputs: Sequence[str], outputs: Sequence[str], attrs: Mapping[str, Any],
                 input_specs: Sequence[ValueSpec]):
        self.op, self.inputs, self.outputs, self.attrs = op, list(inputs), list(outputs), dict(attrs)
        self.input_specs = list(input_specs)

    @property
    def x(self) -> str:
        return self.inputs[0]

    @property
    def out(self) -> str:
        return self.outputs[0]

    @property
    def dtype(self) -> str:
        """The dtype of the first input (the one element-wise float ops compute in)."""
        return self.input_specs[0].dtype


class OnnxGraph:
    """ONNX nodes and constant initializers under construction. Helper values get fresh names under the SBIF
    node being lowered (`scope`), never clashing with a document name; equal constants are stored once."""

    def __init__(self, onnx: Any, opset: int, taken: Iterable[str]):
        self.onnx, self.opset = onnx, opset
        self.nodes: List[Any] = []
        self.initializers: List[Any] = []
        self.scope = "sbif"
        self._taken: Set[str] = set(taken)
        self._constants: Dict[Tuple[str, Tuple[int, ...], bytes], str] = {}

    def fresh(self, hint: str, scope: Optional[str] = None) -> str:
        base = "{}/{}".format(scope or self.scope, hint)
        name, suffix = base, 1
        while name in self._taken:
            suffix += 1
            name = "{}_{}".format(base, suffix)
        self._taken.add(name)
        return name

    def add(self, op_type: str, inputs: Sequence[str], output: Optional[str] = None, **attrs: Any) -> str:
        """Append a one-output node; returns its output, `output` or a fresh name."""
        name = output or self.fresh(op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [name], **attrs))
        return name

    def add_multi(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str], **attrs: Any) -> None:
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), list(outputs), **attrs))

    def constant(self, value: Any, dtype: str) -> str:
        """An initializer holding `value` as a `dtype` array (converted as numpy.asarray does)."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            name = self.fresh("{}{}".format(array.dtype.name, list(array.shape) if array.ndim else ""), "sbif.onnx")
            self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
            self._constants[key] = name
        return self._constants[key]

    def axes(self, axes: Sequence[int]) -> str:
        return self.constant(list(axes), "int64")

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: bool, output: Optional[str] = None) -> str:
        """ReduceSum/ReduceMax/ReduceMean over `axes`, whichever way this opset takes them."""
        if op_type == "ReduceSum" or self.opset >= REDUCE_AXES_AS_INPUT_OPSET:
            return self.add(op_type, [x, self.axes(axes)], output, keepdims=int(keepdims))
        return self.add(op_type, [x], output, axes=list(axes), keepdims=int(keepdims))

    def unsqueeze(self, x: str, axes: Sequence[int], output: Optional[str] = None) -> str:
        return self.add("Unsqueeze", [x, self.axes(axes)], output)

    def cast(self, x: str, dtype: str, output: Optional[str] = None) -> str:
        return self.add("Cast", [x], output, to=self.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


Lowering = Callable[[OnnxGraph, Node], None]
#: SBIF op name -> the function that appends its ONNX nodes (writing the node's outputs under their SBIF names)
LOWERINGS: Dict[str, Lowering] = {}


def lowering(name: str) -> Callable[[Lowering], Lowering]:
    def register(function: Lowering) -> Lowering:
        LOWERINGS[name] = function
        return function

    return register


def _same_onnx_op(onnx_op: str) -> Lowering:
    """Ops whose ONNX namesake has the SBIF semantics (IEEE arithmetic, NumPy broadcasting, TF's rounding)."""
    def lower(g: OnnxGraph, n: Node) -> None:
        g.add(onnx_op, n.inputs, n.out)

    lower.__name__ = "lower_as_" + onnx_op
    lower.__doc__ = "{} (ai.onnx)".format(onnx_op)
    return lower


SAME_AS_ONNX = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "less": "Less", "neg": "Neg", "exp": "Exp",
                "log": "Log", "tanh": "Tanh", "erf": "Erf", "matmul": "MatMul", "round_half_even": "Round",
                "relu": "Relu"}
LOWERINGS.update({sbif_op: _same_onnx_op(onnx_op) for sbif_op, onnx_op in SAME_AS_ONNX.items()})


# -- element-wise ops with TF 1.15's formulas --------------------------------------------------------------------
def sigmoid(g: OnnxGraph, x: str, dtype: str, output: Optional[str] = None) -> str:
    """1 / (1 + exp(-x)); float32 is exactly 0 below -cutoff and 1 above it (TF's kernel,
    `Sigmoid.FLOAT32_CUTOFF`), which ONNX Sigmoid is not."""
    one = g.constant(1, dtype)
    formula = g.add("Div", [one, g.add("Add", [one, g.add("Exp", [g.add("Neg", [x])])])],
                    None if dtype == "float32" else output)
    if dtype != "float32":
        return formula
    cutoff = Sigmoid.FLOAT32_CUTOFF
    above = g.add("Where", [g.add("Greater", [x, g.constant(cutoff, dtype)]), one, formula])
    return g.add("Where", [g.add("Less", [x, g.constant(-cutoff, dtype)]), g.constant(0, dtype), above], output)


@lowering("sigmoid")
def lower_sigmoid(g: OnnxGraph, n: Node) -> None:
    sigmoid(g, n.x, n.dtype, n.out)


@lowering("swish")
def lower_swish(g: OnnxGraph, n: Node) -> None:
    """x * sigmoid(x), with sigmoid's cut-offs."""
    g.add("Mul", [n.x, sigmoid(g, n.x, n.dtype)], n.out)


@lowering("elu")
def lower_elu(g: OnnxGraph, n: Node) -> None:
    """x < 0 ? exp(x) - 1 : x, with TF's literal exp(x) - 1 (not expm1); NaN stays NaN."""
    negative = g.add("Sub", [g.add("Exp", [n.x]), g.constant(1, n.dtype)])
    g.add("Where", [g.add("Less", [n.x, g.constant(0, n.dtype)]), negative, n.x], n.out)


@lowering("selu")
def lower_selu(g: OnnxGraph, n: Node) -> None:
    """x < 0 ? SCALE_ALPHA * (exp(x) - 1) : SCALE * x with TF's constants rounded to x's dtype (ONNX Selu rounds
    differently: gamma * (alpha * exp(x) - alpha), float32 attributes)."""
    exp_minus_one = g.add("Sub", [g.add("Exp", [n.x]), g.constant(1, n.dtype)])
    negative = g.add("Mul", [g.constant(Selu.SCALE_ALPHA, n.dtype), exp_minus_one])
    positive = g.add("Mul", [g.constant(Selu.SCALE, n.dtype), n.x])
    g.add("Where", [g.add("Less", [n.x, g.constant(0, n.dtype)]), negative, positive], n.out)


@lowering("softplus")
def lower_softplus(g: OnnxGraph, n: Node) -> None:
    """x above -t, exp(x) below t, else log(exp(x) + 1) (no log1p), t = `Softplus.threshold`, as TF 1.15
    (ONNX Softplus is log(exp(x) + 1) everywhere, which overflows to inf above x = 88)."""
    threshold = Softplus.threshold(n.dtype)
    exp_x = g.add("Exp", [n.x])
    middle = g.add("Log", [g.add("Add", [exp_x, g.constant(1, n.dtype)])])
    below = g.add("Where", [g.add("Less", [n.x, g.constant(threshold, n.dtype)]), exp_x, middle])
    g.add("Where", [g.add("Greater", [n.x, g.constant(-threshold, n.dtype)]), n.x, below], n.out)


@lowering("softsign")
def lower_softsign(g: OnnxGraph, n: Node) -> None:
    """x / (|x| + 1), both correctly rounded (onnxruntime's Softsign multiplies by a reciprocal: 1 ULP off)."""
    g.add("Div", [n.x, g.add("Add", [g.add("Abs", [n.x]), g.constant(1, n.dtype)])], n.out)


@lowering("relu6")
def lower_relu6(g: OnnxGraph, n: Node) -> None:
    """min(max(x, 0), 6); NaN stays NaN."""
    g.add("Clip", [n.x, g.constant(0, n.dtype), g.constant(6, n.dtype)], n.out)


@lowering("leaky_relu")
def lower_leaky_relu(g: OnnxGraph, n: Node) -> None:
    """x > 0 ? x : x * alpha with alpha rounded to x's dtype (ONNX LeakyRelu's alpha is always float32)."""
    scaled = g.add("Mul", [n.x, g.constant(n.attrs["alpha"], n.dtype)])
    g.add("Where", [g.add("Greater", [n.x, g.constant(0, n.dtype)]), n.x, scaled], n.out)


@lowering("clip")
def lower_clip(g: OnnxGraph, n: Node) -> None:
    """min(max(x, low), high) with per-element bounds (ONNX Clip takes scalars); NaN from any operand stays."""
    x, low, high = n.inputs
    g.add("Min", [g.add("Max", [x, low]), high], n.out)


#: dtypes for which onnxruntime has no Where kernel (standard ONNX allows every dtype), selected in int32, which
#: holds them exactly
WHERE_IN_INT32 = ("int16", "uint16")


@lowering("where")
def lower_where(g: OnnxGraph, n: Node) -> None:
    """ONNX Where, which copies the selected element. onnxruntime implements it for neither bool nor 16-bit
    integers: bool operands select as (c and x) or (not c and y), and 16-bit ones through int32 and back."""
    condition, x, y = n.inputs
    dtype = n.input_specs[1].dtype
    if dtype == "bool":
        g.add("Or", [g.add("And", [condition, x]), g.add("And", [g.add("Not", [condition]), y])], n.out)
    elif dtype in WHERE_IN_INT32:
        g.cast(g.add("Where", [condition, g.cast(x, "int32"), g.cast(y, "int32")]), dtype, n.out)
    else:
        g.add("Where", [condition, x, y], n.out)


# -- network ops ---------------------------------------------------------------------------------------------------
@lowering("linear")
def lower_linear(g: OnnxGraph, n: Node) -> None:
    """x @ w, rounded, then + b (TF's order)."""
    x, w, b = n.inputs
    g.add("Add", [g.add("MatMul", [x, w]), b], n.out)


@lowering("conv2d")
def lower_conv2d(g: OnnxGraph, n: Node) -> None:
    """NHWC input and HWIO kernel transposed to ONNX's NCHW / OIHW around Conv; the padding explicit, from
    `conv_axis` (the spatial sizes are static); the bias added after the convolution, in NHWC."""
    x, w, b = n.inputs
    (_, height, width, _), (kh, kw, _, _) = n.input_specs[0].shape, n.input_specs[1].shape
    strides, padding = n.attrs["strides"], n.attrs["padding"]
    (top, bottom), (left, right) = (conv_axis(size, kernel, stride, padding).padding
                                    for size, kernel, stride in zip((height, width), (kh, kw), strides))
    nchw = g.add("Transpose", [x], perm=[0, 3, 1, 2])
    oihw = g.add("Transpose", [w], perm=[3, 2, 0, 1])
    convolved = g.add("Conv", [nchw, oihw], kernel_shape=[kh, kw], strides=list(strides),
                      pads=[top, left, bottom, right], dilations=[1, 1], group=1)
    g.add("Add", [g.add("Transpose", [convolved], perm=[0, 2, 3, 1]), b], n.out)


@lowering("layer_norm")
def lower_layer_norm(g: OnnxGraph, n: Node) -> None:
    """(x - m) / sqrt(v + eps) * gamma + beta over the last axis, v = mean((x - m)^2), in the spec's order:
    divide, multiply, add. (ONNX LayerNormalization, from opset 17, multiplies by a reciprocal instead.)"""
    x, gamma, beta = n.inputs
    centred = g.add("Sub", [x, g.reduce("ReduceMean", x, [-1], keepdims=True)])
    variance = g.reduce("ReduceMean", g.add("Mul", [centred, centred]), [-1], keepdims=True)
    deviation = g.add("Sqrt", [g.add("Add", [variance, g.constant(n.attrs["epsilon"], n.dtype)])])
    g.add("Add", [g.add("Mul", [g.add("Div", [centred, deviation]), gamma]), beta], n.out)


def last_column(g: OnnxGraph, x: str) -> str:
    """x[..., -1:]."""
    return g.add("Slice", [x, g.axes([-1]), g.axes([INT64_MAX]), g.axes([-1])])


@lowering("reduce_mean")
def lower_reduce_mean(g: OnnxGraph, n: Node) -> None:
    """The sum over the last axis, rounded, then divided by its length. The sum is CumSum's last column, added
    left to right, which gives TF's answers on the spec's edge rows (onnxruntime's ReduceMean adds in another
    order: for the row [-1e30, 1e30, 2, 6] it gives 0 where TF gives 2)."""
    length = g.constant(n.input_specs[0].shape[-1], n.dtype)
    g.add("Div", [last_column(g, g.add("CumSum", [n.x, g.constant(-1, "int64")])), length], n.out)


@lowering("softmax")
def lower_softmax(g: OnnxGraph, n: Node) -> None:
    """exp(x - max) * (1 / sum), TF's formula (ONNX Softmax divides); a row with +inf or NaN is all NaN."""
    shifted = g.add("Exp", [g.add("Sub", [n.x, g.reduce("ReduceMax", n.x, [-1], keepdims=True)])])
    total = g.reduce("ReduceSum", shifted, [-1], keepdims=True)
    g.add("Mul", [shifted, g.add("Reciprocal", [total])], n.out)


@lowering("argmax")
def lower_argmax(g: OnnxGraph, n: Node) -> None:
    """The first index of the largest element; float NaN, -inf and -max are first raised to -max so that NaN is
    never chosen and a row with nothing above -max gives 0 (TF's scan from the lowest value)."""
    x = n.x
    if np.dtype(n.dtype).kind == "f":
        lowest = g.constant(np.finfo(n.dtype).min, n.dtype)
        x = g.add("Where", [g.add("Greater", [x, lowest]), x, lowest])
    elif n.dtype not in ("int32", "int64"):
        x = g.cast(x, "int32")  # exact for the narrow integers and bool, which not every runtime's ArgMax takes
    g.add("ArgMax", [x], n.out, axis=-1, keepdims=0, select_last_index=0)


@lowering("one_hot")
def lower_one_hot(g: OnnxGraph, n: Node) -> None:
    """float32(x[..., None] == arange(depth)): indices outside [0, depth) give zeros (ONNX OneHot wraps
    negative indices)."""
    indices = g.unsqueeze(g.cast(n.x, "int64"), [-1])
    equal = g.add("Equal", [indices, g.constant(np.arange(n.attrs["depth"]), "int64")])
    g.cast(equal, "float32", n.out)


@lowering("inverse_cdf_sample")
def lower_inverse_cdf_sample(g: OnnxGraph, n: Node) -> None:
    """In float64: c = CumSum(p) (one addition per step, left to right), d = c / c[-1],
    y = min(#{j: d_j <= u}, n - 1); comparisons with NaN are false."""
    p, u = (name if spec.dtype == "float64" else g.cast(name, "float64")
            for name, spec in zip(n.inputs, n.input_specs))
    cumulative = g.add("CumSum", [p, g.constant(-1, "int64")])
    steps_at_or_below = g.add("LessOrEqual", [g.add("Div", [cumulative, last_column(g, cumulative)]), u])
    count = g.reduce("ReduceSum", g.cast(steps_at_or_below, "int64"), [-1], keepdims=False)
    g.add("Min", [count, g.constant(n.input_specs[0].shape[-1] - 1, "int64")], n.out)


# -- data movement -------------------------------------------------------------------------------------------------
@lowering("cast")
def lower_cast(g: OnnxGraph, n: Node) -> None:
    """C static_cast semantics: float to int truncates, int to int wraps, number to bool is x != 0."""
    g.cast(n.x, n.attrs["to"], n.out)


@lowering("constant")
def lower_constant(g: OnnxGraph, n: Node) -> None:
    value = np.asarray(n.attrs["value"], dtype=n.attrs["dtype"])
    g.add("Constant", [], n.out, value=g.onnx.numpy_helper.from_array(value, n.out))


@lowering("concat")
def lower_concat(g: OnnxGraph, n: Node) -> None:
    g.add("Concat", n.inputs, n.out, axis=n.attrs["axis"])


@lowering("split")
def lower_split(g: OnnxGraph, n: Node) -> None:
    g.add_multi("Split", [n.x, g.constant(n.attrs["sizes"], "int64")], n.outputs, axis=n.attrs["axis"])


@lowering("stack")
def lower_stack(g: OnnxGraph, n: Node) -> None:
    """Each input unsqueezed at `axis` (counted in the output's rank), then concatenated there."""
    axis = n.attrs["axis"]
    g.add("Concat", [g.unsqueeze(x, [axis]) for x in n.inputs], n.out, axis=axis)


@lowering("squeeze")
def lower_squeeze(g: OnnxGraph, n: Node) -> None:
    g.add("Squeeze", [n.x, g.axes([n.attrs["axis"]])], n.out)


@lowering("expand_dims")
def lower_expand_dims(g: OnnxGraph, n: Node) -> None:
    g.unsqueeze(n.x, [n.attrs["axis"]], n.out)


@lowering("flatten")
def lower_flatten(g: OnnxGraph, n: Node) -> None:
    """[B, d1, ..., dk] -> [B, d1 * ... * dk]; [B] -> [B, 1]."""
    g.add("Flatten", [n.x], n.out, axis=1)


@lowering("reshape")
def lower_reshape(g: OnnxGraph, n: Node) -> None:
    """A fixed tensor to a fixed shape; `allowzero` keeps a 0 in the shape a 0 (not "copy that dimension")."""
    g.add("Reshape", [n.x, g.constant(n.attrs["shape"], "int64")], n.out, allowzero=1)


@lowering("transpose")
def lower_transpose(g: OnnxGraph, n: Node) -> None:
    """ONNX Transpose takes SBIF's perm as it is (y.shape[i] = x.shape[perm[i]]); a scalar's empty perm, which an
    ONNX attribute cannot hold (an empty list has no type), is an Identity."""
    if n.attrs["perm"]:
        g.add("Transpose", [n.x], n.out, perm=list(n.attrs["perm"]))
    else:
        g.add("Identity", [n.x], n.out)


# -- whole models --------------------------------------------------------------------------------------------------
def to_onnx(model: Source, opset: int = DEFAULT_OPSET, outputs: Optional[Sequence[str]] = None) -> Any:
    """The ONNX model (`onnx.ModelProto`) of an SBIF file, given as a path or a read `SbifFile`.

    `outputs` (names of the document's outputs, or the predict contract's aliases such as `action`:
    `sbif.format.subgraph.select_outputs`) prunes the model to what they need: only the graph inputs they read (no
    noise for a deterministic action) and only the weights they use (no critics). None keeps every output."""
    onnx = import_onnx()
    sbif_file = model if isinstance(model, SbifFile) else SbifFile.read(os.fspath(model))
    document, specs = sbif_file.document, sbif_file.specs
    provenance = document["provenance"]
    kept = deployed_subgraph(document, outputs)
    graph = OnnxGraph(onnx, _checked_opset(onnx, opset), specs)
    for index, entry in zip(kept.node_indices, kept.nodes):
        attrs = resolve_attrs(get_op(entry["op"]), entry.get("attrs", {}), "node {} ({})".format(index, entry["op"]))
        lower(graph, Node(entry["op"], entry["inputs"], entry["outputs"], attrs,
                          [specs[name] for name in entry["inputs"]]))
    read = {name for node in graph.nodes for name in node.input}
    tensors = [onnx.numpy_helper.from_array(np.asarray(sbif_file.tensors[name]), name)
               for name in kept.tensors if name in read]
    descriptions = {entry["name"]: entry.get("description", "") for entry in document["outputs"]}
    inputs_by_name = {entry["name"]: entry for entry in document["inputs"]}
    model_outputs = [(name, specs[name], descriptions[name]) for name in kept.outputs]
    inputs = [(name, specs[name], _input_description(inputs_by_name[name])) for name in kept.inputs]
    values = [(name, specs[name]) for node in kept.nodes for name in node["outputs"] if name not in kept.outputs]
    title = "{} {}".format(provenance["algorithm"], provenance["policy_class"])
    pruned = "" if outputs is None else ", pruned to the outputs " + ", ".join(kept.outputs)
    return _model(onnx, graph, inputs, model_outputs, values, tensors, title.replace(" ", "_"),
                  {METADATA_KEY: encode_document(document)[METADATA_KEY]},
                  "Stable-Baselines {} policy converted from SBIF{} (the document is metadata_props['{}'])".format(
                      title, pruned, METADATA_KEY))


def convert(source: Source, target_path: str, opset: int = DEFAULT_OPSET,
            outputs: Optional[Sequence[str]] = None) -> Any:
    """Convert an SBIF file (a path or a read `SbifFile`) and write the ONNX model to `target_path`; returns the
    model. `outputs` as for `to_onnx`."""
    onnx = import_onnx()
    model = to_onnx(source, opset, outputs)
    onnx.save_model(model, target_path)
    return model


def op_to_onnx(op: str, attrs: Mapping[str, Any], inputs: Sequence[ValueSpec], n_outputs: int = 1,
               opset: int = DEFAULT_OPSET) -> Any:
    """A model computing one SBIF op: graph inputs "x0", "x1", ... of the given types, outputs "0", "1", ...
    (how an ONNX runtime answers the conformance suite's op requests)."""
    onnx = import_onnx()
    op_class = get_op(op)
    where = "op {}".format(op)
    resolved = resolve_attrs(op_class, dict(attrs), where)
    expected = op_class.arity
    if (expected is None and not inputs) or (expected is not None and len(inputs) != expected):
        raise DocumentError("{} takes {} input(s), got {}".format(
            where, "one or more" if expected is None else expected, len(inputs)))
    if op_class.n_outputs is not None and n_outputs != op_class.n_outputs:
        raise DocumentError("{} has {} output(s), not {}".format(where, op_class.n_outputs, n_outputs))
    try:
        results = op_class.infer(list(inputs), resolved, n_outputs)
    except DocumentError as exc:
        raise DocumentError("{}: {}".format(where, exc)) from None
    input_names = ["x{}".format(i) for i in range(len(inputs))]
    output_names = [str(i) for i in range(len(results))]
    graph = OnnxGraph(onnx, _checked_opset(onnx, opset), input_names + output_names)
    lower(graph, Node(op, input_names, output_names, resolved, inputs))
    return _model(onnx, graph, [(name, spec, "") for name, spec in zip(input_names, inputs)],
                  [(name, spec, "") for name, spec in zip(output_names, results)], [], [], op, {}, "SBIF op " + op)


def lower(graph: OnnxGraph, node: Node) -> None:
    """Append the ONNX nodes of one SBIF node."""
    function = LOWERINGS.get(node.op)
    if function is None:
        raise UnsupportedError("op {!r} has no ONNX lowering in this SBIF version (lowered: {})".format(
            node.op, ", ".join(sorted(LOWERINGS))))
    graph.scope = node.out
    function(graph, node)


def _checked_opset(onnx: Any, opset: int) -> int:
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or isinstance(opset, bool) or not MIN_OPSET <= opset <= newest:
        raise UnsupportedError("ONNX opset {!r} is not supported: use {} to {} (the newest onnx {} knows)".format(
            opset, MIN_OPSET, newest, onnx.__version__))
    return opset


def _input_description(entry: Mapping[str, Any]) -> str:
    if entry["kind"] == "noise":
        return "noise: independent {} draws".format("U[0, 1)" if entry["distribution"] == "uniform" else "N(0, 1)")
    return entry["kind"]


def _value_info(onnx: Any, name: str, spec: ValueSpec, description: str = "") -> Any:
    shape = [BATCH_DIM if dim is None else dim for dim in spec.shape]
    return onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype)),
                                              shape, doc_string=description)


def _model(onnx: Any, graph: OnnxGraph, inputs: Sequence[Tuple[str, ValueSpec, str]],
           outputs: Sequence[Tuple[str, ValueSpec, str]], values: Sequence[Tuple[str, ValueSpec]],
           tensors: Sequence[Any], name: str, metadata: Mapping[str, str], description: str) -> Any:
    """Assemble and fully check the model; a failed check is a converter bug, reported as such."""
    helper = onnx.helper
    onnx_graph = helper.make_graph(
        graph.nodes, name, [_value_info(onnx, *entry) for entry in inputs],
        [_value_info(onnx, *entry) for entry in outputs], initializer=list(tensors) + graph.initializers,
        value_info=[_value_info(onnx, *entry) for entry in values])
    opsets = [helper.make_opsetid("", graph.opset)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets),
                              producer_name="sbif", producer_version=__version__, doc_string=description)
    if metadata:
        helper.set_model_props(model, dict(metadata))
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise UnsupportedError("the ONNX model made for {} fails onnx.checker ({}); this is a bug in "
                               "sbif.convert.onnx, please report it".format(name, str(exc).strip())) from None
    return model
