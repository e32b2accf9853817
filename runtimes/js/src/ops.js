// The kernels of every op of spec/ops.md and spec/ops-sampling.md, on tensors ({dtype, shape, data}). Each float32
// operation is rounded to float32 (Math.fround, or the store into a Float32Array) as spec/ops.md asks; int64 values are
// BigInts, so that wrap-around is exact.
import { InputError, UnsupportedError } from './errors.js';
import { NAME } from './about.js';
import { has } from './json.js';
import { FLT_MAX, INT_BITS, SIZES, count, f32, isFloat, tensor } from './tensor.js';
import { reluArray, sigmoidArray, tanhArray } from './wasm/elementwise.js';
import { CHUNK_ROWS, packProduct } from './wasm/product.js';

// ---- broadcasting helpers -------------------------------------------------------------------------------------------
function broadcastShape(shapes) {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = [];
  for (let i = 0; i < rank; i++) {
    let size = 1;
    for (const s of shapes) {
      const d = s[s.length - rank + i] === undefined ? 1 : s[s.length - rank + i];
      if (d !== 1) {
        if (size !== 1 && size !== d) throw new InputError(`shapes ${JSON.stringify(shapes)} do not broadcast`);
        size = d;
      }
    }
    out.push(size);
  }
  return out;
}

// For each input, the flat index feeding each output element: an odometer over the output's index moves each input's
// offset by its stride along the axis that advances (0 along a broadcast axis), so each element costs O(1).
function broadcastIndices(shape, inputShapes) {
  const n = count(shape);
  const rank = shape.length;
  return inputShapes.map((s) => {
    const strides = new Array(rank).fill(0);
    let stride = 1;
    for (let i = s.length - 1; i >= 0; i--) {
      const axis = rank - s.length + i;
      strides[axis] = s[i] === 1 ? 0 : stride;
      stride *= s[i];
    }
    const index = new Int32Array(n);
    const position = new Array(rank).fill(0);
    let offset = 0;
    for (let k = 0; k < n; k++) {
      index[k] = offset;
      for (let a = rank - 1; a >= 0; a--) {
        offset += strides[a];
        if (++position[a] < shape[a]) break;
        offset -= strides[a] * shape[a];
        position[a] = 0;
      }
    }
    return index;
  });
}

// f applied to the elements of the inputs (one to three) broadcast to one shape, into a new tensor of `dtype`. The
// loops are written per arity, so that no element allocates (no argument lists built per call).
function elementwise(inputs, dtype, f) {
  const shapes = inputs.map((t) => t.shape);
  const shape = broadcastShape(shapes);
  const out = tensor(dtype, shape);
  const o = out.data;
  const n = o.length;
  const same = inputs.every((t) => t.data.length === n);
  const [a, b, c] = inputs.map((t) => t.data);
  if (inputs.length === 1) {
    for (let k = 0; k < n; k++) o[k] = f(a[k]);
  } else if (same && inputs.length === 2) {
    for (let k = 0; k < n; k++) o[k] = f(a[k], b[k]);
  } else if (same) {
    for (let k = 0; k < n; k++) o[k] = f(a[k], b[k], c[k]);
  } else if (inputs.length === 2) {
    const [ia, ib] = broadcastIndices(shape, shapes);
    for (let k = 0; k < n; k++) o[k] = f(a[ia[k]], b[ib[k]]);
  } else {
    const [ia, ib, ic] = broadcastIndices(shape, shapes);
    for (let k = 0; k < n; k++) o[k] = f(a[ia[k]], b[ib[k]], c[ic[k]]);
  }
  return out;
}

// ---- binary arithmetic --------------------------------------------------------------------------------------------
// The broadcasts graphs make (equal shapes, a row such as a bias or an observation bound, a column such as a [B, 1]
// mask, a scalar) are, split at some axis, `outer` blocks of `inner` output elements in which each input either
// advances with the output or stays put, at both levels: input element (i, j) is at i * outerStride + j * innerStride.
// Such an op runs as one strided loop per op (a loop V8 compiles for its one operation, no function call per
// element); any other broadcast takes broadcastIndices' general path.

// [outerStride, innerStride] of an input of `inputShape` in the output `shape` split before axis `split`, or null when
// the input does not broadcast that way at that split. (Counted in place: this runs on every call, for small tensors
// too.)
function stridesAt(shape, inputShape, split) {
  const missing = shape.length - inputShape.length; // leading axes the input lacks: size 1
  let tailEqual = true;
  let tailOnes = true;
  let tailCount = 1;
  for (let axis = split; axis < shape.length; axis++) {
    const d = axis < missing ? 1 : inputShape[axis - missing];
    tailEqual = tailEqual && d === shape[axis];
    tailOnes = tailOnes && d === 1;
    tailCount *= d;
  }
  if (!tailEqual && !tailOnes) return null;
  let headEqual = true;
  let headOnes = true;
  for (let axis = 0; axis < split; axis++) {
    const d = axis < missing ? 1 : inputShape[axis - missing];
    headEqual = headEqual && d === shape[axis];
    headOnes = headOnes && d === 1;
  }
  const innerStride = tailEqual ? 1 : 0;
  if (headEqual) return [tailCount, innerStride];
  return headOnes ? [0, innerStride] : null;
}

// {outer, inner, strides: [[outerStride, innerStride] per input]} for inputs of `shapes` broadcast to `shape`, or null.
function stridedBroadcast(shape, shapes) {
  for (let split = 0; split <= shape.length; split++) {
    const strides = shapes.map((inputShape) => stridesAt(shape, inputShape, split));
    if (strides.every((pair) => pair !== null)) {
      return { outer: count(shape.slice(0, split)), inner: count(shape.slice(split)), strides };
    }
  }
  return null;
}

// One loop per op: o[i * inner + j] = a[i * ao + j * ai] (op) b[i * bo + j * bi]. The typed array o rounds the result
// to its dtype (float32: the double result of two float32 operands rounds to the correctly rounded float32 one).
function addStrided(a, b, o, outer, inner, [ao, ai], [bo, bi]) {
  for (let i = 0, k = 0; i < outer; i++) {
    for (let j = 0, x = i * ao, y = i * bo; j < inner; j++, x += ai, y += bi) o[k++] = a[x] + b[y];
  }
}

function subStrided(a, b, o, outer, inner, [ao, ai], [bo, bi]) {
  for (let i = 0, k = 0; i < outer; i++) {
    for (let j = 0, x = i * ao, y = i * bo; j < inner; j++, x += ai, y += bi) o[k++] = a[x] - b[y];
  }
}

function mulStrided(a, b, o, outer, inner, [ao, ai], [bo, bi]) {
  for (let i = 0, k = 0; i < outer; i++) {
    for (let j = 0, x = i * ao, y = i * bo; j < inner; j++, x += ai, y += bi) o[k++] = a[x] * b[y];
  }
}

function divStrided(a, b, o, outer, inner, [ao, ai], [bo, bi]) {
  for (let i = 0, k = 0; i < outer; i++) {
    for (let j = 0, x = i * ao, y = i * bo; j < inner; j++, x += ai, y += bi) o[k++] = a[x] / b[y];
  }
}

function lessStrided(a, b, o, outer, inner, [ao, ai], [bo, bi]) {
  for (let i = 0, k = 0; i < outer; i++) {
    for (let j = 0, x = i * ao, y = i * bo; j < inner; j++, x += ai, y += bi) o[k++] = a[x] < b[y] ? 1 : 0;
  }
}

// x (op) y into a new tensor of `dtype`: `strided` (one of the loops above) where the broadcast allows, else f per
// element.
function binary(x, y, dtype, strided, f) {
  const shapes = [x.shape, y.shape];
  const shape = broadcastShape(shapes);
  const plan = stridedBroadcast(shape, shapes);
  if (plan === null) return elementwise([x, y], dtype, f);
  const out = tensor(dtype, shape);
  strided(x.data, y.data, out.data, plan.outer, plan.inner, plan.strides[0], plan.strides[1]);
  return out;
}

// ---- unary --------------------------------------------------------------------------------------------------------
function unary(x, f32f, f64f) {
  if (!isFloat(x.dtype)) throw new InputError(`float input expected, got ${x.dtype}`);
  return elementwise([x], x.dtype, x.dtype === 'float32' ? f32f : (f64f || f32f));
}

// A float32 tensor mapped by one of src/wasm/elementwise.js's array functions, a float64 one by f64f.
function unaryArray(x, float32Array, f64f) {
  if (x.dtype !== 'float32') return unary(x, f64f);
  const out = tensor('float32', x.shape);
  float32Array(x.data, out.data);
  return out;
}

// rows of the last axis
function rows(x) {
  const n = x.shape[x.shape.length - 1];
  return { n, count: n === 0 ? 0 : x.data.length / n };
}

const normalizeAxis = (axis, rank) => (axis < 0 ? axis + rank : axis);

// A tensor's memory as unsigned integers of its element's size: a select copies these, so every bit of the chosen
// element is kept (a float read into a JS number and written back may lose a NaN's payload).
const WORDS = { 1: Uint8Array, 2: Uint16Array, 4: Uint32Array, 8: BigUint64Array };
const words = (t) => new WORDS[t.data.BYTES_PER_ELEMENT](t.data.buffer, t.data.byteOffset, t.data.length);

function where(condition, x, y) {
  const shapes = [condition.shape, x.shape, y.shape];
  const shape = broadcastShape(shapes);
  const out = tensor(x.dtype, shape);
  const [k, a, b] = broadcastIndices(shape, shapes);
  const [chosen, xs, ys, zs] = [condition.data, words(x), words(y), words(out)];
  for (let i = 0; i < zs.length; i++) zs[i] = chosen[k[i]] ? xs[a[i]] : ys[b[i]];
  return out;
}

// ---- ops ------------------------------------------------------------------------------------------------------------
const SIGMOID64 = (x) => 1 / (1 + Math.exp(-x));

// erf in float64 (JavaScript has no Math.erf), to a relative error below 2^-48, so that rounding it to float32 gives
// the reference's float32 result (libm's erf rounded once) in practice. Two expansions, both free of cancellation:
// for |x| <= ERF_SERIES_LIMIT, erf(x) = 2/sqrt(pi) * exp(-x^2) * sum over n of 2^n x^(2n+1) / (1*3*...*(2n+1)), a
// sum of positive terms; above it, erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), the
// continued fraction cut at ERF_FRACTION_DEPTH partial quotients, evaluated from the bottom.
const TWO_OVER_SQRT_PI = 1.1283791670955126;
const ONE_OVER_SQRT_PI = 0.5641895835477563;
const ERF_SERIES_LIMIT = 1.5;
// the depth at which the fraction has converged to double precision at ERF_SERIES_LIMIT (it converges faster above)
const ERF_FRACTION_DEPTH = 120;
// 1 - erf(6) is below 2^-53: erf is +-1 in float64 from there on
const ERF_SATURATION = 6;

// exp(-x^2) without the rounding error of x^2 (which exp would multiply by x^2): x = hi + (x - hi) with hi's square
// exact (hi has 24 significant bits), and exp(-x^2) = exp(-hi^2) * exp(-(x - hi)(x + hi))
function expMinusSquare(x) {
  const hi = f32(x);
  return Math.exp(-hi * hi) * Math.exp((hi - x) * (hi + x));
}

function erf64(x) {
  const a = Math.abs(x);
  if (!(a > 0)) return x; // NaN stays NaN, and +-0 keeps its sign
  if (a >= ERF_SATURATION) return Math.sign(x);
  let y;
  if (a <= ERF_SERIES_LIMIT) {
    const twiceSquare = 2 * a * a;
    let term = a;
    let sum = a;
    for (let n = 1; term > sum * Number.EPSILON / 4; n++) {
      term *= twiceSquare / (2 * n + 1);
      sum += term;
    }
    y = TWO_OVER_SQRT_PI * expMinusSquare(a) * sum;
  } else {
    let fraction = a;
    for (let k = ERF_FRACTION_DEPTH; k >= 1; k--) fraction = a + k / 2 / fraction;
    y = 1 - (ONE_OVER_SQRT_PI * expMinusSquare(a)) / fraction;
  }
  return x < 0 ? -y : y;
}

function roundHalfEven(x) {
  if (!Number.isFinite(x) || Math.abs(x) >= 8388608) return x;
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff < 0.5) return floor;
  if (diff > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

function softplusFor(dtype) {
  const eps = dtype === 'float32' ? 1.1920928955078125e-7 : 2.220446049250313e-16;
  const round = dtype === 'float32' ? f32 : (v) => v;
  const t = round(round(Math.log(eps)) + 2);
  return (x) => (x > -t ? x : x < t ? round(Math.exp(x)) : round(Math.log(round(round(Math.exp(x)) + 1))));
}

// spec/ops.md "cast": float -> int truncates toward zero, int -> int wraps, number -> bool is x != 0
function castValue(value, from, to) {
  const big = typeof value === 'bigint';
  if (to === 'bool') return (big ? value !== 0n : value !== 0) ? 1 : 0; // NaN != 0
  if (isFloat(to)) return big ? Number(value) : value; // the typed array rounds (e.g. float64 -> float32)
  if (isFloat(from)) { // through int64 for an int64 target, int32 otherwise: NaN, inf and values it cannot hold give
    // its lowest value (then wrapped to narrower types), as TF and NumPy on x86
    const lowest = to === 'int64' ? -(2 ** 63) : -(2 ** 31);
    const truncated = Math.trunc(value);
    value = truncated >= lowest && truncated < -lowest ? truncated : lowest;
  }
  if (to === 'int64') return BigInt.asIntN(64, big ? value : BigInt(value));
  if (big) {
    const [bits, signed] = INT_BITS[to];
    return Number(signed ? BigInt.asIntN(bits, value) : BigInt.asUintN(bits, value));
  }
  return value; // narrower integer types wrap modulo 2^n when stored in their typed array
}

// x * sigmoid(x), the product rounded, with sigmoid the op's own kernel (TF's swish is those two kernels)
function swish(x) {
  if (x.dtype !== 'float32') return unary(x, (a) => a * SIGMOID64(a));
  const out = tensor('float32', x.shape);
  sigmoidArray(x.data, out.data);
  const [a, o] = [x.data, out.data];
  for (let k = 0; k < a.length; k++) o[k] = a[k] * o[k];
  return out;
}

function cast(x, attrs) {
  const to = attrs.to;
  // to a float from anything but int64, castValue is the identity and the target typed array's store rounds: a copy
  // by TypedArray.set does the same stores
  if (isFloat(to) && x.dtype !== 'int64') {
    const out = tensor(to, x.shape);
    out.data.set(x.data);
    return out;
  }
  return elementwise([x], to, (a) => castValue(a, x.dtype, to));
}

export const OPS = {
  add: (x, y) => binary(x, y, x.dtype, addStrided, (a, b) => a + b),
  sub: (x, y) => binary(x, y, x.dtype, subStrided, (a, b) => a - b),
  mul: (x, y) => binary(x, y, x.dtype, mulStrided, (a, b) => a * b),
  div: (x, y) => binary(x, y, x.dtype, divStrided, (a, b) => a / b),
  less: (x, y) => binary(x, y, 'bool', lessStrided, (a, b) => (a < b ? 1 : 0)),
  neg: (x) => unary(x, (a) => -a),
  exp: (x) => unary(x, (a) => Math.exp(a)),
  log: (x) => unary(x, (a) => Math.log(a)),
  tanh: (x) => unaryArray(x, tanhArray, Math.tanh),
  sigmoid: (x) => unaryArray(x, sigmoidArray, SIGMOID64),
  relu: (x) => unaryArray(x, reluArray, (a) => (a < 0 ? 0 : a)), // NaN stays NaN, as std::max(x, 0) keeps it
  relu6: (x) => unary(x, (a) => Math.min(Math.max(a, 0), 6)),
  elu: (x) => unary(x, (a) => (a < 0 ? f32(f32(Math.exp(a)) - 1) : a), (a) => (a < 0 ? Math.exp(a) - 1 : a)),
  selu: (x) => {
    const sa32 = f32(1.7580993408473768599402175208123);
    const s32 = f32(1.0507009873554804934193349852946);
    return unary(x, (a) => (a < 0 ? f32(sa32 * f32(f32(Math.exp(a)) - 1)) : f32(s32 * a)),
      (a) => (a < 0 ? 1.7580993408473768 * (Math.exp(a) - 1) : 1.0507009873554805 * a));
  },
  softplus: (x) => unary(x, softplusFor(x.dtype)),
  softsign: (x) => unary(x, (a) => f32(a / f32(Math.abs(a) + 1)), (a) => a / (Math.abs(a) + 1)),
  swish,
  erf: (x) => unary(x, (a) => f32(erf64(a)), erf64),
  leaky_relu: (x, attrs) => {
    const alpha = x.dtype === 'float32' ? f32(attrs.alpha) : attrs.alpha;
    return unary(x, (a) => (a > 0 ? a : a * alpha));
  },
  round_half_even: (x) => unary(x, roundHalfEven),
  clip: (x, low, high) => elementwise([x, low, high], x.dtype, (a, l, h) => Math.min(Math.max(a, l), h)),
  where,
  cast,
  constant: (attrs) => {
    const value = typeof attrs.value === 'boolean' ? (attrs.value ? 1 : 0) : attrs.value;
    const out = tensor(attrs.dtype, []);
    out.data[0] = castValue(value, Number.isInteger(value) ? 'int32' : 'float64', attrs.dtype);
    return out;
  },
  one_hot: (x, attrs) => {
    const depth = attrs.depth;
    const out = tensor('float32', x.shape.concat([depth]));
    for (let k = 0; k < x.data.length; k++) {
      const v = x.data[k];
      if (v >= 0 && v < depth) out.data[k * depth + Number(v)] = 1;
    }
    return out;
  },
  argmax: (x) => {
    const { n, count: m } = rows(x);
    const lowest = x.dtype === 'float32' ? -FLT_MAX : x.dtype === 'float64' ? -Number.MAX_VALUE
      : -(2 ** (8 * SIZES[x.dtype] - 1));
    const out = tensor('int64', x.shape.slice(0, -1));
    for (let r = 0; r < m; r++) {
      let best = 0;
      let value = lowest;
      for (let j = 0; j < n; j++) {
        if (x.data[r * n + j] > value) { best = j; value = x.data[r * n + j]; }
      }
      out.data[r] = BigInt(best);
    }
    return out;
  },
  softmax: (x) => {
    const round = x.dtype === 'float32' ? f32 : (v) => v;
    const { n, count: m } = rows(x);
    const out = tensor(x.dtype, x.shape);
    for (let r = 0; r < m; r++) {
      let max = -Infinity;
      let nan = false;
      for (let j = 0; j < n; j++) {
        const v = x.data[r * n + j];
        if (v !== v) nan = true; else if (v > max) max = v;
      }
      if (nan) max = NaN;
      let sum = 0;
      for (let j = 0; j < n; j++) {
        const e = round(Math.exp(round(x.data[r * n + j] - max)));
        out.data[r * n + j] = e;
        sum = round(sum + e);
      }
      const inverse = round(1 / sum);
      for (let j = 0; j < n; j++) out.data[r * n + j] = round(out.data[r * n + j] * inverse);
    }
    return out;
  },
  matmul: (x, w) => product(x, w, null),
  conv2d,
  inverse_cdf_sample: inverseCdfSample,
  linear: (x, w, b) => product(x, w, b),
  layer_norm: (x, gamma, beta, attrs) => {
    const round = x.dtype === 'float32' ? f32 : (v) => v;
    const eps = round(attrs.epsilon);
    const { n, count: m } = rows(x);
    const out = tensor(x.dtype, x.shape);
    for (let r = 0; r < m; r++) {
      let sum = 0;
      for (let j = 0; j < n; j++) sum = round(sum + x.data[r * n + j]);
      const mean = round(sum / n);
      let squares = 0;
      for (let j = 0; j < n; j++) {
        const d = round(x.data[r * n + j] - mean);
        squares = round(squares + round(d * d));
      }
      const scale = round(Math.sqrt(round(round(squares / n) + eps)));
      for (let j = 0; j < n; j++) {
        const centered = round(x.data[r * n + j] - mean);
        out.data[r * n + j] = round(round(round(centered / scale) * gamma.data[j]) + beta.data[j]);
      }
    }
    return out;
  },
  reduce_mean: (x) => {
    const round = x.dtype === 'float32' ? f32 : (v) => v;
    const { n, count: m } = rows(x);
    const out = tensor(x.dtype, x.shape.slice(0, -1).concat([1]));
    for (let r = 0; r < m; r++) {
      let sum = 0;
      for (let j = 0; j < n; j++) sum = round(sum + x.data[r * n + j]);
      out.data[r] = round(sum / n);
    }
    return out;
  },
  flatten: (x) => tensor(x.dtype, [x.shape[0], x.shape.length === 1 ? 1 : count(x.shape.slice(1))], x.data),
  reshape: (x, attrs) => tensor(x.dtype, attrs.shape, x.data),
  squeeze: (x, attrs) => {
    const axis = normalizeAxis(attrs.axis, x.shape.length);
    if (x.shape[axis] !== 1) throw new InputError(`squeeze of a dimension of size ${x.shape[axis]}`);
    return tensor(x.dtype, x.shape.filter((_, i) => i !== axis), x.data);
  },
  transpose: (x, attrs) => {
    // y's elements in order, each read from x by an odometer over y's index that moves the source offset by x's
    // stride along the axis perm names
    const { perm } = attrs;
    const rank = x.shape.length;
    const strides = new Array(rank);
    for (let i = rank - 1, elements = 1; i >= 0; i--) {
      strides[i] = elements;
      elements *= x.shape[i];
    }
    const out = tensor(x.dtype, perm.map((axis) => x.shape[axis]));
    const steps = perm.map((axis) => strides[axis]);
    const index = new Array(rank).fill(0);
    let source = 0;
    for (let k = 0; k < out.data.length; k++) {
      out.data[k] = x.data[source];
      for (let i = rank - 1; i >= 0; i--) {
        source += steps[i];
        if (++index[i] < out.shape[i]) break;
        source -= steps[i] * out.shape[i];
        index[i] = 0;
      }
    }
    return out;
  },
  expand_dims: (x, attrs) => {
    const axis = normalizeAxis(attrs.axis, x.shape.length + 1);
    return tensor(x.dtype, x.shape.slice(0, axis).concat([1], x.shape.slice(axis)), x.data);
  },
  concat: (...args) => {
    const attrs = args.pop();
    return join(args, normalizeAxis(attrs.axis, args[0].shape.length));
  },
  stack: (...args) => {
    const attrs = args.pop();
    const axis = normalizeAxis(attrs.axis, args[0].shape.length + 1);
    const expanded = args.map((t) => tensor(t.dtype, t.shape.slice(0, axis).concat([1], t.shape.slice(axis)), t.data));
    return join(expanded, axis);
  },
  split: (x, attrs) => {
    const axis = normalizeAxis(attrs.axis, x.shape.length);
    const outer = count(x.shape.slice(0, axis));
    const inner = count(x.shape.slice(axis + 1));
    const total = x.shape[axis];
    let start = 0;
    return attrs.sizes.map((size) => {
      const out = tensor(x.dtype, x.shape.slice(0, axis).concat([size], x.shape.slice(axis + 1)));
      copyBlocks(x.data, start * inner, total * inner, out.data, 0, size * inner, size * inner, outer);
      start += size;
      return out;
    });
  },
};

// ---- products: linear, matmul (and conv2d's windows) ----------------------------------------------------------------
// The K-term sums of spec/ops.md's products may run in any order and fuse each product with its addition. In float32
// every kernel here sums each output's K terms from left to right, starting from +0, each product rounded to float32
// before it is added (never fused): a model's float32 weights run in the WebAssembly SIMD kernel (src/wasm/product.wat)
// where the engine has SIMD, anything else in the JavaScript panel loop below, in the same order, so a float32 result
// is the same bit for bit with or without SIMD, whatever the batch. (The JavaScript loop alone could fuse for free, a
// float32 product being exact in a double; rounding the product costs it 25-40% (scripts/bench-product.mjs), paid
// only without SIMD or on a weight that is not the model's, for results that do not depend on the engine.) float64
// rounds the product and the sum. The JavaScript loop computes PANEL output columns at once: the weights are packed
// into panels of PANEL columns, w[k, PANEL*p + j] at packed[(p*K + k)*PANEL + j] (zeros beyond the last column), so the
// innermost loop reads one input and PANEL consecutive weights, and carries PANEL independent sums.
const PANEL = 8;
const packedWeights = new WeakMap();

// w packed for productRow32/64: a float [K, N] matrix, or conv2d's [kh, kw, C, O] kernel, which row-major is the
// [kh*kw*C, O] matrix that multiplies a window read in the same order. `simd` is null: the SIMD kernel is for a model's
// weights (see prepareNode).
export function packPanels(w) {
  const n = w.shape[w.shape.length - 1];
  const k = count(w.shape.slice(0, -1));
  const panels = Math.ceil(n / PANEL);
  const data = new w.data.constructor(panels * k * PANEL);
  for (let p = 0; p < panels; p++) {
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < PANEL && p * PANEL + j < n; j++) {
        data[(p * k + i) * PANEL + j] = w.data[i * n + p * PANEL + j];
      }
    }
  }
  return { data, k, n, panels, simd: null };
}

// w packed for the kernels. A model's weights are packed once, at load (prepareNode); any other weight (a computed
// value, runOp's argument, which its caller may change) at each use, for the JavaScript loop.
function packed(w) {
  return packedWeights.get(w) ?? packPanels(w);
}

// The sums of the last, partial panel, stored once per row (a float64 array holds either kind's sums exactly).
const lastPanel = new Float64Array(PANEL);

// Stores the PANEL sums s0..s7 of the panel at column c into out[outOffset + c + j] (+ bias[c + j], a separate
// rounded addition: the store into out's float32 or float64 array rounds it) for the columns below n. One function
// for productRow32 and productRow64: the sums are doubles in both, their rounding done by the caller's loop.
function storePanel(out, outOffset, c, n, bias, s0, s1, s2, s3, s4, s5, s6, s7) {
  const o = outOffset + c;
  if (c + PANEL <= n) {
    out[o] = bias === null ? s0 : s0 + bias[c];
    out[o + 1] = bias === null ? s1 : s1 + bias[c + 1];
    out[o + 2] = bias === null ? s2 : s2 + bias[c + 2];
    out[o + 3] = bias === null ? s3 : s3 + bias[c + 3];
    out[o + 4] = bias === null ? s4 : s4 + bias[c + 4];
    out[o + 5] = bias === null ? s5 : s5 + bias[c + 5];
    out[o + 6] = bias === null ? s6 : s6 + bias[c + 6];
    out[o + 7] = bias === null ? s7 : s7 + bias[c + 7];
  } else {
    // the last panel, part of it beyond the last column
    const sums = lastPanel;
    sums[0] = s0;
    sums[1] = s1;
    sums[2] = s2;
    sums[3] = s3;
    sums[4] = s4;
    sums[5] = s5;
    sums[6] = s6;
    sums[7] = s7;
    for (let j = 0; c + j < n; j++) out[o + j] = bias === null ? sums[j] : sums[j] + bias[c + j];
  }
}

// out[outOffset + c] = (the sum over i < K of x[xOffset + i] * w[i, c]) (+ bias[c], a separate rounded addition) for
// every column c, in float32, in the SIMD kernel's order. Exported with packPanels for scripts/bench-product.mjs, which
// times this loop against the WebAssembly kernel.
export function productRow32(x, xOffset, weights, bias, out, outOffset) {
  const { data, k, n, panels } = weights;
  for (let p = 0; p < panels; p++) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (let i = 0, w = p * k * PANEL; i < k; i++, w += PANEL) {
      const v = x[xOffset + i];
      s0 = f32(s0 + f32(v * data[w]));
      s1 = f32(s1 + f32(v * data[w + 1]));
      s2 = f32(s2 + f32(v * data[w + 2]));
      s3 = f32(s3 + f32(v * data[w + 3]));
      s4 = f32(s4 + f32(v * data[w + 4]));
      s5 = f32(s5 + f32(v * data[w + 5]));
      s6 = f32(s6 + f32(v * data[w + 6]));
      s7 = f32(s7 + f32(v * data[w + 7]));
    }
    storePanel(out, outOffset, p * PANEL, n, bias, s0, s1, s2, s3, s4, s5, s6, s7);
  }
}

// productRow32 in float64.
function productRow64(x, xOffset, weights, bias, out, outOffset) {
  const { data, k, n, panels } = weights;
  for (let p = 0; p < panels; p++) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (let i = 0, w = p * k * PANEL; i < k; i++, w += PANEL) {
      const v = x[xOffset + i];
      s0 = s0 + v * data[w];
      s1 = s1 + v * data[w + 1];
      s2 = s2 + v * data[w + 2];
      s3 = s3 + v * data[w + 3];
      s4 = s4 + v * data[w + 4];
      s5 = s5 + v * data[w + 5];
      s6 = s6 + v * data[w + 6];
      s7 = s7 + v * data[w + 7];
    }
    storePanel(out, outOffset, p * PANEL, n, bias, s0, s1, s2, s3, s4, s5, s6, s7);
  }
}

function product(x, w, b) {
  if (x.shape.length !== 2 || w.shape.length !== 2 || x.shape[1] !== w.shape[0]) {
    throw new InputError(`cannot multiply ${JSON.stringify(x.shape)} by ${JSON.stringify(w.shape)}`);
  }
  const [m, k] = x.shape;
  const weights = packed(w);
  const out = tensor(x.dtype, [m, weights.n]);
  const bias = b ? b.data : null;
  if (weights.simd !== null) {
    weights.simd.multiply(x.data, 0, m, bias, out.data, 0);
    return out;
  }
  const row = x.dtype === 'float32' ? productRow32 : productRow64;
  for (let r = 0; r < m; r++) row(x.data, r * k, weights, bias, out.data, r * weights.n);
  return out;
}

// ---- conv2d ---------------------------------------------------------------------------------------------------------
// One axis of a convolution (sbif/ops/layers.py conv_axis): the output size, the zero padding before the input, and
// the step between windows. A stride may be 2^63 - 1 (beyond a double's integers); it is used only with more than one
// window, when (out - 1) * stride < size.
function convAxis(size, kernel, stride, padding) {
  const out = padding === 'SAME' ? Math.ceil(size / stride) : Math.floor((size - kernel) / stride) + 1;
  const total = padding === 'SAME' ? Math.max((out - 1) * (out > 1 ? stride : 0) + kernel - size, 0) : 0;
  return { out, before: Math.floor(total / 2), step: out > 1 ? stride : 1 };
}

// conv2d (spec/ops.md): NHWC input, HWIO kernel. Each output pixel's window, zeros where it overhangs the padded image,
// is read in the kernel's [kh, kw, C] order and multiplied by the packed kernel as one row of a product; the sums are
// rounded to x's dtype before the bias is added. Where no window leaves the image (VALID padding, or SAME with none to
// add), the SIMD kernel reads the windows straight from the image, staged in its memory one batch element at a time:
// kh runs of kw * C contiguous floats each. Otherwise it takes windows CHUNK_ROWS at a time, gathered into its input
// staging, and the JavaScript loop takes them one by one.
function conv2d(x, w, b, attrs) {
  const [batch, height, width, channels] = x.shape;
  const [kh, kw, , outChannels] = w.shape;
  const rows = convAxis(height, kh, attrs.strides[0], attrs.padding);
  const columns = convAxis(width, kw, attrs.strides[1], attrs.padding);
  const out = tensor(x.dtype, [batch, rows.out, columns.out, outChannels]);
  const weights = packed(w);
  const { simd } = weights;
  const run = kw * channels; // a window row: kw pixels of C channels, contiguous in NHWC
  const source = x.data;
  const imageFloats = height * width * channels;
  const inside = rows.before === 0 && columns.before === 0 && rows.out > 0 && columns.out > 0
    && (rows.out - 1) * rows.step + kh <= height && (columns.out - 1) * columns.step + kw <= width;
  if (simd !== null && inside && simd.reserveImage(imageFloats)) {
    simd.loadBias(b.data);
    for (let r = 0; r < batch; r++) {
      simd.image.set(source.subarray(r * imageFloats, (r + 1) * imageFloats));
      for (let i = 0; i < rows.out; i++) {
        simd.convolveRow(i * rows.step * width * channels, columns.out, columns.step * channels, kh, run,
          width * channels, out.data, (r * rows.out + i) * columns.out * outChannels);
      }
    }
    return out;
  }
  const size = kh * kw * channels;
  const windows = simd !== null ? simd.input : new x.data.constructor(size);
  const capacity = simd !== null ? CHUNK_ROWS : 1;
  const multiply = x.dtype === 'float32' ? productRow32 : productRow64;
  let staged = 0;
  let outOffset = 0;
  const multiplyStaged = () => {
    if (simd !== null) simd.runStaged(staged, b.data, out.data, outOffset);
    else multiply(windows, 0, weights, b.data, out.data, outOffset);
    outOffset += staged * outChannels;
    staged = 0;
  };
  for (let r = 0; r < batch; r++) {
    for (let i = 0; i < rows.out; i++) {
      const top = i * rows.step - rows.before;
      for (let j = 0; j < columns.out; j++) {
        const left = j * columns.step - columns.before;
        const inside = left >= 0 && left + kw <= width;
        const window = staged * size;
        for (let p = 0; p < kh; p++) {
          const y = top + p;
          const target = window + p * run;
          if (y < 0 || y >= height) {
            windows.fill(0, target, target + run);
          } else if (inside) {
            const start = ((r * height + y) * width + left) * channels;
            for (let t = 0; t < run; t++) windows[target + t] = source[start + t];
          } else {
            for (let q = 0; q < kw; q++) {
              const column = left + q;
              const into = target + q * channels;
              if (column < 0 || column >= width) {
                windows.fill(0, into, into + channels);
              } else {
                const start = ((r * height + y) * width + column) * channels;
                for (let c = 0; c < channels; c++) windows[into + c] = source[start + c];
              }
            }
          }
        }
        if (++staged === capacity) multiplyStaged();
      }
    }
  }
  if (staged > 0) multiplyStaged();
  return out;
}

// ---- inverse_cdf_sample (spec/ops-sampling.md) ----------------------------------------------------------------------
// NumPy's RandomState.choice(n, p=row) given its uniform draw: in float64, the running sums C_j strictly left to
// right, y = the number of j with C_j / C_{n-1} <= u (false for NaN), at most n - 1.
function inverseCdfSample(p, u) {
  const n = p.shape[p.shape.length - 1];
  const out = tensor('int64', p.shape.slice(0, -1));
  const cumulative = new Float64Array(n);
  for (let r = 0; r < out.data.length; r++) {
    let sum = p.data[r * n];
    cumulative[0] = sum;
    for (let j = 1; j < n; j++) {
      sum += p.data[r * n + j];
      cumulative[j] = sum;
    }
    const uniform = u.data[r];
    let k = 0;
    for (let j = 0; j < n; j++) if (cumulative[j] / sum <= uniform) k++;
    out.data[r] = BigInt(Math.min(k, n - 1));
  }
  return out;
}

// The ops whose second input is a weight tensor the kernels read packed.
const PACKED_WEIGHT_OPS = new Set(['linear', 'matmul', 'conv2d']);

/**
 * Prepares a node of `op` whose inputs are `inputs` (a tensor for an input the file holds, else undefined): packs a
 * product's weights now, at load, rather than on the first run; float32 ones into a WebAssembly memory of their own
 * for the SIMD kernel where the engine has it (freed with the weight tensor, i.e. with the model).
 */
export function prepareNode(op, inputs) {
  const weights = inputs[1];
  if (PACKED_WEIGHT_OPS.has(op) && weights !== undefined && isFloat(weights.dtype) && !packedWeights.has(weights)) {
    const n = weights.shape[weights.shape.length - 1];
    const k = count(weights.shape.slice(0, -1));
    const simd = weights.dtype === 'float32' ? packProduct(weights.data, k, n) : null;
    packedWeights.set(weights, simd === null ? packPanels(weights) : { k, n, panels: simd.panels, simd });
  }
}

// Blocks shorter than this are copied element by element: a subarray for TypedArray.set costs more than a short loop.
const SHORTEST_BLOCK_SET = 32;

// Copies `blocks` blocks of `length` elements of `from` (block b at fromStart + b * fromStride) into `to` (block b at
// toStart + b * toStride); both typed arrays of one kind.
function copyBlocks(from, fromStart, fromStride, to, toStart, toStride, length, blocks) {
  for (let b = 0; b < blocks; b++) {
    const source = fromStart + b * fromStride;
    const target = toStart + b * toStride;
    if (length >= SHORTEST_BLOCK_SET) {
      to.set(from.subarray(source, source + length), target);
    } else {
      for (let i = 0; i < length; i++) to[target + i] = from[source + i];
    }
  }
}

// The inputs concatenated along `axis` (their other dimensions equal).
function join(inputs, axis) {
  const first = inputs[0];
  const outer = count(first.shape.slice(0, axis));
  const inner = count(first.shape.slice(axis + 1));
  const total = inputs.reduce((s, t) => s + t.shape[axis], 0);
  const shape = first.shape.slice(0, axis).concat([total], first.shape.slice(axis + 1));
  const out = tensor(first.dtype, shape);
  let start = 0;
  for (const t of inputs) {
    const size = t.shape[axis];
    copyBlocks(t.data, 0, size * inner, out.data, start * inner, total * inner, size * inner, outer);
    start += size;
  }
  return out;
}

// The ops that return a list of tensors, and the ops without inputs.
const SPLIT_LIKE = new Set(['split']);
const NO_INPUTS = new Set(['constant']);

// The outputs (a list) of `op` on `inputs` with `attrs`.
export function apply(op, inputs, attrs) {
  if (!has(OPS, op)) throw new UnsupportedError(`op ${op} is not implemented by ${NAME}`);
  const result = NO_INPUTS.has(op) ? OPS[op](attrs) : OPS[op](...inputs, attrs);
  return SPLIT_LIKE.has(op) ? result : [result];
}
