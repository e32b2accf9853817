// Runs the play page's agents (web/play/agent.js: the JS runtime's policy acting in the JS ports of the environments)
// from fixed seeds and writes what they saw and did, for test_play.py to feed the same observations to the Python
// runtime:
//
//   node tests/web/record_episodes.mjs OUT.json [EPISODES]
//
// OUT.json: {"CartPole-v1": {"model": ..., "episodes": [{"seed", "return", "observations", "actions"}]}, ...}.
// JSON numbers carry every float64 observation exactly.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { ENVIRONMENTS, Episode, loadPolicy } from '../../web/play/agent.js';

const PLAY = new URL('../../web/play/', import.meta.url);

/**
 * `episodes` episodes of each environment's agent, the i-th from a new environment seeded i (as the page's seed box).
 * @returns {{[env: string]: {model: string, episodes: {seed: number, return: number, observations: number[][],
 *   actions: (number|number[])[]}[]}}}
 */
export function recordEpisodes(episodes) {
  const record = {};
  for (const [name, { Environment, model }] of Object.entries(ENVIRONMENTS)) {
    const modelPath = fileURLToPath(new URL(model, PLAY));
    const policy = loadPolicy(readFileSync(modelPath), model);
    record[name] = { model: modelPath, episodes: [] };
    for (let seed = 0; seed < episodes; seed += 1) {
      const episode = new Episode(new Environment({ seed }), policy);
      episode.run();
      record[name].episodes.push({
        seed, return: episode.return, observations: episode.observations, actions: episode.actions,
      });
    }
  }
  return record;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [out, count = '5'] = process.argv.slice(2);
  if (!out || !/^[1-9][0-9]*$/.test(count)) {
    console.error('usage: node tests/web/record_episodes.mjs OUT.json [EPISODES (a positive integer, default 5)]');
    process.exit(2);
  }
  const record = recordEpisodes(Number(count));
  writeFileSync(out, JSON.stringify(record));
  for (const [name, { episodes }] of Object.entries(record)) {
    console.log(`${name}: returns ${episodes.map((episode) => episode.return.toFixed(1)).join(', ')}`);
  }
}
