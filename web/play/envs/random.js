/**
 * A small seeded generator for the environments' initial states: mulberry32 (Tommy Ettinger's 32-bit-state
 * generator, public domain), two outputs per double as CPython's `random.random()` builds one from the Mersenne
 * Twister (27 + 26 bits). It reproduces nothing of numpy's, and need not: an episode is defined by its initial
 * state and actions, and the tests hand gym the state drawn here.
 */
export class Mulberry32 {
  /** @param {number} seed an integer; its low 32 bits are the generator's state */
  constructor(seed) {
    if (!Number.isInteger(seed)) throw new TypeError(`seed must be an integer, got ${seed}`);
    this.state = seed >>> 0;
  }

  /** The next 32-bit unsigned integer. */
  nextUint32() {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A double uniform on [0, 1) with 53 random bits. */
  nextDouble() {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 67108864 + low) / 9007199254740992;
  }

  /** A double uniform on [low, high), computed as numpy's `uniform` does: low + (high - low) · u. */
  uniform(low, high) {
    return low + (high - low) * this.nextDouble();
  }
}
