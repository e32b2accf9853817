// The product kernels (packed weights, 8-column panels, conv2d's gathered windows) against plain loops, on dyadic
// values whose every sum is exact in any order; the element-wise fast paths (strided broadcasts, cast by copy, relu,
// block copies) against their definitions; and inverse_cdf_sample's edges (spec/ops-sampling.md).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { InputError, UnsupportedError, runOp, tensor } from '../src/index.js';

// multiples of 1/16 below 2 in magnitude, from a fixed linear congruential sequence
function dyadic(dtype, shape, seed) {
  let state = seed;
  const size = shape.reduce((a, b) => a * b, 1);
  const values = Array.from({ length: size }, () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return ((state % 64) - 32) / 16;
  });
  return tensor(dtype, shape, values);
}

// conv2d by its definition in spec/ops.md, in float64 (exact on dyadic inputs)
function plainConv(x, w, b, [sh, sw], padding) {
  const [batch, height, width, channels] = x.shape;
  const [kh, kw, , outChannels] = w.shape;
  const axis = (size, kernel, stride) => {
    const out = padding === 'SAME' ? Math.ceil(size / stride) : Math.floor((size - kernel) / stride) + 1;
    const total = padding === 'SAME' ? Math.max((out - 1) * stride + kernel - size, 0) : 0;
    return [out, Math.floor(total / 2)];
  };
  const [ho, top] = axis(height, kh, sh);
  const [wo, left] = axis(width, kw, sw);
  const out = [];
  for (let r = 0; r < batch; r++) {
    for (let i = 0; i < ho; i++) {
      for (let j = 0; j < wo; j++) {
        for (let o = 0; o < outChannels; o++) {
          let sum = 0;
          for (let p = 0; p < kh; p++) {
            for (let q = 0; q < kw; q++) {
              const y = i * sh + p - top;
              const z = j * sw + q - left;
              if (y < 0 || y >= height || z < 0 || z >= width) continue;
              for (let c = 0; c < channels; c++) {
                const weight = w.data[((p * kw + q) * channels + c) * outChannels + o];
                sum += x.data[((r * height + y) * width + z) * channels + c] * weight;
              }
            }
          }
          out.push(sum + b.data[o]);
        }
      }
    }
  }
  return { shape: [batch, ho, wo, outChannels], data: out };
}

test('linear and matmul equal the plain sums, for every panel remainder, in float32 and float64', () => {
  for (const dtype of ['float32', 'float64']) {
    for (const columns of [1, 3, 8, 13, 16]) {
      const x = dyadic(dtype, [5, 11], columns);
      const w = dyadic(dtype, [11, columns], 7 * columns);
      const b = dyadic(dtype, [columns], 3);
      const [withBias] = runOp('linear', [x, w, b]);
      const [without] = runOp('matmul', [x, w]);
      assert.deepEqual(withBias.shape, [5, columns]);
      for (let r = 0; r < 5; r++) {
        for (let c = 0; c < columns; c++) {
          let sum = 0;
          for (let k = 0; k < 11; k++) sum += x.data[r * 11 + k] * w.data[k * columns + c];
          assert.equal(without.data[r * columns + c], sum);
          assert.equal(withBias.data[r * columns + c], sum + b.data[c]);
        }
      }
    }
  }
});

test('conv2d equals its definition: VALID, SAME (uneven padding), strides, windows overhanging every side', () => {
  const cases = [
    [[2, 6, 6, 3], [3, 3, 3, 4], [1, 1], 'VALID'],
    [[1, 7, 7, 2], [4, 4, 2, 3], [2, 2], 'SAME'],
    [[1, 5, 6, 2], [3, 2, 2, 9], [1, 2], 'SAME'],
    [[2, 9, 8, 1], [3, 3, 1, 8], [3, 2], 'VALID'],
  ];
  for (const dtype of ['float32', 'float64']) {
    for (const [xShape, wShape, strides, padding] of cases) {
      const x = dyadic(dtype, xShape, 1);
      const w = dyadic(dtype, wShape, 2);
      const b = dyadic(dtype, [wShape[3]], 3);
      const [y] = runOp('conv2d', [x, w, b], { strides, padding });
      const expected = plainConv(x, w, b, strides, padding);
      assert.deepEqual(y.shape, expected.shape);
      const label = `${dtype} ${JSON.stringify([xShape, wShape, strides, padding])}`;
      assert.deepEqual(Array.from(y.data), expected.data, label);
    }
  }
});

// 2^63 - 1024 is the largest double below 2^63, the largest stride a JavaScript number can give exactly
test('a conv2d stride near 2^63 gives one window, at the start', () => {
  const x = dyadic('float32', [1, 4, 4, 1], 5);
  const w = dyadic('float32', [2, 2, 1, 1], 6);
  const b = tensor('float32', [1], [0]);
  const [y] = runOp('conv2d', [x, w, b], { strides: [2 ** 63 - 1024, 2 ** 63 - 1024], padding: 'VALID' });
  const [first] = runOp('conv2d', [x, w, b], { strides: [1, 1], padding: 'VALID' });
  assert.deepEqual(y.shape, [1, 1, 1, 1]);
  assert.equal(y.data[0], first.data[0]);
});

// x (op) y by NumPy's broadcasting rule, element by element, as plain numbers (or BigInts)
function plainBroadcast(x, y, f) {
  const rank = Math.max(x.shape.length, y.shape.length);
  const pad = (shape) => new Array(rank - shape.length).fill(1).concat(shape);
  const [xs, ys] = [pad(x.shape), pad(y.shape)];
  const shape = xs.map((d, i) => (d === 1 ? ys[i] : d));
  const size = shape.reduce((a, b) => a * b, 1);
  const at = (s, index) => s.reduce((flat, d, axis) => flat * d + (d === 1 ? 0 : index[axis]), 0);
  const data = [];
  for (let k = 0; k < size; k++) {
    const index = [];
    for (let axis = rank - 1, rest = k; axis >= 0; axis--) {
      index.unshift(rest % shape[axis]);
      rest = Math.floor(rest / shape[axis]);
    }
    data.push(f(x.data[at(xs, index)], y.data[at(ys, index)]));
  }
  return { shape, data };
}

test('binary ops broadcast as NumPy does: equal shapes, rows, columns, scalars, either side, the general case', () => {
  const pairs = [
    [[3, 5], [3, 5]],
    [[3, 5], [5]],
    [[3, 5], [1, 5]],
    [[5], [3, 5]],
    [[3, 5], [3, 1]],
    [[3, 1], [3, 5]],
    [[2, 3, 4], [3, 4]],
    [[2, 3, 4], [2, 3, 1]],
    [[2, 3, 4], []],
    [[], [4]],
    [[2, 1, 4], [1, 3, 1]], // neither a row nor a column: the general path
    [[2, 3, 4], [2, 1, 4]],
    [[0, 4], [4]],
  ];
  const ops = { add: (a, b) => a + b, sub: (a, b) => a - b, mul: (a, b) => a * b, div: (a, b) => a / b };
  for (const [xShape, yShape] of pairs) {
    const x = dyadic('float32', xShape, 1);
    const y = dyadic('float32', yShape, 2).data.map((v) => v || 0.5); // no division by zero
    const yTensor = tensor('float32', yShape, y);
    for (const [op, f] of Object.entries(ops)) {
      const [z] = runOp(op, [x, yTensor]);
      const expected = plainBroadcast(x, yTensor, (a, b) => Math.fround(f(a, b)));
      assert.deepEqual(z.shape, expected.shape, `${op} ${JSON.stringify([xShape, yShape])}`);
      assert.deepEqual(Array.from(z.data), expected.data, `${op} ${JSON.stringify([xShape, yShape])}`);
    }
    const [less] = runOp('less', [x, yTensor]);
    assert.equal(less.dtype, 'bool');
    assert.deepEqual(Array.from(less.data), plainBroadcast(x, yTensor, (a, b) => (a < b ? 1 : 0)).data);
  }
  // integers wrap in their dtype, int64 as BigInts
  const [wrapped] = runOp('add', [tensor('int32', [2, 2], [2 ** 31 - 1, 1, -5, 0]), tensor('int32', [2], [1, 2])]);
  assert.deepEqual(Array.from(wrapped.data), [-(2 ** 31), 3, -4, 2]);
  const big = tensor('int64', [2, 1], [2n ** 63n - 1n, 4n]);
  const [bigSum] = runOp('add', [big, tensor('int64', [3], [1n, 2n, 3n])]);
  assert.deepEqual(Array.from(bigSum.data), [-(2n ** 63n), -(2n ** 63n) + 1n, -(2n ** 63n) + 2n, 5n, 6n, 7n]);
});

test('cast to a float rounds as the target array stores; relu keeps NaN; long and short blocks split and join', () => {
  const cases = [
    ['uint8', [0, 7, 255], 'float32', [0, 7, 255]],
    ['int32', [16777217, -16777219, 3], 'float32', [16777216, -16777220, 3]],
    ['float64', [0.1, -1e300, 1e-50], 'float32', [Math.fround(0.1), -Infinity, 0]],
    ['bool', [1, 0], 'float64', [1, 0]],
    ['int64', [2n ** 53n + 1n, -3n], 'float32', [2 ** 53, -3]],
    ['float32', [2.5, -2.5, NaN], 'int32', [2, -2, -(2 ** 31)]],
  ];
  for (const [from, values, to, expected] of cases) {
    const [y] = runOp('cast', [tensor(from, [values.length], values)], { to });
    assert.equal(y.dtype, to);
    assert.deepEqual(Array.from(y.data), expected, `${from} -> ${to}`);
  }
  for (const dtype of ['float32', 'float64']) { // -0 stays -0: zeros' signs are not significant
    const [r] = runOp('relu', [tensor(dtype, [6], [-1, 0, -0, 2.5, NaN, -Infinity])]);
    assert.deepEqual(Array.from(r.data), [0, 0, -0, 2.5, NaN, 0]);
  }
  for (const width of [5, 300]) { // blocks below and above the length TypedArray.set copies
    const x = dyadic('float32', [3, 2 * width], width);
    const [left, right] = runOp('split', [x], { sizes: [width, width], axis: 1 });
    for (let row = 0; row < 3; row++) {
      assert.deepEqual(Array.from(left.data.subarray(row * width, (row + 1) * width)),
        Array.from(x.data.subarray(2 * row * width, (2 * row + 1) * width)));
      assert.deepEqual(Array.from(right.data.subarray(row * width, (row + 1) * width)),
        Array.from(x.data.subarray((2 * row + 1) * width, (2 * row + 2) * width)));
    }
    const [joined] = runOp('concat', [left, right], { axis: 1 });
    assert.deepEqual(Array.from(joined.data), Array.from(x.data));
  }
});

test('inverse_cdf_sample follows NumPy choice given its uniform, and its edge cases', () => {
  const sample = (p, u, dtype = 'float32') => {
    const rows = [tensor(dtype, [u.length, p.length / u.length], p), tensor(dtype, [u.length, 1], u)];
    return Array.from(runOp('inverse_cdf_sample', rows)[0].data, Number);
  };
  // steps at 0.1, 0.3, 0.6 of an unnormalised row; a U on a step selects the next entry
  const row = [1, 2, 3, 4];
  assert.deepEqual(sample([...row, ...row, ...row, ...row], [0, 0.1, 0.35, 0.99], 'float64'), [0, 1, 2, 3]);
  // a zero-probability entry is never drawn; U >= 1 gives the last entry, U < 0 the first
  assert.deepEqual(sample([0, 0.5, 0.5, 0, 0.5, 0.5, 0, 0.5, 0.5], [0, 1, -0.5]), [1, 2, 0]);
  // NaN anywhere, or a zero row, gives 0; +inf: the first infinite entry
  assert.deepEqual(sample([0.5, NaN, 0, 0, 0.2, Infinity], [0.7, 0.7, 0.7]), [0, 0, 1]);
  assert.deepEqual(sample([0.5, 0.5], [NaN]), [0]);
});

test('runOp refuses unknown ops, what is not a tensor, and calls that break the op\'s rule, naming the problem', () => {
  assert.throws(() => runOp('fft', []), UnsupportedError);
  const [x, w, b] = [dyadic('float32', [1, 3, 3, 1], 1), dyadic('float32', [2, 2, 1, 1], 2), tensor('float32', [1])];
  assert.throws(() => runOp('conv2d', [x, w, b], { strides: [1, 1] }),
    /^InputError: op conv2d needs attribute "padding"$/);
  assert.throws(() => runOp('conv2d', [x, w, b], { strides: [1, 1], padding: 'FULL' }), InputError);
  assert.throws(() => runOp('linear', [x, w, b]), /^InputError: op linear: /);
  assert.throws(() => runOp('add', [tensor('float32', [2]), tensor('float64', [2])]), /different dtypes/);
  assert.throws(() => runOp('relu', [x, x]), /^InputError: op relu takes 1 inputs, got 2$/);
  assert.throws(() => runOp('relu', [{ dtype: 'float32', shape: [2], data: [1, 2] }]), InputError);
  assert.throws(() => runOp('relu', 'x'), InputError);
});

test('a weight changed between two runOp calls is used as it is now', () => {
  const x = dyadic('float32', [2, 3], 8);
  const w = dyadic('float32', [3, 2], 9);
  const [before] = runOp('matmul', [x, w]);
  w.data.fill(0);
  const [after] = runOp('matmul', [x, w]);
  assert.ok(before.data.some((v) => v !== 0));
  assert.deepEqual(Array.from(after.data), [0, 0, 0, 0]);
});
