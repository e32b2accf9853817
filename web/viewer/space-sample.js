// Random observations from a space (SPEC section 3.2), drawn as gym's `Space.sample` draws them: Box elements uniform
// between finite bounds, exponential beyond a one-sided bound, normal where unbounded, integers for integer dtypes;
// Discrete, MultiDiscrete and MultiBinary uniform over their values. No DOM: the tests run it in Node.
import { boundValue } from './format.js';

/**
 * One observation of `space` as nested arrays (a dict space: an object of them), or `batch` of them stacked.
 * @param {object} space as in the document
 * @param {number|null} batch null for a single observation
 * @param {() => number} random uniform in [0, 1)
 */
export function sampleSpace(space, batch = null, random = Math.random) {
  if (space.kind === 'dict') {
    return Object.fromEntries(space.spaces.map((entry) => [entry.key, sampleSpace(entry.space, batch, random)]));
  }
  if (batch !== null) return Array.from({ length: batch }, () => sampleSpace(space, null, random));
  switch (space.kind) {
    case 'discrete':
      return Math.floor(random() * space.n);
    case 'multi_discrete':
      return space.nvec.map((n) => Math.floor(random() * n));
    case 'multi_binary':
      return Array.from({ length: space.n }, () => (random() < 0.5 ? 0 : 1));
    case 'box':
      return sampleBox(space, random);
    default:
      throw new Error(`cannot sample a ${space.kind} space`);
  }
}

function sampleBox(space, random) {
  const size = space.shape.reduce((product, dimension) => product * dimension, 1);
  const bound = (value, index) => boundValue(Array.isArray(value) ? value[index] : value);
  const integer = !space.dtype.startsWith('float');
  const flat = new Array(size);
  for (let i = 0; i < size; i += 1) {
    const low = bound(space.low, i);
    const high = bound(space.high, i);
    let value;
    if (Number.isFinite(low) && Number.isFinite(high)) {
      value = integer ? Math.floor(low + random() * (high - low + 1)) : low + random() * (high - low);
    } else if (Number.isFinite(low)) value = low - Math.log(1 - random());
    else if (Number.isFinite(high)) value = high + Math.log(1 - random());
    else value = normal(random);
    flat[i] = integer ? Math.min(high, Math.max(low, Math.floor(value))) : Math.fround(value);
  }
  return nest(flat, space.shape);
}

/** A standard normal draw (Box-Muller). */
function normal(random) {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** A flat row-major list as nested arrays of `shape` (a scalar for []). */
export function nest(flat, shape) {
  if (!shape.length) return flat[0];
  const step = flat.length / shape[0];
  return Array.from({ length: shape[0] }, (_, i) => nest(flat.slice(i * step, (i + 1) * step), shape.slice(1)));
}
