"""The numba backend's program format (`sbif.runtime.numba.encoding`): every instruction the lowering emits, decoded
in plain Python by the named offsets the kernels read (INSTRUCTION_*, OPERAND_*, FIRST_OPERAND..., UNARY_ALPHA,
CONV_*...), means what the lowering meant: the opcode, sub and dtype it chose, each operand's buffer, byte offset for
a call's frame and shape, and each extra. A field the encoder (`program`) writes at another place than the kernels
read it fails here. Runs without numba (the lowering and the format are plain Python); where numba is installed, the
kernels' own `start_of` is held to the same offsets."""
from __future__ import annotations

import json
import os
import types
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pytest

from conformance.models import EXAMPLES, build_model, family_status
from sbif.errors import SbifError
from sbif.ops import ValueSpec, get_op, resolve_attrs
from sbif.runtime.numba import encoding, program
from tests.factories import MATRIX, make_sbif

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(ROOT, "spec", "vectors")
#: ops whose only batched input is the first (the others are weights)
WEIGHTED_OPS = ("linear", "matmul", "conv2d", "layer_norm")

#: where the kernels read each operand of an instruction, from its start
KERNEL_OPERANDS = (encoding.FIRST_OPERAND, encoding.SECOND_OPERAND, encoding.THIRD_OPERAND, encoding.FOURTH_OPERAND)
#: where the kernels read each extra, from the instruction's start
KERNEL_EXTRAS = {
    encoding.UNARY: {"alpha": encoding.UNARY_ALPHA},
    encoding.LAYER_NORM: {"epsilon": encoding.LAYER_NORM_EPSILON},
    encoding.COPY_COLUMNS: {"offset": encoding.COPY_COLUMNS_OFFSET},
    encoding.TAKE_COLUMNS: {"offset": encoding.TAKE_COLUMNS_OFFSET},
    encoding.CONV2D: {"height": encoding.CONV_HEIGHT, "width": encoding.CONV_WIDTH, "channels": encoding.CONV_CHANNELS,
                      "kernel_h": encoding.CONV_KERNEL_H, "kernel_w": encoding.CONV_KERNEL_W,
                      "out_h": encoding.CONV_OUT_H, "out_w": encoding.CONV_OUT_W, "stride_h": encoding.CONV_STRIDE_H,
                      "stride_w": encoding.CONV_STRIDE_W, "pad_top": encoding.CONV_PAD_TOP,
                      "pad_left": encoding.CONV_PAD_LEFT},
    encoding.TRANSPOSE: {"size0": encoding.TRANSPOSE_SIZE0, "size1": encoding.TRANSPOSE_SIZE1,
                         "size2": encoding.TRANSPOSE_SIZE2, "size3": encoding.TRANSPOSE_SIZE3,
                         "step0": encoding.TRANSPOSE_STEP0, "step1": encoding.TRANSPOSE_STEP1,
                         "step2": encoding.TRANSPOSE_STEP2, "step3": encoding.TRANSPOSE_STEP3},
}
#: extras holding a float's bits
FLOAT_EXTRAS = ("alpha", "epsilon")
#: call frames (n, first, rows, out_first, out_rows) the operands are placed for
FRAMES = [(1, 0, 1, 0, 1), (3, 2, 7, 5, 20), (64, 0, 64, 64, 257)]


def one_node_model(op: str, case: Dict[str, Any]) -> Optional[Tuple[Any, List[np.ndarray], List[np.ndarray],
                                                                      List[bool], List[ValueSpec]]]:
    """An op-vector case as a one-node graph for the lowering: an input whose first dimension is the output's is a
    graph input (that dimension is the batch), any other a weight. Returns (model, inputs, expected outputs, which
    inputs are batched, output specs), or a reason (str) why the case is not a batch the interpreter runs."""
    from tests.test_op_vectors import decode

    inputs = [decode(tensor) for tensor in case["inputs"]]
    expected = [decode(tensor) for tensor in case["outputs"]]
    batch = expected[0].shape[0] if expected[0].ndim else 0
    batched = [x.ndim >= 1 and expected[0].ndim >= 1 and x.shape[0] == batch and (i == 0 or op not in WEIGHTED_OPS)
               for i, x in enumerate(inputs)]
    if not any(batched) or sum(batched) > encoding.MAX_INPUTS:
        return "not a batch the interpreter runs"
    names = ["x{}".format(i) for i in range(len(inputs))]
    outputs = ["y{}".format(i) for i in range(len(expected))]
    specs = [ValueSpec(x.dtype.name, (None,) + x.shape[1:] if b else x.shape) for x, b in zip(inputs, batched)]
    op_class = get_op(op)
    try:
        outs = op_class.infer(specs, resolve_attrs(op_class, case.get("attrs", {}), op), len(expected))
    except SbifError as exc:
        return "not a graph with a batch dimension: {}".format(exc)
    if any(not spec.shape or spec.shape[0] is not None for spec in outs):
        return "an output without the batch dimension"
    model = types.SimpleNamespace(
        document={"inputs": [{"name": n, "dtype": s.dtype, "shape": list(s.shape)}
                             for n, s, b in zip(names, specs, batched) if b],
                  "graph": [{"op": op, "inputs": names, "outputs": outputs, "attrs": case.get("attrs", {})}],
                  "outputs": [{"name": n} for n in outputs]},
        specs=dict(zip(outputs, outs)), tensors={n: x for n, x, b in zip(names, inputs, batched) if not b})
    return model, inputs, expected, batched, outs


def vector_cases() -> List[Tuple[str, Dict[str, Any]]]:
    """(op, case) for every op-vector case of an op the lowering knows."""
    cases = []
    for name in sorted(os.listdir(VECTORS)):
        if not name.endswith(".json") or name[:-5] not in program.LOWERINGS:
            continue
        with open(os.path.join(VECTORS, name)) as handle:
            document = json.load(handle)
        cases.extend((document["op"], case) for case in document["cases"])
    return cases


def lowered_models() -> Iterator[Tuple[str, Any]]:
    """(name, model): conformance's generated families, the test factories' matrix and the op vectors' one-node
    graphs, which between them make the lowering emit every opcode."""
    status = family_status()
    for family, spec in EXAMPLES.items():
        if status[family] is None:
            yield family, build_model(spec)
    for observation, action, arch in MATRIX:
        yield "{}/{}/{}".format(observation, action, arch), make_sbif(observation, action, arch)
    for op, case in vector_cases():
        built = one_node_model(op, case)
        if not isinstance(built, str):
            yield "{}/{}".format(op, case["name"]), built[0]


# -- the decoder: plain Python, by the kernels' names ---------------------------------------------------------------
def decode_operand(code: np.ndarray, at: int) -> Dict[str, Any]:
    """An operand's buffer, its byte offset for each of FRAMES, and its rows (per n) and columns."""
    def start(frame: Tuple[int, ...]) -> int:
        n, first, rows, out_first, out_rows = frame
        return int(code[at + encoding.OPERAND_BASE] + code[at + encoding.OPERAND_PER_ROWS] * rows
                   + code[at + encoding.OPERAND_PER_FIRST] * first
                   + code[at + encoding.OPERAND_PER_OUT_ROWS] * out_rows
                   + code[at + encoding.OPERAND_PER_OUT_ROW] * (out_first + first))

    return {"space": int(code[at + encoding.OPERAND_SPACE]), "starts": [start(frame) for frame in FRAMES],
            "rows": [int(code[at + encoding.OPERAND_ROWS] + code[at + encoding.OPERAND_ROWS_PER_N] * frame[0])
                     for frame in FRAMES],
            "columns": int(code[at + encoding.OPERAND_COLUMNS])}


def decode(code: np.ndarray) -> List[Dict[str, Any]]:
    """A program's instructions as the kernels read them."""
    instructions, at = [], 0
    while at < len(code):
        opcode = int(code[at + encoding.INSTRUCTION_OPCODE])
        count = encoding.OPERAND_COUNT[opcode]
        extras = {name: int(code[at + place]) for name, place in KERNEL_EXTRAS.get(opcode, {}).items()}
        instructions.append({
            "opcode": opcode, "sub": int(code[at + encoding.INSTRUCTION_SUB]),
            "dtype": encoding.DTYPES[code[at + encoding.INSTRUCTION_DTYPE]],
            "operands": [decode_operand(code, at + place) for place in KERNEL_OPERANDS[:count]],
            "extras": {name: encoding.bits_float(bits) if name in FLOAT_EXTRAS else bits
                       for name, bits in extras.items()}})
        length = int(code[at + encoding.INSTRUCTION_LENGTH])
        assert length == encoding.HEADER + count * encoding.OPERAND + len(extras), (opcode, length)
        at += length
    return instructions


# -- what the lowering meant: from its values, not from the encoding -------------------------------------------------
def meant_operand(view: program.View) -> Dict[str, Any]:
    """Where `view` is for each frame, by its storage: a weight at its offset; a scratch slot at its offset times the
    chunk's rows, then its row bytes per row from `first`; a graph input at its row bytes per row from `first`."""
    storage = view.value.storage()
    row_bytes = storage.row_size * storage.itemsize
    if storage.kind == "weight":
        space, starts = encoding.WEIGHTS, [storage.offset for _ in FRAMES]
    elif storage.kind == "slot":
        space, starts = encoding.SCRATCH, [storage.offset * rows + row_bytes * first
                                           for n, first, rows, _, _ in FRAMES]
    else:
        space, starts = encoding.INPUT0 + storage.index, [row_bytes * first for n, first, rows, _, _ in FRAMES]
    return {"space": space, "starts": starts, "rows": [view.rows + view.rows_per_n * frame[0] for frame in FRAMES],
            "columns": view.columns}


def meant_copy_out(lowered: program.Lowered, name: str, offset: int, size: int) -> Dict[str, Any]:
    """The copy of output `name` (`size` elements per row) into the output buffer, whose rows of it start at byte
    `offset * out_rows`: each row at its place among the request's rows."""
    value = lowered.outputs[name]
    row_bytes = size * value.itemsize
    source = meant_operand(program.View(value, value.row_size))
    source["columns"] = row_bytes
    target = {"space": encoding.OUTPUTS,
              "starts": [offset * out_rows + row_bytes * (out_first + first)
                         for n, first, rows, out_first, out_rows in FRAMES],
              "rows": [frame[0] for frame in FRAMES], "columns": row_bytes}
    return {"opcode": encoding.COPY, "sub": 0, "dtype": "uint8", "operands": [source, target], "extras": {}}


def meant(instruction: program.Instruction) -> Dict[str, Any]:
    extras = {name: encoding.bits_float(bits) if name in FLOAT_EXTRAS else bits
              for name, bits in instruction.extras.items()}
    return {"opcode": instruction.opcode, "sub": instruction.sub, "dtype": instruction.dtype,
            "operands": [meant_operand(view) for view in instruction.operands], "extras": extras}


MODELS = list(lowered_models())


def test_every_instruction_decodes_to_what_the_lowering_meant():
    """Each model's whole program (every step, then the outputs' copies), and each step alone with the bias that
    follows its BLAS product: decoded by the kernels' names, they are the lowering's instructions. Between them the
    models make the lowering emit every opcode."""
    emitted = set()
    for name, model in MODELS:
        lowered = program.Lowered(model)
        supported = [step for step in lowered.steps if step.index not in lowered.unsupported]
        outputs = [entry["name"] for entry in model.document["outputs"]]
        outputs = [output for output in outputs if lowered.producers.get(output) not in lowered.unsupported]
        _, layout = lowered.output_layout(outputs)
        code = lowered.program([step.index for step in supported], copy_out=layout)
        expected = [meant(instruction) for step in supported for instruction in step.instructions]
        expected += [meant_copy_out(lowered, output, offset, size) for output, _, offset, size in layout]
        assert decode(code) == expected, name
        for step in supported:
            if step.gemm is not None:
                bias_only = [meant(instruction) for instruction in step.after_gemm]
                assert decode(lowered.program([], after_gemm=[step.index])) == bias_only, name
                emitted.update(instruction["opcode"] for instruction in bias_only)
        emitted.update(instruction["opcode"] for instruction in expected)
    assert emitted == set(encoding.OPERAND_COUNT), sorted(set(encoding.OPERAND_COUNT) - emitted)


def test_the_extras_carry_the_attributes():
    """alpha and epsilon come back as the attributes' floats, a convolution's geometry as the op computes it."""
    checked = set()
    for name, model in MODELS:
        for step in program.Lowered(model).steps:
            node = step.node
            attrs = resolve_attrs(get_op(node["op"]), node.get("attrs", {}), node["op"])
            for instruction in decode(np.asarray([v for i in step.instructions for v in i.encode()], np.int64)):
                extras = instruction["extras"]
                if node["op"] == "leaky_relu":
                    assert extras["alpha"] == float(attrs["alpha"])
                elif node["op"] == "layer_norm":
                    assert extras["epsilon"] == float(attrs["epsilon"])
                elif node["op"] == "conv2d":
                    spec = model.specs[node["outputs"][0]]
                    assert (extras["out_h"], extras["out_w"]) == tuple(spec.shape[1:3])
                    assert (extras["stride_h"], extras["stride_w"]) == tuple(attrs["strides"])
                elif node["op"] == "transpose":
                    assert instruction["sub"] == np.dtype(instruction["dtype"]).itemsize
                    y = model.specs[node["outputs"][0]].shape
                    x = [y[attrs["perm"].index(axis)] for axis in range(len(y))]  # x.shape[perm[i]] = y.shape[i]
                    assert_blocks_transpose(extras, tuple(x[1:]), attrs["perm"])
                else:
                    continue
                checked.add(node["op"])
    assert checked == {"leaky_relu", "layer_norm", "conv2d", "transpose"}, checked


def assert_blocks_transpose(extras: Dict[str, int], row_shape: Tuple[int, ...], perm: List[int]) -> None:
    """Reading a row as the extras say (blocks of sizes and steps, `kernels.transpose`) is np.transpose of it."""
    sizes = [extras["size{}".format(block)] for block in range(encoding.TRANSPOSE_BLOCKS)]
    steps = [extras["step{}".format(block)] for block in range(encoding.TRANSPOSE_BLOCKS)]
    row = np.arange(int(np.prod(row_shape, dtype=np.int64)))
    read = sum(np.arange(size).reshape([-1 if i == block else 1 for i in range(len(sizes))]) * step
               for block, (size, step) in enumerate(zip(sizes, steps)))
    expected = np.transpose(row.reshape(row_shape), [axis - 1 for axis in perm[1:]]).reshape(-1)
    assert row[np.asarray(read).reshape(-1)].tolist() == expected.tolist(), (extras, row_shape, perm)


@pytest.mark.parametrize("shape, perm", [
    ((None, 3, 4, 5), [0, 2, 3, 1]), ((None, 4, 5, 3), [0, 3, 1, 2]), ((None, 3, 1, 4, 2), [0, 3, 1, 4, 2]),
    ((None, 2, 3, 4, 5), [0, 4, 3, 2, 1]), ((None, 2, 1, 3), [0, 2, 1, 3]), ((None, 6, 1, 1), [0, 3, 2, 1])])
def test_transpose_blocks_read_what_np_transpose_gives(shape, perm):
    """`program.transpose_blocks` merges axes that move together and drops those of size 1; the blocks it leaves
    (padded as the lowering pads them) read a row in np.transpose's order."""
    sizes, steps = program.transpose_blocks(shape, perm)
    padding = encoding.TRANSPOSE_BLOCKS - len(sizes)
    extras = dict(zip(encoding.TRANSPOSE_GEOMETRY, [1] * padding + sizes + [0] * padding + steps))
    assert_blocks_transpose(extras, shape[1:], perm)


def test_a_transpose_of_more_blocks_than_the_kernel_takes_has_no_kernel():
    """Five axes that all move apart are five blocks: the lowering says so (the NumPy executor then runs it)."""
    shape, perm = (None, 2, 3, 4, 5, 6), [0, 5, 3, 1, 4, 2]
    assert len(program.transpose_blocks(shape, perm)[0]) == encoding.TRANSPOSE_BLOCKS + 1
    x = program.Value("float32", shape, "input")
    y = program.Value("float32", [shape[axis] for axis in perm], "slot")
    with pytest.raises(program.NoKernel, match="transpose of 5 blocks"):
        program.lower_transpose([x], [y], {"perm": perm})


def test_the_kernels_place_operands_as_the_decoder_does():
    """The compiled interpreter's own `start_of` (run as Python) gives every operand the decoder's offsets."""
    pytest.importorskip("numba")
    from sbif.runtime.numba import kernels

    for name, model in MODELS[:len(EXAMPLES)]:
        lowered = program.Lowered(model)
        code = lowered.program([step.index for step in lowered.steps if step.index not in lowered.unsupported])
        at = 0
        for instruction in decode(code):
            for place, operand in zip(KERNEL_OPERANDS, instruction["operands"]):
                assert [kernels.start_of.py_func(code, at + place, frame) for frame in FRAMES] == operand["starts"]
            at += int(code[at + encoding.INSTRUCTION_LENGTH])


def test_the_encoder_refuses_a_record_that_is_not_the_format():
    """An instruction with the wrong number of operands, or an extra the format does not name, is an error where it
    is written, not a program the kernels misread."""
    weight = program.Value("float32", (4,), "weight")
    with pytest.raises(ValueError, match="takes 2 operands, not 1"):
        program.Instruction(encoding.UNARY, "float32", [program.flat(weight)], extras={"alpha": 0}).encode()
    with pytest.raises(KeyError, match="not fields of this record: slope"):
        program.Instruction(encoding.UNARY, "float32", [program.flat(weight)] * 2, extras={"slope": 0}).encode()
    with pytest.raises(KeyError):
        program.Instruction(encoding.UNARY, "float32", [program.flat(weight)] * 2).encode()  # alpha missing
