// The WebAssembly SIMD kernels (src/wasm): their committed bytes against a fresh assembly of their text; the product's
// sums bit for bit against the reference order it documents, on values whose sums do depend on the rounding order; the
// element-wise kernels against TF 1.15's vectors and their JavaScript fallbacks.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { MODULES, assemble } from '../scripts/gen-wasm.mjs';
import { apply, prepareNode } from '../src/ops.js';
import { tensor } from '../src/tensor.js';
import {
  elementwiseSimdAvailable, reluArray, reluFloat32, sigmoidArray, sigmoidFloat32, tanhArray, tanhFloat32,
} from '../src/wasm/elementwise.js';
import { CHUNK_ROWS, packProduct, simdAvailable } from '../src/wasm/product.js';

const f32 = Math.fround;

// The reference order: each output's k terms from i = 0 up, starting from +0, each product rounded to float32 and then
// each sum; the bias added to the rounded sum.
function reference(x, w, bias, rows, k, n) {
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < n; c++) {
      let sum = 0;
      for (let i = 0; i < k; i++) sum = f32(sum + f32(x[r * k + i] * w[i * n + c]));
      out[r * n + c] = bias === null ? sum : f32(sum + bias[c]);
    }
  }
  return out;
}

// The same sums with each product fused into its addition (one rounding per term), to show the values discriminate.
function fusedReference(x, w, rows, k, n) {
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < n; c++) {
      let sum = 0;
      for (let i = 0; i < k; i++) sum = f32(sum + x[r * k + i] * w[i * n + c]);
      out[r * n + c] = sum;
    }
  }
  return out;
}

// float32 values of mixed magnitudes (full mantissas), from a fixed linear congruential sequence
function values(size, seed) {
  let state = seed;
  return Float32Array.from({ length: size }, () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return (state / 2147483648 - 0.5) * 2 ** ((state % 7) - 3);
  });
}

function assertSameBits(actual, expected, what) {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

test('each committed module is its text assembled now', async () => {
  for (const module of MODULES) {
    const bytes = assemble(readFileSync(module.wat, 'utf8'), module.wat);
    const committed = (await import(pathToFileURL(module.bytes).href))[module.exported];
    assert.deepEqual(committed, bytes, `${module.bytes} is stale: run node scripts/gen-wasm.mjs`);
    assert.ok(bytes.length < 4096, 'browsers compile a module of 4 KB or more synchronously only off the main thread');
  }
});

test("the kernels' float32 constants are the floats nearest their decimals (no double rounding on the way)", () => {
  // the assembler reads a decimal into a double and rounds that to float32, which rounds the way the decimal would
  // unless the double is exactly halfway between two floats
  const float = new Float32Array(1);
  const bits = new Uint32Array(float.buffer);
  for (const module of MODULES) {
    for (const [, decimal] of readFileSync(module.wat, 'utf8').matchAll(/v128\.const f32x4 (\S+)/g)) {
      const double = Number(decimal);
      float[0] = double;
      if (float[0] === double) continue;
      const nearest = float[0];
      bits[0] += Math.abs(double) > Math.abs(nearest) ? 1 : -1; // the float on the double's other side
      assert.notEqual(double, (nearest + float[0]) / 2, `${decimal} is halfway between two floats`);
    }
  }
});

test('the assembler refuses text outside its subset, naming the file and what it cannot read', () => {
  const assembleProduct = (text) => assemble(text, 'product.wat');
  assert.throws(
    () => assembleProduct('(module (func (local.get 0)))'),
    {
      message:
        'product.wat: a function field (local.get ...) outside the subset (instructions are read flat, not folded)',
    },
  );
  assert.throws(() => assembleProduct('(module (func i32.popcnt))'), /product\.wat: unknown instruction i32\.popcnt/);
  assert.throws(() => assembleProduct('(module (func br $nowhere))'), /br to \$nowhere, which encloses no branch/);
  assert.throws(() => assembleProduct('(module (func block $b))'), /a block or loop without its end/);
  assert.throws(() => assembleProduct('(module (table 1 funcref))'), /a module field table outside the subset/);
  assert.throws(() => assembleProduct('(module (func v128.const f32x4 1 2 x 4))'), /v128\.const: x is not a number/);
});

test('Node >= 16.4 runs the SIMD kernel (a module it refused would silently leave the JavaScript loops)', () => {
  assert.equal(simdAvailable, true);
});

test('sums equal the reference order bit for bit: tiles, panel remainders, chunks, with and without bias', () => {
  for (const [rows, k, n] of [
    [1, 13, 1],
    [3, 13, 7],
    [4, 400, 9],
    [5, 1, 8],
    [7, 57, 16],
    [CHUNK_ROWS + 5, 31, 19],
    [2 * CHUNK_ROWS + 3, 64, 300],
  ]) {
    const x = values(rows * k, rows + 1);
    const w = values(k * n, k + 2);
    const bias = values(n, n + 3);
    const packed = packProduct(w, k, n);
    for (const b of [null, bias]) {
      const out = new Float32Array(rows * n + 3).fill(-7);
      packed.multiply(x, 0, rows, b, out, 2);
      assertSameBits(out.subarray(2, 2 + rows * n), reference(x, w, b, rows, k, n), `[${rows}, ${k}] x [${k}, ${n}]`);
      assert.deepEqual([out[0], out[1], out[rows * n + 2]], [-7, -7, -7], 'nothing written outside the rows');
    }
  }
  // the values do tell the orders apart: unfused and fused sums differ somewhere
  const [rows, k, n] = [9, 400, 30];
  const x = values(rows * k, 5);
  const w = values(k * n, 6);
  const unfused = reference(x, w, null, rows, k, n);
  assert.ok(unfused.some((value, i) => value !== fusedReference(x, w, rows, k, n)[i]));
});

test('every mix of 4-row tiles and the last rows\' groups of four, two and one panels equals the reference', () => {
  for (let rows = 1; rows <= 6; rows++) {
    for (let n = 1; n <= 9 * 8; n += 7) { // 1 to 9 panels, the last one full or not
      const k = 3 + rows;
      const x = values(rows * k, rows);
      const w = values(k * n, n);
      const bias = values(n, k);
      const out = new Float32Array(rows * n);
      packProduct(w, k, n).multiply(x, 0, rows, bias, out, 0);
      assertSameBits(out, reference(x, w, bias, rows, k, n), `[${rows}, ${k}] x [${k}, ${n}]`);
    }
  }
});

test("a row's sums do not depend on its batch, its place in a tile, or the rows staged before it", () => {
  const [rows, k, n] = [11, 37, 21];
  const x = values(rows * k, 8);
  const w = values(k * n, 9);
  const packed = packProduct(w, k, n);
  const batch = new Float32Array(rows * n);
  packed.multiply(x, 0, rows, null, batch, 0);
  for (let r = rows - 1; r >= 0; r--) {
    const alone = new Float32Array(n);
    packed.multiply(x, r * k, 1, null, alone, 0);
    assertSameBits(alone, batch.subarray(r * n, (r + 1) * n), `row ${r}`);
  }
});

test("ops.js: a model's weights (packed at load: SIMD) and any other (the JavaScript loop) give the same bits", () => {
  const cases = [
    ['linear', [[1, 400], [400, 300], [300]], {}],
    ['linear', [[9, 57], [57, 19], [19]], {}],
    ['matmul', [[6, 33], [33, 17]], {}],
    ['conv2d', [[2, 9, 9, 8], [3, 3, 8, 13], [13]], { strides: [2, 1], padding: 'SAME' }],
    ['conv2d', [[3, 15, 15, 4], [4, 4, 4, 16], [16]], { strides: [2, 2], padding: 'VALID' }],
    // windows read straight from the image: rows of more windows than a kernel call takes, odd channel counts
    ['conv2d', [[2, 6, 70, 3], [3, 4, 3, 10], [10]], { strides: [1, 1], padding: 'VALID' }],
    ['conv2d', [[2, 20, 20, 5], [8, 8, 5, 32], [32]], { strides: [4, 4], padding: 'VALID' }],
    ['conv2d', [[1, 7, 9, 6], [1, 1, 6, 7], [7]], { strides: [2, 3], padding: 'SAME' }],
  ];
  for (const [op, shapes, attrs] of cases) {
    const inputs = shapes.map((shape, index) => {
      return tensor('float32', shape, values(shape.reduce((a, b) => a * b, 1), index + 4));
    });
    const [viaJavaScript] = apply(op, inputs, attrs);
    const modelWeight = tensor('float32', inputs[1].shape, inputs[1].data);
    prepareNode(op, [undefined, modelWeight]);
    const [viaSimd] = apply(op, [inputs[0], modelWeight, ...inputs.slice(2)], attrs);
    assertSameBits(viaSimd.data, viaJavaScript.data, `${op} ${JSON.stringify(shapes)}`);
  }
});

// float32 arguments for the element-wise kernels: a spread over [-24, 24] and the edges of both ops, as bit patterns
// (which keep -0 and NaN through JSON)
function elementwiseArguments() {
  const spread = Array.from(values(4099, 3), (value) => value * 6);
  const edges = [0, -0, NaN, Infinity, -Infinity, 9, -9, 9.5, 18, -18, 18.000002, -18.000002, 1e-38, -3e-36, 3.4e38];
  return Array.from(new Uint32Array(Float32Array.from(spread.concat(edges)).buffer));
}

test('an engine without WebAssembly (node --jitless) runs the JavaScript loops and gets the same bits', () => {
  const shapes = [[5, 67], [67, 21], [21]];
  const inputs = shapes.map((shape, index) => Array.from(values(shape.reduce((a, b) => a * b, 1), index + 11)));
  const argumentBits = elementwiseArguments();
  const script = `
    import { apply, prepareNode } from ${JSON.stringify(new URL('../src/ops.js', import.meta.url).href)};
    import { simdAvailable } from ${JSON.stringify(new URL('../src/wasm/product.js', import.meta.url).href)};
    import { elementwiseSimdAvailable } from ${JSON.stringify(new URL('../src/wasm/elementwise.js', import.meta.url))};
    import { tensor } from ${JSON.stringify(new URL('../src/tensor.js', import.meta.url).href)};
    const shapes = ${JSON.stringify(shapes)};
    const [x, w, b] = ${JSON.stringify(inputs)}.map((data, i) => tensor('float32', shapes[i], data));
    prepareNode('linear', [undefined, w]);
    const [y] = apply('linear', [x, w, b], {});
    const values = new Float32Array(Uint32Array.from(${JSON.stringify(argumentBits)}).buffer);
    const bits = (t) => Array.from(new Uint32Array(t.data.buffer));
    const ops = ['tanh', 'sigmoid', 'relu'];
    const mapped = ops.map((op) => bits(apply(op, [tensor('float32', [values.length], values)])[0]));
    console.log(JSON.stringify({ simdAvailable, elementwiseSimdAvailable, bits: bits(y), mapped }));`;
  const answer = execFileSync(process.execPath, ['--jitless', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const child = JSON.parse(answer);
  assert.equal(child.simdAvailable, false);
  assert.equal(child.elementwiseSimdAvailable, false);
  const [x, w, b] = inputs.map((data, i) => tensor('float32', shapes[i], data));
  prepareNode('linear', [undefined, w]);
  const [y] = apply('linear', [x, w, b], {});
  assert.deepEqual(child.bits, Array.from(new Uint32Array(y.data.buffer)));
  const valuesHere = new Float32Array(Uint32Array.from(argumentBits).buffer);
  ['tanh', 'sigmoid', 'relu'].forEach((op, index) => {
    const [mapped] = apply(op, [tensor('float32', [valuesHere.length], valuesHere)], {});
    // NaN's payload is unspecified: compare NaN as NaN, everything else bit for bit
    const words = (floats) => {
      return Array.from(new Uint32Array(floats.buffer), (word, i) => (Number.isNaN(floats[i]) ? 'NaN' : word));
    };
    const there = new Float32Array(Uint32Array.from(child.mapped[index]).buffer);
    assert.deepEqual(words(there), words(mapped.data), op);
  });
});

const VECTORS = new URL('../../../spec/vectors/', import.meta.url);
const fromJson = (value) => ({ nan: NaN, inf: Infinity, '-inf': -Infinity })[value] ?? value;

function vectorCases(op) {
  return JSON.parse(readFileSync(new URL(`${op}.json`, VECTORS), 'utf8')).cases.map((c) => ({
    name: c.name,
    x: Float32Array.from(c.inputs[0].data, fromJson),
    expected: Float32Array.from(c.outputs[0].data, fromJson),
  }));
}

test("tanh is TF 1.15's bit for bit on its vectors, but where TF flushes a subnormal (tiny_*: within 2^-118)", () => {
  assert.equal(elementwiseSimdAvailable, true);
  for (const { name, x, expected } of vectorCases('tanh')) {
    const y = new Float32Array(x.length);
    tanhArray(x, y);
    for (let i = 0; i < x.length; i++) {
      if (name.startsWith('tiny_')) assert.ok(Math.abs(y[i] - expected[i]) <= 2 ** -118, `${name}[${i}]`);
      else assert.ok(Object.is(y[i], expected[i]), `${name}[${i}]: tanh(${x[i]}) is ${y[i]}, TF gives ${expected[i]}`);
    }
  }
});

test("sigmoid is TF 1.15's packet path bit for bit, and within 2^-21 of its scalar path", () => {
  for (const { name, x, expected } of vectorCases('sigmoid')) {
    const y = new Float32Array(x.length);
    sigmoidArray(x, y);
    // TF computes whole packets of 8 with the approximation, the rest (a tensor's last size mod 8) with 1/(1+exp(-x))
    const packets = x.length - (x.length % 8);
    for (let i = 0; i < x.length; i++) {
      if (i < packets) assert.ok(Object.is(y[i], expected[i]), `${name}[${i}]: ${y[i]}, TF gives ${expected[i]}`);
      else assert.ok(Math.abs(y[i] - expected[i]) <= 2 ** -21 || Object.is(y[i], expected[i]), `${name}[${i}]`);
    }
  }
});

test('the element-wise kernels and their JavaScript fallbacks give the same bits, across chunks and in place', () => {
  const x = new Float32Array(Uint32Array.from(elementwiseArguments()).buffer);
  const long = new Float32Array(3 * 16384 + 7).map((_, i) => x[i % x.length]);
  const pairs = [[tanhArray, tanhFloat32], [sigmoidArray, sigmoidFloat32], [reluArray, reluFloat32]];
  for (const [mapArray, scalar] of pairs) {
    const y = long.slice();
    mapArray(y, y);
    for (let i = 0; i < long.length; i++) {
      const expected = scalar(long[i]);
      if (!(Object.is(y[i], expected) || (Number.isNaN(y[i]) && Number.isNaN(expected)))) {
        assert.fail(`${scalar.name}(${long[i]}): the kernel gives ${y[i]}, JavaScript ${expected}`);
      }
    }
  }
});

test('IEEE specials: sums start from +0, infinities and NaN propagate, an empty sum is the bias', () => {
  const w = Float32Array.from([0, 1, 1, 1, Infinity, 1]); // [3, 2]
  const packed = packProduct(w, 3, 2);
  const out = new Float32Array(6);
  // row 0: (-1*0 = -0) + 0*1 + (0*Inf = NaN), -1*1 + 0*1 + 0*1; row 1: 1*0 + NaN*1 + 0*Inf, 1*1 + NaN*1 + 0*1
  packed.multiply(Float32Array.from([-1, 0, 0, 1, NaN, 0]), 0, 2, null, out, 0);
  assert.deepEqual(Array.from(out.subarray(0, 4)), [NaN, -1, NaN, NaN]);
  const negativeZero = packProduct(Float32Array.from([0]), 1, 1);
  negativeZero.multiply(Float32Array.from([-1]), 0, 1, null, out, 0);
  assert.ok(Object.is(out[0], 0), '+0 + (-1 * 0) is +0');
  const empty = packProduct(new Float32Array(0), 0, 3);
  empty.multiply(new Float32Array(0), 0, 2, Float32Array.from([1.5, -0, 2]), out, 0);
  assert.deepEqual(Array.from(out), [1.5, 0, 2, 1.5, 0, 2]);
});

test('the staging views stay attached: the memory is sized once and never grows', () => {
  const packed = packProduct(values(50 * 40, 1), 50, 40);
  const pages = packed.memory.buffer.byteLength;
  packed.multiply(values(3 * CHUNK_ROWS * 50, 2), 0, 3 * CHUNK_ROWS, null, new Float32Array(3 * CHUNK_ROWS * 40), 0);
  assert.equal(packed.memory.buffer.byteLength, pages);
  assert.equal(packed.input.length, CHUNK_ROWS * 50);
  assert.equal(packed.output.byteLength, CHUNK_ROWS * 40 * 4);
});
