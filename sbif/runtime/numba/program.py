"""Lower an SBIF graph to programs for the numba backend's interpreter (`kernels.execute`).

A program is an int64 array of instructions, each one kernel call on views of a few flat byte buffers: the
weights (every tensor the graph reads, and every value computed from tensors alone, folded here with the NumPy
ops), the scratch (intermediate values: rows times a per-row slot, slots reused once a value is dead), the outputs
of the call (fresh per call) and the graph inputs. Programs are data: the interpreter is compiled once for every
model, and building the program of an output set costs no compilation.

An instruction is its header, its operands and its extras, each a record whose fields `encoding` names
(INSTRUCTION_FIELDS, OPERAND_FIELDS, EXTRAS); this module writes them by those names. An operand is a 2-D view of
(rows + rows_per_n * n, columns) elements at a byte offset that is linear in the call's frame (`kernels.start_of`),
so that one program serves every batch size, every chunk of a request and every part of a chunk.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...format import SbifFile
from ...ops import get_op, resolve_attrs
from ...ops.layers import conv_axis
from .encoding import (ADD_BIAS, ARGMAX, BINARY, BINARY_OPS, CAST, CASTS, CLIP, CONV2D, COPY, COPY_COLUMNS,
                       DTYPE_CODE, EXTRAS, INPUT0, INSTRUCTION_FIELDS, INVERSE_CDF_SAMPLE, KERNEL_DTYPES, LAYER_NORM,
                       LAYOUTS, LINEAR, MATMUL, ONE_HOT, OPERAND_COUNT, OPERAND_FIELDS, OUTPUTS, PANEL, REDUCE_MEAN,
                       SCRATCH, SOFTMAX, TAKE_COLUMNS, TRANSPOSE, TRANSPOSE_BLOCKS, TRANSPOSE_GEOMETRY, UNARY,
                       UNARY_OPS, WEIGHTS, WHERE, fields, float_bits)

#: slots and weights start on multiples of this many bytes
ALIGN = 64
#: how the interpreter computes a dense product (x @ w, w [K, N] a weight), by how its weights are stored
#: (`Value.layout`): with at least PANEL outputs, in tiles whose sums stay in registers ("panels"); with fewer, as
#: updates of the output row by each input when K < AXPY_MAX_DEPTH and N >= AXPY_MIN_WIDTH ("plain": axpy,
#: vectorised along the row); otherwise as dot products of contiguous rows ("transposed": `dense_dots`)
AXPY_MAX_DEPTH, AXPY_MIN_WIDTH = 32, 8


class NoKernel(Exception):
    """A node the interpreter cannot run (an op or dtype without a kernel, or an unusual broadcast)."""


class Value:
    """A graph value as the interpreter sees it (`kind`): a graph input, a weight, a scratch slot, a view (another
    shape) of one of these, or missing (computed by a node without a kernel). Offsets are in bytes (slots: per
    row)."""

    def __init__(self, dtype: str, shape: Sequence[Optional[int]], kind: str, base: Optional["Value"] = None,
                 index: int = 0):
        self.dtype, self.shape, self.kind, self.base, self.index = dtype, tuple(shape), kind, base, index
        self.offset = 0
        #: a dense product's weights: how they are stored (one of LAYOUTS), and the matrix [K, N] itself (for BLAS);
        #: a convolution's kernel in panels: its HWIO kernel
        self.layout = "plain"
        self.matrix: Optional[np.ndarray] = None

    @property
    def batched(self) -> bool:
        return bool(self.shape) and self.shape[0] is None

    @property
    def row_size(self) -> int:
        """Elements per row (for a value without a batch dimension: all of them)."""
        dims = self.shape[1:] if self.batched else self.shape
        return int(np.prod(dims, dtype=np.int64))

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    def storage(self) -> "Value":
        return self.base.storage() if self.kind == "view" else self


class View:
    """`value` seen as a 2-D array of `columns` elements per row (its rows: the batch times the rest)."""

    def __init__(self, value: Value, columns: int, rows: Optional[int] = None):
        self.value, self.columns = value, int(columns)
        total = value.row_size
        if value.batched:
            self.rows, self.rows_per_n = 0, total // max(self.columns, 1)
        else:
            self.rows, self.rows_per_n = (total // max(self.columns, 1) if rows is None else rows), 0

    def encode(self) -> List[int]:
        """The operand (encoding.OPERAND_FIELDS): where the view starts for a call's frame (`kernels.start_of`),
        and its shape."""
        return operand(self.value.storage(), rows=self.rows, rows_per_n=self.rows_per_n, columns=self.columns)


def operand(storage: Value, **shape: int) -> List[int]:
    """The operand of a view of `storage` (`shape`: its rows, rows_per_n and columns): a weight at a fixed offset; a
    slot at its offset times the chunk's rows (the chunk's rows of each value are contiguous), then a row's bytes
    per row from `first`; an input likewise from its start."""
    row_bytes = storage.row_size * storage.itemsize
    if storage.kind == "weight":
        place = dict(space=WEIGHTS, base=storage.offset)
    elif storage.kind == "slot":
        place = dict(space=SCRATCH, per_rows=storage.offset, per_first=row_bytes)
    else:
        place = dict(space=INPUT0 + storage.index, per_first=row_bytes)
    return fields(OPERAND_FIELDS, dict(dict.fromkeys(OPERAND_FIELDS, 0), **place, **shape))


def flat(value: Value) -> View:
    return View(value, value.row_size)


class Instruction:
    """One kernel call: `opcode` on operands of `dtype` (`op` names it in errors), with the extras
    encoding.EXTRAS names for the opcode."""

    def __init__(self, opcode: int, dtype: str, operands: Sequence[View], sub: int = 0,
                 extras: Optional[Dict[str, int]] = None, op: str = ""):
        self.opcode, self.dtype, self.operands, self.sub = opcode, dtype, list(operands), sub
        self.extras = dict(extras or {})
        family = KERNEL_DTYPES.get(opcode)
        if family is not None and dtype not in family:
            raise NoKernel("no numba kernel for op {!r} on {}".format(op or _OPCODE_NAMES[opcode], dtype))

    def encode(self) -> List[int]:
        return encode_instruction(self.opcode, self.sub, self.dtype, [view.encode() for view in self.operands],
                                  self.extras)


def encode_instruction(opcode: int, sub: int, dtype: str, operands: Sequence[List[int]],
                       extras: Dict[str, int]) -> List[int]:
    """The instruction's ints: its header, its encoded operands (as many as encoding.OPERAND_COUNT says), its
    extras in encoding.EXTRAS's order."""
    if len(operands) != OPERAND_COUNT[opcode]:
        raise ValueError("opcode {} takes {} operands, not {}".format(opcode, OPERAND_COUNT[opcode], len(operands)))
    body = [value for encoded in operands for value in encoded] + fields(EXTRAS.get(opcode, ()), extras)
    header = fields(INSTRUCTION_FIELDS, dict(length=len(INSTRUCTION_FIELDS) + len(body), opcode=opcode, sub=sub,
                                             dtype=DTYPE_CODE[dtype]))
    return header + body


class Gemm:
    """A matrix product the batch path computes with BLAS: a linear or matmul node, y = x @ w.matrix (however w is
    stored for the interpreter), or a conv2d node (`conv`: its geometry, named as encoding.CONV_GEOMETRY;
    w [kh, kw, C, O] as it is, a convolution with padding: the caller first writes the patch columns of x, `im2col`;
    one without runs in the interpreter, `kernels.conv2d_panels`, and the batch path leaves it there)."""

    def __init__(self, x: Value, w: Value, y: Value, conv: Optional[Dict[str, int]] = None):
        self.x, self.w, self.y, self.conv = x, w, y, conv

    def macs_per_row(self) -> int:
        if self.conv is None:
            return int(self.w.matrix.size)
        return int(self.y.row_size) * self.conv["kernel_h"] * self.conv["kernel_w"] * self.conv["channels"]


class Step:
    """One graph node: its instructions, and for a matrix product the instructions that only add the bias after
    the caller's BLAS product (`after_gemm`)."""

    def __init__(self, index: int, node: Dict[str, Any], instructions: List[Instruction],
                 after_gemm: Sequence[Instruction] = (), gemm: Optional[Gemm] = None):
        self.index, self.node, self.instructions, self.after_gemm, self.gemm = (index, node, instructions,
                                                                                list(after_gemm), gemm)


class Lowered:
    """A model ready for the interpreter: weights, scratch layout, steps, and programs for output sets."""

    def __init__(self, model: SbifFile):
        self.model = model
        document = model.document
        self.input_names = [entry["name"] for entry in document["inputs"]]
        self.values: Dict[str, Value] = {}
        for index, entry in enumerate(document["inputs"]):
            self.values[entry["name"]] = Value(entry["dtype"], entry["shape"], "input", index=index)
        self._weights: List[Tuple[Value, np.ndarray]] = []
        self.folded = fold_constants(model)
        #: graph value name -> index of the step computing it (inputs and folded values have none)
        self.producers: Dict[str, int] = {}
        #: step index -> why the interpreter cannot run it (inherited by the steps that read its outputs)
        self.unsupported: Dict[int, str] = {}
        self.steps: List[Step] = []
        for node in document["graph"]:
            if not all(name in self.folded for name in node["outputs"]):
                self.steps.append(self.lower_node(len(self.steps), node))
                self.producers.update((name, self.steps[-1].index) for name in node["outputs"])
        self.outputs = {entry["name"]: self.values[entry["name"]] for entry in document["outputs"]}
        #: bytes of scratch per row
        self.scratch_bytes = allocate_slots(self.steps, self.values, self.outputs.values(), self.unsupported)
        self.weights = pack_weights(self._weights)

    # -- values -------------------------------------------------------------------------------------------------
    def value(self, name: str) -> Value:
        """A node input: a computed value, a graph input, or a tensor / folded value placed in the weights."""
        if name not in self.values:
            array = self.constant(name)
            self.values[name] = self.weight(array)
        return self.values[name]

    def is_constant(self, name: str) -> bool:
        return name in self.folded or (name not in self.producers and name not in self.input_names
                                       and name in self.model.tensors)

    def constant(self, name: str) -> np.ndarray:
        return self.folded[name] if name in self.folded else np.asarray(self.model.tensors[name])

    def weight(self, array: np.ndarray) -> Value:
        """A value placed in the weights."""
        value = Value(array.dtype.name, array.shape, "weight")
        self._weights.append((value, np.ascontiguousarray(array)))
        return value

    def dense_weights(self, name: str) -> Value:
        """The weights [K, N] of a dense product, stored as the interpreter computes it fastest (`AXPY_MAX_DEPTH`)."""
        key = name + "\0dense"
        if key not in self.values:
            matrix = self.constant(name)
            depth, width = matrix.shape
            if width >= PANEL and matrix.dtype == np.float32:
                value, layout = self.weight(panels(matrix)), "panels"
            elif depth < AXPY_MAX_DEPTH and width >= AXPY_MIN_WIDTH:
                value, layout = self.value(name), "plain"
            else:
                value, layout = self.weight(matrix.T), "transposed"
            value.layout, value.matrix = layout, matrix
            self.values[key] = value
        return self.values[key]

    def conv_weights(self, name: str) -> Value:
        """The HWIO kernel of a convolution without padding, as the matrix [kh * kw * C, O] in panels
        (`kernels.conv2d_panels`); `matrix` keeps the kernel itself."""
        key = name + "\0conv"
        if key not in self.values:
            kernel = self.constant(name)
            if kernel.dtype != np.float32:
                return self.value(name)
            value = self.weight(panels(kernel.reshape(-1, kernel.shape[-1])))
            value.layout, value.matrix = "panels", kernel
            self.values[key] = value
        return self.values[key]

    def zeros(self, width: int, dtype: str) -> Value:
        """A weight of `width` zeros: the bias of a matmul computed as a linear."""
        key = "\0zeros{}{}".format(width, dtype)
        if key not in self.values:
            self.values[key] = self.weight(np.zeros(width, dtype))
        return self.values[key]

    def lower_node(self, index: int, node: Dict[str, Any]) -> Step:
        op = node["op"]
        specs = [self.model.specs[name] for name in node["outputs"]]
        inherited = [self.unsupported[self.producers[name]] for name in node["inputs"]
                     if self.producers.get(name) in self.unsupported]
        try:
            if inherited:
                raise NoKernel(inherited[0])
            lowering = LOWERINGS.get(op)
            if lowering is None:
                raise NoKernel("no numba kernel for op {!r}".format(op))
            names = node["inputs"]
            ins = [self.dense_weights(name) if position == 1 and op in ("linear", "matmul") and self.is_constant(name)
                   else self.value(name) for position, name in enumerate(names)]
            if op == "matmul" and ins[1].layout == "panels":  # the panel kernel always adds a bias
                ins.append(self.zeros(ins[1].matrix.shape[1], ins[1].dtype))
            attrs = resolve_attrs(get_op(op), node.get("attrs", {}), op)
            if op == "conv2d" and self.is_constant(names[1]) and unpadded(ins[0], ins[1].shape, attrs):
                ins[1] = self.conv_weights(names[1])
            if (op in ("flatten", "squeeze", "expand_dims") or (op == "cast" and ins[0].dtype == specs[0].dtype)
                    or (op == "transpose" and ins[0].batched
                        and len(transpose_blocks(ins[0].shape, attrs["perm"])[0]) <= 1)):
                # the same bytes, seen in another shape (a cast to its own dtype: as is; a transpose that only
                # moves axes of size 1, or the batch alone: the same order)
                lowering = lower_view
                outs = [Value(specs[0].dtype, specs[0].shape, "view", base=ins[0])]
            else:
                outs = [Value(spec.dtype, spec.shape, "slot") for spec in specs]
            instructions, after_gemm, gemm = lowering(ins, outs, attrs)
        except NoKernel as exc:
            self.unsupported[index] = "{} (node {} -> {})".format(exc, op, ", ".join(node["outputs"]))
            outs = [Value(spec.dtype, spec.shape, "missing") for spec in specs]
            instructions, after_gemm, gemm = [], [], None
        self.values.update(zip(node["outputs"], outs))
        return Step(index, node, instructions, after_gemm, gemm)

    # -- programs -----------------------------------------------------------------------------------------------
    def needed_steps(self, plan_outputs: Sequence[str]) -> List[int]:
        """The steps computing `plan_outputs` (a NumPy executor plan's node outputs), in order."""
        return sorted({self.producers[name] for name in plan_outputs if name in self.producers})

    def output_layout(self, outputs: Sequence[str]) -> Tuple[int, List[Tuple[str, str, int, int]]]:
        """The output buffer of a call: bytes per row, and per output (name, dtype, byte offset per row, elements
        per row). An output's rows are contiguous, at `offset * total` bytes; wider dtypes come first, so every
        output is aligned."""
        unique = [self.outputs[name] for name in dict.fromkeys(outputs)]
        order = sorted(range(len(unique)), key=lambda i: -unique[i].itemsize)
        layout, offset = [], 0
        names = list(dict.fromkeys(outputs))
        for i in order:
            value = unique[i]
            layout.append((names[i], value.dtype, offset, value.row_size))
            offset += value.row_size * value.itemsize
        return offset, layout

    def program(self, steps: Sequence[int], after_gemm: Sequence[int] = (),
                copy_out: Sequence[Tuple[str, str, int, int]] = ()) -> np.ndarray:
        """The instructions of `steps` (whole) and of `after_gemm` (the bias only), then the copies of outputs
        into the output buffer (`copy_out`: the layout from `output_layout`)."""
        code: List[int] = []
        for index in sorted(set(steps) | set(after_gemm)):
            step = self.steps[index]
            for instruction in (step.after_gemm if index in after_gemm else step.instructions):
                code.extend(instruction.encode())
        for name, _, offset, size in copy_out:
            code.extend(copy_to_output(self.outputs[name], offset, size))
        return np.asarray(code, dtype=np.int64)


def copy_to_output(value: Value, offset: int, size: int) -> List[int]:
    """Copy `value`'s rows to their place in the output buffer, which holds the request's rows of it from byte
    `offset * out_rows`."""
    row_bytes = size * value.itemsize
    view = View(value, value.row_size)
    source = operand(value.storage(), rows=view.rows, rows_per_n=view.rows_per_n, columns=row_bytes)
    target = fields(OPERAND_FIELDS, dict(dict.fromkeys(OPERAND_FIELDS, 0), space=OUTPUTS, per_out_rows=offset,
                                         per_out_row=row_bytes, rows_per_n=1, columns=row_bytes))
    return encode_instruction(COPY, 0, "uint8", [source, target], {})


def fold_constants(model: SbifFile) -> Dict[str, np.ndarray]:
    """Every value computed from tensors alone (constants, reshaped biases...), computed by the NumPy ops."""
    values: Dict[str, Any] = dict(model.tensors)
    batched = {entry["name"] for entry in model.document["inputs"]}
    folded: Dict[str, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for node in model.document["graph"]:
            if any(name in batched for name in node["inputs"]):
                batched.update(node["outputs"])
                continue
            op = get_op(node["op"])
            result = op.compute(*[values[name] for name in node["inputs"]],
                                **resolve_attrs(op, node.get("attrs", {}), node["op"]))
            results = result if len(node["outputs"]) > 1 else (result,)
            for name, array in zip(node["outputs"], results):
                values[name] = folded[name] = np.asarray(array)
    return folded


def allocate_slots(steps: List[Step], values: Dict[str, Value], outputs: Any, unsupported: Dict[int, str]) -> int:
    """Give every slot a per-row byte offset, reusing the slot of a value no later step reads (a view's reads
    count for its base) for a value with as many bytes per row only: the rows of both then sit at the same places,
    so that calls on different rows of one chunk can run at the same time. Outputs live to the end, where they are
    copied out. Returns the bytes per row."""
    last_use: Dict[int, int] = {}
    for step in steps:
        for name in step.node["inputs"]:
            storage = values[name].storage() if name in values else None
            if storage is not None and storage.kind == "slot":
                last_use[id(storage)] = step.index
    for value in outputs:
        last_use[id(value.storage())] = len(steps)
    free: Dict[int, List[int]] = {}
    end = 0
    for step in steps:
        if step.index in unsupported:
            continue
        for name in step.node["outputs"]:
            value = values[name]
            if value.kind == "slot":
                size = value.row_size * value.itemsize
                if free.get(size):
                    value.offset = free[size].pop()
                else:
                    value.offset, end = end, end + aligned(size)
        touched = {id(values[n].storage()): values[n].storage() for n in step.node["inputs"] + step.node["outputs"]
                   if n in values}
        for storage in touched.values():
            if storage.kind == "slot" and last_use.get(id(storage), step.index) == step.index:
                free.setdefault(storage.row_size * storage.itemsize, []).append(storage.offset)
    return end


def aligned_bytes(size: int) -> np.ndarray:
    """`size` zeroed bytes starting on a multiple of ALIGN bytes (NumPy only promises 16): offsets that are multiples
    of ALIGN are then the starts of cache lines, so no vector load of a panel or a slot straddles two of them."""
    spare = np.zeros(size + ALIGN, np.uint8)
    start = -spare.ctypes.data % ALIGN
    return spare[start:start + size]


def pack_weights(weights: List[Tuple[Value, np.ndarray]]) -> np.ndarray:
    """All weights in one aligned byte buffer, setting each value's offset."""
    offset = 0
    for value, array in weights:
        value.offset = offset
        offset += aligned(array.nbytes)
    packed = aligned_bytes(offset)
    for value, array in weights:
        packed[value.offset:value.offset + array.nbytes] = array.reshape(-1).view(np.uint8)
    return packed


def aligned(size: int) -> int:
    """`size` rounded up to a positive multiple of ALIGN bytes."""
    return -(-max(size, 1) // ALIGN) * ALIGN


# -- broadcasting ------------------------------------------------------------------------------------------------
def broadcast_views(operands: Sequence[Value], out: Value) -> List[View]:
    """2-D views [R, C] of an element-wise op's operands and output, each operand full, a row [1, C], a column
    [R, 1] or a scalar [1, 1] (`kernels.binary`); NoKernel when no split of the output's axes does it."""
    shape = out.shape
    rank = len(shape)
    padded = [(1,) * (rank - len(v.shape)) + tuple(v.shape) for v in operands]
    for split in range(1, rank + 1):
        lead, tail = shape[:split], shape[split:]
        columns = int(np.prod(tail, dtype=np.int64))
        views = []
        for value, dims in zip(operands, padded):
            head, rest = dims[:split], dims[split:]
            ones_head, ones_rest = all(d == 1 for d in head), all(d == 1 for d in rest)
            if head == lead and rest == tail:
                views.append(View(value, columns))
            elif ones_head and rest == tail:
                views.append(View(value, columns, rows=1))
            elif head == lead and ones_rest:
                views.append(View(value, 1))
            elif ones_head and ones_rest:
                views.append(View(value, 1, rows=1))
            else:
                break
        else:
            return views + [View(out, columns)]
    raise NoKernel("no numba kernel for broadcasting {} to {}".format(
        " and ".join(str(v.shape) for v in operands), shape))


# -- lowerings: (inputs, outputs, attrs) -> (instructions, bias-only instructions, gemm) ----------------------------
Lowering = Tuple[List[Instruction], List[Instruction], Optional[Gemm]]


def _unary(op: str) -> Callable[..., Lowering]:
    def lower(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
        alpha = float_bits(float(attrs.get("alpha", 0.0)))
        return [Instruction(UNARY, ins[0].dtype, [flat(ins[0]), flat(outs[0])], UNARY_OPS.index(op),
                            {"alpha": alpha}, op)], [], None
    return lower


def _binary(op: str) -> Callable[..., Lowering]:
    def lower(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
        return [Instruction(BINARY, ins[0].dtype, broadcast_views(ins, outs[0]), BINARY_OPS.index(op), op=op)], [], None
    return lower


def lower_clip(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
    return [Instruction(CLIP, ins[0].dtype, broadcast_views(ins, outs[0]))], [], None


def lower_where(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
    """One WHERE instruction on the broadcast views of condition, x and y, their elements moved as words of their
    size (`kernels.where`): a select of any dtype."""
    z = outs[0]
    return [Instruction(WHERE, z.dtype, broadcast_views(ins, z), sub=z.itemsize, op="where")], [], None


def lower_cast(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
    x, y = ins[0], outs[0]
    if x.dtype not in CASTS.get(y.dtype, ()):
        raise NoKernel("no numba kernel for cast from {} to {}".format(x.dtype, y.dtype))
    return [Instruction(CAST, y.dtype, [_bytes(x, x.row_size), flat(y)], DTYPE_CODE[x.dtype])], [], None


def lower_view(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
    return [], [], None


def _bytes(value: Value, columns: int) -> View:
    """A view in bytes (the copy kernels are dtype-blind)."""
    view = View(value, columns)
    view.columns = columns * value.itemsize
    return view


def lower_linear(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
    """x @ w + b (w stored as `Lowered.dense_weights` chose)."""
    x, w, b = ins
    y = outs[0]
    _require_weight(w, "linear")
    depth, width = w.matrix.shape
    return ([Instruction(LINEAR, x.dtype, [View(x, depth), View(w, w.shape[1]), View(b, width), View(y, width)],
                         sub=LAYOUTS.index(w.layout))],
            [Instruction(ADD_BIAS, x.dtype, [View(y, width), View(b, width)])], Gemm(x, w, y))


def lower_matmul(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
    """x @ w; with w in panels, a linear with the zero bias that `Lowered.lower_node` appended."""
    x, w = ins[:2]
    y = outs[0]
    _require_weight(w, "matmul")
    if w.layout == "panels":
        instructions, _, gemm = lower_linear(ins, outs, attrs)
        return instructions, [], gemm
    depth, width = w.matrix.shape
    return ([Instruction(MATMUL, x.dtype, [View(x, depth), View(w, w.shape[1]), View(y, width)],
                         sub=LAYOUTS.index(w.layout))], [], Gemm(x, w, y))


def panels(matrix: np.ndarray) -> np.ndarray:
    """A matrix [K, N] as ceil(N / PANEL) panels [K, PANEL] of its columns, the last one padded with zeros, one
    after the other ([panels * K, PANEL]): `kernels.dense_panels` reads its weights this way."""
    depth, width = matrix.shape
    count = -(-width // PANEL)
    padded = np.zeros((depth, count * PANEL), matrix.dtype)
    padded[:, :width] = matrix
    return np.ascontiguousarray(padded.reshape(depth, count, PANEL).transpose(1, 0, 2)).reshape(count * depth, PANEL)


def unpadded(x: Value, kernel_shape: Sequence[Optional[int]], attrs: Dict[str, Any]) -> bool:
    """Whether a convolution of x (NHWC) by a kernel of `kernel_shape` (HWIO) reads no padding: every patch lies
    inside the image, as `kernels.conv2d_panels` requires."""
    if not x.batched or len(x.shape) != 4 or None in x.shape[1:] or None in kernel_shape:
        return False
    return all(conv_axis(size, kernel, stride, attrs["padding"]).padding == (0, 0)
               for size, kernel, stride in zip(x.shape[1:3], kernel_shape[:2], attrs["strides"]))


def lower_conv2d(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
    """A convolution, its kernel in panels (`Lowered.conv_weights`: no padding) or HWIO as it is."""
    x, w, b = ins
    y = outs[0]
    _require_batched(x, "conv2d")
    kernel_h, kernel_w, channels, filters = (int(d) for d in (w.matrix.shape if w.layout == "panels" else w.shape))
    _, height, width, _ = x.shape
    _, out_h, out_w, _ = y.shape
    rows, columns = (conv_axis(size, kernel, stride, attrs["padding"])
                     for size, kernel, stride in zip((height, width), (kernel_h, kernel_w), attrs["strides"]))
    geometry = dict(height=height, width=width, channels=channels, kernel_h=kernel_h, kernel_w=kernel_w,
                    out_h=out_h, out_w=out_w, stride_h=rows.step, stride_w=columns.step, pad_top=rows.padding[0],
                    pad_left=columns.padding[0])
    return ([Instruction(CONV2D, x.dtype, [View(x, channels), View(w, PANEL if w.layout == "panels" else filters),
                                          View(b, filters), View(y, filters)],
                         sub=LAYOUTS.index(w.layout), extras=geometry)],
            [Instruction(ADD_BIAS, x.dtype, [View(y, filters), View(b, filters)])], Gemm(x, w, y, geometry))


def lower_layer_norm(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
    x, gamma, beta = ins
    width = int(x.shape[-1])
    return [Instruction(LAYER_NORM, x.dtype, [View(x, width), View(gamma, width), View(beta, width),
                                               View(outs[0], width)],
                        extras={"epsilon": float_bits(float(attrs["epsilon"]))})], [], None


def _rows(opcode: int) -> Callable[..., Lowering]:
    """Ops over the last axis: [R, N] in, [R, 1] (reduce_mean, argmax) or [R, N] (softmax) out."""
    def lower(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
        width = int(ins[0].shape[-1])
        out = View(outs[0], width if opcode == SOFTMAX else 1)
        return [Instruction(opcode, ins[0].dtype, [View(ins[0], width), out])], [], None
    return lower


def lower_one_hot(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
    return [Instruction(ONE_HOT, ins[0].dtype, [View(ins[0], 1), View(outs[0], attrs["depth"])])], [], None


def lower_inverse_cdf_sample(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
    p, u = ins
    if u.dtype != p.dtype:
        raise NoKernel("no numba kernel for inverse_cdf_sample with p {} and u {}".format(p.dtype, u.dtype))
    return [Instruction(INVERSE_CDF_SAMPLE, p.dtype, [View(p, p.shape[-1]), View(u, 1), View(outs[0], 1)])], [], None


def _blocks(value: Value, axis: int) -> View:
    """[outer, inner] bytes of `value` around `axis`: the columns are the axes from `axis` on."""
    return _bytes(value, int(np.prod(value.shape[axis:], dtype=np.int64)))


def lower_concat(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
    out = outs[0]
    axis = attrs["axis"] % len(out.shape)
    instructions, offset = [], 0
    for value in ins:
        _require_batched(value, "concat")
        source = _blocks(value, axis)
        instructions.append(Instruction(COPY_COLUMNS, "uint8", [source, _blocks(out, axis)], extras={"offset": offset}))
        offset += source.columns
    return instructions, [], None


def lower_split(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
    x = ins[0]
    axis = attrs["axis"] % len(x.shape)
    instructions, offset = [], 0
    for value in outs:
        target = _blocks(value, axis)
        instructions.append(Instruction(TAKE_COLUMNS, "uint8", [_blocks(x, axis), target], extras={"offset": offset}))
        offset += target.columns
    return instructions, [], None


def lower_stack(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
    out = outs[0]
    axis = attrs["axis"] % len(out.shape)
    if axis == 0:
        raise NoKernel("no numba kernel for stack along the batch axis")
    instructions = []
    for index, value in enumerate(ins):
        _require_batched(value, "stack")
        source = _blocks(value, axis)
        instructions.append(Instruction(COPY_COLUMNS, "uint8", [source, _blocks(out, axis)],
                                        extras={"offset": index * source.columns}))
    return instructions, [], None


def transpose_blocks(shape: Sequence[Optional[int]], perm: Sequence[int]) -> Tuple[List[int], List[int]]:
    """A batched transpose as the kernel runs it, row by row: (sizes, steps) of y's row seen as blocks in row-major
    order, block i of size sizes[i] reading x's row with a stride of steps[i] elements. Axes of size 1 are dropped
    and axes that stay next to each other in the same order are merged, so [C, H, W] -> [H, W, C] is two blocks,
    [H*W, C] read with strides 1 and H*W. No blocks: a row holds no element; one block: the order is unchanged."""
    dims, order = list(shape[1:]), [axis - 1 for axis in perm[1:]]  # perm[0] is the batch's 0 (Transpose.infer)
    if any(dim == 0 for dim in dims):
        return [], []
    strides = [int(np.prod(dims[axis + 1:], dtype=np.int64)) for axis in range(len(dims))]
    sizes: List[int] = []
    steps: List[int] = []
    previous = None
    for axis in order:
        if dims[axis] == 1:
            continue
        if previous is not None and axis == previous + 1:  # x's next axis again: one block with the last
            sizes[-1] *= dims[axis]
            steps[-1] = strides[axis]
        else:
            sizes.append(dims[axis])
            steps.append(strides[axis])
        previous = axis
    return sizes, steps


def lower_transpose(ins: List[Value], outs: List[Value], attrs: Dict[str, Any]) -> Lowering:
    """A batched transpose (one of fixed tensors is folded) as the blocks of `transpose_blocks`, padded in front with
    blocks of size 1 to encoding.TRANSPOSE_BLOCKS; a byte copy in words of the element's size."""
    x, y = ins[0], outs[0]
    _require_batched(x, "transpose")
    sizes, steps = transpose_blocks(x.shape, attrs["perm"])
    if len(sizes) > TRANSPOSE_BLOCKS:
        raise NoKernel("no numba kernel for a transpose of {} blocks of axes (at most {}): perm {} of {}".format(
            len(sizes), TRANSPOSE_BLOCKS, attrs["perm"], x.shape))
    padding = TRANSPOSE_BLOCKS - len(sizes)
    sizes, steps = [1] * padding + sizes, [0] * padding + steps
    geometry = dict(zip(TRANSPOSE_GEOMETRY, sizes + steps))
    return [Instruction(TRANSPOSE, x.dtype, [_bytes(x, x.row_size), _bytes(y, y.row_size)], sub=x.itemsize,
                        extras=geometry, op="transpose")], [], None


def _require_batched(value: Value, op: str) -> None:
    if not value.batched:
        raise NoKernel("no numba kernel for op {!r} on a value without a batch dimension".format(op))


def _require_weight(value: Value, op: str) -> None:
    if value.kind != "weight":
        raise NoKernel("no numba kernel for op {!r} with a computed matrix".format(op))


LOWERINGS: Dict[str, Callable[..., Lowering]] = dict(
    {op: _unary(op) for op in UNARY_OPS}, **{op: _binary(op) for op in BINARY_OPS},
    clip=lower_clip, cast=lower_cast, flatten=lower_view, squeeze=lower_view, expand_dims=lower_view,
    linear=lower_linear, matmul=lower_matmul, conv2d=lower_conv2d, layer_norm=lower_layer_norm,
    reduce_mean=_rows(REDUCE_MEAN), softmax=_rows(SOFTMAX), argmax=_rows(ARGMAX), one_hot=lower_one_hot,
    inverse_cdf_sample=lower_inverse_cdf_sample, concat=lower_concat, split=lower_split, stack=lower_stack,
    transpose=lower_transpose, where=lower_where)

#: the op an opcode's kernel belongs to, for error messages
_OPCODE_NAMES = {CLIP: "clip", LINEAR: "linear", MATMUL: "matmul", ADD_BIAS: "linear", CONV2D: "conv2d",
                 LAYER_NORM: "layer_norm", REDUCE_MEAN: "reduce_mean", SOFTMAX: "softmax", ARGMAX: "argmax",
                 ONE_HOT: "one_hot", INVERSE_CDF_SAMPLE: "inverse_cdf_sample"}
