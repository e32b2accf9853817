// Checks the float32 sigmoid of src/wasm/elementwise.js on every float32 in [-18, 18] (the only arguments it does not
// answer with 0 or 1): `node scripts/check-elementwise.mjs` (about 2 * 10^9 arguments; a minute or so).
//
// The kernel is TF 1.15's packet path (Eigen's rational approximation), so where TF uses that path the results are
// TF's. TF's scalar path computes 1 / (1 + expf(-x)); spec/ops.md allows 4 ULP or 2^-21 absolute from TF's value. This
// measures the largest distance from that formula with exp rounded once to float32 from Math.exp's double, and
// fails unless it stays below 2^-21 by more than a 1-ULP expf can move the formula's result: one unit of s = 1 + e in
// its last place (2^-23 s at most, after rounding s) moves 1 / s by 2^-23 (1 / s) <= 2^-23, and rounding that quotient
// to float32 by at most one more unit of a result below 1, 2^-24.
import { sigmoidArray } from '../src/wasm/elementwise.js';

const f32 = Math.fround;
const CHUNK = 1 << 20;
const TOLERANCE = 2 ** -21;
const EXPF_MARGIN = 2 ** -23 + 2 ** -24;

const bits = new Uint32Array(CHUNK);
const inputs = new Float32Array(bits.buffer);
const outputs = new Float32Array(CHUNK);
let worst = 0;
let worstAt = 0;
let checked = 0;
// the bit patterns of 0 .. 18 with either sign: 0x00000000 .. 0x41900000 and 0x80000000 .. 0xc1900000
const LAST = 0x41900000;
for (const sign of [0, 0x80000000]) {
  for (let start = 0; start <= LAST; start += CHUNK) {
    const size = Math.min(CHUNK, LAST + 1 - start);
    for (let i = 0; i < size; i++) bits[i] = (sign | (start + i)) >>> 0;
    const x = inputs.subarray(0, size);
    const y = outputs.subarray(0, size);
    sigmoidArray(x, y);
    for (let i = 0; i < size; i++) {
      const formula = f32(1 / f32(1 + f32(Math.exp(f32(-x[i])))));
      const distance = Math.abs(y[i] - formula);
      if (!(distance <= worst)) {
        worst = distance;
        worstAt = x[i];
      }
    }
    checked += size;
  }
}
console.log(`sigmoid: ${checked} float32 arguments in [-18, 18]; largest distance from 1 / (1 + exp(-x)): `
  + `${worst.toExponential(4)} (${(worst / TOLERANCE).toFixed(3)} of 2^-21) at x = ${worstAt}`);
if (!(worst + EXPF_MARGIN < TOLERANCE)) {
  console.error('outside spec/ops.md tolerance once a 1-ULP expf is allowed for');
  process.exit(1);
}
