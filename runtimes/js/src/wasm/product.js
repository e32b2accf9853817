// The float32 product kernel of product.wat behind a typed-array interface: a weight matrix packed once into its own
// WebAssembly memory, then rows of inputs multiplied by it in chunks.
import { PRODUCT_KERNEL } from './product-bytes.js';

/** Output columns per weight panel, and per kernel tile (two f32x4 vectors). */
export const PANEL = 8;

/** Rows per kernel call: the input and output staging areas hold this many (a multiple of the 4-row tile). */
export const CHUNK_ROWS = 64;

const PAGE_BYTES = 65536;

// The compiled kernel, or null where it cannot run: no WebAssembly, no fixed-width SIMD (validate answers false for
// the kernel's own bytes there, so no separate probe module is needed), or a page whose Content-Security-Policy
// forbids compiling WebAssembly (no 'wasm-unsafe-eval'). Compiled synchronously at import: browsers allow that on the
// main thread for modules under 4 KB, and this one is under 1 KB.
function compileKernel() {
  if (typeof WebAssembly !== 'object' || !WebAssembly.validate(PRODUCT_KERNEL)) return null;
  try {
    return new WebAssembly.Module(PRODUCT_KERNEL);
  } catch {
    return null;
  }
}

const kernelModule = compileKernel();

/** Whether this engine runs the WebAssembly SIMD kernel (else callers keep their JavaScript loops). */
export const simdAvailable = kernelModule !== null;

/**
 * A float32 [k, n] weight matrix packed into the panel layout product.wat reads, in a WebAssembly memory of its own.
 *
 * Ownership: each PackedProduct owns one Memory and one kernel instance, sized once here and never grown, so the
 * Float32Array views below stay attached for the object's life; the memory is freed with the object (nothing else
 * references it). The layout is [weights: panels * k * 8 | input: CHUNK_ROWS * k | output: CHUNK_ROWS * panels * 8]
 * float32s.
 */
export class PackedProduct {
  /**
   * @param {Float32Array} weights the row-major [k, n] matrix (conv2d's [kh, kw, C, O] kernel is its [kh*kw*C, O])
   * @param {number} k
   * @param {number} n
   */
  constructor(weights, k, n) {
    const panels = Math.ceil(n / PANEL);
    const weightFloats = panels * k * PANEL;
    const bytes = 4 * (weightFloats + CHUNK_ROWS * k + CHUNK_ROWS * panels * PANEL);
    this.memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(bytes / PAGE_BYTES)) });
    this.kernel = new WebAssembly.Instance(kernelModule, { env: { memory: this.memory } }).exports.product;
    this.k = k;
    this.n = n;
    this.panels = panels;
    const packed = new Float32Array(this.memory.buffer, 0, weightFloats);
    for (let p = 0; p < panels; p++) {
      const columns = Math.min(PANEL, n - p * PANEL);
      for (let i = 0; i < k; i++) {
        const into = (p * k + i) * PANEL;
        const from = i * n + p * PANEL;
        for (let j = 0; j < columns; j++) packed[into + j] = weights[from + j];
      }
    }
    this.inputAt = 4 * weightFloats;
    this.outputAt = this.inputAt + 4 * CHUNK_ROWS * k;
    /** Staging for up to CHUNK_ROWS input rows of k floats; fill it and call runStaged. */
    this.input = new Float32Array(this.memory.buffer, this.inputAt, CHUNK_ROWS * k);
    /** The sums of runStaged's rows, each padded to panels * PANEL columns. */
    this.output = new Float32Array(this.memory.buffer, this.outputAt, CHUNK_ROWS * panels * PANEL);
  }

  /**
   * Multiplies the first `rows` (at most CHUNK_ROWS) rows staged in `input`, then writes each row's n sums, plus
   * bias[c] (a separately rounded float32 addition) when a bias is given, to out from outOffset on, row after row.
   * @param {number} rows
   * @param {Float32Array | null} bias
   * @param {Float32Array} out
   * @param {number} outOffset
   */
  runStaged(rows, bias, out, outOffset) {
    this.kernel(this.inputAt, rows, this.k, 0, this.panels, this.outputAt);
    const { n, output } = this;
    const stride = this.panels * PANEL;
    for (let r = 0; r < rows; r++) {
      const from = r * stride;
      const into = outOffset + r * n;
      if (bias === null) {
        out.set(output.subarray(from, from + n), into);
      } else {
        for (let c = 0; c < n; c++) out[into + c] = output[from + c] + bias[c];
      }
    }
  }

  /**
   * out[outOffset + r*n + c] = (the sum over i < k of x[xOffset + r*k + i] * W[i, c]) (+ bias[c]) for r < rows.
   * @param {Float32Array} x
   * @param {number} xOffset
   * @param {number} rows
   * @param {Float32Array | null} bias
   * @param {Float32Array} out
   * @param {number} outOffset
   */
  multiply(x, xOffset, rows, bias, out, outOffset) {
    const { k, n } = this;
    for (let done = 0; done < rows; done += CHUNK_ROWS) {
      const chunk = Math.min(CHUNK_ROWS, rows - done);
      const from = xOffset + done * k;
      this.input.set(x.subarray(from, from + chunk * k));
      this.runStaged(chunk, bias, out, outOffset + done * n);
    }
  }
}

/**
 * The packed form of a float32 [k, n] matrix for the SIMD kernel, or null where the kernel cannot run it (no SIMD,
 * or no memory of that size: the caller's JavaScript loops then compute the same sums in the same order).
 */
export function packProduct(weights, k, n) {
  if (kernelModule === null) return null;
  try {
    return new PackedProduct(weights, k, n);
  } catch (error) {
    if (error instanceof RangeError) return null;
    throw error;
  }
}
