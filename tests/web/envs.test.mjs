// The JavaScript ports of gym 0.17.3's CartPole-v1 and Pendulum-v0 against gym itself
// (fixtures/gym_trajectories.json, recorded by make_env_fixtures.py), and their sin and cos against mpmath
// (fixtures/sin_cos.json, make_sin_cos_fixture.py).  Run: node --test tests/web/
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { CartPole } from '../../web/play/envs/cartpole.js';
import { CORRECTLY_ROUNDED, cos, sin } from '../../web/play/envs/elementary.js';
import { Pendulum, angleNormalize } from '../../web/play/envs/pendulum.js';
import { Mulberry32 } from '../../web/play/envs/random.js';

const fixture = (name) => JSON.parse(readFileSync(new URL(`fixtures/${name}`, import.meta.url), 'utf8'));
const gym = fixture('gym_trajectories.json');
const ENVIRONMENTS = { 'CartPole-v1': CartPole, 'Pendulum-v0': Pendulum };

/** The sin, cos and squares gym's C library returned, looked up by argument; an argument gym never passed throws,
 * so the port must call them on exactly gym's arguments. */
function recordedElementary() {
  const table = (pairs) => new Map(pairs.map(([x, value]) => [x, value]));
  const sinValues = table(gym.libm.sin);
  const cosValues = table(gym.libm.cos);
  const squareValues = table(gym.libm.square); // only where pow(x, 2) is not x·x
  const lookup = (values, name) => (x) => {
    if (!values.has(x)) throw new Error(`${name}(${x}): gym never called it on this argument`);
    return values.get(x);
  };
  return {
    sin: lookup(sinValues, 'sin'),
    cos: lookup(cosValues, 'cos'),
    square: (x) => (squareValues.has(x) ? squareValues.get(x) : x * x),
  };
}

/** The first step where `env` replaying `episode`'s actions leaves gym's trajectory (Object.is: -0 is not 0),
 * or -1 when every observation, reward and done flag is gym's. */
function firstDivergence(env, episode) {
  env.reset(episode.initial_state);
  for (const [index, step] of episode.steps.entries()) {
    const { observation, reward, done } = env.step(step.action);
    const same = observation.length === step.observation.length
      && step.observation.every((value, i) => Object.is(value, observation[i]))
      && Object.is(reward, step.reward) && done === step.done;
    if (!same) return index;
  }
  return -1;
}

for (const [name, Environment] of Object.entries(ENVIRONMENTS)) {
  test(`${name}: every step equals gym's bit for bit given the C library's sin, cos and pow`, () => {
    const episodes = gym[name];
    assert.ok(episodes.length >= 3, 'fixture holds the episodes');
    for (const [index, episode] of episodes.entries()) {
      const env = new Environment({ elementary: recordedElementary() });
      assert.equal(firstDivergence(env, episode), -1, `${name} episode ${index} leaves gym's trajectory`);
      assert.ok(env.done, `${name} episode ${index} ends where gym's does`);
    }
  });

  test(`${name}: correctly rounded, episodes follow gym's up to the C library's first other rounding`, (t) => {
    // An episode may leave gym's trajectory only at or after the first step that takes a value from sin, cos or
    // the square the C library rounded otherwise than the correctly rounded one.
    const recorded = recordedElementary();
    const diverged = [];
    for (const [index, episode] of gym[name].entries()) {
      let firstOtherRounding = -1;
      const watch = (functionName, correctlyRounded) => (x) => {
        const value = correctlyRounded(x);
        if (firstOtherRounding < 0 && !Object.is(value, recorded[functionName](x))) firstOtherRounding = env.steps;
        return value;
      };
      const env = new Environment({
        elementary: {
          sin: watch('sin', sin), cos: watch('cos', cos), square: watch('square', CORRECTLY_ROUNDED.square),
        },
      });
      const divergence = firstDivergence(env, episode);
      if (firstOtherRounding < 0) {
        assert.equal(divergence, -1, `${name} episode ${index}: every value is gym's, yet the trajectory is not`);
      } else {
        assert.ok(divergence === -1 || divergence >= firstOtherRounding,
          `${name} episode ${index} diverges at step ${divergence}, before the C library's first other rounding`
          + ` (step ${firstOtherRounding})`);
        if (divergence >= 0) diverged.push(`episode ${index} from step ${divergence}`);
      }
    }
    t.diagnostic(`left gym's trajectory where the C library rounds otherwise: ${diverged.join(', ') || 'none'}`);
  });
}

test('sin and cos are correctly rounded on the sample mpmath rounded (fixtures/sin_cos.json)', () => {
  const { samples } = fixture('sin_cos.json');
  assert.ok(samples.length >= 5000, `${samples.length} samples`);
  for (const [x, expectedSin, expectedCos] of samples) {
    assert.ok(Object.is(sin(x), expectedSin), `sin(${x}) = ${sin(x)}, correctly rounded ${expectedSin}`);
    assert.ok(Object.is(cos(x), expectedCos), `cos(${x}) = ${cos(x)}, correctly rounded ${expectedCos}`);
  }
});

test('sin and cos: zeros, non-finite arguments, and arguments beyond the reduction refused', () => {
  assert.ok(Object.is(sin(-0), -0));
  assert.equal(cos(-0), 1);
  assert.ok(Number.isNaN(sin(Infinity)) && Number.isNaN(cos(-Infinity)) && Number.isNaN(sin(NaN)));
  assert.throws(() => sin(2 ** 31), /exceeds/);
});

test('angleNormalize maps to [-pi, pi) with numpy\'s floored remainder', () => {
  assert.equal(angleNormalize(0), 0);
  assert.equal(angleNormalize(Math.PI), -Math.PI);
  assert.ok(Math.abs(angleNormalize(-3 * Math.PI / 2) - Math.PI / 2) < 1e-15);
  assert.ok(Math.abs(angleNormalize(7) - (7 - 2 * Math.PI)) < 1e-15);
});

test('seeded resets: the same seed gives the same initial states, within gym\'s bounds', () => {
  const a = new CartPole({ seed: 7 });
  const b = new CartPole({ seed: 7 });
  for (let episode = 0; episode < 3; episode += 1) {
    const first = a.reset();
    assert.deepEqual(first, b.reset());
    assert.ok(first.every((value) => value >= -0.05 && value < 0.05));
  }
  assert.notDeepEqual(new CartPole({ seed: 8 }).reset(), new CartPole({ seed: 7 }).reset());
  const pendulum = new Pendulum({ seed: 3 }).reset();
  assert.ok(Math.abs(pendulum[0] ** 2 + pendulum[1] ** 2 - 1) < 1e-15 && Math.abs(pendulum[2]) <= 1);
  const random = new Mulberry32(1);
  const draws = Array.from({ length: 1000 }, () => random.nextDouble());
  assert.ok(draws.every((u) => u >= 0 && u < 1) && new Set(draws).size === 1000);
});

test('bad actions and steps after the end are refused with a clear error', () => {
  const cartpole = new CartPole();
  assert.throws(() => cartpole.step(0), /call reset\(\)/);
  cartpole.reset();
  assert.throws(() => cartpole.step(2), /CartPole action must be 0 or 1, got 2/);
  assert.throws(() => cartpole.reset([0, 0, 0]), /4 finite numbers/);
  const pendulum = new Pendulum();
  pendulum.reset();
  assert.throws(() => pendulum.step('left'), /Pendulum action must be one number/);
  assert.equal(pendulum.step(Float32Array.of(5)).done, false);
  assert.equal(pendulum.lastTorque, 2, 'torques are clipped to [-2, 2]');
});
