/**
 * The elementary functions the environment ports call, correctly rounded, so their trajectories are defined by
 * IEEE-754 alone and match gym's wherever the C library gym ran on rounds correctly.
 *
 * gym's dynamics call the C library's `sin`, `cos` and `pow(x, 2)`. JavaScript's `Math.sin` and `Math.cos` are
 * implementation-defined: V8's fdlibm port differs from glibc 2.36 in the last bit on 1-3% of arguments, enough
 * to make a 500-step trajectory drift from gym's. `sin` and `cos` here evaluate in double-double arithmetic (about
 * 106 bits) and round once, so they return the double nearest the true value; `square` is the correctly rounded
 * x·x. glibc itself is not correctly rounded everywhere: its sin and cos are within 0.55 ULP and its pow within
 * 0.52 (on 300,000 uniform arguments glibc 2.36's sin returned the other neighbour of the true value for 1 in 550,
 * cos for 1 in 1,100, pow(x, 2) for 1 in 1,200 of 2 million), and x86-64 glibc runs another build of them (FMA) on
 * CPUs that have it, so no port can match every host's gym bit for bit. The tests prove the dynamics bit-exact by
 * feeding them the values glibc returned in gym's recorded episodes (tests/web/envs.test.mjs), and show the
 * episodes follow gym's with these functions too.
 *
 * Method: x = k·π/2 + r with π/2 held in three doubles (Cody-Waite, every product k·P exact by Dekker's
 * splitting), then Taylor series of sin r and cos r for |r| <= π/4 in double-double Horner form.
 */

/** π/2 as the unevaluated sum of three doubles (about 160 bits). */
const HALF_PI_1 = 1.5707963267948966;
const HALF_PI_2 = 6.123233995736766e-17;
const HALF_PI_3 = -1.4973849048591698e-33;
const TWO_OVER_PI = 0.6366197723675814;
/** Beyond this the three-part π/2 no longer leaves ~100 good bits in r; the environments stay far below it. */
const MAX_ARGUMENT = 2 ** 30;
/** Dekker's splitter for doubles: 2^27 + 1. */
const SPLITTER = 134217729;
/** Series terms kept: the first left out, z^16/33! for z = r² <= (π/4)², is below 1e-40. */
const TERMS = 16;

// Double-double values are [hi, lo] with hi = fl(hi + lo).

function twoSum(a, b) {
  const s = a + b;
  const bb = s - a;
  return [s, (a - (s - bb)) + (b - bb)];
}

function quickTwoSum(a, b) {
  const s = a + b;
  return [s, b - (s - a)];
}

function twoProduct(a, b) {
  const p = a * b;
  const ta = SPLITTER * a;
  const aHi = ta - (ta - a);
  const aLo = a - aHi;
  const tb = SPLITTER * b;
  const bHi = tb - (tb - b);
  const bLo = b - bHi;
  return [p, ((aHi * bHi - p) + aHi * bLo + aLo * bHi) + aLo * bLo];
}

/** a + b, relative error about 2^-104 even under cancellation (the QD library's accurate addition). */
function add(a, b) {
  const [s1, s2] = twoSum(a[0], b[0]);
  const [t1, t2] = twoSum(a[1], b[1]);
  const [u1, u2] = quickTwoSum(s1, s2 + t1);
  return quickTwoSum(u1, u2 + t2);
}

function multiply(a, b) {
  const [p, e] = twoProduct(a[0], b[0]);
  return quickTwoSum(p, e + (a[0] * b[1] + a[1] * b[0]));
}

/** a / n for a small positive integer n, to about 2^-104. */
function divideByInteger(a, n) {
  const q1 = a[0] / n;
  const [p, e] = twoProduct(q1, n);
  const remainder = add(a, [-p, -e]);
  const q2 = remainder[0] / n;
  return quickTwoSum(q1, q2);
}

/** (-1)^n / (2n)! and (-1)^n / (2n+1)! for n < TERMS, as double-doubles. */
const COS_COEFFICIENTS = [];
const SIN_COEFFICIENTS = [];
{
  let inverseFactorial = [1, 0];
  for (let k = 0; k < 2 * TERMS; k += 1) {
    if (k > 0) inverseFactorial = divideByInteger(inverseFactorial, k);
    const sign = Math.floor(k / 2) % 2 === 0 ? 1 : -1;
    const term = [sign * inverseFactorial[0], sign * inverseFactorial[1]];
    (k % 2 === 0 ? COS_COEFFICIENTS : SIN_COEFFICIENTS).push(term);
  }
}

function series(coefficients, z) {
  let sum = coefficients[TERMS - 1];
  for (let n = TERMS - 2; n >= 0; n -= 1) sum = add(multiply(sum, z), coefficients[n]);
  return sum;
}

/** [quadrant k mod 4, r as a double-double] with x = k·π/2 + r, |r| <= π/4 (plus an ulp or so). */
function reduce(x) {
  if (Math.abs(x) > MAX_ARGUMENT) {
    throw new RangeError(`sin/cos: |x| = ${Math.abs(x)} exceeds ${MAX_ARGUMENT}, beyond this reduction's accuracy`);
  }
  const k = Math.round(x * TWO_OVER_PI);
  const [productHi, productLo] = twoProduct(k, HALF_PI_1);
  // x - productHi is exact (Sterbenz: k is the multiple of π/2 nearest x, so the two are within a factor of 2)
  let r = twoSum(x - productHi, -productLo);
  const [secondHi, secondLo] = twoProduct(k, HALF_PI_2);
  r = add(r, [-secondHi, -secondLo]);
  r = add(r, [-k * HALF_PI_3, 0]);
  return [((k % 4) + 4) % 4, r];
}

/** [sin r, cos r] for a reduced double-double r. */
function sinCosReduced(r) {
  const z = multiply(r, r);
  return [multiply(r, series(SIN_COEFFICIENTS, z))[0], series(COS_COEFFICIENTS, z)[0]];
}

/** The double nearest sin(x); NaN for infinities and NaN, ±0 for ±0. */
export function sin(x) {
  if (!Number.isFinite(x)) return NaN;
  if (x === 0) return x;
  const [quadrant, r] = reduce(x);
  const [s, c] = sinCosReduced(r);
  return [s, c, -s, -c][quadrant];
}

/** The double nearest cos(x); NaN for infinities and NaN. */
export function cos(x) {
  if (!Number.isFinite(x)) return NaN;
  if (x === 0) return 1;
  const [quadrant, r] = reduce(x);
  const [s, c] = sinCosReduced(r);
  return [c, -s, -c, s][quadrant];
}

/** x² rounded once, as IEEE-754 multiplication does (C's pow(x, 2) should be, and glibc's almost always is). */
export function square(x) {
  return x * x;
}

/**
 * The elementary functions an environment's dynamics call. Environments take such an object, so a test can hand
 * them the values gym's C library returned instead.
 * @typedef {{sin: (x: number) => number, cos: (x: number) => number, square: (x: number) => number}} Elementary
 */

/** @type {Elementary} */
export const CORRECTLY_ROUNDED = Object.freeze({ sin, cos, square });
