import { InputError } from './errors.js';
import { ARRAYS, checkTensor, count, tensor } from './tensor.js';

// The predict contract of SPEC section 5: what a caller of the framework's `model.predict`, `action_probability` and
// the value function gets, on top of a model's graph. A port of the reference's sbif/runtime/policy.py (the truth):
// SB2's single-versus-batch rule, defaults and result shapes (sections 5.1-5.8), or Stable-Baselines3's for a file
// under the SB3 contract (section 5.9: a stochastic default, channel-last images, arrays for single results, action
// masks, shared noise, dict observations). Errors are InputErrors with the reference's messages.

/**
 * @typedef {{dtype: string, shape: number[], data: ArrayLike<number>|ArrayLike<bigint>}} Tensor
 * A tensor as the library's models take and return them: int64 data is a BigInt64Array, bool a Uint8Array of 0/1.
 */
/**
 * @typedef {Tensor|number|bigint|boolean|Array<any>|Float32Array|Float64Array|Int8Array|Int16Array|Int32Array|
 *   Uint8Array|Uint16Array|BigInt64Array} ArrayInput
 * What a caller may pass where the reference takes a NumPy array: a Tensor; a number, BigInt or boolean (shape []);
 * a typed array (one dimension, of its own dtype: a Uint8Array is uint8); or nested JS arrays, rectangular, whose
 * dtype is NumPy's for the same Python list: bool if every element is a boolean, int64 if every element is an integer
 * (a BigInt, an integral number or a boolean), float64 otherwise (and for no elements). JavaScript cannot tell 1.0
 * from 1, so `[1.0]` is an int64 array here where Python's [1.0] is float64; that changes nothing SPEC section 5
 * defines except that categorical action probabilities accept it as an index.
 */
/**
 * @typedef {object} RandomGenerator
 * A source of noise draws, from `createGenerator`.
 * @property {() => number} uniform a float32 value from U[0, 1)
 * @property {() => number} normal a float32 value from N(0, 1)
 */

// -- a seeded generator ---------------------------------------------------------------------------------------------
const TWO_POW_32 = 4294967296;
const TWO_POW_24 = 16777216;

/**
 * A seeded generator of the noise sampling reads (SPEC section 5.3 lets a runtime choose its generator; sampled
 * actions are reproduced exactly only from the same noise, which callers pass as `noise`).
 *
 * The stream is xoshiro128** 1.1 (Blackman and Vigna), its 128-bit state filled with two outputs of SplitMix64 from
 * the seed modulo 2^64 (each output's low 32 bits first), as its authors advise. A uniform draw is the top 24 bits of
 * one output times 2^-24, so every float32 in [0, 1) it can give is a multiple of 2^-24 and 1 is never drawn; a
 * normal draw is the Box-Muller transform of two outputs, sqrt(-2 ln u1) cos(2 pi u2) with u1 in (0, 1], computed in
 * float64 and rounded to float32. The numbers differ from NumPy's generators for the same seed: the distributions are
 * the same.
 * @param {number|bigint} seed an integer
 * @returns {RandomGenerator}
 */
export function createGenerator(seed) {
  if (!(typeof seed === 'bigint' || Number.isSafeInteger(seed))) {
    throw new InputError(`a generator's seed is an integer, got ${describe(seed)}`);
  }
  let mix = BigInt.asUintN(64, BigInt(seed));
  const splitmix64 = () => {
    mix = BigInt.asUintN(64, mix + 0x9e3779b97f4a7c15n);
    let z = mix;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    return z ^ (z >> 31n);
  };
  const [first, second] = [splitmix64(), splitmix64()];
  const state = new Uint32Array([first, first >> 32n, second, second >> 32n].map((word) => Number(word & 0xffffffffn)));
  const next = () => {
    const result = Math.imul(rotl(Math.imul(state[1], 5), 7), 9) >>> 0;
    const t = state[1] << 9;
    state[2] ^= state[0];
    state[3] ^= state[1];
    state[1] ^= state[2];
    state[0] ^= state[3];
    state[2] ^= t;
    state[3] = rotl(state[3], 11);
    return result;
  };
  return {
    uniform: () => (next() >>> 8) / TWO_POW_24,
    normal: () => {
      const u1 = (next() + 1) / TWO_POW_32;
      const u2 = next() / TWO_POW_32;
      return Math.fround(Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
    },
  };
}

const rotl = (x, k) => (x << k) | (x >>> (32 - k));

/** A generator for callers that give no seed: seeded from Math.random, which every JavaScript environment has (the
 * noise of exploration needs no cryptographic source). */
function unseededGenerator() {
  const word = () => BigInt(Math.floor(Math.random() * TWO_POW_32));
  return createGenerator((word() << 32n) | word());
}

const isGenerator = (value) => value !== null && typeof value === 'object' && typeof value.uniform === 'function'
  && typeof value.normal === 'function';

// -- arrays -----------------------------------------------------------------------------------------------------------
const TYPED_DTYPES = new Map([[Float32Array, 'float32'], [Float64Array, 'float64'], [Int8Array, 'int8'],
  [Int16Array, 'int16'], [Int32Array, 'int32'], [BigInt64Array, 'int64'], [Uint8Array, 'uint8'],
  [Uint16Array, 'uint16']]);
const INTEGER_BITS = { int8: [8, true], int16: [16, true], int32: [32, true], uint8: [8, false], uint16: [16, false] };
const isFloatDtype = (dtype) => dtype === 'float32' || dtype === 'float64';
const isIntegerDtype = (dtype) => dtype === 'int64' || dtype in INTEGER_BITS;
const sameShape = (a, b) => a.length === b.length && a.every((d, i) => d === b[i]);

/** A shape as Python writes a tuple, as the reference's messages show them: (), (4,), (2, 3). */
const pyShape = (shape) => (shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`);

function describe(value) {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value !== 'object') return JSON.stringify(value) ?? String(value);
  if (isTensor(value)) return `a ${value.dtype} tensor of shape ${pyShape(value.shape)}`;
  return `a ${value.constructor?.name ?? 'object'}`;
}

function isTensor(value) {
  return value !== null && typeof value === 'object' && typeof value.dtype === 'string' && Array.isArray(value.shape)
    && value.data !== undefined;
}

/** A plain object used as a mapping (a dict observation, noise by name): not a tensor, an array or a typed array. */
const isMapping = (value) => value !== null && typeof value === 'object' && !Array.isArray(value)
  && !ArrayBuffer.isView(value) && !isTensor(value);

/**
 * The Tensor an ArrayInput denotes (a Tensor is checked and returned as it is, not copied).
 * @param {ArrayInput} value
 * @param {string} what the argument's name, for messages
 * @returns {Tensor}
 */
export function asTensor(value, what) {
  if (isTensor(value)) {
    checkTensor(value, what);
    return value;
  }
  if (ArrayBuffer.isView(value) && TYPED_DTYPES.has(value.constructor)) {
    return tensor(TYPED_DTYPES.get(value.constructor), [value.length], value);
  }
  const shape = [];
  for (let level = value; Array.isArray(level); level = level[0]) shape.push(level.length);
  const flat = [];
  let booleans = 0;
  let integers = 0;
  const visit = (item, depth) => {
    if (depth < shape.length) {
      if (!Array.isArray(item) || item.length !== shape[depth]) {
        throw new InputError(`${what} is not a rectangular array: a nested array's length differs from its first's `
          + `at depth ${depth}`);
      }
      for (const inner of item) visit(inner, depth + 1);
      return;
    }
    if (typeof item === 'boolean') booleans += 1;
    else if (typeof item === 'bigint' || Number.isInteger(item)) integers += 1;
    else if (typeof item !== 'number') {
      throw new InputError(`${what} holds ${describe(item)}, which is not a number, a BigInt or a boolean`);
    }
    flat.push(item);
  };
  visit(value, 0);
  if (flat.length === 0) return tensor('float64', shape); // np.array([]) is float64
  if (booleans === flat.length) return tensor('bool', shape, flat.map(Number));
  if (booleans + integers === flat.length) return tensor('int64', shape, flat.map((v) => BigInt(v)));
  return tensor('float64', shape, flat.map(Number));
}

/**
 * `t` converted to `dtype` as NumPy's astype converts (SPEC section 5.1): a float to an integer dtype truncates toward
 * zero, an integer wraps around to a narrower one, anything nonzero (NaN too) is true. Values outside an integer
 * dtype's range are undefined by the spec; here the truncated value wraps, and a NaN or infinity bound for int64 is
 * refused, having no integer to wrap. Returns `t` itself when it already has the dtype.
 */
export function castTensor(t, dtype, what) {
  if (t.dtype === dtype) return t;
  const source = t.data;
  const length = source.length;
  const out = new ARRAYS[dtype](length);
  if (dtype === 'int64') {
    for (let k = 0; k < length; k++) {
      const v = source[k];
      if (typeof v === 'bigint') out[k] = v;
      else if (Number.isFinite(v)) out[k] = BigInt.asIntN(64, BigInt(Math.trunc(v)));
      else throw new InputError(`${what} cannot be converted to int64: it holds ${v}`);
    }
  } else if (dtype === 'bool') {
    for (let k = 0; k < length; k++) out[k] = Number(source[k]) !== 0 ? 1 : 0; // NaN too, as NumPy's astype(bool)
  } else if (isFloatDtype(dtype)) {
    for (let k = 0; k < length; k++) out[k] = Number(source[k]);
  } else {
    const [bits, signed] = INTEGER_BITS[dtype];
    for (let k = 0; k < length; k++) {
      const v = source[k];
      // a typed array's store wraps a finite integral Number exactly; a BigInt is wrapped first (Number would round it)
      if (typeof v !== 'bigint') out[k] = Math.trunc(v);
      else out[k] = Number(signed ? BigInt.asIntN(bits, v) : BigInt.asUintN(bits, v));
    }
  }
  return { dtype, shape: t.shape.slice(), data: out };
}

const reshaped = (t, shape) => ({ dtype: t.dtype, shape, data: t.data });

/** Row `index` of a batch: the element `index` along the first axis, its data copied. */
function row(t, index) {
  const size = count(t.shape.slice(1));
  return { dtype: t.dtype, shape: t.shape.slice(1), data: t.data.slice(index * size, (index + 1) * size) };
}

/** `t` transposed by `perm` (SB3's maybe_transpose of a channel-last image). */
function transposed(t, perm) {
  const shape = perm.map((axis) => t.shape[axis]);
  const strides = new Array(t.shape.length);
  for (let axis = t.shape.length - 1, stride = 1; axis >= 0; axis--) {
    strides[axis] = stride;
    stride *= t.shape[axis];
  }
  const permutedStrides = perm.map((axis) => strides[axis]);
  const out = new ARRAYS[t.dtype](t.data.length);
  const index = new Array(shape.length).fill(0);
  for (let k = 0; k < out.length; k++) {
    let offset = 0;
    for (let axis = 0; axis < shape.length; axis++) offset += index[axis] * permutedStrides[axis];
    out[k] = t.data[offset];
    for (let axis = shape.length - 1; axis >= 0; axis--) {
      if (++index[axis] < shape[axis]) break;
      index[axis] = 0;
    }
  }
  return { dtype: t.dtype, shape, data: out };
}

/** The dtype NumPy's concatenate gives parts of these dtypes, for the ones a dict observation's entries have. */
function concatenatedDtype(dtypes) {
  if (dtypes.every((dtype) => dtype === dtypes[0])) return dtypes[0];
  return dtypes.every((dtype) => !isFloatDtype(dtype)) ? 'int64' : 'float64';
}

/** The parts joined along their last axis (np.concatenate(parts, axis=-1)). */
function concatenateLast(parts) {
  const rank = parts[0].shape.length;
  const lead = parts[0].shape.slice(0, -1);
  for (const part of parts) {
    if (part.shape.length !== rank || rank === 0 || !sameShape(part.shape.slice(0, -1), lead)) {
      throw new InputError("the dict observation's entries do not concatenate: their shapes "
        + `${parts.map((p) => pyShape(p.shape)).join(', ')} differ other than in the last axis`);
    }
  }
  const dtype = concatenatedDtype(parts.map((part) => part.dtype));
  const converted = parts.map((part) => castTensor(part, dtype, 'the dict observation'));
  const widths = parts.map((part) => part.shape[rank - 1]);
  const width = widths.reduce((a, b) => a + b, 0);
  const rows = count(lead);
  const out = new ARRAYS[dtype](rows * width);
  for (let r = 0; r < rows; r++) {
    let column = r * width;
    converted.forEach((part, i) => {
      out.set(part.data.subarray(r * widths[i], (r + 1) * widths[i]), column);
      column += widths[i];
    });
  }
  return { dtype, shape: lead.concat([width]), data: out };
}

/** The shape of one element of a space (SPEC section 3.2), as gym gives it. */
function spaceShape(space) {
  switch (space.kind) {
    case 'box': return space.shape.slice();
    case 'discrete': return [];
    case 'multi_discrete': return [space.nvec.length];
    default: return [space.n];
  }
}

// -- the policy -------------------------------------------------------------------------------------------------------
const PREDICT_OPTIONS = ['state', 'mask', 'deterministic', 'rng', 'noise', 'episodeStart', 'actionMasks'];
const PROBABILITY_OPTIONS = ['state', 'mask', 'actions', 'logp'];
const VALUE_OPTIONS = ['state', 'mask'];
const LOG_2PI = Math.log(2 * Math.PI);

function checkOptions(options, known, method) {
  if (options === undefined || options === null) return {};
  if (!isMapping(options)) throw new InputError(`${method}'s options are an object, got ${describe(options)}`);
  const unknown = Object.keys(options).filter((key) => !known.includes(key));
  if (unknown.length) {
    throw new InputError(`${method} has no option ${unknown.map((key) => JSON.stringify(key)).join(', ')} (it takes `
      + `${known.join(', ')})`);
  }
  return options;
}

/**
 * A loaded model's policy: the framework's `predict`, `action_probability` and value function (SPEC section 5).
 * @param {{document: object, inputs: {name: string, dtype: string, shape: (number|null)[]}[],
 *   run: (feeds: object, outputs: string[]) => object}} model a Model from `loadModel`
 * @returns {Policy}
 */
export function createPolicy(model) {
  return new Policy(model);
}

/**
 * The predict interface of one model. Observations follow SPEC section 5.1's single-or-batch rule: a batch returns
 * the batch's results, a single observation element 0 of them. Under the SB3 contract (`policy.contract === 'sb3'`)
 * section 5.9's differences apply.
 */
export class Policy {
  /** @param {object} model a Model from `loadModel` */
  constructor(model) {
    const document = model.document;
    this.model = model;
    this.document = document;
    /** The algorithm's name (provenance.algorithm), which messages name. */
    this.algorithm = document.provenance.algorithm;
    /** Whose predict this reproduces: 'sb2' (SPEC sections 5.1-5.8) or 'sb3' (section 5.9). */
    this.contract = document.predict.contract ?? 'sb2';
    /** The spaces as the document holds them (SPEC section 3.2). */
    this.observationSpace = document.observation_space;
    this.actionSpace = document.action_space;
    this.predictSpec = document.predict;
    this.inputs = new Map(document.inputs.map((entry) => [entry.name, entry]));
    this.noiseInputs = document.inputs.filter((entry) => entry.kind === 'noise');
    this.sharedNoise = new Set(this.predictSpec.shared_noise ?? []);
    this.channelsLast = this.predictSpec.channels_last === true;
    this.channelsLastKeys = new Set(this.predictSpec.channels_last_keys ?? []);
    this.actionMaskInput = this.predictSpec.action_mask ?? null;
    this.recurrent = this.predictSpec.recurrent ?? null;
    /** The width S of a recurrent policy's state rows, 0 for a feed-forward policy. */
    this.stateSize = this.recurrent ? this.inputs.get(this.recurrent.state_input).shape[1] : 0;
    /** The generator of draws for calls without `rng` or noise, made on the first such draw. */
    this.generator = null;
  }

  /**
   * The framework's `model.predict` (SPEC sections 5.1-5.3, 5.6, 5.9): the action for each observation, and the next
   * recurrent state.
   *
   * Sampled actions draw their noise from `noise` (float32 arrays by noise-input name, each of the shape the file
   * declares with the request's batch), else from `rng`: a generator from `createGenerator`, or a seed for a new one,
   * or, without either, the policy's own generator, seeded from Math.random on its first draw.
   * @param {ArrayInput|{[key: string]: ArrayInput}} observation one observation or a batch (SPEC section 5.1); a
   *   goal-conditioned (HER) file also takes its dict of keys, and a dict observation space (SB3) takes only that
   * @param {object} [options]
   * @param {ArrayInput|Tensor[]|null} [options.state] a recurrent policy's state rows [n, S] (null: zeros); under the
   *   SB3 contract also SB3's pair [h, c] (an array of two Tensors [layers, n, hidden]), returned as a pair
   * @param {ArrayInput|null} [options.mask] recurrent policies: one flag per observation, true when the previous step
   *   ended that env's episode (its state is reset first)
   * @param {ArrayInput|null} [options.episodeStart] SB3's name for `mask` (pass one of them)
   * @param {boolean|null} [options.deterministic] null or absent: the algorithm's default
   *   (predict.deterministic_default: SB2's per algorithm, false under the SB3 contract)
   * @param {{[input: string]: ArrayInput}} [options.noise] the noise inputs' values, replacing the generator's draws
   * @param {RandomGenerator|number|bigint} [options.rng] where draws come from when `noise` does not give them
   * @param {ArrayInput|null} [options.actionMasks] MaskablePPO (SB3): true allows an action; null allows all
   * @returns {{action: Tensor, state: Tensor|Tensor[]|null}}
   * @throws {InputError} an observation, state, mask or noise that does not fit; a stochastic request to a file that
   *   cannot sample (predict.stochastic_action is null)
   */
  predict(observation, options) {
    const {
      state = null, mask = null, episodeStart = null, deterministic = null, noise = null, rng = null,
      actionMasks = null,
    } = checkOptions(options, PREDICT_OPTIONS, 'predict');
    if (episodeStart !== null && mask !== null) {
      throw new InputError('pass mask or episode_start, not both: they are the same reset flags');
    }
    if (actionMasks !== null && this.actionMaskInput === null) {
      throw new InputError(`this ${this.algorithm} policy takes no action masks`);
    }
    if (deterministic !== null && typeof deterministic !== 'boolean') {
      throw new InputError(`deterministic is true, false or null, got ${describe(deterministic)}`);
    }
    const isDeterministic = deterministic === null ? this.predictSpec.deterministic_default : deterministic;
    const name = this.predictSpec[isDeterministic ? 'deterministic_action' : 'stochastic_action'];
    if (name === null) {
      throw new InputError(`this ${this.algorithm} file cannot sample actions as ${this.contract.toUpperCase()} does `
        + '(predict.stochastic_action is null: the exploration noise comes from state the file does not hold, such as '
        + "Ornstein-Uhlenbeck action noise or gSDE's exploration matrix); use deterministic=True");
    }
    const wanted = [name].concat(this.recurrent ? [this.recurrent.state_output] : []);
    const { feeds, rows, vectorized } = this.makeFeeds(observation, state, episodeStart ?? mask, actionMasks,
      wanted);
    if (!isDeterministic) Object.assign(feeds, this.noiseFeeds(rows, rng, noise));
    const results = this.model.run(feeds, wanted);
    let action = results[name];
    let nextState = this.recurrent ? results[this.recurrent.state_output] : null;
    if (this.contract === 'sb3') {
      action = reshaped(action, [rows].concat(spaceShape(this.actionSpace))); // SB3's predict: the space's shape
      const single = vectorized ? action : reshaped(row(action, 0), spaceShape(this.actionSpace)); // squeeze(axis=0)
      if (!this.recurrent) return { action: single, state }; // a feed-forward policy's state comes back as given
      if (state === null || isStatePair(state)) return { action: single, state: this.statePair(nextState) };
      return { action: single, state: nextState };
    }
    if (vectorized) return { action, state: nextState };
    return { action: row(action, 0), state: nextState === null ? null : row(nextState, 0) };
  }

  /**
   * SB2's `action_probability` (SPEC section 5.4): without `actions`, the distribution's parameters (the
   * probabilities; a list of one array per component for MultiDiscrete; [mean, std] for a Gaussian); with them, the
   * probability (or with `logp` its log) of each row's action, shaped [B, 1]. A single observation gives element 0 of
   * the batch result, whatever it is (SB2 indexes it with [0]): for a Gaussian, the mean alone.
   * @param {ArrayInput|{[key: string]: ArrayInput}} observation
   * @param {object} [options]
   * @param {ArrayInput|Tensor[]|null} [options.state] as predict's
   * @param {ArrayInput|null} [options.mask] as predict's
   * @param {ArrayInput|null} [options.actions] one action per observation
   * @param {boolean} [options.logp] the log-probability instead
   * @returns {Tensor|Tensor[]|null} null for a policy without a distribution (TD3, DDPG, SAC as SB2 reports it)
   * @throws {InputError} actions that do not fit the action space, or given to a policy without a distribution
   */
  actionProbability(observation, options) {
    const { state = null, mask = null, actions = null, logp = false } = checkOptions(options, PROBABILITY_OPTIONS,
      'actionProbability');
    const distribution = this.predictSpec.distribution ?? null;
    if (distribution === null) {
      if (actions !== null) {
        throw new InputError(`this ${this.algorithm} policy is deterministic: it has no action probabilities`);
      }
      return null;
    }
    const parameters = parameterOutputs(distribution);
    const { feeds, rows, vectorized } = this.makeFeeds(observation, state, mask, null, parameters);
    const values = this.model.run(feeds, parameters);
    let result;
    if (actions === null) result = distributionParameters(distribution, values);
    else result = probabilityOf(distribution, values, asTensor(actions, 'actions'), rows, Boolean(logp));
    if (vectorized) return result;
    return Array.isArray(result) ? result[0] : row(result, 0);
  }

  /**
   * The value estimate V(s) (SPEC section 5.5): [B] for a batch, a scalar (shape []) for a single observation.
   * @param {ArrayInput|{[key: string]: ArrayInput}} observation
   * @param {object} [options]
   * @param {ArrayInput|Tensor[]|null} [options.state] as predict's
   * @param {ArrayInput|null} [options.mask] as predict's
   * @returns {Tensor}
   */
  value(observation, options) {
    const { state = null, mask = null } = checkOptions(options, VALUE_OPTIONS, 'value');
    if (!this.document.outputs.some((output) => output.name === 'value')) {
      throw new InputError(`this ${this.algorithm} file has no value output`);
    }
    const { feeds, vectorized } = this.makeFeeds(observation, state, mask, null, ['value']);
    const values = this.model.run(feeds, ['value']).value;
    return vectorized ? values : row(values, 0);
  }

  /**
   * The state `nEnvs` envs start from (SB2's `initial_state`): float32 zeros [nEnvs, S], null for a feed-forward
   * policy. A new tensor on every call.
   * @param {number} [nEnvs]
   * @returns {Tensor|null}
   */
  initialState(nEnvs = 1) {
    return this.recurrent ? tensor('float32', [nEnvs, this.stateSize]) : null;
  }

  /**
   * The graph inputs of a request (SPEC sections 5.1, 5.6, 5.9): the observation batch, a recurrent policy's state and
   * mask (default: zeros and no reset), and the action mask of a policy that takes one (default: all allowed). Given
   * the `outputs` the request computes, its batch is checked against the run-time size limit (SPEC 5.8) before any
   * state, mask or noise the runtime would add is allocated.
   * @param {string[]} [outputs]
   * @returns {{feeds: {[name: string]: Tensor}, rows: number, vectorized: boolean}}
   */
  makeFeeds(observation, state, mask, actionMasks, outputs) {
    const { feeds, rows, vectorized } = this.observationFeeds(observation);
    if (outputs !== undefined) this.model.checkBatch(outputs, rows);
    if (this.actionMaskInput !== null) feeds[this.actionMaskInput] = this.actionMaskBatch(actionMasks, rows);
    if (this.recurrent) {
      let rowsOfState;
      if (state === null) rowsOfState = this.initialState(rows);
      else if (this.contract === 'sb3' && isStatePair(state)) rowsOfState = this.stateRows(state, rows);
      else rowsOfState = castTensor(asTensor(state, 'state'), 'float32', 'state');
      if (sameShape(rowsOfState.shape, [this.stateSize]) && !vectorized) {
        rowsOfState = reshaped(rowsOfState, [1, this.stateSize]);
      }
      if (!sameShape(rowsOfState.shape, [rows, this.stateSize])) {
        throw new InputError(`state must have shape (${rows}, ${this.stateSize}) for ${rows} observation(s), got `
          + pyShape(rowsOfState.shape));
      }
      let resets = mask === null ? tensor('float32', [rows]) : castTensor(asTensor(mask, 'mask'), 'float32', 'mask');
      resets = reshaped(resets, [resets.data.length]);
      if (resets.data.length !== rows) {
        throw new InputError(`mask must have one entry per observation (${rows}), got ${resets.data.length}`);
      }
      feeds[this.recurrent.state_input] = rowsOfState;
      feeds[this.recurrent.mask_input] = resets;
    }
    return { feeds, rows, vectorized };
  }

  /** The observation inputs of a request (`obs`, or `obs/KEY` per key of a dict space), its rows and whether the
   * input was batched. */
  observationFeeds(observation) {
    const space = this.observationSpace;
    if (space.kind !== 'dict') {
      const { batch, vectorized } = this.observationBatch(observation);
      return { feeds: { obs: batch }, rows: batch.shape[0], vectorized };
    }
    const keys = space.spaces.map((entry) => entry.key);
    if (!isMapping(observation)) {
      throw new InputError(`this ${this.algorithm} policy takes dict observations with the keys ${keys.join(', ')}`);
    }
    const missing = keys.filter((key) => !Object.hasOwn(observation, key));
    const extra = Object.keys(observation).filter((key) => !keys.includes(key));
    if (missing.length || extra.length) {
      throw new InputError(`the dict observation ${[].concat(
        missing.length ? [`lacks ${missing.join(', ')}`] : [],
        extra.length ? [`has keys the space does not: ${extra.join(', ')}`] : []).join('; ')}`);
    }
    const feeds = {};
    const rows = new Set();
    let vectorized = false;
    for (const { key, space: keySpace } of space.spaces) {
      const name = `obs/${key}`;
      const what = `observation[${JSON.stringify(key)}]`;
      const { batch, vectorized: batched } = this.spaceBatch(asTensor(observation[key], what), keySpace,
        this.inputs.get(name).dtype, this.channelsLastKeys.has(key), what);
      feeds[name] = batch;
      rows.add(batch.shape[0]);
      vectorized = vectorized || batched; // SB3's obs_to_tensor: batched if any key is
    }
    if (rows.size !== 1) {
      throw new InputError("the dict observation's keys hold different numbers of rows "
        + `(${Array.from(rows).sort((a, b) => a - b).join(', ')})`);
    }
    return { feeds, rows: rows.values().next().value, vectorized };
  }

  /** The batch SB2 would feed to `obs` and whether the input was batched; a goal-conditioned (HER) file also takes
   * its dict observation, flattened as SB2's HERGoalEnvWrapper does. */
  observationBatch(observation) {
    let obs;
    if (isMapping(observation)) {
      if (this.document.observation_dict === undefined) {
        throw new InputError(`this ${this.algorithm} policy takes array observations: only goal-conditioned (HER) `
          + 'files and dict observation spaces take a dict observation');
      }
      obs = this.flattenDictObservation(observation);
    } else {
      obs = asTensor(observation, 'observation');
    }
    return this.spaceBatch(obs, this.observationSpace, this.inputs.get('obs').dtype, this.channelsLast, 'observation');
  }

  /** One space's observation as the batch its input takes (SPEC section 5.1; SB3's channel-last images and index
   * checks under the SB3 contract), and whether it was batched. */
  spaceBatch(obs, space, dtype, channelsLast, what) {
    const shape = spaceShape(space);
    const rank = obs.shape.length;
    const spaceShaped = sameShape(obs.shape, shape) || sameShape(obs.shape.slice(1), shape);
    if (channelsLast && !spaceShaped && (rank === 3 || rank === 4)) {
      const perm = rank === 3 ? [2, 0, 1] : [0, 3, 1, 2]; // SB3's maybe_transpose
      const permutedShape = perm.map((axis) => obs.shape[axis]);
      if (sameShape(permutedShape, shape) || sameShape(permutedShape.slice(1), shape)) obs = transposed(obs, perm);
    }
    let vectorized;
    let fits;
    if (space.kind === 'box') {
      vectorized = !sameShape(obs.shape, shape);
      fits = !vectorized || sameShape(obs.shape.slice(1), shape);
    } else if (space.kind === 'discrete') {
      vectorized = obs.shape.length !== 0;
      fits = obs.shape.length <= 1;
    } else {
      vectorized = !sameShape(obs.shape, shape);
      fits = !vectorized || (obs.shape.length === 2 && sameShape(obs.shape.slice(1), shape));
    }
    if (!fits) {
      throw new InputError(`unexpected ${what} shape ${pyShape(obs.shape)} for a ${space.kind} observation space: use `
        + `${pyShape(shape)} or (n_env, ${shape.join(', ')})`);
    }
    const batch = reshaped(obs, [vectorized ? obs.shape[0] : 1].concat(shape));
    const outside = this.contract === 'sb3' ? indexOutsideSpace(batch, space) : null;
    if (outside !== null) {
      throw new InputError(`${what} cannot be converted to ${dtype}: ${what} index ${outside.index} is outside its `
        + `space ([0, ${outside.bound}))`);
    }
    return { batch: castTensor(batch, dtype, what), vectorized };
  }

  /** A HER dict observation's entries joined along the last axis in the file's key order; Discrete entries (a
   * MultiDiscrete flat space) become one integer column each. */
  flattenDictObservation(observation) {
    const keys = this.document.observation_dict.keys;
    const missing = keys.filter((key) => !Object.hasOwn(observation, key));
    if (missing.length) throw new InputError(`the dict observation lacks ${missing.join(', ')}`);
    const parts = keys.map((key) => {
      const part = asTensor(observation[key], `observation[${JSON.stringify(key)}]`);
      if (this.observationSpace.kind !== 'multi_discrete') return part;
      const indices = castTensor(part, 'int64', `observation[${JSON.stringify(key)}]`);
      return reshaped(indices, indices.shape.concat([1]));
    });
    return concatenateLast(parts);
  }

  /** SB3's recurrent state, the actor LSTM's pair [h, c] of [layers, n, hidden] each, as the file's state rows (SPEC
   * section 5.9: h of every layer, then c; a critic LSTM's part, which SB3's predict does not pass, zero). */
  stateRows(pair, rows) {
    const { layers, hidden } = this.recurrent.state_layout;
    if (pair.length !== 2) {
      throw new InputError(`state must be the pair (h, c) SB3's predict returns, got ${pair.length} arrays`);
    }
    const out = tensor('float32', [rows, this.stateSize]);
    ['h', 'c'].forEach((part, which) => {
      const value = castTensor(asTensor(pair[which], `state ${part}`), 'float32', `state ${part}`);
      if (!sameShape(value.shape, [layers, rows, hidden])) {
        throw new InputError(`state ${part} must have shape (${layers}, ${rows}, ${hidden}) for ${rows} `
          + `observation(s), got ${pyShape(value.shape)}`);
      }
      for (let layer = 0; layer < layers; layer++) {
        for (let r = 0; r < rows; r++) {
          const from = (layer * rows + r) * hidden;
          const to = r * this.stateSize + (which * layers + layer) * hidden;
          out.data.set(value.data.subarray(from, from + hidden), to);
        }
      }
    });
    return out;
  }

  /** The state rows' actor part as SB3's pair [h, c], each [layers, n, hidden]. */
  statePair(stateRows) {
    const { layers, hidden } = this.recurrent.state_layout;
    const rows = stateRows.shape[0];
    return [0, 1].map((which) => {
      const part = tensor('float32', [layers, rows, hidden]);
      for (let layer = 0; layer < layers; layer++) {
        for (let r = 0; r < rows; r++) {
          const from = r * this.stateSize + (which * layers + layer) * hidden;
          part.data.set(stateRows.data.subarray(from, from + hidden), (layer * rows + r) * hidden);
        }
      }
      return part;
    });
  }

  /** The action-mask input for `rows` observations: all true without masks; given masks reshaped to [rows, L] as
   * SB3 reshapes them to the logits' shape (SPEC section 5.9). */
  actionMaskBatch(actionMasks, rows) {
    const width = this.inputs.get(this.actionMaskInput).shape[1];
    if (actionMasks === null) return tensor('bool', [rows, width], new Uint8Array(rows * width).fill(1));
    const masks = castTensor(asTensor(actionMasks, 'action_masks'), 'bool', 'action_masks');
    if (masks.data.length !== rows * width) {
      throw new InputError(`action_masks hold ${masks.data.length} values; ${rows} observation(s) need `
        + `${rows} x ${width}`);
    }
    return reshaped(masks, [rows, width]);
  }

  /** The noise inputs of a sampled request: the caller's, else U[0, 1) / N(0, 1) float32 draws (one draw repeated on
   * every row for predict.shared_noise's inputs, SPEC section 5.9). */
  noiseFeeds(rows, rng, noise) {
    if (noise !== null && !isMapping(noise)) {
      throw new InputError(`noise maps noise-input names to arrays, got ${describe(noise)}`);
    }
    const names = this.noiseInputs.map((entry) => entry.name);
    const stray = noise === null ? [] : Object.keys(noise).filter((name) => !names.includes(name));
    if (stray.length) {
      throw new InputError(`noise names ${stray.map((name) => JSON.stringify(name)).join(', ')}, not a noise input `
        + `of this file (its noise inputs: ${names.join(', ') || 'none'})`);
    }
    const feeds = {};
    let generator = null;
    for (const entry of this.noiseInputs) {
      if (noise !== null && Object.hasOwn(noise, entry.name)) {
        feeds[entry.name] = castTensor(asTensor(noise[entry.name], `noise ${entry.name}`), 'float32', entry.name);
        continue;
      }
      generator = generator ?? this.drawsFrom(rng);
      const shared = this.sharedNoise.has(entry.name);
      const perRow = count(entry.shape.slice(1));
      const draw = entry.distribution === 'uniform' ? generator.uniform : generator.normal;
      const values = new Float32Array((shared ? 1 : rows) * perRow);
      for (let k = 0; k < values.length; k++) values[k] = draw();
      const data = shared ? new Float32Array(rows * perRow) : values;
      if (shared) for (let r = 0; r < rows; r++) data.set(values, r * perRow);
      feeds[entry.name] = tensor('float32', [rows].concat(entry.shape.slice(1)), data);
    }
    return feeds;
  }

  /** The generator `rng` names: a generator, a seed for a new one, or (null) the policy's own. */
  drawsFrom(rng) {
    if (rng === null) {
      this.generator = this.generator ?? unseededGenerator();
      return this.generator;
    }
    if (isGenerator(rng)) return rng;
    if (typeof rng === 'bigint' || Number.isSafeInteger(rng)) return createGenerator(rng);
    throw new InputError(`rng is a seed (an integer) or a generator from createGenerator, got ${describe(rng)}`);
  }
}

/** Whether `state` is SB3's pair [h, c] (an array of Tensors) rather than state rows. */
const isStatePair = (state) => Array.isArray(state) && state.length > 0 && isTensor(state[0]);

/** The first index of a Discrete or MultiDiscrete observation batch outside [0, n), and its n; null when every index
 * is inside, or for other spaces. SB3 one-hot encodes such observations with torch, which refuses an index outside
 * (SPEC section 5.9): so does the SB3 contract, rather than encode it as a row of zeros. */
function indexOutsideSpace(batch, space) {
  if (space.kind !== 'discrete' && space.kind !== 'multi_discrete') return null;
  const bounds = space.kind === 'discrete' ? [space.n] : space.nvec;
  for (let k = 0; k < batch.data.length; k++) {
    const value = batch.data[k];
    const index = typeof value === 'bigint' ? value : Math.trunc(Number(value));
    const bound = bounds[k % bounds.length];
    if (!(index >= 0 && index < bound)) return { index, bound };
  }
  return null;
}

// -- action probabilities (SPEC section 5.4) -------------------------------------------------------------------------
/** The outputs SB2's action_probability reads: a Gaussian's mean and std, else the probabilities. */
function parameterOutputs(distribution) {
  const { parameters } = distribution;
  return distribution.kind === 'diag_gaussian' ? [parameters.mean, parameters.std] : [parameters.probabilities];
}

/** action_probability's result without actions: [mean, std], one array per MultiDiscrete component, or the
 * probabilities. */
function distributionParameters(distribution, values) {
  const [first, second] = parameterOutputs(distribution);
  if (distribution.kind === 'diag_gaussian') return [values[first], values[second]];
  const probabilities = values[first];
  if (distribution.kind !== 'multi_categorical') return probabilities;
  const [rows, width] = probabilities.shape;
  let start = 0;
  return distribution.nvec.map((size) => {
    const part = tensor('float32', [rows, size]);
    for (let r = 0; r < rows; r++) {
      part.data.set(probabilities.data.subarray(r * width + start, r * width + start + size), r * size);
    }
    start += size;
    return part;
  });
}

/** The dtype NumPy gives `float32 array (op) array of dtype`: float32 for the types float32 holds exactly, float64
 * for wider ones (SPEC section 5.4's tables). */
const WIDENING = new Set(['float64', 'int32', 'int64']);

/** SB2's NumPy formulas for the probability of given actions (base_class.py), in SPEC section 5.4's dtypes: shape
 * [batch, 1]. */
function probabilityOf(distribution, values, actions, batch, logp) {
  const { kind } = distribution;
  if ((kind === 'categorical' || kind === 'multi_categorical') && !isIntegerDtype(actions.dtype)) {
    throw new InputError(`${kind} actions are indices: they must be integers, got ${actions.dtype}`);
  }
  const flat = actions.data;
  let result;
  if (kind === 'categorical') {
    const p = values[distribution.parameters.probabilities];
    const n = p.shape[1];
    checkBatch(flat.length, batch);
    result = new Float32Array(batch);
    for (let r = 0; r < batch; r++) result[r] = p.data[r * n + index(flat[r], n, 1)];
  } else if (kind === 'multi_categorical') {
    const p = values[distribution.parameters.probabilities];
    const width = p.shape[1];
    const { nvec } = distribution;
    const rows = reshapeRows(flat.length, nvec.length, kind);
    checkBatch(rows, batch);
    result = new Float32Array(batch);
    for (let r = 0; r < batch; r++) {
      let product = 1;
      let start = 0;
      nvec.forEach((size, j) => {
        product = Math.fround(product * p.data[r * width + start + index(flat[r * nvec.length + j], size, 1)]);
        start += size;
      });
      result[r] = product;
    }
  } else if (kind === 'bernoulli') {
    const p = values[distribution.parameters.probabilities];
    const n = p.shape[1];
    checkBatch(reshapeRows(flat.length, n, kind), batch);
    result = bernoulliProbability(p, actions, batch, n);
  } else {
    const mean = values[distribution.parameters.mean];
    const std = values[distribution.parameters.std];
    const d = mean.shape[1];
    checkBatch(reshapeRows(flat.length, d, kind), batch);
    const logprob = gaussianLogProbability(mean, std, actions, batch, d);
    if (logp) return tensor(logprob instanceof Float32Array ? 'float32' : 'float64', [batch, 1], logprob);
    result = logprob.map(Math.exp);
  }
  if (logp) result = result.map(Math.log);
  return tensor(result instanceof Float32Array ? 'float32' : 'float64', [batch, 1], result);
}

/** A categorical index as NumPy reads it: in [-n, n), a negative one counting from the end of the row. */
function index(value, n, axis) {
  const i = Number(value);
  if (i < -n || i >= n) {
    throw new InputError(`actions do not fit the categorical action space: index ${value} is out of bounds for axis `
      + `${axis} with size ${n}`);
  }
  return i < 0 ? i + n : i;
}

/** The number of rows of the actions reshaped to [-1, width], or an InputError as NumPy's reshape refuses. */
function reshapeRows(size, width, kind) {
  if (width === 0 ? size !== 0 : size % width !== 0) {
    throw new InputError(`actions do not fit the ${kind} action space: cannot reshape array of size ${size} into `
      + `shape (${width})`); // NumPy 2 leaves the -1 out
  }
  return width === 0 ? 0 : size / width;
}

function checkBatch(rows, batch) {
  if (rows !== batch) throw new InputError(`batch sizes differ: ${rows} actions for ${batch} observations`);
}

/** NumPy's prod(p * A + (1 - p) * (1 - A), axis=1): float32 when A's dtype is one float32 holds exactly, float64
 * otherwise; (1 - p) is float32 either way, and (1 - A) is computed in A's own dtype (wrapping, as NumPy's integers
 * do; int64 for bool). */
function bernoulliProbability(p, actions, batch, n) {
  const wide = WIDENING.has(actions.dtype) || actions.dtype === 'bool';
  const round = wide ? (x) => x : Math.fround;
  const oneMinusAction = oneMinus(actions);
  const result = wide ? new Float64Array(batch) : new Float32Array(batch);
  for (let r = 0; r < batch; r++) {
    let product = 1;
    for (let j = 0; j < n; j++) {
      const k = r * n + j;
      const probability = p.data[k];
      const term = round(round(probability * Number(actions.data[k]))
        + round(Math.fround(1 - probability) * oneMinusAction[k]));
      product = round(product * term);
    }
    result[r] = product;
  }
  return result;
}

/** 1 - A in A's dtype, as Numbers: integers wrap as NumPy's do; a bool's is int64 (NumPy 2 reads 1 - True as 0). */
function oneMinus(actions) {
  const { dtype, data } = actions;
  if (dtype === 'int64') return Array.from(data, (v) => Number(BigInt.asIntN(64, 1n - v)));
  if (dtype in INTEGER_BITS) return Array.from(new ARRAYS[dtype](Array.from(data, (v) => 1 - v)));
  if (dtype === 'float32') return Array.from(data, (v) => Math.fround(1 - v));
  return Array.from(data, (v) => 1 - Number(v));
}

/** SB2's Gaussian log-density: -sum_j (A - mean)^2 / (2 std^2) - (float32(d/2 log 2 pi) + sum_j log std), in float32
 * when A's dtype is bool or one float32 holds exactly, float64 otherwise; log std, its sum and 2 std^2 are float32. */
function gaussianLogProbability(mean, std, actions, batch, d) {
  const wide = WIDENING.has(actions.dtype);
  const round = wide ? (x) => x : Math.fround;
  const constant = Math.fround((d / 2) * LOG_2PI);
  const result = wide ? new Float64Array(batch) : new Float32Array(batch);
  for (let r = 0; r < batch; r++) {
    let logStdSum = 0;
    let squares = 0;
    for (let j = 0; j < d; j++) {
      const k = r * d + j;
      const s = std.data[k];
      logStdSum = Math.fround(logStdSum + Math.fround(Math.log(s)));
      const difference = round(round(Number(actions.data[k])) - mean.data[k]);
      const twiceVariance = Math.fround(2 * Math.fround(s * s));
      squares = round(squares + round(round(difference * difference) / twiceVariance));
    }
    result[r] = round(-squares - Math.fround(constant + logStdSum));
  }
  return result;
}
