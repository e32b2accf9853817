"""Generate the SBIF op conformance vectors from TensorFlow 1.15 itself.

Run in the SB2 environment (Python 3.7, TensorFlow 1.15.5):

    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 TF_CPP_MIN_LOG_LEVEL=3 \\
        .venv-sb2/bin/python spec/vectors/generate.py [--check]

For every op of `sbif.ops.REGISTRY` this builds the TF computation exactly as SB2 builds it (see `TF_BUILDERS`),
feeds the case inputs through placeholders (batch dimension unknown, as in SB2's graphs), runs it in a
`tf.compat.v1.Session` on the CPU and writes `spec/vectors/<op>.json`. The one exception is `clip`: SB2 clips
actions in NumPy (`np.clip` in `predict`), so its oracle is NumPy 1.18.5's `np.clip`.

Eigen evaluates element-wise kernels on 8-float AVX packets and finishes a tensor whose size is not a multiple
of 8 with scalar code; TF 1.15 uses different algorithms on the two paths for some functions (sigmoid, exp near
overflow). Every element-wise op therefore gets an `edge_vector_path` case (size a multiple of 8: only packet
code) and `edge_scalar_path_*` cases (fewer than 8 elements: only scalar code) over the same edge values, and
the generator compares the two: where they disagree on a NaN input the cases are tagged `unspecified_nan`; a
disagreement on other inputs is printed (it must be covered by the op's tolerance, see `spec/ops.md`).

`--check` also runs the `sbif.ops` NumPy reference on every case (with the comparison of
`tests/test_op_vectors.py`) and prints the largest ULP distance per op.
"""
from __future__ import absolute_import, division, print_function

import json
import math
import os
import sys
import zlib

import numpy as np
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from sbif.ops import REGISTRY  # noqa: E402  (after the path set-up)

tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
np.seterr(all="ignore")

F32 = np.float32
FLT_MAX = float(np.finfo(F32).max)
FLT_MIN = float(np.finfo(F32).tiny)  # smallest normal float32
NAN, INF = float("nan"), float("inf")
U21 = 2.0 ** -21  # the absolute tolerance of the transcendental activations (4 units of 2^-23)
EXACT = {"exact": True}
PACKET = 8  # AVX floats per packet in the TF 1.15.5 pip build
SOFTPLUS_T = float(np.log(np.finfo(F32).eps) + F32(2))  # -13.942385, TF's float32 softplus threshold
EXP_BAND = (88.37626647949219, 88.72283935546875)  # [first float32 the packet path sends to inf, expf overflow)


def f32(values):
    return np.asarray(values, dtype=F32)


def next_up(x):
    return float(np.nextafter(F32(x), F32(INF)))


def next_down(x):
    return float(np.nextafter(F32(x), F32(-INF)))


# --- TF as SB2 calls it -----------------------------------------------------------------------------------------

TF_EXPRESSIONS = {
    "add": "x + y (tf.add)", "sub": "x - y (tf.subtract)", "mul": "x * y (tf.multiply)",
    "div": "x / y (tf.truediv -> RealDiv)", "less": "tf.less(x, y)", "neg": "-x (tf.negative)",
    "exp": "tf.exp(x)", "log": "tf.log(x)", "round_half_even": "tf.round(x)", "tanh": "tf.tanh(x)",
    "sigmoid": "tf.sigmoid(x)", "relu": "tf.nn.relu(x)", "relu6": "tf.nn.relu6(x)", "elu": "tf.nn.elu(x)",
    "selu": "tf.nn.selu(x)", "softplus": "tf.nn.softplus(x)", "softsign": "tf.nn.softsign(x)",
    "swish": "tf.nn.swish(x)", "leaky_relu": "tf.nn.leaky_relu(x, alpha)",
    "linear": "tf.matmul(x, w) + b (SB2's linear)", "one_hot": "tf.one_hot(x, depth)",
    "softmax": "tf.nn.softmax(x)", "argmax": "tf.argmax(x, axis=-1)", "cast": "tf.cast(x, to)",
    "flatten": "tf.layers.flatten(x)", "concat": "tf.concat(xs, axis)",
    "split": "tf.split(x, sizes, axis)", "stack": "tf.stack(xs, axis)", "squeeze": "tf.squeeze(x, axis)",
    "constant": "tf.constant(value, dtype)", "clip": "np.clip(x, low, high) (NumPy: SB2 clips actions in NumPy)",
    "matmul": "tf.matmul(x, w) (SB2's LSTM)",
    "conv2d": "tf.reshape(b, [1, 1, 1, -1]) + tf.nn.conv2d(x, w, strides=[1, sh, sw, 1], padding) (SB2's conv)",
    "layer_norm": "SB2's _ln: mean, variance = tf.nn.moments(x, axes=[-1], keep_dims=True); "
                  "(x - mean) / tf.sqrt(variance + epsilon) * gamma + beta",
    "reduce_mean": "tf.expand_dims(tf.reduce_mean(x, axis=-1), axis=-1) (SB2's dueling head)",
    "reshape": "tf.reshape(x, shape)", "expand_dims": "tf.expand_dims(x, axis)",
}


def tf_layer_norm(x, gamma, beta, epsilon):
    """SB2's `_ln` (common/tf_layers.py), over the last axis."""
    mean, variance = tf.nn.moments(x, axes=[x.shape.ndims - 1], keep_dims=True)
    return (x - mean) / tf.sqrt(variance + epsilon) * gamma + beta


TF_BUILDERS = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: x / y,
    "less": lambda x, y: tf.less(x, y),
    "neg": lambda x: -x,
    "exp": lambda x: tf.exp(x),
    "log": lambda x: tf.math.log(x),
    "round_half_even": lambda x: tf.round(x),
    "tanh": lambda x: tf.tanh(x),
    "sigmoid": lambda x: tf.sigmoid(x),
    "relu": lambda x: tf.nn.relu(x),
    "relu6": lambda x: tf.nn.relu6(x),
    "elu": lambda x: tf.nn.elu(x),
    "selu": lambda x: tf.nn.selu(x),
    "softplus": lambda x: tf.nn.softplus(x),
    "softsign": lambda x: tf.nn.softsign(x),
    "swish": lambda x: tf.nn.swish(x),
    "leaky_relu": lambda x, alpha: tf.nn.leaky_relu(x, alpha),
    "linear": lambda x, w, b: tf.matmul(x, w) + b,
    "one_hot": lambda x, depth: tf.one_hot(x, depth),
    "softmax": lambda x: tf.nn.softmax(x),
    "argmax": lambda x: tf.argmax(x, axis=-1),
    "cast": lambda x, to: tf.cast(x, tf.as_dtype(to)),
    "flatten": lambda x: tf.layers.flatten(x),
    "concat": lambda *xs, **attrs: tf.concat(list(xs), axis=attrs["axis"]),
    "split": lambda x, sizes, axis: tf.split(x, sizes, axis=axis),
    "stack": lambda *xs, **attrs: tf.stack(list(xs), axis=attrs["axis"]),
    "squeeze": lambda x, axis: tf.squeeze(x, axis=[axis]),
    "constant": lambda value, dtype: tf.constant(value, dtype=tf.as_dtype(dtype)),
    "matmul": lambda x, w: tf.matmul(x, w),
    "conv2d": lambda x, w, b, strides, padding: tf.reshape(b, [1, 1, 1, -1]) + tf.nn.conv2d(
        x, w, strides=[1, strides[0], strides[1], 1], padding=padding),
    "layer_norm": tf_layer_norm,
    "reduce_mean": lambda x: tf.expand_dims(tf.reduce_mean(x, axis=-1), axis=-1),
    "reshape": lambda x, shape: tf.reshape(x, shape),
    "expand_dims": lambda x, axis: tf.expand_dims(x, axis),
}


def run_tf(op, inputs, attrs):
    """Evaluate one case in a fresh graph; the first input's batch dimension is left unknown, as in SB2."""
    with tf.Graph().as_default():
        placeholders = []
        for i, array in enumerate(inputs):
            shape = list(array.shape)
            if i == 0 and shape:
                shape[0] = None
            placeholders.append(tf.compat.v1.placeholder(tf.as_dtype(array.dtype), shape, name="in{}".format(i)))
        result = TF_BUILDERS[op](*placeholders, **attrs)
        with tf.compat.v1.Session() as session:
            values = session.run(result, dict(zip(placeholders, inputs)))
    return list(values) if isinstance(values, (list, tuple)) else [values]


def run_oracle(op, inputs, attrs):
    if op == "clip":
        return [np.clip(*inputs)]
    return run_tf(op, inputs, attrs)


# --- JSON encoding ----------------------------------------------------------------------------------------------

def encode_scalar(value, kind):
    if kind == "f":
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value  # repr of the float64 holding the float32 value: exact
    if kind == "b":
        return bool(value)
    return int(value)


def encode_tensor(array):
    array = np.asarray(array)
    kind = array.dtype.kind
    return {"dtype": array.dtype.name, "shape": list(array.shape),
            "data": [encode_scalar(v, kind) for v in array.ravel().tolist()]}


def check_inputs(op, name, inputs):
    """No subnormal inputs (TF runs with denormals-are-zero) and no exp input in the incoherent band."""
    for array in inputs:
        if array.dtype.kind == "f":
            finite = array[np.isfinite(array)]
            tiny = np.finfo(array.dtype).tiny
            assert not np.any((finite != 0) & (np.abs(finite) < tiny)), (op, name, "subnormal input")
    if op == "exp":
        x = inputs[0]
        assert not np.any((x >= EXP_BAND[0]) & (x < EXP_BAND[1])), (op, name, "input in the exp band")


# --- cases ------------------------------------------------------------------------------------------------------

def rng_for(op):
    return np.random.RandomState(zlib.crc32(op.encode("ascii")) & 0x7FFFFFFF)


def case(name, inputs, tolerance, attrs=None, note=None):
    result = {"name": name, "attrs": attrs or {}, "inputs": [np.asarray(a) for a in inputs], "tolerance": tolerance}
    if note:
        result["note"] = note
    return result


BASE_EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -3.0, 1e-30, -1e-30, 1e30, -1e30, 3.4e38, -3.4e38,
              FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN, INF, -INF, NAN]

EDGES = {
    "neg": [],
    "exp": [10.0, -10.0, 20.0, 80.0, 88.0, 88.37, EXP_BAND[1], 89.0, 100.0, -87.3, -87.4, -100.0, -104.0],
    "log": [0.25, 2.718281828, 10.0, 1.0000001, 0.99999994, 1e-20, 1e20],
    "round_half_even": [0.4, -0.4, 0.6, -0.6, 1.5, -1.5, 2.5, -2.5, 3.5, 4.5, 5.5, -4.5, 0.49999997, -0.49999997,
                        1.4999999, 8388607.5, -8388607.5, 8388609.0, 16777216.0, 1e-7],
    "tanh": [1e-4, -1e-4, 4e-4, 5.0, -5.0, 8.0, 8.07637, -8.07637, 8.9, 9.0, -9.0, 9.1, 20.0, -20.0],
    "sigmoid": [5.0, -5.0, 10.0, -10.0, 16.0, -16.0, -16.2, 16.5, -16.5, 17.9, -17.9, 18.0, -18.0, 18.1, -18.1,
                20.0, -20.0, 30.0, -30.0, 88.0, -88.0, 100.0, -100.0],
    "relu": [],
    "relu6": [6.0, -6.0, next_down(6.0), next_up(6.0), 5.5, 7.0],
    "elu": [-1e-3, -1e-7, -1e-10, -0.1, -5.0, -20.0, -88.0, -104.0, 6.0, -6.0],
    "selu": [-1e-3, -1e-7, -1e-10, -0.1, -5.0, -20.0, -88.0, -104.0, 6.0, -6.0],
    "softplus": [SOFTPLUS_T, next_up(SOFTPLUS_T), next_down(SOFTPLUS_T), -SOFTPLUS_T, next_up(-SOFTPLUS_T),
                 next_down(-SOFTPLUS_T), -13.0, 13.0, -5.0, 5.0, -20.0, 20.0, -30.0, 30.0, -88.0, -104.0],
    "softsign": [100.0, -100.0, 1e7, -1e7],
    "leaky_relu": [-100.0, 100.0, -1e-20],
}

# For |x| < 2^-126 / 4.89e-3 (about 2.4e-36) TF's tanh(x) is +-0: the first product of its rational
# approximation is subnormal and flushed. Either x or 0 conforms there (abs tolerance 2^-118).
TANH_TINY = [FLT_MIN, -FLT_MIN, 1e-37, -1e-37, 2e-36, 2.5e-36, 3e-36, -3e-36, 1e-35, 1e-33]

SWISH_MODERATE = [0.5, -0.5, 1.0, -1.0, 2.0, -3.0, 5.0, -5.0, 10.0, -10.0, 16.0, -16.0, -16.2, 16.5, -16.5,
                  17.9, -17.9, 18.0, -18.0]
SWISH_EXTREME = [0.0, -0.0, 1e-30, -1e-30, 1e-4, -1e-4, 18.1, -18.1, 20.0, -20.0, 30.0, -30.0, 100.0, -100.0,
                 1e30, -1e30, 3.4e38, -3.4e38, FLT_MAX, -FLT_MAX, INF, -INF, NAN]

UNARY_TOLERANCE = {
    "neg": EXACT, "round_half_even": EXACT, "relu": EXACT, "relu6": EXACT, "softsign": EXACT,
    "leaky_relu": EXACT,
    "exp": {"ulp": 4}, "log": {"ulp": 5}, "tanh": {"ulp": 8},
    "sigmoid": {"ulp": 4, "abs": U21}, "elu": {"ulp": 4, "abs": U21}, "selu": {"ulp": 4, "abs": U21},
    "softplus": {"ulp": 4, "abs": U21},
}


def tiled_to_packets(values):
    """The values, repeated from the start until the count is a multiple of the packet size (and >= 17)."""
    values = list(values)
    count = max(2 * PACKET + PACKET, -(-len(values) // PACKET) * PACKET)
    return (values * (count // len(values) + 1))[:count]


def edge_cases(values, tolerance, attrs=None, prefix="edge"):
    """One packet-path case over all values and scalar-path cases of at most 7 values each."""
    cases = [case(prefix + "_vector_path", [f32([tiled_to_packets(values)])], tolerance, attrs,
                  "{} elements: every element goes through Eigen's 8-wide packet code".format(
                      len(tiled_to_packets(values))))]
    for start in range(0, len(values), PACKET - 1):
        chunk = values[start:start + PACKET - 1]
        cases.append(case("{}_scalar_path_{}".format(prefix, start // (PACKET - 1)), [f32([chunk])], tolerance,
                          attrs, "{} elements: every element goes through Eigen's scalar code".format(len(chunk))))
    return cases


def random_unary(rng, op, scale, positive=False):
    def draw(shape):
        values = rng.standard_normal(shape) * scale
        return f32(np.abs(values) + 1e-3 if positive else values)
    return [("random_b1_scalar_path", draw((1, 7)), "7 elements: scalar code only"),
            ("random_b3_row19", draw((3, 19)), "57 elements: 56 via packets, the last one scalar"),
            ("random_b2_row40", f32(rng.uniform(1e-3 if positive else -4 * scale, 4 * scale, (2, 40))),
             "80 elements: packets only")]


def unary_cases(op):
    rng = rng_for(op)
    scale = {"exp": 4.0, "log": 10.0, "round_half_even": 3.0, "tanh": 3.0, "sigmoid": 5.0, "softplus": 6.0,
             "swish": 4.0}.get(op, 2.0)
    cases = []
    if op == "swish":
        for name, x, note in random_unary(rng, op, scale):
            cases.append(case(name, [x], {"ulp": 4, "abs": U21 * min(18.0, float(np.max(np.abs(x))))}, note=note))
        cases += edge_cases(SWISH_MODERATE, {"ulp": 4, "abs": U21 * 18.0}, prefix="moderate")
        cases += edge_cases(SWISH_EXTREME, {"ulp": 4}, prefix="extreme")
        return cases
    attrs = {"alpha": 0.2} if op == "leaky_relu" else None
    tolerance = UNARY_TOLERANCE[op]
    for name, x, note in random_unary(rng, op, scale, positive=(op == "log")):
        if op == "round_half_even":
            x = f32(np.round(x * 2) / 2 + rng.choice([0.0, 0.1, -0.1], x.shape))  # many exact ties
        cases.append(case(name, [x], tolerance, attrs, note))
    edges = BASE_EDGES + EDGES[op]
    if op == "tanh":  # TF flushes the subnormal x * alpha_1 of tiny inputs: a case of its own (see TANH_TINY)
        edges = [v for v in edges if abs(v) != FLT_MIN]
    cases += edge_cases(edges, tolerance, attrs)
    if op == "tanh":
        cases += edge_cases(TANH_TINY, {"ulp": 8, "abs": 2.0 ** -118}, prefix="tiny")
    if op == "leaky_relu":
        values = [-3.0, -1.0, -0.0, 0.0, 1.0, 3.0, -1e30, 1e-30, -3.4e38, INF, -INF, NAN]
        for alpha in (0.01, 0.0, 1.0, 1.5, -0.5):
            cases += edge_cases(values, EXACT, {"alpha": alpha}, prefix="alpha_{}".format(alpha))
    return cases


BINARY_SPECIALS = [0.0, -0.0, 1.0, -1.0, 2.5, -3.0, 1e-10, 1e-30, -1e-30, 1e10, 1e30, -1e30, 3.4e38, -FLT_MAX,
                   INF, -INF, NAN]


def binary_cases(op):
    rng = rng_for(op)
    cases = []
    tolerance = EXACT
    positive = op == "div"

    def draw(shape, dtype=F32):
        values = rng.standard_normal(shape) * 3
        if positive:
            values = np.where(np.abs(values) < 0.1, 0.5, values)
        return np.asarray(values, dtype=dtype)

    cases.append(case("random_same_shape_b3_row19", [draw((3, 19)), draw((3, 19))], tolerance))
    cases.append(case("random_b1_bias_broadcast", [draw((1, 7)), draw((7,))], tolerance,
                      note="[B, N] with [N], as a bias or an observation bound"))
    cases.append(case("random_batch_column_broadcast", [draw((4, 5)), draw((4, 1))], tolerance))
    cases.append(case("random_outer_broadcast", [draw((3, 1)), draw((1, 19))], tolerance))
    cases.append(case("random_scalar_rhs", [draw((3, 6)), np.asarray(F32(rng.standard_normal()) + F32(0.5))],
                      tolerance, note="[B, N] with a rank-0 constant"))
    cases.append(case("random_float64", [draw((2, 9), np.float64), draw((9,), np.float64)], tolerance))
    specials = f32(BINARY_SPECIALS)
    n = len(specials)
    cases.append(case("edge_table_same_shape", [f32([np.repeat(specials, n)]), f32([np.tile(specials, n)])],
                      tolerance, note="every ordered pair of special values, {} elements".format(n * n)))
    cases.append(case("edge_table_broadcast", [specials.reshape(n, 1), specials.reshape(1, n)], tolerance,
                      note="the same pairs through TF's broadcasting kernel"))
    small = f32([[1.0, 2.0, -3.0, 0.0, INF, NAN, -0.0]])
    cases.append(case("edge_scalar_path", [small, f32([[0.0, -0.0, 2.0, -0.0, INF, 1.0, 0.0]])], tolerance))
    if op in ("add", "sub", "mul", "less"):
        ints = np.int32([[2 ** 31 - 1, -2 ** 31, 65536, -7, 7, 100000, 0, 12345, -2 ** 31, 46341]])
        other = np.int32([[1, -1, 65536, 2, -2, 100000, -2 ** 31, -54321, 1, 46341]])
        note = "int32 arithmetic wraps modulo 2^32" if op != "less" else None
        cases.append(case("int32_edges", [ints, other], EXACT, note=note))
        cases.append(case("int32_random", [np.int32(rng.randint(-1000, 1000, (3, 19))),
                                           np.int32(rng.randint(-1000, 1000, (19,)))], EXACT))
        cases.append(case("int64_random", [np.int64(rng.randint(-10 ** 9, 10 ** 9, (2, 5))),
                                           np.int64(rng.randint(-10 ** 9, 10 ** 9, (2, 5)))], EXACT))
    if op == "less":
        noise = f32(rng.uniform(0, 1, (3, 19)))
        probabilities = f32(rng.uniform(0, 1, (3, 19)))
        probabilities[0, :5] = noise[0, :5]  # equal values: not less
        cases.append(case("bernoulli_sample", [noise, probabilities], EXACT,
                          note="noise < probabilities, as SB2's Bernoulli sample"))
    return cases


def clip_cases():
    rng = rng_for("clip")
    low, high = f32(rng.uniform(-2, 0, 19)), f32(rng.uniform(0, 2, 19))
    x = f32(rng.standard_normal((3, 19)) * 2)
    cases = [
        case("random_b3_row19", [x, low, high], EXACT),
        case("random_b1", [f32(rng.standard_normal((1, 4)) * 3), f32([-1, -1, -2, 0]), f32([1, 1, 2, 0])], EXACT,
             note="the last bound pair is degenerate (low == high)"),
        case("edge_values", [f32([BASE_EDGES]), f32([-1.0] * len(BASE_EDGES)), f32([1.0] * len(BASE_EDGES))],
             EXACT),
        case("infinite_bounds", [f32([BASE_EDGES]), f32([-INF] * len(BASE_EDGES)), f32([INF] * len(BASE_EDGES))],
             EXACT, note="a Box with infinite bounds: clipping changes nothing"),
        case("scalar_bounds", [x, np.asarray(F32(-0.5)), np.asarray(F32(0.5))], EXACT),
        case("float64", [rng.standard_normal((2, 5)) * 2, np.float64([-1, -2, -0.5, -1e300, 0]),
                         np.float64([1, 2, 0.5, 1e300, 0])], EXACT,
             note="a float64 Box: the exporter casts the float32 action to float64 first"),
    ]
    return cases


def linear_tolerance(x, w, b):
    """Each dot product has K products and K additions, summed in an unspecified order."""
    k = w.shape[0]
    scale = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)) + np.abs(b.astype(np.float64))
    return {"ulp": 4, "abs": float((2 * k + 2) * 2.0 ** -24 * np.max(scale))}


def linear_cases():
    rng = rng_for("linear")

    def dyadic(shape):
        return f32(rng.randint(-64, 65, shape) / 16.0)

    cases = []
    for name, (b, k, n) in (("dyadic_b1", (1, 24, 5)), ("dyadic_b4", (4, 19, 7))):
        cases.append(case(name, [dyadic((b, k)), dyadic((k, n)), dyadic((n,))], EXACT,
                          note="multiples of 1/16 below 4 in magnitude: every sum is exact in any order"))
    x, w, bias = f32(rng.uniform(0, 1, (3, 17))), f32(rng.uniform(0, 1, (17, 6))), f32(rng.uniform(0, 1, 6))
    cases.append(case("random_positive_b3", [x, w, bias], {"ulp": 2 * 17 + 2},
                      note="no cancellation: relative error bounded by the summation length"))
    for name, (b, k, n) in (("random_signed_b3", (3, 17, 6)), ("random_signed_b1_hidden64", (1, 64, 32)),
                            ("random_signed_b2_obs", (2, 4, 64))):
        x = f32(rng.standard_normal((b, k)))
        w = f32(rng.standard_normal((k, n)) * np.sqrt(2.0 / k))
        bias = f32(rng.standard_normal(n) * 0.1)
        cases.append(case(name, [x, w, bias], linear_tolerance(x, w, bias)))
    x, w, bias = dyadic((5, 18)), dyadic((18, 4)), dyadic((4,))
    w[:, 3] = np.abs(w[:, 3]) + 1  # a positive column
    w[2, 1] = 0.0
    x[0, 2] = INF  # inf * 0 in column 1 -> NaN; positive column -> inf
    x[1, 7] = NAN
    x[2, 0], x[2, 1] = INF, -INF
    x[3, 4] = 3.4e38  # products of +-2 overflow to +-inf whatever the summation order; 0 contributes 0
    w[4, :] = [2.0, -2.0, 0.0, 2.0]
    cases.append(case("nonfinite", [x, w, bias], EXACT,
                      note="rows with inf, NaN, inf and -inf, and an overflowing product; other values dyadic"))
    return cases


def matmul_cases():
    rng = rng_for("matmul")

    def dyadic(shape):
        return f32(rng.randint(-64, 65, shape) / 16.0)

    cases = [case("dyadic_b1", [dyadic((1, 24)), dyadic((24, 5))], EXACT,
                  note="multiples of 1/16 below 4 in magnitude: every sum is exact in any order"),
             case("dyadic_b4", [dyadic((4, 19)), dyadic((19, 7))], EXACT)]
    x, w = f32(rng.uniform(0, 1, (3, 17))), f32(rng.uniform(0, 1, (17, 6)))
    cases.append(case("random_positive_b3", [x, w], {"ulp": 2 * 17 + 2}))
    for name, (b, k, n) in (("random_signed_b3", (3, 17, 6)), ("random_signed_lstm_b2", (2, 16, 64))):
        x = f32(rng.standard_normal((b, k)))
        w = f32(rng.standard_normal((k, n)) * np.sqrt(1.0 / k))
        cases.append(case(name, [x, w], linear_tolerance(x, w, np.zeros(n, F32))))
    x, w = dyadic((4, 18)), dyadic((18, 4))
    w[2, 1] = 0.0
    x[0, 2] = INF
    x[1, 7] = NAN
    x[2, 0], x[2, 1] = INF, -INF
    x[3, 4] = 3.4e38
    w[4, :] = [2.0, -2.0, 0.0, 2.0]
    cases.append(case("nonfinite", [x, w], EXACT))
    return cases


def conv2d_tolerance(x, w, b, attrs):
    """As linear, with K = kh * kw * C products per output; the scale is TF's convolution of |x|, |w|, |b|."""
    k = w.shape[0] * w.shape[1] * w.shape[2]
    scale = run_tf("conv2d", [np.abs(x), np.abs(w), np.abs(b)], attrs)[0]
    return {"ulp": 4, "abs": float((2 * k + 2) * 2.0 ** -24 * np.max(scale) * (1 + 2.0 ** -20))}


def conv2d_cases():
    rng = rng_for("conv2d")

    def dyadic(shape):
        return f32(rng.randint(-32, 33, shape) / 16.0)

    cases = []
    for name, xs, ws, strides, padding in (("dyadic_valid_stride1", (2, 6, 6, 3), (3, 3, 3, 4), [1, 1], "VALID"),
                                          ("dyadic_same_stride2", (1, 7, 7, 2), (4, 4, 2, 3), [2, 2], "SAME"),
                                          ("dyadic_same_strides_1_2", (1, 5, 6, 2), (2, 3, 2, 3), [1, 2], "SAME")):
        cases.append(case(name, [dyadic(xs), dyadic(ws), dyadic(ws[3:])], EXACT,
                          {"strides": strides, "padding": padding},
                          note="multiples of 1/16 below 2 in magnitude: every sum is exact in any order"))
    for name, xs, ws, strides, padding in (
            ("random_nature_stride4", (1, 20, 20, 4), (8, 8, 4, 8), [4, 4], "VALID"),
            ("random_same_stride1", (2, 5, 5, 3), (3, 3, 3, 5), [1, 1], "SAME"),
            ("random_valid_stride2", (1, 9, 9, 4), (4, 4, 4, 6), [2, 2], "VALID")):
        attrs = {"strides": strides, "padding": padding}
        x = f32(rng.randint(0, 256, xs) / 255.0) if name == "random_nature_stride4" else f32(rng.standard_normal(xs))
        w = f32(rng.standard_normal(ws) * np.sqrt(2.0 / (ws[0] * ws[1] * ws[2])))
        b = f32(rng.standard_normal(ws[3]) * 0.1)
        cases.append(case(name, [x, w, b], conv2d_tolerance(x, w, b, attrs), attrs))
    x, w, b = dyadic((1, 5, 5, 2)), dyadic((2, 2, 2, 3)), dyadic((3,))
    w[0, 0, 0, 1] = 0.0
    x[0, 1, 1, 0] = INF  # reaches four outputs through four different weights; one of them 0 -> NaN
    x[0, 3, 3, 1] = NAN
    cases.append(case("nonfinite", [x, w, b], EXACT, {"strides": [1, 1], "padding": "VALID"}))
    return cases


def layer_norm_tolerance(x, gamma, beta):
    """Two summation orders for the mean and the variance: the mean's error is amplified by 1/sqrt(var + eps)."""
    n = x.shape[-1]
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=-1, keepdims=True)
    spread = np.sqrt(((x64 - mean) ** 2).mean(axis=-1, keepdims=True) + 1e-5)
    amplification = float(np.nanmax(np.max(np.abs(x64), axis=-1, keepdims=True) / spread))
    scale = float(np.max(np.abs(gamma))) * amplification + float(np.max(np.abs(beta)))
    return {"ulp": 8, "abs": (4 * n + 16) * 2.0 ** -24 * scale}


def layer_norm_cases():
    rng = rng_for("layer_norm")
    cases = []
    for name, shape in (("random_b1_n5", (1, 5)), ("random_b3_n19", (3, 19)), ("random_lstm_b2_n64", (2, 64))):
        x = f32(rng.standard_normal(shape) * 2)
        gamma, beta = f32(1 + rng.standard_normal(shape[-1]) * 0.1), f32(rng.standard_normal(shape[-1]) * 0.1)
        cases.append(case(name, [x, gamma, beta], layer_norm_tolerance(x, gamma, beta), {"epsilon": 1e-5}))
    x = f32(rng.standard_normal((2, 8)) * 0.01 + 5)
    gamma, beta = f32(np.ones(8)), f32(np.zeros(8))
    cases.append(case("offset_rows", [x, gamma, beta], layer_norm_tolerance(x, gamma, beta), {"epsilon": 1e-5},
                      note="small variance around 5: the mean's rounding is amplified by 1/sqrt(var + eps)"))
    x = f32(rng.standard_normal((2, 6)))
    cases.append(case("epsilon_0.1", [x, f32(np.ones(6)), f32(np.zeros(6))], layer_norm_tolerance(x, f32([1]), f32([0])),
                      {"epsilon": 0.1}))
    rows = f32([[2.5] * 8, [0.0] * 8, [1, 2, 3, 4, 5, 6, 7, NAN], [1, 2, 3, INF, 5, 6, 7, 8],
                [1e30, -1e30, 1e30, -1e30, 1e30, -1e30, 1e30, -1e30], [1, -1, 1, -1, 1, -1, 1, -1]])
    gamma, beta = f32([1, 2, -1, 0.5, 1, 1, 1, 3]), f32([0.5, 0, 0, -1, 0.25, 0, 0, 1])
    cases.append(case("edge_rows", [rows, gamma, beta], EXACT, {"epsilon": 1e-5},
                      note="constant rows give beta; NaN or inf give NaN rows; squares overflowing to inf give beta"))
    return cases


def reduce_mean_cases():
    rng = rng_for("reduce_mean")
    cases = []
    for name, shape in (("random_b1_n4", (1, 4)), ("random_b3_n19", (3, 19)), ("random_b2_n64", (2, 64)),
                        ("random_rank3", (2, 3, 5))):
        x = f32(rng.standard_normal(shape) * 3)
        n = shape[-1]
        scale = float(np.max(np.mean(np.abs(x.astype(np.float64)), axis=-1)))
        cases.append(case(name, [x], {"ulp": 4, "abs": (2 * n + 2) * 2.0 ** -24 * scale}))
    rows = f32([[1, 2, 3, 4], [0.5, 0.5, 0.5, 0.5], [-0.0, -0.0, -0.0, -0.0], [1, NAN, 2, 3], [INF, 1, 2, 3],
                [INF, -INF, 0, 0], [3.4e38, 3.4e38, 1, 1], [-1e30, 1e30, 2, 6]])
    cases.append(case("edge_rows", [rows], EXACT,
                      note="dyadic rows are exact; 3.4e38 + 3.4e38 overflows to inf before the division"))
    return cases


def softmax_tolerance(x):
    return {"ulp": 4 + x.shape[-1] // 2}


def softmax_cases():
    rng = rng_for("softmax")
    cases = []
    for name, shape in (("random_b1_n2", (1, 2)), ("random_b1_n5", (1, 5)), ("random_b3_n19", (3, 19)),
                        ("random_b2_n64", (2, 64)), ("random_rank3", (2, 3, 5)), ("single_column", (3, 1))):
        x = f32(rng.standard_normal(shape) * 3)
        cases.append(case(name, [x], softmax_tolerance(x)))
    rows = f32([
        [1, 1, 1, 1, 1, 1], [1e30, 1e30, 1e30, 1e30, 1e30, 1e30], [3.4e38, -3.4e38, 0, 3.4e38, 1, -1],
        [FLT_MAX, FLT_MAX, -FLT_MAX, 0, 0, 0], [-INF, 1, 0, 0, -INF, 2], [INF, 1, 0, 0, 0, 0],
        [INF, INF, 0, 0, 0, 0], [NAN, 1, 2, 0, 0, 0], [-INF] * 6, [0, -100, -100, -200, -50, -87],
        [1e-30, -1e-30, 0, -0.0, 1e-30, 0], [-3.4e38, -3.4e38, -3.4e38, -3.4e38, -3.4e38, -3.4e38]])
    cases.append(case("edge_rows", [rows], softmax_tolerance(rows)))
    long_rows = f32(rng.standard_normal((3, 19)) * 3)
    long_rows[0, 17] = -INF
    long_rows[1, 18] = NAN
    long_rows[2, :] = 2.5
    cases.append(case("edge_long_rows", [long_rows], softmax_tolerance(long_rows)))
    return cases


def argmax_cases():
    rng = rng_for("argmax")
    cases = []
    for name, shape in (("random_b1_n5", (1, 5)), ("random_b3_n19", (3, 19)), ("random_b2_n40", (2, 40)),
                        ("random_rank1", (7,)), ("random_rank3", (2, 3, 4))):
        cases.append(case(name, [f32(rng.standard_normal(shape))], EXACT))
    rows = f32([
        [2, 5, 5, 1], [5, 5, 5, 5], [0.0, -0.0, 0.0, -1], [-0.0, 0.0, -1, -1], [NAN, 1, 2, 0], [1, NAN, 0, 2],
        [NAN, NAN, NAN, NAN], [-INF, -INF, -INF, -INF], [-INF, -FLT_MAX, -INF, -1e38],
        [-INF, -FLT_MAX, -FLT_MAX, -INF], [-FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX], [-FLT_MAX, NAN, -3, -3],
        [INF, 1, INF, 0], [NAN, INF, 0, 0], [FLT_MAX, INF, INF, 3], [-1, -1e-30, -2, -1e-30]])
    cases.append(case("edge_rows", [rows], EXACT,
                      note="ties give the first index; NaN is never chosen; -FLT_MAX and -inf never beat index 0"))
    long_rows = f32(np.full((3, 40), -5.0))
    long_rows[0, 3], long_rows[0, 37], long_rows[0, 38] = NAN, NAN, 3.0
    long_rows[1, 20], long_rows[1, 39] = 7.0, 7.0
    long_rows[2, 17], long_rows[2, 25] = 1e-30, 1e-30
    cases.append(case("edge_long_rows", [long_rows], EXACT))
    ints = np.int32([[3, 9, 9, -1], [-5, -5, -7, -5], [-2 ** 31, -2 ** 31, -2 ** 31, -2 ** 31]])
    cases.append(case("int32", [ints], EXACT))
    return cases


def one_hot_cases():
    rng = rng_for("one_hot")
    return [
        case("discrete_b1", [np.int32([2])], EXACT, {"depth": 4}),
        case("discrete_b6", [np.int32(rng.randint(0, 5, 6))], EXACT, {"depth": 5}),
        case("long_depth", [np.int32([0, 18, 9, 17, 16])], EXACT, {"depth": 19}),
        case("out_of_range", [np.int32([0, 2, 3, -1, 1, 2 ** 31 - 1, -2 ** 31, 100])], EXACT, {"depth": 3},
             note="indices outside [0, depth) give all-zero rows"),
        case("depth_1", [np.int32([0, 1, -1])], EXACT, {"depth": 1}),
        case("multi_discrete_column", [np.int32([[1], [0], [3], [4]])], EXACT, {"depth": 4},
             note="a [B, 1] column of a MultiDiscrete observation: [B, 1, depth]"),
        case("int64_indices", [np.int64([1, 0, 2, 2 ** 40, -2 ** 40])], EXACT, {"depth": 3}),
        case("uint8_indices", [np.uint8([0, 1, 2, 255])], EXACT, {"depth": 3}),
    ]


def cast_cases():
    rng = rng_for("cast")
    return [
        case("int32_to_float32", [np.int32([[0, 1, -1, 255, 256, -300, 2 ** 24, 2 ** 24 + 1, 2 ** 24 + 3,
                                             2 ** 31 - 1, -2 ** 31, 123456789]])], EXACT, {"to": "float32"},
             note="integers beyond 2^24 round to nearest, ties to even"),
        case("uint8_to_float32", [np.uint8(rng.randint(0, 256, (2, 3, 4)))], EXACT, {"to": "float32"},
             note="an image observation"),
        case("int64_to_float32", [np.int64([[0, -1, 2 ** 40 + 1, 2 ** 62 + 2 ** 38, -2 ** 63]])], EXACT,
             {"to": "float32"}),
        case("float64_to_float32", [np.float64([[0.1, -0.1, 1e300, -1e300, 1e-300, 1e-40, FLT_MAX,
                                                 3.4028235677973366e+38, 3.4028235677973362e+38, 1 + 2 ** -24,
                                                 1 + 2 ** -24 + 2 ** -50, 1 + 3 * 2 ** -24, NAN, INF, -INF,
                                                 -0.0]])], EXACT, {"to": "float32"},
             note="round to nearest, ties to even; overflow gives inf; results below 2^-126 are flushed by TF"),
        case("float64_obs_to_float32", [rng.standard_normal((3, 5)) * 100], EXACT, {"to": "float32"}),
        case("bool_to_float32", [np.array([[True, False, True], [False, False, True]])], EXACT, {"to": "float32"},
             note="Bernoulli sample: less -> cast"),
        case("float32_to_float64", [f32([BASE_EDGES])], EXACT, {"to": "float64"}),
        case("float32_to_int32", [f32([[1.9, -1.9, 2.5, -0.5, -0.0, 1e9, 2147483520.0, -2147483648.0, 1e-30,
                                        -7.999999]])], EXACT, {"to": "int32"},
             note="truncation toward zero; NaN, inf and out-of-range values are unspecified"),
        case("float32_to_int64", [f32([[1.9, -1.9, 3e9, -3e9, 9.2e18, -9.2e18]])], EXACT, {"to": "int64"}),
        case("float32_to_bool", [f32([BASE_EDGES])], EXACT, {"to": "bool"}, note="x != 0; NaN is true"),
        case("int32_to_uint8", [np.int32([[0, 1, -1, 255, 256, 300, -300, 2 ** 31 - 1, -2 ** 31]])], EXACT,
             {"to": "uint8"}, note="modulo 2^8"),
        case("int32_to_int64", [np.int32([[0, -1, 2 ** 31 - 1, -2 ** 31]])], EXACT, {"to": "int64"}),
        case("int64_to_int32", [np.int64([[0, -1, 2 ** 31, 2 ** 32 + 5, -2 ** 31 - 1, 2 ** 62]])], EXACT,
             {"to": "int32"}, note="modulo 2^32, two's complement"),
        case("int32_to_bool", [np.int32([[0, 1, -1, 2 ** 31 - 1, -2 ** 31]])], EXACT, {"to": "bool"}),
        case("float32_identity", [f32([BASE_EDGES])], EXACT, {"to": "float32"}),
        case("long_row_int32_to_float32", [np.int32(rng.randint(-2 ** 30, 2 ** 30, (3, 19)))], EXACT,
             {"to": "float32"}),
    ]


def shape_cases(op):
    rng = rng_for(op)

    def fl(*shape):
        return f32(rng.standard_normal(shape))

    if op == "flatten":
        return [
            case("rank3_b1", [fl(1, 3, 4)], EXACT), case("rank3_b3", [fl(3, 3, 4)], EXACT),
            case("rank4_uint8", [np.uint8(rng.randint(0, 256, (2, 2, 3, 4)))], EXACT),
            case("rank2_unchanged", [fl(3, 5)], EXACT), case("rank1", [fl(4)], EXACT, note="[B] -> [B, 1]"),
        ]
    if op == "concat":
        return [
            case("two_axis_last", [fl(2, 3), fl(2, 4)], EXACT, {"axis": -1}),
            case("three_axis_1", [fl(1, 2), fl(1, 19), fl(1, 1)], EXACT, {"axis": 1}),
            case("single", [fl(2, 3)], EXACT, {"axis": -1}),
            case("int64", [np.int64([[1, 2], [3, 4]]), np.int64([[5], [6]])], EXACT, {"axis": -1}),
            case("rank3_axis1", [fl(2, 2, 3), fl(2, 1, 3)], EXACT, {"axis": 1}),
            case("axis0", [fl(2, 3), fl(1, 3)], EXACT, {"axis": 0}),
        ]
    if op == "split":
        return [
            case("logits_2_3", [fl(2, 5)], EXACT, {"sizes": [2, 3], "axis": -1}),
            case("multi_discrete_columns", [np.int32([[1, 0, 3], [2, 1, 0]])], EXACT,
                 {"sizes": [1, 1, 1], "axis": -1}),
            case("rank3_axis1", [fl(2, 4, 3)], EXACT, {"sizes": [1, 3], "axis": 1}),
            case("single_piece", [fl(3, 5)], EXACT, {"sizes": [5], "axis": -1}),
            case("long", [fl(1, 40)], EXACT, {"sizes": [17, 4, 19], "axis": 1}),
        ]
    if op == "stack":
        return [
            case("int64_modes", [np.int64([1, 0]), np.int64([2, 2]), np.int64([0, 4])], EXACT, {"axis": -1},
                 note="MultiCategorical modes: [B] x 3 -> [B, 3]"),
            case("axis0", [fl(2, 3), fl(2, 3)], EXACT, {"axis": 0}),
            case("axis1", [fl(2, 3), fl(2, 3), fl(2, 3)], EXACT, {"axis": 1}),
            case("single", [fl(3)], EXACT, {"axis": -1}),
        ]
    if op == "reshape":
        return [
            case("bias_1_1_1_n", [fl(1, 1, 1, 4)], EXACT, {"shape": [4]},
                 note="SB2's conv bias variable [1, n, 1, 1] as the [n] bias of conv2d"),
            case("matrix", [fl(2, 3)], EXACT, {"shape": [3, 2]}),
            case("vector_to_matrix", [np.int32([1, 2, 3, 4, 5, 6])], EXACT, {"shape": [2, 3]}),
            case("to_rank4", [fl(6)], EXACT, {"shape": [1, 2, 1, 3]}),
            case("empty", [fl(0)], EXACT, {"shape": [0, 3]}),
        ]
    if op == "expand_dims":
        return [
            case("mask_column", [fl(3)], EXACT, {"axis": 1}, note="the LSTM's 1 - done mask: [B] -> [B, 1]"),
            case("last_axis", [fl(2, 3)], EXACT, {"axis": -1}),
            case("axis0", [fl(2, 3)], EXACT, {"axis": 0}),
            case("middle", [np.int32([[1, 2, 3], [4, 5, 6]])], EXACT, {"axis": 1}),
            case("bool", [np.array([True, False])], EXACT, {"axis": -1}),
        ]
    if op == "squeeze":
        return [
            case("column", [fl(3, 1)], EXACT, {"axis": -1}),
            case("batch_of_one", [fl(1, 5)], EXACT, {"axis": 0}),
            case("rank3_axis1", [fl(2, 1, 3)], EXACT, {"axis": 1}),
            case("int32", [np.int32([[4], [5]])], EXACT, {"axis": 1}),
        ]
    raise KeyError(op)


def constant_cases():
    values = [("zero_float32", 0.0, "float32"), ("tenth_float32", 0.1, "float32"),
              ("negative_zero", -0.0, "float32"), ("huge_float32", 1e30, "float32"),
              ("int_to_float32_rounds", 16777217, "float32"), ("tenth_float64", 0.1, "float64"),
              ("int32", 7, "int32"), ("int64", -3, "int64"), ("uint8", 200, "uint8"), ("bool_true", True, "bool"),
              ("bool_false", False, "bool")]
    return [case(name, [], EXACT, {"value": value, "dtype": dtype}) for name, value, dtype in values]


def cases_for(op):
    if op in UNARY_TOLERANCE or op == "swish":
        return unary_cases(op)
    if op in ("add", "sub", "mul", "div", "less"):
        return binary_cases(op)
    builders = {"clip": clip_cases, "linear": linear_cases, "softmax": softmax_cases, "argmax": argmax_cases,
                "one_hot": one_hot_cases, "cast": cast_cases, "constant": constant_cases, "matmul": matmul_cases,
                "conv2d": conv2d_cases, "layer_norm": layer_norm_cases, "reduce_mean": reduce_mean_cases}
    if op in builders:
        return builders[op]()
    return shape_cases(op)


# --- packet/scalar coherence ------------------------------------------------------------------------------------

def path_disagreements(cases):
    """Compare each edge value's result in a *_vector_path case with the *_scalar_path cases of the same prefix."""
    found = []
    prefixes = {c["name"][:-len("_vector_path")] for c in cases if c["name"].endswith("_vector_path")}
    for prefix in sorted(prefixes):
        vector = next(c for c in cases if c["name"] == prefix + "_vector_path")
        scalars = [c for c in cases if c["name"].startswith(prefix + "_scalar_path_")]
        by_value = {}
        for x, y in zip(vector["inputs"][0].ravel(), vector["results"][0].ravel()):
            by_value[F32(x).tobytes()] = (x, y)
        for scalar in scalars:
            for x, y in zip(scalar["inputs"][0].ravel(), scalar["results"][0].ravel()):
                _, y_vector = by_value[F32(x).tobytes()]
                same = (np.isnan(y) and np.isnan(y_vector)) or y == y_vector
                if not same:
                    found.append((prefix, float(x), float(y_vector), float(y)))
    return found


# --- driver -----------------------------------------------------------------------------------------------------

def generated_by():
    return "TensorFlow {} (CPU kernels, tf.compat.v1.Session), NumPy {}, Python {}".format(
        tf.__version__, np.__version__, sys.version.split()[0])


def write(op, cases):
    header = {"op": op, "generated_by": generated_by(), "oracle": TF_EXPRESSIONS[op]}
    if op == "clip":
        header["generated_by"] = "NumPy {} np.clip (SB2 clips actions in NumPy, not TensorFlow), Python {}".format(
            np.__version__, sys.version.split()[0])
    lines = ["{"]
    for key, value in header.items():
        lines.append(" {}: {},".format(json.dumps(key), json.dumps(value)))
    lines.append(' "cases": [')
    encoded = []
    for c in cases:
        item = {"name": c["name"], "attrs": c["attrs"], "inputs": [encode_tensor(a) for a in c["inputs"]],
                "outputs": [encode_tensor(a) for a in c["results"]], "tolerance": c["tolerance"]}
        if "note" in c:
            item["note"] = c["note"]
        encoded.append("  " + json.dumps(item, allow_nan=False))
    lines.append(",\n".join(encoded))
    lines.append(" ]")
    lines.append("}")
    path = os.path.join(HERE, op + ".json")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def generate(op):
    cases = cases_for(op)
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), (op, "duplicate case names")
    for c in cases:
        check_inputs(op, c["name"], c["inputs"])
        c["results"] = [np.asarray(r) for r in run_oracle(op, c["inputs"], c["attrs"])]
    disagreements = path_disagreements(cases)
    for prefix, x, y_vector, y_scalar in disagreements:
        if math.isnan(x):
            for c in cases:
                if c["name"].startswith(prefix + "_"):
                    c["tolerance"] = dict(c["tolerance"], unspecified_nan=True)
    return cases, disagreements


def check_against_reference(op, cases):
    """Largest ULP distance (cases with an ULP tolerance only) and absolute difference (cases with an `abs`
    tolerance) between sbif.ops and the oracle over finite outputs, and the failures."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import test_op_vectors as checks  # noqa: E402  (the test module's comparison, no TF there)
    worst_ulp, worst_abs, failures = 0, 0.0, []
    for c in cases:
        item = json.loads(json.dumps({"name": c["name"], "attrs": c["attrs"], "tolerance": c["tolerance"],
                                      "inputs": [encode_tensor(a) for a in c["inputs"]],
                                      "outputs": [encode_tensor(a) for a in c["results"]]}))
        problems, stats = checks.check_case(op, item)
        if "abs" in c["tolerance"]:
            worst_abs = max(worst_abs, stats["abs"])
        else:
            worst_ulp = max(worst_ulp, stats["ulp"])
        failures += ["{}: {}".format(c["name"], p) for p in problems]
    return worst_ulp, worst_abs, failures


#: ops whose oracle is not TF 1.15, with the generator that writes their vectors: NumPy's random.choice (SB2's DQN
#: sampling), and torch for the ops only SB3's graphs use
OTHER_GENERATORS = {"inverse_cdf_sample": "generate_sampling.py", "transpose": "generate_torch.py"}


def main(argv):
    check = "--check" in argv
    ops = [a for a in argv if not a.startswith("--")] or sorted(set(REGISTRY) - set(OTHER_GENERATORS))
    missing = sorted(set(REGISTRY) - set(TF_BUILDERS) - {"clip"} - set(OTHER_GENERATORS))
    if missing:
        raise SystemExit("no TF builder for ops: {}".format(", ".join(missing)))
    status = 0
    for op in ops:
        cases, disagreements = generate(op)
        path = write(op, cases)
        line = "{:16s} {:3d} cases {:7d} bytes".format(op, len(cases), os.path.getsize(path))
        if check:
            worst_ulp, worst_abs, failures = check_against_reference(op, cases)
            line += "   sbif vs oracle: max {} ULP (ulp-only cases), max abs {:.3g} (abs cases)".format(
                worst_ulp, worst_abs)
            if failures:
                status = 1
                line += "\n    FAIL " + "\n    FAIL ".join(failures[:10])
        print(line)
        for prefix, x, y_vector, y_scalar in disagreements:
            print("    packet/scalar paths differ ({}): x={!r} packet={!r} scalar={!r}".format(
                prefix, x, y_vector, y_scalar))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
