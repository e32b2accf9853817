/**
 * gym 0.17.3's Pendulum-v0 (the environment the page's TD3 agent was trained in), step for step: the same float64
 * operations in the same order as gym's `PendulumEnv.step` under numpy 1.18 (the float32 torque is widened to
 * float64 before any arithmetic, the angle is normalised with numpy's floored remainder), and `TimeLimit`'s
 * 200 steps. Given the same initial state, actions and elementary function values, every observation and reward
 * equals gym's bit for bit (tests/web/envs.test.mjs).
 *
 * The state is [θ, θ̇] with θ = 0 upright; observations are gym's float64 [cos θ, sin θ, θ̇].
 */
import { EpisodicEnvironment } from './episodic.js';

const MAX_SPEED = 8;
export const MAX_TORQUE = 2.0;
const DT = 0.05;
const G = 10.0;
const M = 1.0;
const L = 1.0;
/** -3g/(2l) and 3/(ml²), as gym's expression groups them (both exact). */
const GRAVITY_TERM = -3 * G / (2 * L);
const TORQUE_TERM = 3.0 / (M * L * L);
export const MAX_EPISODE_STEPS = 200;

/** numpy's floored remainder (`npy_divmod`): C's fmod, moved into the divisor's sign. */
function flooredRemainder(a, b) {
  let remainder = a % b;
  if (remainder !== 0) {
    if ((b < 0) !== (remainder < 0)) remainder += b;
  } else {
    remainder = b < 0 ? -0 : 0;
  }
  return remainder;
}

/** gym's `angle_normalize`: θ mapped to [-π, π). */
export function angleNormalize(theta) {
  return flooredRemainder(theta + Math.PI, 2 * Math.PI) - Math.PI;
}

export class Pendulum extends EpisodicEnvironment {
  /**
   * @param {{seed?: number, elementary?: import('./elementary.js').Elementary}} [options] `seed` makes the
   *   initial states of successive resets; `elementary` the sin/cos/square the dynamics call.
   */
  constructor(options) {
    super('Pendulum', ['theta', 'theta_dot'], options);
    /** The torque last applied, after clipping (for drawing). */
    this.lastTorque = 0;
  }

  get name() {
    return 'Pendulum-v0';
  }

  /**
   * Start an episode from `state` ([θ, θ̇]) or, by default, θ uniform on [-π, π) and θ̇ on [-1, 1) from the
   * seeded generator.
   * @returns {Float64Array} the first observation
   */
  reset(state = null) {
    this.startEpisode(state ?? [this.random.uniform(-Math.PI, Math.PI), this.random.uniform(-1, 1)]);
    this.lastTorque = 0;
    return this.observation();
  }

  observation() {
    const [theta, thetaDot] = this.state;
    return Float64Array.of(this.elementary.cos(theta), this.elementary.sin(theta), thetaDot);
  }

  /**
   * Apply a torque for one step: `action` is the policy's float32 action (a number or a one-element array),
   * clipped to [-2, 2] as gym clips it.
   * @returns {{observation: Float64Array, reward: number, done: boolean, terminated: boolean}} Pendulum never
   *   terminates: `done` is the time limit
   */
  step(action) {
    this.checkRunning();
    const torque = typeof action === 'number' ? action : action?.length === 1 ? Number(action[0]) : NaN;
    if (Number.isNaN(torque)) throw new RangeError(`Pendulum action must be one number, got ${action}`);
    const { sin, square } = this.elementary;
    const [theta, thetaDot] = this.state;
    const u = Math.min(Math.max(Math.fround(torque), -MAX_TORQUE), MAX_TORQUE);
    this.lastTorque = u;
    const costs = square(angleNormalize(theta)) + 0.1 * square(thetaDot) + 0.001 * square(u);
    let newThetaDot = thetaDot + (GRAVITY_TERM * sin(theta + Math.PI) + TORQUE_TERM * u) * DT;
    const newTheta = theta + newThetaDot * DT;
    newThetaDot = Math.min(Math.max(newThetaDot, -MAX_SPEED), MAX_SPEED);
    this.finishStep(Float64Array.of(newTheta, newThetaDot), false, MAX_EPISODE_STEPS);
    return { observation: this.observation(), reward: -costs, done: this.done, terminated: false };
  }
}
