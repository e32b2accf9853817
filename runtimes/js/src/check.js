import { DocumentError, InputError, UnsupportedError } from './errors.js';
import { has, isIntegerLiteral, isObject, jsonValueCount, parseStrict, show } from './json.js';
import { MAX_DIM, MAX_DOCUMENT_VALUES, MAX_GRAPH_NODES, MAX_RANK, MAX_VALUE_BYTES } from './limits.js';
import { NAME } from './about.js';
import { documentSchema, schemaViolation } from './schema.js';
import { INT_BITS, SIZES } from './tensor.js';

// The document (SPEC section 3) and its checks against the container and itself, in SPEC section 7's order: the
// format version, the schema, tensors, inputs, the static type of every node, outputs and predict. Messages begin with
// the file's name (`path`).

// The format versions this runtime reads (SPEC section 8), each validated by its own schema: 1 (SB2) and 2 (adds
// Stable-Baselines3's predict contract).
const FORMAT_VERSIONS = [1, 2];

export function decodeDocument(metadata, path) {
  if (metadata.format !== 'sbif' || !has(metadata, 'sbif')) {
    throw new DocumentError(`${path} is a safetensors file but not an SBIF file (no 'sbif' document in its metadata)`);
  }
  if (jsonValueCount(metadata.sbif, MAX_DOCUMENT_VALUES) > MAX_DOCUMENT_VALUES) {
    throw new DocumentError(`${path}: the SBIF document holds more than ${MAX_DOCUMENT_VALUES} JSON values (SPEC `
      + 'section 3)');
  }
  const document = parseStrict(metadata.sbif, DocumentError, `${path}: the SBIF document`);
  if (!isObject(document)) throw new DocumentError(`${path}: the SBIF document must be a JSON object`);
  const version = document.format_version;
  if (!isIntegerLiteral(document, 'format_version')) {
    throw new DocumentError(`${path}: format_version must be an integer (written without fraction or exponent), got `
      + `${show(version)}`);
  }
  if (!FORMAT_VERSIONS.includes(version)) {
    throw new UnsupportedError(`${path}: format version ${version} is not supported (${NAME} reads versions `
      + `${FORMAT_VERSIONS.join(' and ')})`);
  }
  if (Array.isArray(document.graph) && document.graph.length > MAX_GRAPH_NODES) {
    throw new DocumentError(`${path}: the graph has ${document.graph.length} nodes: at most ${MAX_GRAPH_NODES} (SPEC `
      + 'section 3)');
  }
  const violation = schemaViolation(document, documentSchema(version), documentSchema(version), []);
  if (violation) {
    const where = violation.path.join('/') || '(top level)';
    throw new DocumentError(`${path}: schema violation at ${where}: ${violation.message}`);
  }
  return document;
}
// ---- tensors, inputs and the static check of the graph (SPEC sections 3.2 to 3.6) ----------------------------------
// A static type is {dtype, shape}; null in a shape is the batch dimension, which only the first may be.
const DTYPES = ['float32', 'float64', 'int32', 'int64', 'uint8', 'int8', 'int16', 'uint16', 'bool'];
const FLOATS = ['float32', 'float64'];
const INTEGERS = ['int32', 'int64', 'uint8', 'int8', 'int16', 'uint16'];
// Dimensions, strides, sizes and counts must be below MAX_DIM (int64's maximum is 2^63 - 1), and a tensor or graph
// Whether holder[member] can become a dimension, stride, size or count: an integer literal from `least` to 2^63 - 1.
const isDimension = (holder, member, least = 0) => isIntegerLiteral(holder, member) && holder[member] >= least
  && holder[member] < MAX_DIM;
const spec = (dtype, shape) => ({ dtype, shape: shape.slice() });
const sameShape = (a, b) => a.length === b.length && a.every((d, i) => d === b[i]);
const sameSpec = (a, b) => a.dtype === b.dtype && sameShape(a.shape, b.shape);
export const showSpec = (s) => `${s.dtype}[${s.shape.map((d) => (d === null ? 'B' : d)).join(',')}]`;

class TypeFailure extends Error {} // an op's rule is violated (the caller says where)
function typeFail(message) { throw new TypeFailure(message); }
function requireDtype(s, allowed, role = 'input') {
  if (!allowed.includes(s.dtype)) typeFail(`${role} has dtype ${s.dtype}, expected one of ${allowed.join(', ')}`);
}
// An op along the last axis (argmax, softmax, reduce_mean, layer_norm) needs one, and it must not be the batch: along
// a [B] value's last axis the op would mix the rows, which stay independent (SPEC section 3.5). A batch-free value (a
// tensor's) may have any last axis.
function requireRows(x, op) {
  if (x.shape.length < 1) {
    typeFail(`${op} works along the last axis and needs an input of rank at least 1, got ${showSpec(x)}`);
  }
  if (x.shape[x.shape.length - 1] === null) {
    typeFail(`${op} works along the last axis, which of ${showSpec(x)} is the batch: rows must stay independent`);
  }
}
// The value/dtype pairs `constant` allows (spec/ops.md): true and false suit every dtype; a number is finite as a
// double (parseStrict refuses 1e400; an integer literal beyond a double arrives here as +-Infinity), is never a bool,
// and is integral and within range for an integer dtype, where TF refuses it and a cast would wrap or truncate it.
function checkConstantValue(value, dtype) {
  if (typeof value !== 'number') return;
  if (dtype === 'bool') typeFail('constant of dtype bool takes true or false, not a number');
  if (!Number.isFinite(value)) typeFail('constant value is an integer beyond the range of a double, not finite as one');
  if (!INTEGERS.includes(dtype)) return;
  if (!Number.isInteger(value)) typeFail(`constant value ${value} is not an integer, as dtype ${dtype} needs`);
  const [low, high] = integerRange(dtype);
  if (value < low || value > high) typeFail(`constant value ${value} is out of range for ${dtype}`);
}
// The range of an integer dtype, as doubles. int64's ends are +-2^63: literals beyond 2^53 arrive rounded to a
// double, so 9223372036854775807 (which fits) and 2^63 (which does not) look alike, and both are accepted.
function integerRange(dtype) {
  if (dtype === 'int64') return [-(2 ** 63), 2 ** 63];
  const [bits, signed] = INT_BITS[dtype];
  return signed ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}
function normalizeAxisStatic(axis, rank) {
  if (axis < -rank || axis >= rank) typeFail(`axis ${axis} is out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}
// NumPy broadcasting of static shapes; the batch dimension broadcasts with 1 and itself only
function broadcastStatic(shapes) {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = [];
  for (let axis = 0; axis < rank; axis++) {
    const sizes = new Set();
    for (const s of shapes) {
      const d = axis - rank + s.length >= 0 ? s[axis - rank + s.length] : 1;
      if (d !== 1) sizes.add(d);
    }
    if (sizes.size > 1) typeFail(`shapes ${shapes.map((s) => show(s)).join(' and ')} do not broadcast`);
    out.push(sizes.size ? sizes.values().next().value : 1);
  }
  return out;
}

// Attribute kinds of the value attrs[name], as sbif/ops declares them: an 'int' is a number written without fraction or
// exponent, a 'float' one written with either (SPEC section 1).
const KINDS = {
  int: (attrs, name) => isIntegerLiteral(attrs, name),
  float: (attrs, name) => typeof attrs[name] === 'number' && !isIntegerLiteral(attrs, name),
  list: (attrs, name) => Array.isArray(attrs[name]),
  str: (attrs, name) => typeof attrs[name] === 'string',
  scalar: (attrs, name) => typeof attrs[name] === 'number' || typeof attrs[name] === 'boolean',
};
const unaryFloat = { infer: ([x]) => { requireDtype(x, FLOATS); return [x]; } };
// Arithmetic is not defined on bool (TF 1.15 has no bool kernel for Add, Sub or Mul); `less` compares bools.
function binary(resultDtype) {
  return {
    arity: 2,
    infer: ([x, y]) => {
      if (x.dtype !== y.dtype) typeFail(`operands have different dtypes (${x.dtype} and ${y.dtype})`);
      if (x.dtype === 'bool' && resultDtype !== 'bool') typeFail('arithmetic on bool operands is not defined');
      return [spec(resultDtype || x.dtype, broadcastStatic([x.shape, y.shape]))];
    },
  };
}
const productType = (x, w, b) => {
  requireDtype(x, FLOATS, 'x');
  if (x.dtype !== w.dtype || (b && x.dtype !== b.dtype)) typeFail(`x, w${b ? ' and b' : ''} have different dtypes`);
  const given = [x, w, b].filter(Boolean).map(showSpec).join(', ');
  if (x.shape.length !== 2 || w.shape.length !== 2 || (b && b.shape.length !== 1)) {
    typeFail(`needs x [B, K], w [K, N]${b ? ', b [N]' : ''}, got ${given}`);
  }
  if (x.shape[1] !== w.shape[0] || (b && w.shape[1] !== b.shape[0])) typeFail(`shapes do not chain: ${given}`);
  return [spec(x.dtype, [x.shape[0], w.shape[1]])];
};
const convSize = (size, kernel, stride, padding) => {
  if (size === null) return null;
  return padding === 'SAME' ? Math.ceil(size / stride) : Math.floor((size - kernel) / stride) + 1;
};

// Every op of spec/ops.md and spec/ops-sampling.md: arity (default 1; null: one or more), outputs (default 1; null: as
// the node lists), attributes {name: kind} (all required) and the dtype/shape rule.
const STATIC = {
  add: binary(), sub: binary(), mul: binary(), less: binary('bool'),
  div: { arity: 2, infer: ([x, y]) => { requireDtype(x, FLOATS); return binary().infer([x, y]); } },
  neg: unaryFloat, exp: unaryFloat, log: unaryFloat, tanh: unaryFloat, sigmoid: unaryFloat, relu: unaryFloat,
  relu6: unaryFloat, elu: unaryFloat, selu: unaryFloat, softplus: unaryFloat, softsign: unaryFloat, swish: unaryFloat,
  round_half_even: unaryFloat, erf: unaryFloat,
  softmax: { infer: ([x]) => { requireDtype(x, FLOATS); requireRows(x, 'softmax'); return [x]; } },
  leaky_relu: { attrs: { alpha: 'float' }, infer: unaryFloat.infer },
  clip: {
    arity: 3,
    infer: ([x, low, high]) => {
      if (x.dtype !== low.dtype || x.dtype !== high.dtype) typeFail('clip operands have different dtypes');
      if (x.dtype === 'bool') typeFail('clip of bool values is not defined');
      if (!sameShape(broadcastStatic([x.shape, low.shape, high.shape]), x.shape)) {
        typeFail(`clip bounds ${showSpec(low)} and ${showSpec(high)} would change the shape of ${showSpec(x)}`);
      }
      return [x];
    },
  },
  where: {
    arity: 3,
    infer: ([condition, x, y]) => {
      if (condition.dtype !== 'bool') typeFail(`where's condition is ${condition.dtype}, not bool`);
      if (x.dtype !== y.dtype) typeFail(`where's operands have different dtypes (${x.dtype} and ${y.dtype})`);
      return [spec(x.dtype, broadcastStatic([condition.shape, x.shape, y.shape]))];
    },
  },
  cast: {
    attrs: { to: 'str' },
    infer: ([x], attrs) => {
      if (!DTYPES.includes(attrs.to)) typeFail(`cast to unknown dtype ${show(attrs.to)}`);
      return [spec(attrs.to, x.shape)];
    },
  },
  constant: {
    arity: 0,
    attrs: { value: 'scalar', dtype: 'str' },
    infer: (inputs, attrs) => {
      if (!DTYPES.includes(attrs.dtype)) typeFail(`constant of unknown dtype ${show(attrs.dtype)}`);
      checkConstantValue(attrs.value, attrs.dtype);
      return [spec(attrs.dtype, [])];
    },
  },
  one_hot: {
    attrs: { depth: 'int' },
    infer: ([x], attrs) => {
      requireDtype(x, INTEGERS);
      if (attrs.depth < 1) typeFail(`one_hot depth must be positive, got ${attrs.depth}`);
      return [spec('float32', x.shape.concat([attrs.depth]))];
    },
  },
  argmax: {
    infer: ([x]) => {
      requireDtype(x, FLOATS.concat(INTEGERS)); // not bool: TF 1.15 has no ArgMax kernel for it
      requireRows(x, 'argmax');
      if (x.shape[x.shape.length - 1] === 0) {
        typeFail(`argmax needs a last axis of at least one element, got ${showSpec(x)}`);
      }
      return [spec('int64', x.shape.slice(0, -1))];
    },
  },
  matmul: { arity: 2, infer: ([x, w]) => productType(x, w, null) },
  linear: { arity: 3, infer: ([x, w, b]) => productType(x, w, b) },
  conv2d: {
    arity: 3,
    attrs: { strides: 'list', padding: 'str' },
    infer: ([x, w, b], { strides, padding }) => {
      requireDtype(x, FLOATS, 'x');
      if (x.dtype !== w.dtype || x.dtype !== b.dtype) typeFail('conv2d operands have different dtypes');
      if (x.shape.length !== 4 || w.shape.length !== 4 || !sameShape(b.shape, [w.shape[3]])
        || x.shape[3] !== w.shape[2]) {
        typeFail(`conv2d needs x [B,H,W,C], w [kh,kw,C,O], b [O]; got ${[x, w, b].map(showSpec).join(', ')}`);
      }
      if (strides.length !== 2 || !strides.every((_, i) => isDimension(strides, i, 1))) {
        typeFail(`conv2d strides must be two integers from 1 to 2^63 - 1, got ${show(strides)}`);
      }
      if (padding !== 'VALID' && padding !== 'SAME') {
        typeFail(`conv2d padding must be VALID or SAME, got ${show(padding)}`);
      }
      const out = [1, 2].map((axis) => convSize(x.shape[axis], w.shape[axis - 1], strides[axis - 1], padding));
      if (Math.min(...out) < 1) typeFail(`conv2d input ${showSpec(x)} is smaller than the kernel ${showSpec(w)}`);
      return [spec(x.dtype, [x.shape[0], out[0], out[1], w.shape[3]])];
    },
  },
  layer_norm: {
    arity: 3,
    attrs: { epsilon: 'float' },
    infer: ([x, gamma, beta]) => {
      requireDtype(x, FLOATS, 'x');
      requireRows(x, 'layer_norm');
      const last = x.shape.slice(-1);
      if (x.dtype !== gamma.dtype || x.dtype !== beta.dtype || !sameShape(gamma.shape, last)
        || !sameShape(beta.shape, last)) {
        typeFail(`layer_norm needs gamma and beta of shape [${last}] and x's dtype`);
      }
      return [x];
    },
  },
  reduce_mean: {
    infer: ([x]) => {
      requireDtype(x, FLOATS);
      requireRows(x, 'reduce_mean');
      return [spec(x.dtype, x.shape.slice(0, -1).concat([1]))];
    },
  },
  flatten: {
    infer: ([x]) => {
      if (x.shape.length < 1) typeFail('flatten needs a batch dimension');
      return [spec(x.dtype, [x.shape[0], x.shape.slice(1).reduce((a, b) => a * b, 1)])];
    },
  },
  reshape: {
    attrs: { shape: 'list' },
    infer: ([x], attrs) => {
      if (x.shape.includes(null)) {
        typeFail('reshape applies to tensors without a batch dimension (use flatten for batches)');
      }
      const size = (s) => s.reduce((a, b) => a * BigInt(b), 1n);
      if (!attrs.shape.every((_, i) => isDimension(attrs.shape, i)) || size(attrs.shape) !== size(x.shape)) {
        typeFail(`cannot reshape ${showSpec(x)} to ${show(attrs.shape)}`);
      }
      return [spec(x.dtype, attrs.shape)];
    },
  },
  transpose: {
    // perm holds each axis of x once, as integers counted from 0 (never a bool, never from the end); on a batched
    // value perm[0] is 0, since the batch stays first (SPEC section 3.5). Transpose.infer's decisions, in its order.
    attrs: { perm: 'list' },
    infer: ([x], attrs) => {
      const { perm } = attrs;
      const rank = x.shape.length;
      if (!perm.every((_, i) => isIntegerLiteral(perm, i))) {
        typeFail(`transpose perm ${show(perm)} must hold axis indices (integers)`);
      }
      if (perm.some((axis) => axis < 0)) {
        typeFail(`transpose perm ${show(perm)} has a negative axis: perm counts axes from 0, never from the end`);
      }
      if (perm.length !== rank || new Set(perm).size !== rank || !perm.every((axis) => axis < rank)) {
        typeFail(`transpose perm ${show(perm)} is not a permutation of the ${rank} axes of ${showSpec(x)} `
          + `(each of 0..${rank - 1} once)`);
      }
      if (rank > 0 && x.shape[0] === null && perm[0] !== 0) {
        typeFail(`transpose cannot move the batch dimension: perm ${show(perm)} of ${showSpec(x)} must start with 0`);
      }
      return [spec(x.dtype, perm.map((axis) => x.shape[axis]))];
    },
  },
  expand_dims: {
    attrs: { axis: 'int' },
    infer: ([x], attrs) => {
      const axis = normalizeAxisStatic(attrs.axis, x.shape.length + 1);
      return [spec(x.dtype, x.shape.slice(0, axis).concat([1], x.shape.slice(axis)))];
    },
  },
  squeeze: {
    attrs: { axis: 'int' },
    infer: ([x], attrs) => {
      const axis = normalizeAxisStatic(attrs.axis, x.shape.length);
      if (x.shape[axis] === null) typeFail('squeeze cannot remove the batch dimension');
      if (x.shape[axis] !== 1) typeFail(`squeeze axis ${axis} of ${showSpec(x)} does not have size 1`);
      return [spec(x.dtype, x.shape.filter((_, i) => i !== axis))];
    },
  },
  concat: {
    arity: null,
    attrs: { axis: 'int' },
    infer: (inputs, attrs) => {
      const first = inputs[0];
      const axis = normalizeAxisStatic(attrs.axis, first.shape.length);
      const outside = (s) => s.slice(0, axis).concat(s.slice(axis + 1));
      let total = 0;
      for (const s of inputs) {
        if (s.dtype !== first.dtype || s.shape.length !== first.shape.length) {
          typeFail(`concat inputs differ in dtype or rank: ${showSpec(first)} and ${showSpec(s)}`);
        }
        if (!sameShape(outside(s.shape), outside(first.shape))) {
          typeFail(`concat inputs differ outside axis ${axis}: ${showSpec(first)} and ${showSpec(s)}`);
        }
        if (s.shape[axis] === null) typeFail('concat cannot join along the batch dimension');
        total += s.shape[axis];
      }
      return [spec(first.dtype, first.shape.slice(0, axis).concat([total], first.shape.slice(axis + 1)))];
    },
  },
  split: {
    outputs: null,
    attrs: { sizes: 'list', axis: 'int' },
    infer: ([x], attrs, nOutputs) => {
      const axis = normalizeAxisStatic(attrs.axis, x.shape.length);
      if (attrs.sizes.length !== nOutputs || !attrs.sizes.every((_, i) => isDimension(attrs.sizes, i, 1))) {
        typeFail(`split sizes ${show(attrs.sizes)} must be positive and one per output (${nOutputs})`);
      }
      if (x.shape[axis] === null) typeFail('split cannot cut along the batch dimension');
      if (x.shape[axis] !== attrs.sizes.reduce((a, b) => a + b, 0)) {
        typeFail(`split sizes ${show(attrs.sizes)} do not add up to dimension ${axis} of ${showSpec(x)}`);
      }
      return attrs.sizes.map((size) => spec(x.dtype, x.shape.slice(0, axis).concat([size], x.shape.slice(axis + 1))));
    },
  },
  stack: {
    arity: null,
    attrs: { axis: 'int' },
    infer: (inputs, attrs) => {
      const first = inputs[0];
      if (!inputs.every((s) => sameSpec(s, first))) {
        typeFail(`stack inputs must share dtype and shape: ${inputs.map(showSpec).join(', ')}`);
      }
      const axis = normalizeAxisStatic(attrs.axis, first.shape.length + 1);
      return [spec(first.dtype, first.shape.slice(0, axis).concat([inputs.length], first.shape.slice(axis)))];
    },
  },
  inverse_cdf_sample: {
    arity: 2,
    infer: ([p, u]) => {
      requireDtype(p, FLOATS, 'p');
      requireDtype(u, FLOATS, 'u');
      const n = p.shape[p.shape.length - 1];
      if (p.shape.length < 1 || n === null || n < 1) {
        typeFail(`inverse_cdf_sample needs p with a last axis of at least one entry, got ${showSpec(p)}`);
      }
      if (!sameShape(u.shape, p.shape.slice(0, -1).concat([1]))) {
        typeFail(`inverse_cdf_sample needs u of shape p.shape[:-1] + (1,), got p ${showSpec(p)} and u ${showSpec(u)}`);
      }
      return [spec('int64', p.shape.slice(0, -1))];
    },
  },
};

// A node's attributes checked: no unknown name, every declared one present and of its kind.
// `jsonAttrs` false: attrs are JavaScript values (runOp's), where 1.0 is 1, so any number is a float.
function checkAttrs(op, rule, attrs, where, jsonAttrs = true) {
  if (!isObject(attrs)) throw new DocumentError(`${where}: attributes are an object, got ${show(attrs)}`);
  const declared = rule.attrs || {};
  const unknown = Object.keys(attrs).filter((name) => !has(declared, name));
  if (unknown.length) throw new DocumentError(`${where}: op ${op} has no attribute ${unknown.sort().join(', ')}`);
  for (const [name, kind] of Object.entries(declared)) {
    if (!has(attrs, name)) throw new DocumentError(`${where}: op ${op} needs attribute ${show(name)}`);
    const isFloat = kind === 'float' && !jsonAttrs && typeof attrs[name] === 'number';
    if (!isFloat && !KINDS[kind](attrs, name)) {
      throw new DocumentError(`${where}: attribute ${show(name)} of op ${op} has the wrong type `
        + `(${show(attrs[name])})`);
    }
  }
}

// The size the limits of SPEC sections 3.5 and 5.8 bound, exactly (a BigInt): bytes with `batch` rows in place of the
// batch dimension, every zero dimension counted as 1. (Dimensions beyond 2^53 arrive rounded from JSON.parse, far
// beyond the limits either way.)
export function nominalBytes(s, batch) {
  return s.shape.reduce((bytes, d) => bytes * (d === null ? batch : BigInt(Math.max(d, 1))), BigInt(SIZES[s.dtype]));
}

function define(specs, name, s, where, role) {
  if (specs.has(name)) throw new DocumentError(`${where}: ${role} name ${show(name)} is already defined`);
  if (s.shape.slice(1).includes(null)) {
    throw new DocumentError(`${where}: ${role} ${show(name)}: only the first dimension may be the batch (null)`);
  }
  if (s.shape.some((d) => d !== null && d >= MAX_DIM)) {
    throw new DocumentError(`${where}: ${role} ${show(name)} has shape ${show(s.shape)}: a dimension exceeds 2^63 - 1`);
  }
  if (s.shape.length > MAX_RANK) {
    throw new DocumentError(`${where}: ${role} ${show(name)} has rank ${s.shape.length}, above the limit of `
      + `${MAX_RANK} dimensions`);
  }
  if (nominalBytes(s, 1n) > MAX_VALUE_BYTES) {
    throw new DocumentError(`${where}: ${role} ${show(name)} of type ${showSpec(s)} needs ${nominalBytes(s, 1n)} bytes `
      + `at batch 1 (a zero dimension counted as 1), above the limit of ${MAX_VALUE_BYTES} bytes for one value`);
  }
  specs.set(name, s);
}

// Graph inputs and outputs have the batch (null) as their first dimension (SPEC sections 1, 3.4, 3.6): requests feed
// and return them row by row, so a batch-free one ([2], []) would pass the static check and fail only when run.
function requireBatchFirst(entry, path, role) {
  if (entry.shape.length === 0 || entry.shape[0] !== null) {
    throw new DocumentError(`${path}: ${role} ${show(entry.name)} has shape ${show(entry.shape)}: a graph ${role} has `
      + 'the batch (null) as its first dimension');
  }
}

// The document against the container's entries and its own graph, in SPEC section 7's order; returns the static type
// of every graph value.
export function checkDocument(document, entries, path) {
  const specs = new Map();
  for (const entry of document.tensors) {
    const stored = has(entries, entry.name) ? entries[entry.name] : null;
    const where = `${path}: tensor ${show(entry.name)}`;
    if (!stored) throw new DocumentError(`${where} is listed in the document but missing from the file`);
    if (stored.dtype !== entry.dtype) {
      throw new DocumentError(`${where} is declared ${entry.dtype} but stored as ${stored.dtype}`);
    }
    if (!sameShape(stored.shape, entry.shape)) {
      throw new DocumentError(`${where} is declared with shape ${show(entry.shape)} but stored with shape `
        + `${show(stored.shape)}`);
    }
    define(specs, entry.name, spec(entry.dtype, entry.shape), path, 'tensor');
  }
  const stray = Object.keys(entries).filter((name) => !specs.has(name)).sort();
  if (stray.length) {
    throw new DocumentError(`${path}: the file holds tensors the document does not list: `
      + `${stray.slice(0, 5).join(', ')}`);
  }
  for (const entry of document.inputs) {
    requireBatchFirst(entry, path, 'input');
    define(specs, entry.name, spec(entry.dtype, entry.shape), path, 'input');
    if (entry.kind === 'noise' && entry.dtype !== 'float32') { // the schema requires its distribution
      throw new DocumentError(`${path}: noise input ${show(entry.name)} must be float32`);
    }
  }
  if (document.observation_space.kind === 'dict') {
    checkDictObservationInputs(document, specs, path);
  } else {
    if (!specs.has(OBSERVATION_INPUT) || !document.inputs.some((entry) => entry.kind === 'observation')) {
      throw new DocumentError(`${path}: the graph has no observation input named '${OBSERVATION_INPUT}'`);
    }
    const normalized = has(document.provenance, 'vecnormalize');
    if (normalized && has(document.provenance.vecnormalize, 'keys')) {
      throw new DocumentError(`${path}: provenance.vecnormalize.keys belongs to dict observation spaces`);
    }
    checkObservationInput(document, document.observation_space, specs.get(OBSERVATION_INPUT), path, 'observation',
      normalized);
  }
  document.graph.forEach((node, index) => {
    const where = `${path}: graph node ${index} (${node.op})`;
    if (!has(STATIC, node.op)) {
      throw new UnsupportedError(`${where}: unknown op ${show(node.op)}: ${NAME} knows `
        + `${Object.keys(STATIC).sort().join(', ')}`);
    }
    const rule = STATIC[node.op];
    const attrs = node.attrs || {};
    checkAttrs(node.op, rule, attrs, where);
    const arity = rule.arity === undefined ? 1 : rule.arity;
    if (arity === null ? node.inputs.length < 1 : node.inputs.length !== arity) {
      const takes = arity === null ? 'one or more' : arity;
      throw new DocumentError(`${where}: takes ${takes} inputs, got ${node.inputs.length}`);
    }
    const outputs = rule.outputs === undefined ? 1 : rule.outputs;
    if (outputs !== null && node.outputs.length !== outputs) {
      throw new DocumentError(`${where}: has ${outputs} outputs, got ${node.outputs.length}`);
    }
    const missing = node.inputs.filter((name) => !specs.has(name));
    if (missing.length) {
      throw new DocumentError(`${where}: uses ${missing.map(show).join(', ')} before it is defined (not an input, `
        + 'tensor or earlier output)');
    }
    let results;
    try {
      results = rule.infer(node.inputs.map((name) => specs.get(name)), attrs, node.outputs.length);
    } catch (error) {
      if (error instanceof TypeFailure) throw new DocumentError(`${where}: ${error.message}`);
      throw error;
    }
    node.outputs.forEach((name, i) => define(specs, name, results[i], where, 'output'));
  });
  for (const output of document.outputs) {
    requireBatchFirst(output, path, 'output');
    const where = `${path}: output ${show(output.name)}`;
    if (!specs.has(output.name)) throw new DocumentError(`${where} is never computed by the graph`);
    const declared = spec(output.dtype, output.shape);
    if (!sameSpec(specs.get(output.name), declared)) {
      throw new DocumentError(`${where} is declared ${showSpec(declared)} but the graph computes `
        + `${showSpec(specs.get(output.name))}`);
    }
  }
  checkPredict(document, path);
  checkContract(document, path);
  return specs;
}

// Whose predict the file reproduces (SPEC section 5.9): a version-1 document follows SB2's.
const contract = (document) => (has(document.predict, 'contract') ? document.predict.contract : 'sb2');

// The observation input's name (SPEC section 3.2); a dict observation space's inputs are named the prefix + a key.
const OBSERVATION_INPUT = 'obs';
const DICT_INPUT_PREFIX = 'obs/';
// The most characters of a list a message quotes before '...', as the reference's preview() (sbif/errors.py).
const PREVIEW_CHARS = 80;
const previewNames = (names) => {
  const text = `[${names.map((name) => `'${name}'`).join(', ')}]`;
  return text.length <= PREVIEW_CHARS ? text : `${text.slice(0, PREVIEW_CHARS)}...`;
};

// A dict observation space (SB3 contract, SPEC section 3.2): one observation input per key, obs/KEY, in the keys'
// order, each typed for its space (sbif/format/validate.py's _check_dict_observation_inputs: the same decisions, in
// the same order).
function checkDictObservationInputs(document, specs, path) {
  if (contract(document) !== 'sb3') {
    throw new DocumentError(`${path}: a dict observation space belongs to the SB3 contract, but predict.contract is `
      + 'sb2');
  }
  const keys = document.observation_space.spaces.map((entry) => entry.key);
  if (new Set(keys).size !== keys.length) {
    throw new DocumentError(`${path}: the dict observation space names a key twice`);
  }
  const expected = keys.map((key) => DICT_INPUT_PREFIX + key);
  const found = document.inputs.filter((entry) => entry.kind === 'observation').map((entry) => entry.name);
  if (found.length !== expected.length || found.some((name, i) => name !== expected[i])) {
    throw new DocumentError(`${path}: a dict observation space needs the observation inputs ${previewNames(expected)} `
      + `(one per key, in order), got ${previewNames(found)}`);
  }
  // VecNormalize statistics (SPEC section 5.7): listed per key, never with stacked frames
  const vecnormalize = has(document.provenance, 'vecnormalize') ? document.provenance.vecnormalize : {};
  const normalized = new Set(has(vecnormalize, 'keys') ? vecnormalize.keys : []);
  if (has(document.provenance, 'vecnormalize')) {
    if (!has(vecnormalize, 'keys') || has(vecnormalize, 'frame_stack')) {
      throw new DocumentError(`${path}: provenance.vecnormalize of a dict observation space lists its keys and stacks `
        + 'no frames (SPEC section 5.7)');
    }
    const boxes = new Set(document.observation_space.spaces.filter((entry) => entry.space.kind === 'box')
      .map((entry) => entry.key));
    if (normalized.size !== vecnormalize.keys.length || vecnormalize.keys.some((key) => !boxes.has(key))) {
      throw new DocumentError(`${path}: provenance.vecnormalize.keys must name Box keys of the dict observation `
        + `space, each once, got ${previewNames(vecnormalize.keys)}`);
    }
  }
  for (const entry of document.observation_space.spaces) {
    const name = DICT_INPUT_PREFIX + entry.key;
    checkObservationInput(document, entry.space, specs.get(name), path, `observation '${name}'`,
      normalized.has(entry.key));
  }
}

// An observation input must have the dtype and shape its space implies (SPEC section 3.2); `what` names it in
// messages ('observation', or "observation 'obs/KEY'" for a key of a dict space); `normalized` says whether
// VecNormalize statistics are folded in for it (SPEC section 5.7).
function checkObservationInput(document, space, obs, path, what, normalized) {
  const spaceName = what === 'observation' ? 'observation_space' : `${what} space`;
  // SB3 converts Box and MultiBinary observations with .float() (SPEC section 3.2)
  const sb3 = contract(document) === 'sb3';
  let expected;
  if (space.kind === 'box') {
    // with VecNormalize folded in, the graph takes raw float64 observations and normalizes them itself
    const dtype = normalized ? 'float64' : (sb3 ? 'float32' : space.dtype);
    expected = spec(dtype, [null].concat(space.shape));
    const size = space.shape.reduce((a, b) => a * b, 1);
    for (const bound of ['low', 'high']) {
      if (Array.isArray(space[bound]) && space[bound].length !== size) {
        throw new DocumentError(`${path}: ${spaceName} ${bound}: a Box bound has ${space[bound].length} `
          + `values for a space of ${size} elements`);
      }
      // +-Infinity can only be an integer literal beyond a double (parseStrict refuses 1e400): the reference's float()
      // of it overflows, with the same rounding
      if ([].concat(space[bound]).some((v) => typeof v === 'number' && !Number.isFinite(v))) {
        throw new DocumentError(`${path}: ${spaceName} ${bound}: an integer is too large for a float`);
      }
    }
  } else if (space.kind === 'discrete') {
    expected = spec('int32', [null]);
  } else if (space.kind === 'multi_discrete') {
    expected = spec('int32', [null, space.nvec.length]);
  } else {
    expected = spec(sb3 ? 'float32' : 'int32', [null, space.n]);
  }
  if (!sameSpec(obs, expected)) {
    throw new DocumentError(`${path}: ${what} input is ${showSpec(obs)} but a ${space.kind} observation space `
      + `needs ${showSpec(expected)}`);
  }
}

function checkPredict(document, path) {
  const outputs = new Map(document.outputs.map((output) => [output.name, output]));
  const predict = document.predict;
  const names = [predict.deterministic_action].concat(
    predict.stochastic_action === null ? [] : [predict.stochastic_action],
    Object.values(predict.distribution ? predict.distribution.parameters : {}));
  for (const name of names) {
    if (!outputs.has(name)) {
      throw new DocumentError(`${path}: predict refers to ${show(name)}, which is not a declared output`);
    }
  }
  const inputs = new Map(document.inputs.map((entry) => [entry.name, entry]));
  const recurrent = predict.recurrent;
  if (!recurrent) {
    if (document.inputs.some((entry) => entry.kind === 'state' || entry.kind === 'mask')) {
      throw new DocumentError(`${path}: state/mask inputs without predict.recurrent`);
    }
    return;
  }
  const state = inputs.get(recurrent.state_input);
  const mask = inputs.get(recurrent.mask_input);
  if (!state || state.kind !== 'state' || state.dtype !== 'float32' || state.shape.length !== 2) {
    throw new DocumentError(`${path}: predict.recurrent.state_input must name a float32 [B, S] input of kind 'state'`);
  }
  if (!mask || mask.kind !== 'mask' || mask.dtype !== 'float32' || !sameShape(mask.shape, [null])) {
    throw new DocumentError(`${path}: predict.recurrent.mask_input must name a float32 [B] input of kind 'mask'`);
  }
  const out = outputs.get(recurrent.state_output);
  if (!out || out.dtype !== 'float32' || !sameShape(out.shape, state.shape)) {
    throw new DocumentError(`${path}: predict.recurrent.state_output must name a declared output shaped like the state `
      + 'input');
  }
}

// The version-2 predict fields name inputs of the right kind and type, and only the SB3 contract uses them (SPEC
// section 5.9): an SB2 file with an action mask would be run by SB2's rules, which have none.
function checkContract(document, path) {
  const predict = document.predict;
  const inputs = new Map(document.inputs.map((entry) => [entry.name, entry]));
  const recurrent = predict.recurrent || {};
  const sb3Fields = ['channels_last', 'action_mask', 'shared_noise'].filter((field) => has(predict, field))
    .concat(has(recurrent, 'state_layout') ? ['recurrent.state_layout'] : []);
  const masks = document.inputs.filter((entry) => entry.kind === 'action_mask').map((entry) => entry.name);
  if (contract(document) !== 'sb3') {
    if (sb3Fields.length) {
      throw new DocumentError(`${path}: predict.${sb3Fields[0]} belongs to the SB3 contract, but predict.contract is `
        + 'sb2');
    }
    if (masks.length) throw new DocumentError(`${path}: an action_mask input under the SB2 contract, which has none`);
    return;
  }
  if (predict.deterministic_default !== false) {
    throw new DocumentError(`${path}: deterministic_default must be false under the SB3 contract (SB3's predict `
      + 'samples unless told otherwise)');
  }
  const named = has(predict, 'action_mask') ? predict.action_mask : null;
  if (named === null ? masks.length !== 0 : masks.length !== 1 || masks[0] !== named) {
    throw new DocumentError(`${path}: predict.action_mask must name the one input of kind 'action_mask' (inputs of `
      + `that kind: ${masks.map(show).join(', ') || 'none'})`);
  }
  if (named !== null) {
    const mask = inputs.get(named);
    if (mask.dtype !== 'bool' || mask.shape.length !== 2) {
      throw new DocumentError(`${path}: the action mask ${show(named)} must be a bool [B, L] input`);
    }
  }
  const shared = predict.shared_noise || [];
  if (new Set(shared).size !== shared.length) {
    throw new DocumentError(`${path}: predict.shared_noise names an input twice`);
  }
  for (const name of shared) {
    if (!inputs.has(name) || inputs.get(name).kind !== 'noise') {
      throw new DocumentError(`${path}: predict.shared_noise names ${show(name)}, which is not a noise input`);
    }
  }
  if (has(recurrent, 'state_layout')) {
    // checkPredict found the state input float32 [B, S]; S is at most 2^26 (SPEC section 3.5's value limit), so the
    // products compared with it are exact where they could match
    const { layers, hidden } = recurrent.state_layout;
    const size = inputs.get(recurrent.state_input).shape[1];
    const cells = layers * hidden;
    if (size !== 2 * cells && size !== 4 * cells) {
      throw new DocumentError(`${path}: the state has ${size} columns, but an LSTM state of ${layers} layers of `
        + `${hidden} units holds 2 x ${cells} (the actor's h and c) or 4 x ${cells} (with the critic's)`);
    }
  }
}


/**
 * Checks one call of `op` on tensors, as a graph node's (runOp, the protocol's `op` requests): its attributes, arity
 * and the dtype/shape rule, throwing an InputError that names the violation. `jsonAttrs`: the attributes were parsed
 * from JSON text (a protocol request), where an integer is told from a float by how it is written.
 */
export function checkOpCall(op, inputs, attrs, jsonAttrs) {
  const rule = STATIC[op];
  const where = `op ${op}`;
  try {
    checkAttrs(op, rule, attrs, where, jsonAttrs);
  } catch (error) {
    // its messages say where (`where: ...`) and then name the op
    if (error instanceof DocumentError) throw new InputError(error.message.slice(where.length + 2));
    throw error;
  }
  const arity = rule.arity === undefined ? 1 : rule.arity;
  if (arity === null ? inputs.length < 1 : inputs.length !== arity) {
    throw new InputError(`${where} takes ${arity === null ? 'one or more' : arity} inputs, got ${inputs.length}`);
  }
  const outputs = rule.outputs === undefined ? 1 : attrs.sizes.length;
  try {
    rule.infer(inputs.map((t) => spec(t.dtype, t.shape)), attrs, outputs);
  } catch (error) {
    if (error instanceof TypeFailure) throw new InputError(`${where}: ${error.message}`);
    throw error;
  }
}
