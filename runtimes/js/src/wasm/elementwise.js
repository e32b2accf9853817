// spec/ops.md's float32 tanh, sigmoid and relu over whole arrays: the WebAssembly SIMD kernels of elementwise.wat
// where the engine runs them, else JavaScript loops doing the same float32 operations in the same order, so either
// gives the same bits. tanh and sigmoid are TF 1.15's own algorithms (Eigen's rational approximations), not the C
// library's functions.
import { ELEMENTWISE_KERNELS } from './elementwise-bytes.js';

const f32 = Math.fround;

/** Floats per kernel call: the module's memory, one 64 KiB page, sized once and never grown. */
const CHUNK = 16384;

// tanh's coefficients (Eigen's generic_fast_tanh_float), as float32, highest power first: p's of x^13, x^11, ..., x;
// q's of x^6, x^4, x^2, 1
const TANH_P = [-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-8,
  1.48572235717979e-5, 6.37261928875436e-4, 4.89352455891786e-3].map(f32);
const TANH_Q = [1.19825839466702e-6, 1.18534705686654e-4, 2.268434632439e-3, 4.89352518554385e-3].map(f32);

// sigmoid's coefficients (Eigen's scalar_logistic_op<float> packet path), as float32, highest power first: p's of
// x^9, x^7, ..., x; q's of x^10, x^8, ..., 1
const SIGMOID_P = [4.37031012579801e-11, 1.15627324459942e-7, 6.08574864600143e-5, 8.51377133304701e-3,
  2.48287947061529e-1].map(f32);
const SIGMOID_Q = [6.10247389755681e-13, 5.76102136993427e-9, 6.2910678501704e-6, 1.70198817374094e-3,
  1.16817656904453e-1, 9.9315192102318e-1].map(f32);

// The polynomial in x2 with `coefficients` (highest power first) by Horner's rule, each multiplication and addition
// rounded to float32: elementwise.wat's order, step for step.
function hornerFloat32(x2, coefficients) {
  let sum = coefficients[0];
  for (let i = 1; i < coefficients.length; i++) sum = f32(f32(x2 * sum) + coefficients[i]);
  return sum;
}

/**
 * spec/ops.md's float32 tanh as TF 1.15 computes it: x clamped to [-9, 9], then p(x) / q(x), every step rounded to
 * float32 (Math.max and Math.min keep NaN, as the kernel's f32x4.max and min do).
 * @param {number} value a float32
 */
export function tanhFloat32(value) {
  const x = Math.max(-9, Math.min(9, value));
  const x2 = f32(x * x);
  const p = f32(x * hornerFloat32(x2, TANH_P));
  const q = hornerFloat32(x2, TANH_Q);
  return f32(p / q);
}

/**
 * spec/ops.md's float32 sigmoid: 0 below -18, 1 above 18, and between them TF 1.15's packet path, x clamped to
 * [-18, 18], then clamp(p(x) / q(x) + 0.5, 0, 1), every step rounded to float32.
 * @param {number} value a float32
 */
export function sigmoidFloat32(value) {
  const x = Math.max(-18, Math.min(18, value));
  const x2 = f32(x * x);
  const p = f32(x * hornerFloat32(x2, SIGMOID_P));
  const q = hornerFloat32(x2, SIGMOID_Q);
  const y = Math.max(Math.min(f32(f32(p / q) + 0.5), 1), 0);
  return value > 18 ? 1 : value < -18 ? 0 : y;
}

/**
 * spec/ops.md's relu, as elementwise.wat's f32x4.pmax(x, 0) computes it: NaN stays NaN, -0 stays -0.
 * @param {number} value
 */
export function reluFloat32(value) {
  return value < 0 ? 0 : value;
}

// The kernels' exports and the float32 view of their memory, or null where they cannot run: no WebAssembly, no
// fixed-width SIMD (validate answers false for the module's own bytes), or a Content-Security-Policy forbidding
// compilation. Compiled synchronously at import, which browsers allow on the main thread for modules under 4 KB.
function instantiate() {
  if (typeof WebAssembly !== 'object' || !WebAssembly.validate(ELEMENTWISE_KERNELS)) return null;
  try {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const module = new WebAssembly.Module(ELEMENTWISE_KERNELS);
    const { exports } = new WebAssembly.Instance(module, { env: { memory } });
    return { exports, staging: new Float32Array(memory.buffer, 0, CHUNK) };
  } catch {
    return null;
  }
}

const kernels = instantiate();

/** Whether this engine runs the WebAssembly SIMD element-wise kernels (else the JavaScript loops). */
export const elementwiseSimdAvailable = kernels !== null;

// output[i] = scalar(input[i]) for every i, through `kernel` (a function of elementwise.wat) CHUNK floats at a time
// where the kernels run. The last chunk is rounded up to whole vectors: the lanes beyond it map stale floats, which
// nothing reads.
function arrayMap(kernel, scalar) {
  if (kernels === null) {
    return (input, output) => {
      for (let i = 0; i < input.length; i++) output[i] = scalar(input[i]);
    };
  }
  const { staging } = kernels;
  return (input, output) => {
    for (let done = 0; done < input.length; done += CHUNK) {
      const size = Math.min(CHUNK, input.length - done);
      staging.set(input.subarray(done, done + size));
      kernel(0, (size + 3) & ~3);
      output.set(staging.subarray(0, size), done);
    }
  };
}

/**
 * output[i] = tanhFloat32(input[i]) for every i (output may be input).
 * @type {(input: Float32Array, output: Float32Array) => void}
 */
export const tanhArray = arrayMap(kernels?.exports.tanh, tanhFloat32);

/**
 * output[i] = sigmoidFloat32(input[i]) for every i (output may be input).
 * @type {(input: Float32Array, output: Float32Array) => void}
 */
export const sigmoidArray = arrayMap(kernels?.exports.sigmoid, sigmoidFloat32);

/**
 * output[i] = reluFloat32(input[i]) for every i (output may be input).
 * @type {(input: Float32Array, output: Float32Array) => void}
 */
export const reluArray = arrayMap(kernels?.exports.relu, reluFloat32);
