// The WebAssembly SIMD product kernel (src/wasm): its committed bytes against a fresh assembly of product.wat, and its
// sums bit for bit against the reference order it documents, on values whose sums do depend on the rounding order.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { WAT_PATH, assemble } from '../scripts/gen-wasm.mjs';
import { apply, prepareNode } from '../src/ops.js';
import { tensor } from '../src/tensor.js';
import { PRODUCT_KERNEL } from '../src/wasm/product-bytes.js';
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

test('the committed module is product.wat assembled now', () => {
  const bytes = assemble(readFileSync(WAT_PATH, 'utf8'));
  assert.deepEqual(PRODUCT_KERNEL, bytes, 'src/wasm/product-bytes.js is stale: run node scripts/gen-wasm.mjs');
  assert.ok(bytes.length < 4096, 'browsers compile a module of 4 KB or more synchronously only off the main thread');
});

test('the assembler refuses text outside its subset, naming what it cannot read', () => {
  assert.throws(
    () => assemble('(module (func (local.get 0)))'),
    {
      message:
        'product.wat: a function field (local.get ...) outside the subset (instructions are read flat, not folded)',
    },
  );
  assert.throws(() => assemble('(module (func i32.popcnt))'), /product\.wat: unknown instruction i32\.popcnt/);
  assert.throws(() => assemble('(module (func br $nowhere))'), /br to \$nowhere, which encloses no branch/);
  assert.throws(() => assemble('(module (func block $b))'), /a block or loop without its end/);
  assert.throws(() => assemble('(module (table 1 funcref))'), /a module field table outside the subset/);
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

test('an engine without WebAssembly (node --jitless) runs the JavaScript loop and gets the same bits', () => {
  const shapes = [[5, 67], [67, 21], [21]];
  const inputs = shapes.map((shape, index) => Array.from(values(shape.reduce((a, b) => a * b, 1), index + 11)));
  const script = `
    import { apply, prepareNode } from ${JSON.stringify(new URL('../src/ops.js', import.meta.url).href)};
    import { simdAvailable } from ${JSON.stringify(new URL('../src/wasm/product.js', import.meta.url).href)};
    import { tensor } from ${JSON.stringify(new URL('../src/tensor.js', import.meta.url).href)};
    const shapes = ${JSON.stringify(shapes)};
    const [x, w, b] = ${JSON.stringify(inputs)}.map((data, i) => tensor('float32', shapes[i], data));
    prepareNode('linear', [undefined, w]);
    const [y] = apply('linear', [x, w, b], {});
    console.log(JSON.stringify({ simdAvailable, bits: Array.from(new Uint32Array(y.data.buffer)) }));`;
  const answer = execFileSync(process.execPath, ['--jitless', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const child = JSON.parse(answer);
  assert.equal(child.simdAvailable, false);
  const [x, w, b] = inputs.map((data, i) => tensor('float32', shapes[i], data));
  prepareNode('linear', [undefined, w]);
  const [y] = apply('linear', [x, w, b], {});
  assert.deepEqual(child.bits, Array.from(new Uint32Array(y.data.buffer)));
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
