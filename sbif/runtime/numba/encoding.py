"""The program format of the numba backend: what `program` writes and the compiled interpreter
(`kernels.run`) reads. Plain constants, importable without numba, so that a process running the compiled
kernels from their extension module (`aot`) never imports numba.

Every field of an instruction and of an operand has a named offset here, derived from the one tuple that lists the
fields in order: the encoder (`program`) writes by these names and the kernels read by them, so the two cannot
disagree about a position (tests/test_numba_encoding.py decodes every instruction the lowering emits by them).
numba freezes module-level ints into the machine code as constants, so a named offset costs what a literal does.

The interpreter's machine code depends on these values: the extension module's name (`aot.module_name`) and the key
of numba's JIT disk cache (`jit_cache`) are digests that cover this file.
"""
from __future__ import annotations

import struct
from typing import Dict, List, Mapping, Sequence, Tuple

from .host import PARAMETERS

DTYPES = ("float32", "float64", "int32", "int64", "uint8", "int8", "int16", "uint16", "bool")
DTYPE_CODE = {name: code for code, name in enumerate(DTYPES)}
FLOAT32, FLOAT64, INT32, INT64, UINT8, INT8, INT16, UINT16, BOOL = range(len(DTYPES))
#: buffer spaces of operands: weights, scratch, the call's outputs, then the graph inputs
WEIGHTS, SCRATCH, OUTPUTS, INPUT0 = 0, 1, 2, 3
#: the interpreter takes this many graph inputs (obs, noise, state, mask)
MAX_INPUTS = 4
#: int64 offsets at the start of `execute_one`'s arena: scratch, outputs, inputs
ARENA_HEADER = 2 + MAX_INPUTS
#: bytes of one offset of the arena's header (a uint64, as addresses are)
ARENA_OFFSET_BYTES = 8

#: an instruction: this header, then its operands (OPERAND ints each), then its extras (EXTRAS)
INSTRUCTION_FIELDS = ("length", "opcode", "sub", "dtype")
INSTRUCTION_LENGTH, INSTRUCTION_OPCODE, INSTRUCTION_SUB, INSTRUCTION_DTYPE = range(len(INSTRUCTION_FIELDS))
HEADER = len(INSTRUCTION_FIELDS)
#: an operand: a 2-D view of (rows + rows_per_n * n, columns) elements of buffer `space`, at the byte offset
#: base + per_rows * rows + per_first * first + per_out_rows * out_rows + per_out_row * (out_first + first)
#: for a call's frame (`kernels.start_of`): one program serves every batch size and every part of a request
OPERAND_FIELDS = ("space", "base", "per_rows", "per_first", "per_out_rows", "per_out_row", "rows", "rows_per_n",
                  "columns")
(OPERAND_SPACE, OPERAND_BASE, OPERAND_PER_ROWS, OPERAND_PER_FIRST, OPERAND_PER_OUT_ROWS, OPERAND_PER_OUT_ROW,
 OPERAND_ROWS, OPERAND_ROWS_PER_N, OPERAND_COLUMNS) = range(len(OPERAND_FIELDS))
OPERAND = len(OPERAND_FIELDS)

UNARY, BINARY, CLIP, CAST, COPY, COPY_COLUMNS, TAKE_COLUMNS, LINEAR, MATMUL, ADD_BIAS, CONV2D, LAYER_NORM, \
    REDUCE_MEAN, SOFTMAX, ARGMAX, ONE_HOT, INVERSE_CDF_SAMPLE, TRANSPOSE, WHERE = range(1, 20)
#: the `sub` codes of UNARY and BINARY
UNARY_OPS = ("neg", "exp", "log", "round_half_even", "tanh", "sigmoid", "relu", "relu6", "elu", "selu", "softplus",
             "softsign", "swish", "leaky_relu", "erf")
BINARY_OPS = ("add", "sub", "mul", "div", "less")
NEG, EXP, LOG, ROUND, TANH, SIGMOID, RELU, RELU6, ELU, SELU, SOFTPLUS, SOFTSIGN, SWISH, LEAKY_RELU, ERF = range(15)
ADD, SUB, MUL, DIV, LESS = range(5)
#: the `sub` codes of LINEAR and MATMUL: how the weights [K, N] are stored (`program.Lowered.dense_weights`):
#: as they are, transposed ([N, K]), or in panels (PANEL)
LAYOUTS = ("plain", "transposed", "panels")
PLAIN, TRANSPOSED, PANELS = range(len(LAYOUTS))
#: what the interpreter runs: opcode -> the dtypes of its kernels (`program` refuses anything else by name)
FLOATS = ("float32", "float64")
KERNEL_DTYPES = {
    UNARY: ("float32",), BINARY: FLOATS, CLIP: FLOATS, LINEAR: ("float32",), MATMUL: ("float32",),
    ADD_BIAS: ("float32",), CONV2D: ("float32",), LAYER_NORM: ("float32",), REDUCE_MEAN: ("float32",),
    SOFTMAX: ("float32",), ARGMAX: ("float32",), ONE_HOT: ("int32", "int64"), INVERSE_CDF_SAMPLE: ("float32",),
}
#: cast: target dtype -> source dtypes
CASTS = {"float32": ("float32", "float64", "int32", "uint8", "bool"), "float64": ("float32",)}

#: how many operands an instruction of each opcode has, in order: inputs, then outputs (COPY, COPY_COLUMNS,
#: TAKE_COLUMNS and TRANSPOSE: byte views; LINEAR: x, w, b, y; MATMUL: x, w, y; ADD_BIAS: y, b; CONV2D: x, w, b, y;
#: LAYER_NORM: x, gamma, beta, y; INVERSE_CDF_SAMPLE: p, u, y; WHERE: condition, x, y, z, whose `sub` is the
#: element's bytes: x, y and z are moved as words of that size, of any dtype)
OPERAND_COUNT = {UNARY: 2, BINARY: 3, CLIP: 4, CAST: 2, COPY: 2, COPY_COLUMNS: 2, TAKE_COLUMNS: 2, LINEAR: 4,
                 MATMUL: 3, ADD_BIAS: 2, CONV2D: 4, LAYER_NORM: 4, REDUCE_MEAN: 2, SOFTMAX: 2, ARGMAX: 2, ONE_HOT: 2,
                 INVERSE_CDF_SAMPLE: 3, TRANSPOSE: 2, WHERE: 4}
#: a convolution's geometry, the extras of CONV2D: input height, width and channels, kernel size, output size,
#: strides, and the padding before the first row and column
CONV_GEOMETRY = ("height", "width", "channels", "kernel_h", "kernel_w", "out_h", "out_w", "stride_h", "stride_w",
                 "pad_top", "pad_left")
#: a transpose's geometry, the extras of TRANSPOSE: each row of y is an array [size0, size1, size2, size3] in
#: row-major order whose element (a, b, c, d) is element a * step0 + b * step1 + c * step2 + d * step3 of x's row.
#: The lowering (`program.transpose_blocks`) merges the axes that move together, so a batched transpose of up to
#: TRANSPOSE_BLOCKS such blocks (NCHW <-> NHWC are two) is one instruction; its `sub` is the element's bytes (1, 2, 4
#: or 8: the word the kernel moves)
TRANSPOSE_BLOCKS = 4
TRANSPOSE_GEOMETRY = (tuple("size{}".format(block) for block in range(TRANSPOSE_BLOCKS))
                      + tuple("step{}".format(block) for block in range(TRANSPOSE_BLOCKS)))
#: the ints after an instruction's operands, by name (opcodes not listed have none). Floats are stored as the
#: int64 holding their float64 bits: alpha, leaky_relu's slope (0 for the other unary ops); epsilon, layer_norm's;
#: offset, the first byte column a COPY_COLUMNS writes or a TAKE_COLUMNS reads
EXTRAS: Dict[int, Tuple[str, ...]] = {UNARY: ("alpha",), COPY_COLUMNS: ("offset",), TAKE_COLUMNS: ("offset",),
                                      CONV2D: CONV_GEOMETRY, LAYER_NORM: ("epsilon",), TRANSPOSE: TRANSPOSE_GEOMETRY}


def extra_at(opcode: int, name: str) -> int:
    """Where extra `name` of an `opcode` instruction is, counted from the instruction's start."""
    return HEADER + OPERAND_COUNT[opcode] * OPERAND + EXTRAS[opcode].index(name)


def operand_at(index: int) -> int:
    """Where operand `index` of an instruction starts, counted from the instruction's start."""
    return HEADER + index * OPERAND


#: the extras the kernels read, at their offsets from the instruction's start
UNARY_ALPHA = extra_at(UNARY, "alpha")
LAYER_NORM_EPSILON = extra_at(LAYER_NORM, "epsilon")
COPY_COLUMNS_OFFSET = extra_at(COPY_COLUMNS, "offset")
TAKE_COLUMNS_OFFSET = extra_at(TAKE_COLUMNS, "offset")
(CONV_HEIGHT, CONV_WIDTH, CONV_CHANNELS, CONV_KERNEL_H, CONV_KERNEL_W, CONV_OUT_H, CONV_OUT_W, CONV_STRIDE_H,
 CONV_STRIDE_W, CONV_PAD_TOP, CONV_PAD_LEFT) = (extra_at(CONV2D, name) for name in CONV_GEOMETRY)
(TRANSPOSE_SIZE0, TRANSPOSE_SIZE1, TRANSPOSE_SIZE2, TRANSPOSE_SIZE3, TRANSPOSE_STEP0, TRANSPOSE_STEP1, TRANSPOSE_STEP2,
 TRANSPOSE_STEP3) = (extra_at(TRANSPOSE, name) for name in TRANSPOSE_GEOMETRY)
#: where each operand starts, from the instruction's start
FIRST_OPERAND, SECOND_OPERAND, THIRD_OPERAND, FOURTH_OPERAND = (operand_at(index) for index in range(4))


def fields(names: Sequence[str], values: Mapping[str, int]) -> List[int]:
    """`values` in the order of `names` (INSTRUCTION_FIELDS, OPERAND_FIELDS, an EXTRAS entry): the encoder's one way
    to lay out a record. Raises KeyError naming a field that is missing or unknown."""
    unknown = set(values) - set(names)
    if unknown:
        raise KeyError("not fields of this record: {}".format(", ".join(sorted(unknown))))
    return [int(values[name]) for name in names]


def float_bits(value: float) -> int:
    """The int64 holding `value`'s float64 bits (native byte order), as an extra stores a float: the kernel reads
    the int64 back as a float64 (`bits_float`)."""
    return struct.unpack("=q", struct.pack("=d", value))[0]


def bits_float(bits: int) -> float:
    """The float64 whose bits an extra holds (`float_bits`)."""
    return struct.unpack("=d", struct.pack("=q", bits))[0]


#: a dense product's weights [K, N] are stored as ceil(N / PANEL) panels [K, PANEL], the last one zero-padded
#: (`program.panels`): a tile of outputs then reads its weights as contiguous streams. Two of the host's vectors
#: wide (`host`), so the layout depends on the machine as the kernels do
PANEL = PARAMETERS.panel

# -- the lanes' shared memory: what `lanes` writes and `kernels.run_lane` and `kernels.serve` read ----------------
#: int64 flags per cache line: the chunk counter and each lane's flags have a line of their own, so that a write to
#: one does not take from the others the line they are spinning on
FLAG_STRIDE = 8
#: line 0 holds the chunk counter of the request being run; line k holds lane k's flags (k >= 1)
CHUNK_COUNTER = 0
#: a lane's flags: the request it is asked to run, the last one it finished, why `serve` returned, and whether one
#: of its chunks raised (a bug)
LANE_FLAGS = ("request", "done", "state", "failed")
LANE_REQUEST, LANE_DONE, LANE_STATE, LANE_FAILED = range(len(LANE_FLAGS))
#: why `serve` returned: it spun its time without a request (SERVE_IDLE), or the request is Python's (SERVE_TASKS:
#: the staged requests, with BLAS products between the interpreter's calls)
SERVE_IDLE, SERVE_TASKS = 1, 2
#: a request's kind: the interpreter on every chunk (REQUEST_INTERPRETER), or a Python task per lane
REQUEST_INTERPRETER, REQUEST_TASKS = 1, 2
#: the mailbox of a request: its kind, how long (in spins) a lane waits for the next request after it before it
#: blocks, then for the interpreter the program and where its buffers are (addresses
#: and sizes in bytes; each lane has `scratch_per_lane` bytes of scratch, lane k's from scratch + k times that),
#: the rows, rows per chunk and chunks, and each input's address and bytes per row
MAILBOX_FIELDS = (("kind", "spins", "program", "program_size", "weights", "scratch", "scratch_per_lane", "outputs",
                   "rows", "chunk", "chunks")
                  + tuple("input{}".format(index) for index in range(MAX_INPUTS))
                  + tuple("input{}_row_bytes".format(index) for index in range(MAX_INPUTS)))
(MAILBOX_KIND, MAILBOX_SPINS, MAILBOX_PROGRAM, MAILBOX_PROGRAM_SIZE, MAILBOX_WEIGHTS, MAILBOX_SCRATCH,
 MAILBOX_SCRATCH_PER_LANE, MAILBOX_OUTPUTS, MAILBOX_ROWS, MAILBOX_CHUNK,
 MAILBOX_CHUNKS) = range(MAILBOX_FIELDS.index("input0"))
MAILBOX_INPUT0, MAILBOX_INPUT0_ROW_BYTES = MAILBOX_FIELDS.index("input0"), MAILBOX_FIELDS.index("input0_row_bytes")
