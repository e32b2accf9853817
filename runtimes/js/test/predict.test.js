// The predict contract (src/predict.js, SPEC section 5) on the golden packs' model files: each rule checked against the
// model's own graph outputs, so no oracle is needed here. Agreement with SB2's and SB3's recorded answers is
// tests/conformance/test_js_predict.py's (the suite's predict_api check over the protocol).
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { InputError, tensor } from '../src/index.js';
import { loadModelFile } from '../src/node.js';
import { createGenerator, createPolicy } from '../src/predict.js';

const GOLDEN = fileURLToPath(new URL('../../../conformance/golden/', import.meta.url));
const cache = new Map();
function load(name) {
  if (!cache.has(name)) {
    const model = loadModelFile(`${GOLDEN}${name}.sbif`);
    cache.set(name, { model, policy: createPolicy(model) });
  }
  return cache.get(name);
}

/** `rows` observations of `width` float32 values, deterministic and varied. */
function observations(rows, width, scale = 1) {
  const data = Array.from({ length: rows * width }, (_, k) => scale * Math.sin(k * 1.7 + 0.3));
  return tensor('float32', [rows, width], data);
}

const values = (t) => Array.from(t.data, Number);
const rowOf = (t, index) => {
  const size = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return values(t).slice(index * size, (index + 1) * size);
};
const uniformNoise = (rows, width, seed) => {
  const generator = createGenerator(seed);
  return tensor('float32', [rows, width], Array.from({ length: rows * width }, generator.uniform));
};

test('a batch returns the deterministic action output; a single observation its row 0, without the batch', () => {
  const { model, policy } = load('ppo2_mlp_box_discrete');
  const obs = observations(6, 5);
  const expected = model.run({ obs }, ['action']).action;
  const batch = policy.predict(obs, { deterministic: true });
  assert.deepEqual(batch.action, expected);
  assert.equal(batch.state, null);
  const single = policy.predict(Float32Array.from(rowOf(obs, 2)), { deterministic: true });
  assert.deepEqual(single.action.shape, []);
  assert.deepEqual(values(single.action), rowOf(expected, 2));
});

test("the algorithm's default: PPO2 samples, SAC acts deterministically", () => {
  const ppo = load('ppo2_mlp_box_discrete');
  const obs = observations(32, 5, 3);
  const noise = uniformNoise(32, 3, 7);
  const sampled = ppo.model.run({ obs, noise_uniform: noise }, ['action_sample']).action_sample;
  assert.deepEqual(ppo.policy.predict(obs, { noise: { noise_uniform: noise } }).action, sampled);
  assert.notDeepEqual(sampled, ppo.model.run({ obs }, ['action']).action, 'the noise changes some actions');
  const sac = load('sac_lnmlp_box');
  assert.deepEqual(sac.policy.predict(obs).action, sac.model.run({ obs }, ['action']).action);
});

test('a seed gives the same samples on every call; the policy\'s own generator differs between calls', () => {
  const { policy } = load('trpo_mlp_mixedbounds_box');
  const obs = observations(16, 3);
  const first = policy.predict(obs, { deterministic: false, rng: 12 }).action;
  assert.deepEqual(policy.predict(obs, { deterministic: false, rng: 12n }).action, first);
  assert.notDeepEqual(policy.predict(obs, { deterministic: false, rng: 13 }).action, first);
  const unseeded = () => policy.predict(obs, { deterministic: false }).action;
  assert.notDeepEqual(unseeded(), unseeded());
  const generator = createGenerator(12);
  const fromGenerator = policy.predict(obs, { deterministic: false, rng: generator }).action;
  assert.deepEqual(fromGenerator, first);
  assert.notDeepEqual(policy.predict(obs, { deterministic: false, rng: generator }).action, first, 'it advances');
});

test('createGenerator: uniform draws are multiples of 2^-24 in [0, 1), normal draws have mean 0 and variance 1', () => {
  const generator = createGenerator(2024);
  const uniforms = Array.from({ length: 20000 }, generator.uniform);
  assert.ok(uniforms.every((u) => u >= 0 && u < 1 && Number.isInteger(u * 2 ** 24)));
  const normals = Array.from({ length: 20000 }, generator.normal);
  assert.ok(normals.every((z) => z === Math.fround(z) && Number.isFinite(z)));
  const mean = normals.reduce((a, b) => a + b, 0) / normals.length;
  const variance = normals.reduce((a, z) => a + (z - mean) ** 2, 0) / normals.length;
  // 20000 draws: the mean's standard deviation is 0.007 and the variance's 0.01; these bounds are 7 of them
  assert.ok(Math.abs(mean) < 0.05 && Math.abs(variance - 1) < 0.07, `mean ${mean}, variance ${variance}`);
  const halves = uniforms.filter((u) => u < 0.5).length / uniforms.length;
  assert.ok(Math.abs(halves - 0.5) < 0.025, `${halves} of the uniform draws below 1/2`);
  assert.throws(() => createGenerator(1.5), InputError);
});

test('shared noise (SB3 DQN): one exploration draw repeated on every row, the random actions drawn per row', () => {
  const { policy } = load('sb3_dqn_mlp_epsilon_greedy');
  const feeds = policy.noiseFeeds(5, 3, null);
  assert.equal(new Set(values(feeds.noise_exploration)).size, 1);
  assert.equal(new Set(values(feeds.noise_random_action)).size, 5);
});

test('float observations for an integer input truncate toward zero (SPEC 5.1)', () => {
  const { policy } = load('a2c_mlp_multidiscrete');
  const indices = [[0, 1, 2], [1, 0, 1], [1, 2, 0]];
  const truncated = indices.map((row) => row.map((i) => i + 0.9));
  assert.deepEqual(policy.predict(truncated, { deterministic: true }).action,
    policy.predict(indices, { deterministic: true }).action);
  assert.deepEqual(policy.value(indices.map((row) => row.map((i) => -0.6 * (i === 0) + i))),
    policy.value(indices));
});

test('a HER file takes its dict observation, joined in the key order', () => {
  const { policy } = load('her_sac_goals');
  const obs = observations(4, 8);
  const parts = {
    desired_goal: tensor('float32', [4, 2], [0, 1, 2, 3].flatMap((r) => rowOf(obs, r).slice(6, 8))),
    observation: tensor('float32', [4, 4], [0, 1, 2, 3].flatMap((r) => rowOf(obs, r).slice(0, 4))),
    achieved_goal: tensor('float32', [4, 2], [0, 1, 2, 3].flatMap((r) => rowOf(obs, r).slice(4, 6))),
  };
  assert.deepEqual(policy.predict(parts).action, policy.predict(obs).action);
  const single = { observation: rowOf(obs, 1).slice(0, 4), achieved_goal: rowOf(obs, 1).slice(4, 6),
    desired_goal: rowOf(obs, 1).slice(6, 8) };
  assert.deepEqual(values(policy.predict(single).action), rowOf(policy.predict(obs).action, 1));
  assert.throws(() => policy.predict({ observation: [0, 0, 0, 0] }),
    /the dict observation lacks achieved_goal, desired_goal/);
});

test('recurrent: the state is fed back, a mask resets it, a single observation takes and returns a state row', () => {
  const { model, policy } = load('ppo2_lstm_box_discrete');
  const obs = observations(3, 5);
  const first = policy.predict(obs, { deterministic: true });
  assert.deepEqual(first.state, model.run({ obs, state: tensor('float32', [3, 8]), mask: tensor('float32', [3]) },
    ['state_out']).state_out);
  const second = policy.predict(obs, { state: first.state, mask: [false, true, false], deterministic: true });
  const fromZero = policy.predict(obs, { deterministic: true });
  assert.deepEqual(rowOf(second.state, 1), rowOf(fromZero.state, 1), 'the reset row starts again from zeros');
  assert.notDeepEqual(rowOf(second.state, 0), rowOf(fromZero.state, 0));
  const single = policy.predict(rowOf(obs, 2), { state: rowOf(first.state, 2), deterministic: true });
  assert.deepEqual(single.state.shape, [8]);
  assert.deepEqual(values(single.state), rowOf(second.state, 2));
  assert.throws(() => policy.predict(obs, { state: tensor('float32', [2, 8]) }),
    { name: 'InputError', message: 'state must have shape (3, 8) for 3 observation(s), got (2, 8)' });
});

test("SB3 recurrent: no state gives SB3's (h, c) pair, and the pair fed back is the rows' actor half", () => {
  const { policy } = load('sb3_recurrentppo_lstm_discrete');
  const obs = observations(3, 4);
  const first = policy.predict(obs, { deterministic: true });
  assert.ok(Array.isArray(first.state) && first.state.length === 2);
  assert.deepEqual(first.state.map((part) => part.shape), [[1, 3, 4], [1, 3, 4]]);
  const rows = policy.stateRows(first.state, 3);
  assert.deepEqual(policy.statePair(rows), first.state);
  const fromPair = policy.predict(obs, { state: first.state, deterministic: true });
  const fromRows = policy.predict(obs, { state: rows, deterministic: true });
  assert.deepEqual(fromPair.action, fromRows.action);
  assert.deepEqual(fromPair.state, policy.statePair(fromRows.state));
  assert.throws(() => policy.predict(obs, { state: first.state, mask: [0, 0, 0], episodeStart: [0, 0, 0] }),
    /pass mask or episode_start, not both/);
});

test('SB3: actions take the action space\'s shape; a single observation gives element 0 as an array', () => {
  const box = load('sb3_ppo_mlp_box');
  const obs = tensor('float32', [5, 2, 3], values(observations(5, 6)));
  const batch = box.policy.predict(obs, { deterministic: true });
  assert.deepEqual(batch.action.shape, [5, 2, 2]);
  assert.deepEqual(values(batch.action), values(box.model.run({ obs }, ['action']).action));
  const one = box.policy.predict([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], { deterministic: true });
  assert.deepEqual(one.action.shape, [2, 2]);
  const discrete = load('sb3_ppo_mlp_discrete').policy.predict([0.1, 0.2, 0.3, 0.4], { deterministic: true });
  assert.equal(discrete.action.dtype, 'int64');
  assert.deepEqual(discrete.action.shape, []);
});

test('SB3 channel-last images are transposed to the space\'s channel-first layout', () => {
  const { policy } = load('sb3_ppo_cnn_hwc_separate');
  const [channels, height, width] = policy.observationSpace.shape;
  const pixels = Array.from({ length: channels * height * width }, (_, k) => k % 251);
  const chw = tensor('uint8', [channels, height, width], pixels);
  const hwc = new Uint8Array(chw.data.length);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) hwc[(y * width + x) * channels + c] = chw.data[(c * height + y) * width + x];
    }
  }
  const fromHwc = policy.makeFeeds(tensor('uint8', [height, width, channels], hwc), null, null, null);
  const fromChw = policy.makeFeeds(chw, null, null, null);
  assert.deepEqual(fromHwc, fromChw);
  assert.equal(fromChw.feeds.obs.dtype, 'float32');
  assert.equal(fromChw.vectorized, false);
});

test('MaskablePPO: the masked deterministic action is an allowed one', () => {
  const { policy } = load('sb3_maskableppo_multidiscrete');
  const obs = observations(4, 4);
  const only = [[0, 0, 1, 0, 1], [1, 0, 0, 1, 0], [0, 1, 0, 1, 0], [0, 0, 1, 1, 0]].map((row) => row.map(Boolean));
  const { action } = policy.predict(obs, { deterministic: true, actionMasks: only });
  assert.deepEqual(values(action), [2, 1, 0, 0, 1, 0, 2, 0]);
  assert.throws(() => policy.predict(obs, { actionMasks: [true, false] }),
    { message: 'action_masks hold 2 values; 4 observation(s) need 4 x 5' });
  assert.throws(() => load('demo_ppo2_cartpole').policy.predict([0, 0, 0, 0], { actionMasks: [true, true] }),
    { message: 'this PPO2 policy takes no action masks' });
});

test('action_probability: categorical probabilities, of given actions (negative ones from the end), and logp', () => {
  const { model, policy } = load('ppo2_mlp_box_discrete');
  const obs = observations(4, 5);
  const p = model.run({ obs }, ['probabilities']).probabilities;
  assert.deepEqual(policy.actionProbability(obs), p);
  assert.deepEqual(values(policy.actionProbability(rowOf(obs, 3))), rowOf(p, 3));
  const given = policy.actionProbability(obs, { actions: [0, 2, -1, 1] });
  assert.deepEqual(given.shape, [4, 1]);
  assert.deepEqual(values(given), [rowOf(p, 0)[0], rowOf(p, 1)[2], rowOf(p, 2)[2], rowOf(p, 3)[1]]);
  const logp = policy.actionProbability(obs, { actions: [0, 2, -1, 1], logp: true });
  assert.deepEqual(values(logp), values(given).map((v) => Math.fround(Math.log(v))));
  assert.throws(() => policy.actionProbability(obs, { actions: [0, 3, 0, 0] }),
    { message: 'actions do not fit the categorical action space: index 3 is out of bounds for axis 1 with size 3' });
  assert.throws(() => policy.actionProbability(obs, { actions: [0.5, 1, 0, 0] }),
    { message: 'categorical actions are indices: they must be integers, got float64' });
});

test('action_probability: a Gaussian gives [mean, std], the mean alone for one observation, and its density', () => {
  const { model, policy } = load('trpo_mlp_mixedbounds_box');
  const obs = observations(3, 3);
  const { mean, std } = model.run({ obs }, ['mean', 'std']);
  assert.deepEqual(policy.actionProbability(obs), [mean, std]);
  const single = policy.actionProbability(rowOf(obs, 0));
  assert.deepEqual(single.shape, [1, 2]);
  assert.deepEqual(values(single), rowOf(mean, 0));
  const actions = tensor('float64', [3, 2], [0.1, -0.2, 0.3, 0.4, -0.5, 0.6]);
  const logp = policy.actionProbability(obs, { actions, logp: true });
  assert.equal(logp.dtype, 'float64');
  const density = (r) => rowOf(mean, r).reduce((sum, m, j) => {
    const s = rowOf(std, r)[j];
    return sum - (values(actions)[r * 2 + j] - m) ** 2 / (2 * s * s) - Math.log(s) - Math.log(2 * Math.PI) / 2;
  }, 0);
  values(logp).forEach((v, r) => assert.ok(Math.abs(v - density(r)) < 1e-5 * (1 + Math.abs(density(r))), `row ${r}`));
  const probability = policy.actionProbability(obs, { actions });
  assert.deepEqual(values(probability), values(logp).map(Math.exp));
});

test('a policy without a distribution has no action probabilities', () => {
  const { policy } = load('td3_mlp_box');
  assert.equal(policy.actionProbability(observations(2, 5)), null);
  assert.throws(() => policy.actionProbability(observations(2, 5), { actions: [[0], [0]] }),
    { message: 'this TD3 policy is deterministic: it has no action probabilities' });
});

test('value: [B] for a batch, a scalar for one observation', () => {
  const { model, policy } = load('demo_ppo2_cartpole');
  const obs = observations(3, 4);
  assert.deepEqual(policy.value(obs), model.run({ obs }, ['value']).value);
  const one = policy.value(rowOf(obs, 1));
  assert.deepEqual(one.shape, []);
  assert.deepEqual(values(one), rowOf(model.run({ obs }, ['value']).value, 1));
});

test('bad input is an InputError naming the problem', () => {
  const { policy } = load('demo_ppo2_cartpole');
  assert.throws(() => policy.predict([[1, 2, 3]]),
    { name: 'InputError',
      message: 'unexpected observation shape (1, 3) for a box observation space: use (4,) or (n_env, 4)' });
  assert.throws(() => policy.predict([[1, 2, 3, 4], [1, 2]]), /observation is not a rectangular array/);
  assert.throws(() => policy.predict([0, 0, 0, 0], { determinstic: true }), /predict has no option "determinstic"/);
  assert.throws(() => policy.predict([0, 0, 0, 0], { deterministic: false, noise: { noise_normal: [[0]] } }),
    /noise names "noise_normal", not a noise input of this file \(its noise inputs: noise_uniform\)/);
  assert.throws(() => load('zoo_ddpg_pendulum').policy.predict([0, 0, 0], { deterministic: false }),
    /this DDPG file cannot sample actions as SB2 does/);
});

test("a batch too large for SPEC 5.8's limit is refused before the request's state, mask and noise are made", () => {
  const { model } = load('ppo2_lstm_box_discrete');
  const checked = [];
  const refusing = Object.create(model, {
    checkBatch: {
      value: (outputs, rows) => {
        checked.push([outputs, rows]);
        throw new InputError('batch too large');
      },
    },
    run: { value: () => assert.fail('run after a refused batch') },
  });
  const policy = createPolicy(refusing);
  policy.initialState = () => assert.fail('the initial state made before the batch was checked');
  policy.noiseFeeds = () => assert.fail('noise drawn before the batch was checked');
  assert.throws(() => policy.predict(observations(3, 5), { deterministic: false, rng: 1 }), /batch too large/);
  assert.throws(() => policy.actionProbability(observations(3, 5)), /batch too large/);
  assert.throws(() => policy.value(observations(3, 5)), /batch too large/);
  const recurrent = model.document.predict.recurrent;
  assert.deepEqual(checked.map(([, rows]) => rows), [3, 3, 3]);
  assert.ok(checked[0][0].includes(recurrent.state_output) && checked[2][0].includes('value'), checked);
});

test('Model.checkBatch refuses, as run does, a batch that would make a value pass the run-time limit', () => {
  const { model } = load('ppo2_lstm_box_discrete');
  model.checkBatch(['action'], 1000);
  assert.throws(() => model.checkBatch(['action'], 2 ** 40), (error) => error instanceof InputError
    && /above the limit of 4294967296 bytes for one value/.test(error.message));
});
