// The play page's agents in Node (web/play/agent.js): the shipped PPO2 model balances the JS CartPole for all 500
// steps from every seed the page offers first, and the TD3 agent swings the JS Pendulum up. test_play.py compares
// their actions with the Python runtime's.  Run: node --test tests/web/
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { environmentAction } from '../../web/play/agent.js';
import { recordEpisodes } from './record_episodes.mjs';

const EPISODES = 5;
const record = recordEpisodes(EPISODES);

test('CartPole-v1: the PPO2 agent reaches return 500 from seeds 0-4, deterministically', () => {
  const episodes = record['CartPole-v1'].episodes;
  assert.deepEqual(episodes.map((episode) => episode.return), Array(EPISODES).fill(500));
  assert.deepEqual(recordEpisodes(1)['CartPole-v1'].episodes[0], episodes[0], 'the same seed, the same episode');
  for (const episode of episodes) {
    assert.equal(episode.observations.length, 500);
    assert.ok(episode.actions.every((action) => action === 0 || action === 1));
    assert.ok(new Set(episode.actions).size === 2, 'the agent pushes both ways');
  }
});

test('Pendulum-v0: the TD3 agent swings up (mean return over seeds 0-4 better than -400)', () => {
  const returns = record['Pendulum-v0'].episodes.map((episode) => episode.return);
  const mean = returns.reduce((sum, value) => sum + value, 0) / returns.length;
  assert.ok(mean > -400, `mean return ${mean.toFixed(1)} (${returns.map((value) => value.toFixed(1))})`);
  for (const episode of record['Pendulum-v0'].episodes) {
    assert.equal(episode.actions.length, 200);
    assert.ok(episode.actions.every(([torque]) => Math.abs(torque) <= 2), 'TD3 acts within the action space');
  }
});

test('environmentAction: a discrete index as a number, a Box action as float32 values, others refused', () => {
  assert.equal(environmentAction({ dtype: 'int64', shape: [], data: BigInt64Array.of(1n) }), 1);
  const box = environmentAction({ dtype: 'float32', shape: [1], data: Float32Array.of(0.5) });
  assert.deepEqual(box, Float32Array.of(0.5));
  assert.throws(() => environmentAction({ dtype: 'bool', shape: [], data: Uint8Array.of(1) }), /not bool/);
});
