// Micro-benchmark of the float32 product kernels in GMAC/s: `node scripts/bench-product.mjs`.
//
// Shapes from the benchmark models: TD3's 400x300 hidden layer for one observation and a batch of 256, and the
// nature CNN's conv3 as a product of its gathered windows ([B*7*7, 576] x [576, 64]) for B = 1 and 256. Kernels: the
// WebAssembly SIMD one (src/wasm/product.js, unfused terms), the JavaScript panel loop of src/ops.js (unfused: the
// product rounded, then the sum, the WebAssembly kernel's order bit for bit), and that loop with fused terms (each
// step x*w + s rounded once), the baseline that prices the unfused rounding.
import { packPanels, productRow32 } from '../src/ops.js';
import { CHUNK_ROWS, PANEL, packProduct, simdAvailable } from '../src/wasm/product.js';

const f32 = Math.fround;

// The fused alternative to src/ops.js's loop (productRow32, timed as it is): each step's x*w + s rounded once, which
// the JavaScript loop could have for free, a float32 product being exact in a double. Kept here only as the baseline
// that prices the unfused rounding.
const fusedSums = new Float64Array(PANEL);
function fusedRow(x, xOffset, { data, k, n, panels }, out, outOffset) {
  const sums = fusedSums;
  for (let p = 0; p < panels; p++) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0; // prettier-ignore
    for (let i = 0, w = p * k * PANEL; i < k; i++, w += PANEL) {
      const v = x[xOffset + i];
      s0 = f32(s0 + v * data[w]);
      s1 = f32(s1 + v * data[w + 1]);
      s2 = f32(s2 + v * data[w + 2]);
      s3 = f32(s3 + v * data[w + 3]);
      s4 = f32(s4 + v * data[w + 4]);
      s5 = f32(s5 + v * data[w + 5]);
      s6 = f32(s6 + v * data[w + 6]);
      s7 = f32(s7 + v * data[w + 7]);
    }
    sums[0] = s0; sums[1] = s1; sums[2] = s2; sums[3] = s3; // prettier-ignore
    sums[4] = s4; sums[5] = s5; sums[6] = s6; sums[7] = s7; // prettier-ignore
    for (let j = 0; j < PANEL && p * PANEL + j < n; j++) out[outOffset + p * PANEL + j] = sums[j];
  }
}

// `rows` rows of x times the packed weights, a row at a time.
const byRows = (row) => (x, rows, packed, out) => {
  for (let r = 0; r < rows; r++) row(x, r * packed.k, packed, out, r * packed.n);
};
const fusedKernel = byRows(fusedRow);
const unfusedKernel = byRows((x, xOffset, packed, out, outOffset) => productRow32(x, xOffset, packed, null, out,
  outOffset));

function random(size, seed) {
  let state = seed;
  return Float32Array.from({ length: size }, () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648 - 0.5;
  });
}

// The median speed of each of `runs` over 7 rounds, the runs taking turns within a round (a loaded host then slows
// them alike), each timed for at least 0.2 s.
function gmacs(runs, macs) {
  const speeds = runs.map(() => []);
  for (let round = 0; round < 7; round++) {
    runs.forEach((run, index) => {
      let calls = 0;
      const start = performance.now();
      let elapsed = 0;
      while (elapsed < 200) {
        run();
        calls++;
        elapsed = performance.now() - start;
      }
      speeds[index].push((calls * macs) / (elapsed * 1e6));
    });
  }
  return speeds.map((list) => list.sort((a, b) => a - b)[3]);
}

const shapes = [
  ['TD3 400x300, batch 1', 1, 400, 300],
  ['TD3 400x300, batch 256', 256, 400, 300],
  ['CNN conv3 windows, B=1', 49, 576, 64],
  ['CNN conv3 windows, B=256', 256 * 49, 576, 64],
];
console.log(`WebAssembly SIMD: ${simdAvailable ? 'yes' : 'no'}; chunk ${CHUNK_ROWS} rows`);
console.log('| shape | JS fused | JS unfused | WASM SIMD | WASM / JS fused |');
console.log('|---|---|---|---|---|');
for (const [label, rows, k, n] of shapes) {
  const x = random(rows * k, 1);
  const w = random(k * n, 2);
  const out = new Float32Array(rows * n);
  const macs = rows * k * n;
  const panels = packPanels({ shape: [k, n], data: w });
  const packed = packProduct(w, k, n);
  const runs = [() => fusedKernel(x, rows, panels, out), () => unfusedKernel(x, rows, panels, out)];
  if (packed !== null) runs.push(() => packed.multiply(x, 0, rows, null, out, 0));
  const [fused, unfused, simd = NaN] = gmacs(runs, macs);
  const cells = [fused, unfused, simd].map((speed) => speed.toFixed(2));
  console.log(`| ${label} | ${cells.join(' | ')} | ${(simd / fused).toFixed(1)}x |`);
}
