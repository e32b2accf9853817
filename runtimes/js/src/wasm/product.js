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
 * Ownership: each PackedProduct owns one Memory and one kernel instance; the memory is freed with the object (nothing
 * else references it). Its layout is [weights: panels * k * 8 | bias: panels * 8 | input: CHUNK_ROWS * k |
 * output: CHUNK_ROWS * panels * 8 | image] float32s, sized here but for the image, which conv2d's first call stages
 * (reserveImage): the memory grows then, once for the largest image, and the views below are made again.
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
    this.biasAt = 4 * weightFloats;
    this.inputAt = this.biasAt + 4 * panels * PANEL;
    this.outputAt = this.inputAt + 4 * CHUNK_ROWS * k;
    this.imageAt = this.outputAt + 4 * CHUNK_ROWS * panels * PANEL;
    this.memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(this.imageAt / PAGE_BYTES)) });
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
    this.#makeViews();
  }

  // The views of the memory's current buffer (a grown memory detaches the old one).
  #makeViews() {
    const { buffer } = this.memory;
    /** The bias the kernel adds: n floats, then zeros. */
    this.bias = new Float32Array(buffer, this.biasAt, this.n);
    /** Staging for up to CHUNK_ROWS input rows of k floats; fill it and call runStaged. */
    this.input = new Float32Array(buffer, this.inputAt, CHUNK_ROWS * this.k);
    /** The results of a kernel call's rows, each padded to panels * PANEL columns. */
    this.output = new Float32Array(buffer, this.outputAt, CHUNK_ROWS * this.panels * PANEL);
    /** Staging for one image whose windows convolveRow multiplies. */
    this.image = new Float32Array(buffer, this.imageAt, (buffer.byteLength - this.imageAt) / 4);
  }

  /**
   * Makes room for an image of `floats` float32s in `image`, growing the memory if need be; false where it cannot
   * grow that far (the caller then gathers windows into `input` instead).
   * @param {number} floats
   */
  reserveImage(floats) {
    if (floats <= this.image.length) return true;
    const pages = Math.ceil((this.imageAt + 4 * floats) / PAGE_BYTES) - this.memory.buffer.byteLength / PAGE_BYTES;
    try {
      this.memory.grow(pages);
    } catch (error) {
      if (error instanceof RangeError) return false;
      throw error;
    }
    this.#makeViews();
    return true;
  }

  /**
   * Sets the bias the kernel adds to every result of the calls that follow (null: none).
   * @param {Float32Array | null} bias n floats
   */
  loadBias(bias) {
    if (bias === null) this.bias.fill(0);
    else this.bias.set(bias);
  }

  // Runs the kernel on `rows` (at most CHUNK_ROWS) rows of X at byte `x` (see product.wat for step, runs, run and
  // runStep), then copies each row's n results to out from outOffset on.
  #run(x, rows, step, runs, run, runStep, out, outOffset) {
    this.kernel(x, rows, step, runs, run, runStep, 0, this.panels, this.biasAt, this.outputAt);
    const { n, output } = this;
    const stride = this.panels * PANEL;
    if (stride === n) {
      out.set(output.subarray(0, rows * n), outOffset);
      return;
    }
    for (let r = 0; r < rows; r++) out.set(output.subarray(r * stride, r * stride + n), outOffset + r * n);
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
    this.loadBias(bias);
    const rowBytes = 4 * this.k;
    this.#run(this.inputAt, rows, rowBytes, 1, rowBytes, 0, out, outOffset);
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
    this.loadBias(bias);
    for (let done = 0; done < rows; done += CHUNK_ROWS) {
      const chunk = Math.min(CHUNK_ROWS, rows - done);
      const from = xOffset + done * k;
      this.input.set(x.subarray(from, from + chunk * k));
      this.#run(this.inputAt, chunk, 4 * k, 1, 4 * k, 0, out, outOffset + done * n);
    }
  }

  /**
   * Multiplies `windows` windows of the staged image by W (plus the loaded bias), each window `runs` runs of `run`
   * floats (the kernel's [kw, C] rows of one of its kh rows), `runStep` floats apart, and writes their n results to
   * out from outOffset on, window after window. The first window begins at image[first], the others `step` floats
   * apart: the windows of one output row of a convolution none of whose windows leaves the image.
   * @param {number} first
   * @param {number} windows
   * @param {number} step
   * @param {number} runs
   * @param {number} run
   * @param {number} runStep
   * @param {Float32Array} out
   * @param {number} outOffset
   */
  convolveRow(first, windows, step, runs, run, runStep, out, outOffset) {
    for (let done = 0; done < windows; done += CHUNK_ROWS) {
      const chunk = Math.min(CHUNK_ROWS, windows - done);
      const x = this.imageAt + 4 * (first + done * step);
      this.#run(x, chunk, 4 * step, runs, 4 * run, 4 * runStep, out, outOffset + done * this.n);
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
