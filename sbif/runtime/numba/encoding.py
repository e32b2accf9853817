"""The program format of the numba backend: what `program` writes and the compiled interpreter
(`kernels.run`) reads. Plain constants, importable without numba, so that a process running the compiled
kernels from their extension module (`aot`) never imports numba.

The interpreter freezes these values into its machine code. The extension module's key covers this file; numba's own
disk cache (the JIT fallback) only notices changes to `kernels.py`, which therefore names this file's digest
(`kernels.PROGRAM_FORMAT_DIGEST`, checked by a test): a change here fails that test until the digest there
is updated, which invalidates numba's cache.
"""
DTYPES = ("float32", "float64", "int32", "int64", "uint8", "int8", "int16", "uint16", "bool")
DTYPE_CODE = {name: code for code, name in enumerate(DTYPES)}
FLOAT32, FLOAT64, INT32, INT64, UINT8, INT8, INT16, UINT16, BOOL = range(len(DTYPES))
#: buffer spaces of operands: weights, scratch, the call's outputs, then the graph inputs
WEIGHTS, SCRATCH, OUTPUTS, INPUT0 = 0, 1, 2, 3
#: the interpreter takes this many graph inputs (obs, noise, state, mask)
MAX_INPUTS = 4
#: int64 offsets at the start of `execute_one`'s arena: scratch, outputs, inputs
ARENA_HEADER = 2 + MAX_INPUTS
#: ints per operand, and per instruction header
OPERAND, HEADER = 9, 4
UNARY, BINARY, CLIP, CAST, COPY, COPY_COLUMNS, TAKE_COLUMNS, LINEAR, MATMUL, ADD_BIAS, CONV2D, LAYER_NORM, \
    REDUCE_MEAN, SOFTMAX, ARGMAX, ONE_HOT, INVERSE_CDF_SAMPLE = range(1, 18)
#: the `sub` codes of UNARY and BINARY
UNARY_OPS = ("neg", "exp", "log", "round_half_even", "tanh", "sigmoid", "relu", "relu6", "elu", "selu", "softplus",
             "softsign", "swish", "leaky_relu")
BINARY_OPS = ("add", "sub", "mul", "div", "less")
NEG, EXP, LOG, ROUND, TANH, SIGMOID, RELU, RELU6, ELU, SELU, SOFTPLUS, SOFTSIGN, SWISH, LEAKY_RELU = range(14)
ADD, SUB, MUL, DIV, LESS = range(5)
#: what the interpreter runs: opcode -> the dtypes of its kernels (`program` refuses anything else by name)
FLOATS = ("float32", "float64")
KERNEL_DTYPES = {
    UNARY: ("float32",), BINARY: FLOATS, CLIP: FLOATS, LINEAR: ("float32",), MATMUL: ("float32",),
    ADD_BIAS: ("float32",), CONV2D: ("float32",), LAYER_NORM: ("float32",), REDUCE_MEAN: ("float32",),
    SOFTMAX: ("float32",), ARGMAX: ("float32",), ONE_HOT: ("int32", "int64"), INVERSE_CDF_SAMPLE: ("float32",),
}
#: cast: target dtype -> source dtypes
CASTS = {"float32": ("float32", "float64", "int32", "uint8", "bool"), "float64": ("float32",)}

#: a dense product's weights [K, N] are stored as ceil(N / PANEL) panels [K, PANEL], the last one zero-padded
#: (`program.panels`): a tile of outputs then reads its weights as contiguous streams
PANEL = 16
