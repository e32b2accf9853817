/**
 * The play page's agent, without the page: which model drives which environment, and episodes in which the JS
 * runtime's policy (SB2's deterministic `predict`) chooses every action. The page (play.js) draws them; the tests
 * (tests/web/) run the same code in Node and compare its actions with the Python runtime's.
 */
import { loadModel } from '../../runtimes/js/src/index.js';
import { createPolicy } from '../../runtimes/js/src/predict.js';
import { CartPole } from './envs/cartpole.js';
import { Pendulum } from './envs/pendulum.js';

/**
 * The environments the page offers, each with the model that acts in it (a path relative to this module) and the
 * simulated seconds per step, which paces the animation at real time.
 */
export const ENVIRONMENTS = Object.freeze({
  'CartPole-v1': Object.freeze({
    Environment: CartPole,
    model: 'models/ppo2_cartpole.sbif',
    agent: 'PPO2 MlpPolicy: demo/ppo2_cartpole.zip, the shipped SB2 model',
    secondsPerStep: 0.02,
  }),
  'Pendulum-v0': Object.freeze({
    Environment: Pendulum,
    model: 'models/pendulum_td3.sbif',
    agent: 'TD3 MlpPolicy [64, 64]: trained by web/play/models/train_pendulum.py',
    secondsPerStep: 0.05,
  }),
});

/**
 * The policy of an SBIF file's bytes.
 * @param {Uint8Array|ArrayBuffer} bytes
 * @param {string} name what error messages call the file
 */
export function loadPolicy(bytes, name) {
  return createPolicy(loadModel(bytes, { name }));
}

/**
 * The environment's action for one observation's action tensor: a Discrete action's index as a number, a Box
 * action as its float32 values.
 * @param {{dtype: string, shape: number[], data: ArrayLike<number>|BigInt64Array}} action
 * @returns {number|Float32Array}
 */
export function environmentAction(action) {
  if (action.dtype === 'int64') {
    if (action.data.length !== 1) throw new RangeError(`expected one discrete action, got shape [${action.shape}]`);
    return Number(action.data[0]);
  }
  if (action.dtype === 'float32') return Float32Array.from(action.data);
  throw new TypeError(`the page's environments take int64 or float32 actions, not ${action.dtype}`);
}

/** One episode at a time of `policy` acting in `env`, step by step, with its record. */
export class Episode {
  /**
   * @param {CartPole|Pendulum} env
   * @param {{predict: Function}} policy from `loadPolicy`
   */
  constructor(env, policy) {
    this.env = env;
    this.policy = policy;
    this.start();
  }

  /**
   * Begins a new episode from `initialState`, or the environment's next seeded start.
   * @param {ArrayLike<number>|null} [initialState]
   */
  start(initialState = null) {
    this.observation = this.env.reset(initialState);
    /** Every observation the policy was given, in order (float64, as the environment returns them). */
    this.observations = [];
    /** The action taken after each of them. */
    this.actions = [];
    this.steps = 0;
    this.return = 0;
    this.done = false;
    this.lastAction = null;
  }

  /** The policy's deterministic action for the current observation, taken: one environment step. */
  step() {
    if (this.done) throw new Error('the episode is over: start() another');
    const action = environmentAction(this.policy.predict(this.observation, { deterministic: true }).action);
    this.observations.push(Array.from(this.observation));
    this.actions.push(typeof action === 'number' ? action : Array.from(action));
    const { observation, reward, done } = this.env.step(action);
    this.observation = observation;
    this.lastAction = action;
    this.steps += 1;
    this.return += reward;
    this.done = done;
    return { observation, action, reward, done };
  }

  /** Steps until the episode ends; returns its return. */
  run() {
    while (!this.done) this.step();
    return this.return;
  }
}
