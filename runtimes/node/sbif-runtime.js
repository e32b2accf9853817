#!/usr/bin/env node
// An SBIF runtime in JavaScript: reads .sbif files (safetensors + JSON document) and runs their graphs, speaking
// the conformance protocol (spec/conformance-protocol.md) on stdin/stdout. No dependencies beyond Node.js.
//
//   node runtimes/node/sbif-runtime.js              # then: sbif conformance run --runtime "node runtimes/node/sbif-runtime.js" ...
//
// It implements the ops in OPS below (every SBIF op except conv2d and inverse_cdf_sample, so CNN policies and
// DQN sampling are answered "skipped"), computes only the nodes the requested outputs need, and rounds every
// float32 operation to float32 (Math.fround / Float32Array) as spec/ops.md asks.
'use strict';

const fs = require('fs');
const os = require('os');
const readline = require('readline');

const NAME = 'sbif-node';
const VERSION = '0.1.0';
const PROTOCOL = 1;
const MAX_HEADER = 100 * 1024 * 1024;
const FLT_MAX = 3.4028234663852886e38;
const f32 = Math.fround;

// ---- tensors ---------------------------------------------------------------------------------------------------
// A tensor is {dtype, shape, data}; data is a typed array (int64 as a BigInt64Array, so values and wrap-around
// are exact; bool as a Uint8Array of 0/1).
const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, int16: Int16Array, int32: Int32Array,
  int64: BigInt64Array, uint8: Uint8Array, uint16: Uint16Array, bool: Uint8Array,
};
const INT_BITS = { int8: [8, true], int16: [16, true], int32: [32, true], uint8: [8, false], uint16: [16, false] };
const CODES = { F32: 'float32', F64: 'float64', I8: 'int8', I16: 'int16', I32: 'int32', I64: 'int64', U8: 'uint8',
  U16: 'uint16', BOOL: 'bool' };
const SIZES = { float32: 4, float64: 8, int8: 1, int16: 2, int32: 4, int64: 8, uint8: 1, uint16: 2, bool: 1 };
const isFloat = (dtype) => dtype === 'float32' || dtype === 'float64';
const count = (shape) => shape.reduce((a, b) => a * b, 1);

function tensor(dtype, shape, data) {
  if (!ARRAYS[dtype]) throw new Unsupported(`dtype ${dtype}`);
  if (data === undefined) data = new ARRAYS[dtype](count(shape));
  return { dtype, shape: shape.slice(), data };
}

class Unsupported extends Error {}
class InputError extends Error {}

// ---- the container and the document ------------------------------------------------------------------------------
function readModel(path) {
  const bytes = fs.readFileSync(path);
  if (bytes.length < 8) throw new InputError(`${path}: truncated file`);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  if (headerLength > MAX_HEADER || 8 + headerLength > bytes.length) throw new InputError(`${path}: bad header length`);
  const header = JSON.parse(bytes.toString('utf8', 8, 8 + headerLength));
  const metadata = header.__metadata__ || {};
  if (metadata.format !== 'sbif' || typeof metadata.sbif !== 'string') throw new InputError(`${path}: not an SBIF file`);
  const document = JSON.parse(metadata.sbif);
  if (document.format_version !== 1) throw new Unsupported(`format version ${document.format_version}`);
  const start = 8 + headerLength;
  const tensors = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const dtype = CODES[entry.dtype];
    if (!dtype) throw new Unsupported(`tensor dtype ${entry.dtype}`);
    const [begin, end] = entry.data_offsets;
    if (end - begin !== count(entry.shape) * SIZES[dtype] || start + end > bytes.length) {
      throw new InputError(`${path}: tensor ${name} does not fit its data`);
    }
    const raw = bytes.buffer.slice(bytes.byteOffset + start + begin, bytes.byteOffset + start + end); // a copy
    tensors[name] = tensor(dtype, entry.shape, new ARRAYS[dtype](raw));
  }
  return { document, tensors };
}

const models = new Map();
function loadModel(path) {
  const stat = fs.statSync(path);
  const key = `${path}:${stat.size}:${stat.mtimeMs}`;
  if (!models.has(key)) {
    const { document, tensors } = readModel(path);
    const producers = new Map();
    document.graph.forEach((node, index) => node.outputs.forEach((name) => producers.set(name, index)));
    models.set(key, { document, tensors, producers, inputs: new Map(document.inputs.map((e) => [e.name, e])) });
  }
  return models.get(key);
}

// ---- broadcasting helpers ------------------------------------------------------------------------------------------
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

// For each input, the flat index feeding each output element.
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
    for (let k = 0; k < n; k++) {
      let offset = 0;
      for (let a = 0; a < rank; a++) offset += position[a] * strides[a];
      index[k] = offset;
      for (let a = rank - 1; a >= 0; a--) {
        if (++position[a] < shape[a]) break;
        position[a] = 0;
      }
    }
    return index;
  });
}

function elementwise(inputs, dtype, f) {
  const shape = broadcastShape(inputs.map((t) => t.shape));
  const out = tensor(dtype, shape);
  const same = inputs.every((t) => t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]));
  const n = out.data.length;
  if (same) {
    const arrays = inputs.map((t) => t.data);
    for (let k = 0; k < n; k++) out.data[k] = f(...arrays.map((a) => a[k]));
  } else {
    const index = broadcastIndices(shape, inputs.map((t) => t.shape));
    const arrays = inputs.map((t) => t.data);
    for (let k = 0; k < n; k++) out.data[k] = f(...arrays.map((a, i) => a[index[i][k]]));
  }
  return out;
}

function unary(x, f32f, f64f) {
  if (!isFloat(x.dtype)) throw new InputError(`float input expected, got ${x.dtype}`);
  return elementwise([x], x.dtype, x.dtype === 'float32' ? f32f : (f64f || f32f));
}

// rows of the last axis
function rows(x) {
  const n = x.shape[x.shape.length - 1];
  return { n, count: n === 0 ? 0 : x.data.length / n };
}

const normalizeAxis = (axis, rank) => (axis < 0 ? axis + rank : axis);

// ---- ops ---------------------------------------------------------------------------------------------------------
const SIGMOID32 = (x) => (x < -18 ? 0 : x > 18 ? 1 : f32(1 / f32(1 + f32(Math.exp(f32(-x))))));
const SIGMOID64 = (x) => 1 / (1 + Math.exp(-x));

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
  if (isFloat(from)) value = Number.isFinite(value) ? Math.trunc(value) : 0; // NaN/inf: unspecified
  if (to === 'int64') return BigInt.asIntN(64, big ? value : BigInt(value));
  if (big) {
    const [bits, signed] = INT_BITS[to];
    return Number(signed ? BigInt.asIntN(bits, value) : BigInt.asUintN(bits, value));
  }
  return value; // narrower integer types wrap modulo 2^n when stored in their typed array
}

const OPS = {
  add: (x, y) => elementwise([x, y], x.dtype, (a, b) => a + b),
  sub: (x, y) => elementwise([x, y], x.dtype, (a, b) => a - b),
  mul: (x, y) => elementwise([x, y], x.dtype, (a, b) => a * b),
  div: (x, y) => elementwise([x, y], x.dtype, (a, b) => a / b),
  less: (x, y) => elementwise([x, y], 'bool', (a, b) => (a < b ? 1 : 0)),
  neg: (x) => unary(x, (a) => -a),
  exp: (x) => unary(x, (a) => Math.exp(a)),
  log: (x) => unary(x, (a) => Math.log(a)),
  tanh: (x) => unary(x, (a) => Math.tanh(a)),
  sigmoid: (x) => unary(x, SIGMOID32, SIGMOID64),
  relu: (x) => unary(x, (a) => Math.max(a, 0)),
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
  swish: (x) => unary(x, (a) => f32(a * SIGMOID32(a)), (a) => a * SIGMOID64(a)),
  leaky_relu: (x, attrs) => {
    const alpha = x.dtype === 'float32' ? f32(attrs.alpha) : attrs.alpha;
    return unary(x, (a) => (a > 0 ? a : a * alpha));
  },
  round_half_even: (x) => unary(x, roundHalfEven),
  clip: (x, low, high) => elementwise([x, low, high], x.dtype, (a, l, h) => Math.min(Math.max(a, l), h)),
  cast: (x, attrs) => elementwise([x], attrs.to, (a) => castValue(a, x.dtype, attrs.to)),
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
  expand_dims: (x, attrs) => {
    const axis = normalizeAxis(attrs.axis, x.shape.length + 1);
    return tensor(x.dtype, x.shape.slice(0, axis).concat([1], x.shape.slice(axis)), x.data);
  },
  concat: (...args) => {
    const attrs = args.pop();
    return join(args, normalizeAxis(attrs.axis, args[0].shape.length), false);
  },
  stack: (...args) => {
    const attrs = args.pop();
    const axis = normalizeAxis(attrs.axis, args[0].shape.length + 1);
    const expanded = args.map((t) => tensor(t.dtype, t.shape.slice(0, axis).concat([1], t.shape.slice(axis)), t.data));
    return join(expanded, axis, true);
  },
  split: (x, attrs) => {
    const axis = normalizeAxis(attrs.axis, x.shape.length);
    const outer = count(x.shape.slice(0, axis));
    const inner = count(x.shape.slice(axis + 1));
    const total = x.shape[axis];
    let start = 0;
    return attrs.sizes.map((size) => {
      const out = tensor(x.dtype, x.shape.slice(0, axis).concat([size], x.shape.slice(axis + 1)));
      for (let o = 0; o < outer; o++) {
        for (let s = 0; s < size; s++) {
          for (let i = 0; i < inner; i++) {
            out.data[(o * size + s) * inner + i] = x.data[(o * total + start + s) * inner + i];
          }
        }
      }
      start += size;
      return out;
    });
  },
};

function product(x, w, b) {
  if (x.shape.length !== 2 || w.shape.length !== 2 || x.shape[1] !== w.shape[0]) {
    throw new InputError(`cannot multiply ${JSON.stringify(x.shape)} by ${JSON.stringify(w.shape)}`);
  }
  const round = x.dtype === 'float32' ? f32 : (v) => v;
  const [m, k] = x.shape;
  const n = w.shape[1];
  const out = tensor(x.dtype, [m, n]);
  for (let r = 0; r < m; r++) {
    for (let c = 0; c < n; c++) {
      let sum = 0;
      for (let i = 0; i < k; i++) sum = round(sum + round(x.data[r * k + i] * w.data[i * n + c]));
      out.data[r * n + c] = b ? round(sum + b.data[c]) : sum;
    }
  }
  return out;
}

function join(inputs, axis, stacking) {
  const first = inputs[0];
  const outer = count(first.shape.slice(0, axis));
  const inner = count(first.shape.slice(axis + 1));
  const total = inputs.reduce((s, t) => s + t.shape[axis], 0);
  const shape = first.shape.slice(0, axis).concat([total], first.shape.slice(axis + 1));
  const out = tensor(first.dtype, shape);
  let start = 0;
  for (const t of inputs) {
    const size = t.shape[axis];
    for (let o = 0; o < outer; o++) {
      for (let s = 0; s < size; s++) {
        for (let i = 0; i < inner; i++) out.data[(o * total + start + s) * inner + i] = t.data[(o * size + s) * inner + i];
      }
    }
    start += size;
  }
  return out;
}

const SPLIT_LIKE = new Set(['split']);
const NO_INPUTS = new Set(['constant']);

function apply(op, inputs, attrs) {
  const f = OPS[op];
  if (!f) throw new Unsupported(`op ${op} is not implemented by ${NAME}`);
  const result = NO_INPUTS.has(op) ? f(attrs) : f(...inputs, attrs);
  return SPLIT_LIKE.has(op) ? result : [result];
}

// ---- running a graph -------------------------------------------------------------------------------------------------
function run(model, feeds, wanted) {
  const { document, tensors, producers } = model;
  const needed = new Set();
  const values = new Map(Object.entries(tensors));
  const todo = wanted.slice();
  for (const name of wanted) {
    if (!producers.has(name) && !model.inputs.has(name) && !values.has(name)) throw new InputError(`unknown output ${name}`);
  }
  while (todo.length) {
    const name = todo.pop();
    if (!producers.has(name)) continue;
    const index = producers.get(name);
    if (needed.has(index)) continue;
    needed.add(index);
    todo.push(...document.graph[index].inputs);
  }
  const order = Array.from(needed).sort((a, b) => a - b);
  const missingOps = order.map((i) => document.graph[i].op).filter((op) => !OPS[op]);
  if (missingOps.length) throw new Unsupported(`op(s) ${Array.from(new Set(missingOps)).join(', ')} not implemented by ${NAME}`);
  for (const [name, value] of Object.entries(feeds)) {
    const entry = model.inputs.get(name);
    if (!entry) continue;
    if (entry.dtype !== value.dtype) throw new InputError(`input ${name} must be ${entry.dtype}, got ${value.dtype}`);
    const fits = entry.shape.length === value.shape.length && entry.shape.every((d, i) => d === null || d === value.shape[i]);
    if (!fits) throw new InputError(`input ${name} has shape ${JSON.stringify(value.shape)}`);
    values.set(name, value);
  }
  for (const index of order) {
    const node = document.graph[index];
    const inputs = node.inputs.map((name) => {
      if (!values.has(name)) throw new InputError(`missing input ${name}`);
      return values.get(name);
    });
    const results = apply(node.op, inputs, node.attrs || {});
    node.outputs.forEach((name, i) => values.set(name, results[i]));
  }
  const outputs = {};
  for (const name of wanted) outputs[name] = values.get(name);
  return outputs;
}

// ---- the protocol ------------------------------------------------------------------------------------------------------
function decodeTensor(obj) {
  const { dtype, shape, data } = obj;
  if (!ARRAYS[dtype] || !Array.isArray(shape) || !Array.isArray(data) || data.length !== count(shape)) {
    throw new InputError('malformed tensor');
  }
  const special = { nan: NaN, inf: Infinity, '-inf': -Infinity };
  if (dtype === 'int64') return tensor(dtype, shape, BigInt64Array.from(data, (v) => BigInt(v)));
  const values = data.map((v) => (typeof v === 'string' ? special[v] : typeof v === 'boolean' ? (v ? 1 : 0) : v));
  return tensor(dtype, shape, ARRAYS[dtype].from(values));
}

function encodeTensor(t) {
  const data = new Array(t.data.length);
  for (let k = 0; k < t.data.length; k++) {
    const v = t.data[k];
    if (t.dtype === 'bool') data[k] = v !== 0;
    else if (t.dtype === 'int64') data[k] = BIG_MARK + v.toString();
    else if (v !== v) data[k] = 'nan';
    else if (v === Infinity) data[k] = 'inf';
    else if (v === -Infinity) data[k] = '-inf';
    else data[k] = v;
  }
  return { dtype: t.dtype, shape: t.shape, data };
}

// JSON numbers beyond 2^53 lose digits in JSON.parse / JSON.stringify: long integer literals inside "data" arrays
// are quoted before parsing (and turned into BigInts), and int64 values are written as exact literals.
const BIG_MARK = '\u0000big:';
function parseMessage(line) {
  const quoted = line.replace(/"data":\[([^\]]*)\]/g,
    (whole, items) => '"data":[' + items.replace(/(^|,)\s*(-?\d{16,})\s*(?=,|$)/g, '$1"$2"') + ']');
  return JSON.parse(quoted);
}
function stringify(message) {
  return JSON.stringify(message).replace(/"\\u0000big:(-?\d+)"/g, '$1');
}

function hello() {
  return {
    type: 'hello', protocol: PROTOCOL,
    runtime: { name: NAME, version: VERSION, language: `javascript (node ${process.version})` },
    features: ['run', 'op', 'recurrent', 'sampling'],
    ops: Object.keys(OPS).sort(),
  };
}

function handle(message) {
  if (message.type === 'run') {
    const model = loadModel(message.model);
    const feeds = {};
    for (const [name, value] of Object.entries(message.inputs || {})) feeds[name] = decodeTensor(value);
    const outputs = run(model, feeds, message.outputs);
    const encoded = {};
    for (const [name, value] of Object.entries(outputs)) encoded[name] = encodeTensor(value);
    return { type: 'result', outputs: encoded };
  }
  if (message.type === 'op') {
    const inputs = message.inputs.map(decodeTensor);
    const results = apply(message.op, inputs, message.attrs || {});
    const encoded = {};
    results.forEach((t, i) => { encoded[String(i)] = encodeTensor(t); });
    return { type: 'result', outputs: encoded };
  }
  throw new Unsupported(`${NAME} does not implement ${message.type} requests`);
}

function main() {
  if (os.endianness() !== 'LE') {
    process.stderr.write('sbif-node reads tensors with typed arrays and needs a little-endian machine\n');
    process.exit(2);
  }
  const input = readline.createInterface({ input: process.stdin, terminal: false });
  const write = (message) => process.stdout.write(stringify(message) + '\n');
  input.on('line', (line) => {
    if (!line.trim()) return;
    let message;
    try {
      message = parseMessage(line);
    } catch (error) {
      write({ id: null, type: 'errored', message: `malformed request: ${error.message}` });
      return;
    }
    if (message.type === 'hello') { write(hello()); return; }
    if (message.type === 'shutdown') { write({ type: 'bye' }); input.close(); return; }
    try {
      write(Object.assign({ id: message.id }, handle(message)));
    } catch (error) {
      if (error instanceof Unsupported) write({ id: message.id, type: 'skipped', reason: error.message });
      else write({ id: message.id, type: 'errored', message: error.message, details: error.stack });
    }
  });
}

main();
