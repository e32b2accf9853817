// SBIF's JavaScript runtime against onnxruntime-web (its WASM backend) in one Node process, on the plan that
// benchmarks/js_bench.py writes: the benchmark's models, the ONNX file SBIF's converter makes of each (cut down to
// the deterministic action, and the next state for the LSTM), and the observations both runtimes are given.
//
//   node bench.mjs check PLAN                             both runtimes' actions on SB2's reference observations,
//                                                         the versions, and the threads onnxruntime-web takes here
//   node bench.mjs time PLAN --ort-threads 1|default      single-observation latency and batch throughput
//
// Each command prints one JSON document on stdout; js_bench.py judges the check (sbif.compare's rule) and only then
// asks for timings. The two runtimes are timed alternately, round by round, in the same process, so a load that
// comes and goes on the machine falls on both. onnxruntime-web reads its thread count once, when its WASM module
// starts, which is why the thread setting is per process.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

import * as ort from 'onnxruntime-web';

import { loadModelFile, VERSION as SBIF_VERSION } from '../../runtimes/js/src/node.js';
import { createPolicy } from '../../runtimes/js/src/predict.js';

/** A single-observation sample is the mean of a block of back-to-back calls lasting at least this long (as
 * benchmarks/harness.py's time_single: the clock's own cost stays out of microsecond calls). */
const BLOCK_MS = 0.02;
const MAX_BLOCK_CALLS = 16;
/** Typed arrays of the dtypes the benchmark's observation files hold (uint8 also for the LSTM's reset flags). */
const ARRAYS = { float32: Float32Array, uint8: Uint8Array };

function fail(message) {
  process.stderr.write(`bench.mjs: ${message}\n`);
  process.exit(2);
}

/** The raw little-endian file `path` as a typed array of `dtype` (a copy: aligned, and owned by this process). */
function readArray(path, dtype) {
  const bytes = readFileSync(path);
  const Type = ARRAYS[dtype];
  if (!Type) fail(`${path}: no typed array for dtype ${dtype}`);
  if (bytes.byteLength % Type.BYTES_PER_ELEMENT !== 0) fail(`${path}: ${bytes.byteLength} bytes is not whole ${dtype}s`);
  return new Type(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

const product = (shape) => shape.reduce((a, b) => a * b, 1);

/** Plain numbers of a result (an int64 action arrives as BigInts), for the JSON js_bench.py reads. */
const numbers = (data) => Array.from(data, Number);

/** Sets the thread count onnxruntime-web's WASM backend starts with: a number, or 'default' for its own choice
 * (read back from ort.env.wasm.numThreads once the first session has started the backend). */
function setOrtThreads(threads) {
  ort.env.logLevel = 'error';
  if (threads !== 'default') ort.env.wasm.numThreads = threads;
}

async function loadOrt(entry) {
  return ort.InferenceSession.create(readFileSync(entry.onnx), { executionProviders: ['wasm'] });
}

/**
 * One model as both runtimes hold it, with the calls that are timed: the JS policy's `predict(observation,
 * {deterministic: true})` and onnxruntime-web's `session.run(feeds, fetches)`, recurrent state carried by each.
 */
class Contestants {
  constructor(entry, session) {
    this.entry = entry;
    this.policy = createPolicy(loadModelFile(entry.sbif));
    this.session = session;
    const planned = entry.ort_inputs.map((input) => input.name).sort();
    const declared = session.inputNames.slice().sort();
    if (planned.join('\n') !== declared.join('\n')) {
      fail(`${entry.name}: the plan feeds ${planned.join(', ')} but ${entry.onnx} takes ${declared.join(', ')}`);
    }
  }

  /** `rows` observations from the start of `data` as a JS tensor: a single one (no batch axis) when `single`. */
  observation(data, rows, single) {
    const { dtype, shape } = this.entry.observation;
    const size = product(shape);
    return { dtype, shape: single ? shape.slice() : [rows].concat(shape), data: data.subarray(0, rows * size) };
  }

  /** onnxruntime-web's feeds for `rows` observations: the observation, a zero state and no reset, constant noise. */
  ortFeeds(data, rows) {
    const feeds = {};
    for (const input of this.entry.ort_inputs) {
      if (input.role === 'observation') {
        const { dtype, shape } = this.entry.observation;
        feeds[input.name] = new ort.Tensor(dtype, data.subarray(0, rows * product(shape)), [rows].concat(shape));
      } else if (input.role === 'state') {
        feeds[input.name] = new ort.Tensor('float32', new Float32Array(rows * input.width), [rows, input.width]);
      } else if (input.role === 'mask') {
        feeds[input.name] = new ort.Tensor('float32', new Float32Array(rows), [rows]);
      } else {
        const shape = input.shape.map((dim) => (dim === null ? rows : dim));
        feeds[input.name] = new ort.Tensor('float32', new Float32Array(product(shape)).fill(input.fill), shape);
      }
    }
    return feeds;
  }

  /** A zero-argument call of the JS runtime on `rows` observations (`single`: one observation, no batch axis). */
  jsCall(data, rows, single) {
    const { policy } = this;
    const observation = this.observation(data, rows, single && !policy.recurrent);
    if (!policy.recurrent) return () => policy.predict(observation, { deterministic: true }).action;
    // SB2 refuses a single observation for a recurrent policy: one env's batch of one, its state carried
    const carried = { state: policy.initialState(rows), mask: { dtype: 'float32', shape: [rows], data: new Float32Array(rows) } };
    return () => {
      const { action, state } = policy.predict(observation, { state: carried.state, mask: carried.mask, deterministic: true });
      carried.state = state;
      return action;
    };
  }

  /** The same call of onnxruntime-web (a promise). */
  ortCall(data, rows) {
    const { session, entry } = this;
    const feeds = this.ortFeeds(data, rows);
    const fetches = [entry.action].concat(entry.state_output ? [entry.state_output] : []);
    if (!entry.state_output) return () => session.run(feeds, fetches);
    return async () => {
      const results = await session.run(feeds, fetches);
      feeds[entry.state_input] = results[entry.state_output];
      return results[entry.action];
    };
  }

  /** Both runtimes' deterministic actions (and LSTM states) on SB2's reference observations: the batch at once, or
   * the recurrent rollout step by step with SB2's resets, each runtime carrying its own state. */
  async reference() {
    const { entry, policy, session } = this;
    const { reference } = entry;
    const obs = readArray(reference.obs_file, entry.observation.dtype);
    if (!entry.state_output) {
      const js = policy.predict(this.observation(obs, reference.rows, false), { deterministic: true }).action;
      const found = await session.run(this.ortFeeds(obs, reference.rows), [entry.action]);
      return { js: { action: numbers(js.data) }, ort: { action: numbers(found[entry.action].data) } };
    }
    const masks = readArray(reference.mask_file, 'uint8');
    const size = product(entry.observation.shape);
    const js = { action: [], state: [] };
    const onnx = { action: [], state: [] };
    let jsState = null;
    let ortState = null;
    for (let t = 0; t < reference.rows; t++) {
      const step = obs.subarray(t * size, (t + 1) * size);
      const mask = new Float32Array([masks[t]]);
      const predicted = policy.predict(this.observation(step, 1, false),
        { state: jsState, mask: { dtype: 'float32', shape: [1], data: mask }, deterministic: true });
      jsState = predicted.state;
      js.action.push(Number(predicted.action.data[0]));
      js.state.push(numbers(jsState.data));
      const feeds = this.ortFeeds(step, 1);
      if (ortState !== null) feeds[entry.state_input] = ortState;
      feeds[entry.mask_input] = new ort.Tensor('float32', mask, [1]);
      const found = await session.run(feeds, [entry.action, entry.state_output]);
      ortState = found[entry.state_output];
      onnx.action.push(Number(found[entry.action].data[0]));
      onnx.state.push(numbers(ortState.data));
    }
    return { js, ort: onnx };
  }
}

// -- timing --------------------------------------------------------------------------------------------------------
/** Calls `call` (awaiting it when `isAsync`) `times` times; returns the milliseconds spent. */
async function run(call, isAsync, times) {
  const started = performance.now();
  if (isAsync) for (let k = 0; k < times; k++) await call();
  else for (let k = 0; k < times; k++) call();
  return performance.now() - started;
}

/** Per-call latencies in µs of one round: `warmup` calls, then at least `calls` calls in blocks of k back-to-back
 * calls (k such that a block lasts >= 20 µs, at most 16), one sample per block. */
async function timeSingle(call, isAsync, calls, warmup) {
  await run(call, isAsync, warmup);
  const perCall = (await run(call, isAsync, 8)) / 8;
  const block = Math.max(1, Math.min(MAX_BLOCK_CALLS, Math.floor(BLOCK_MS / Math.max(perCall, 1e-6))));
  const samples = [];
  for (let b = 0; b < Math.ceil(calls / block); b++) samples.push(((await run(call, isAsync, block)) / block) * 1e3);
  return samples;
}

/** µs per call of one round's batch calls: one warm-up call, then calls until `seconds` are spent (at least
 * `minCalls`, at most `maxCalls`). */
async function timeBatch(call, isAsync, seconds, minCalls, maxCalls) {
  await run(call, isAsync, 1);
  const samples = [];
  let spent = 0;
  while (samples.length < maxCalls && (samples.length < minCalls || spent < seconds * 1e3)) {
    const ms = await run(call, isAsync, 1);
    samples.push(ms * 1e3);
    spent += ms;
  }
  return samples;
}

function median(values) {
  const sorted = Float64Array.from(values).sort();
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** One model's rounds: per round, each runtime's single-observation samples then its batch samples, the runtime that
 * goes first alternating from round to round; each round contributes its median. */
async function timeModel(contestants, settings) {
  const { entry } = contestants;
  const singleData = readArray(entry.single_file, entry.observation.dtype);
  const batchData = readArray(entry.batch_file, entry.observation.dtype);
  const calls = {
    single: { js: contestants.jsCall(singleData, 1, true), ort: contestants.ortCall(singleData, 1) },
    batch: { js: contestants.jsCall(batchData, entry.batch_rows, false), ort: contestants.ortCall(batchData, entry.batch_rows) },
  };
  const rounds = { single: { js: [], ort: [] }, batch: { js: [], ort: [] } };
  for (let round = 0; round < settings.rounds; round++) {
    const order = round % 2 === 0 ? ['js', 'ort'] : ['ort', 'js'];
    const warmup = round === 0 ? settings.warmup : Math.ceil(settings.warmup / 4);
    for (const runtime of order) {
      const isAsync = runtime === 'ort';
      rounds.single[runtime].push(median(await timeSingle(calls.single[runtime], isAsync, settings.single_calls, warmup)));
      rounds.batch[runtime].push(median(await timeBatch(calls.batch[runtime], isAsync, settings.batch_seconds,
        settings.batch_min_calls, settings.batch_max_calls)));
    }
    process.stderr.write(`  ${entry.name}: round ${round + 1}/${settings.rounds}\n`);
  }
  return rounds;
}

// -- commands ------------------------------------------------------------------------------------------------------
function versions() {
  return {
    node: process.versions.node,
    onnxruntime_web: ort.env.versions.web,
    sbif_runtime: SBIF_VERSION,
  };
}

const COMMANDS = ['check', 'time'];

function readPlan(command, path) {
  if (!COMMANDS.includes(command)) {
    fail(`unknown command ${JSON.stringify(command)}: check PLAN or time PLAN [--ort-threads N|default]`);
  }
  if (!path) fail(`${command} takes the plan benchmarks/js_bench.py writes as its argument`);
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** The `time` command: every model of the plan, onnxruntime-web started with the thread setting of `options`. */
async function timeAll(plan, options) {
  const flag = options.indexOf('--ort-threads');
  const setting = flag >= 0 ? options[flag + 1] : '1';
  const threads = setting === 'default' ? 'default' : Number(setting);
  if (threads !== 'default' && !(Number.isInteger(threads) && threads > 0)) {
    fail(`--ort-threads takes a positive integer or "default", got ${JSON.stringify(setting)}`);
  }
  setOrtThreads(threads);
  const results = {};
  for (const entry of plan.models) {
    const contestants = new Contestants(entry, await loadOrt(entry));
    globalThis.gc?.(); // the previous model's garbage is not collected during this one's rounds (node --expose-gc)
    results[entry.name] = await timeModel(contestants, plan.settings);
  }
  return { ...versions(), ort_threads: ort.env.wasm.numThreads, models: results };
}

async function main(argv) {
  const [command, planPath, ...options] = argv;
  const plan = readPlan(command, planPath);
  if (command === 'check') {
    setOrtThreads('default'); // any thread count computes the same actions, within SPEC section 6's tolerance
    const models = {};
    for (const entry of plan.models) models[entry.name] = await new Contestants(entry, await loadOrt(entry)).reference();
    return { ...versions(), ort_default_threads: ort.env.wasm.numThreads, models };
  }
  return timeAll(plan, options);
}

process.stdout.write(`${JSON.stringify(await main(process.argv.slice(2)))}\n`);
