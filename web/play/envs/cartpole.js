/**
 * gym 0.17.3's CartPole-v1 (the environment the shipped PPO2 model was trained in), step for step: the same
 * float64 operations in the same order as gym's `CartPoleEnv.step`, Euler integration, termination at
 * |x| > 2.4 or |θ| > 12°, and `TimeLimit`'s 500 steps. Given the same initial state, actions and elementary
 * function values, every observation and reward equals gym's bit for bit (tests/web/envs.test.mjs).
 *
 * Observations are gym's float64 state [x, ẋ, θ, θ̇]; SB2 casts them to float32 when it feeds the policy.
 */
import { EpisodicEnvironment } from './episodic.js';

const GRAVITY = 9.8;
const MASS_CART = 1.0;
const MASS_POLE = 0.1;
const TOTAL_MASS = MASS_POLE + MASS_CART;
/** Half the pole's length, as gym names it. */
const LENGTH = 0.5;
const POLE_MASS_LENGTH = MASS_POLE * LENGTH;
const FORCE_MAG = 10.0;
/** Seconds between state updates. */
const TAU = 0.02;
export const THETA_THRESHOLD_RADIANS = 12 * 2 * Math.PI / 360;
export const X_THRESHOLD = 2.4;
export const MAX_EPISODE_STEPS = 500;
/** reset() draws each state component uniformly from [-INITIAL_BOUND, INITIAL_BOUND). */
const INITIAL_BOUND = 0.05;

export class CartPole extends EpisodicEnvironment {
  /**
   * @param {{seed?: number, elementary?: import('./elementary.js').Elementary}} [options] `seed` makes the
   *   initial states of successive resets; `elementary` the sin/cos/square the dynamics call.
   */
  constructor(options) {
    super('CartPole', ['x', 'x_dot', 'theta', 'theta_dot'], options);
  }

  get name() {
    return 'CartPole-v1';
  }

  /**
   * Start an episode from `state` ([x, ẋ, θ, θ̇]) or, by default, from one drawn from the seeded generator.
   * @returns {Float64Array} the first observation
   */
  reset(state = null) {
    this.startEpisode(state ?? Array.from({ length: 4 }, () => this.random.uniform(-INITIAL_BOUND, INITIAL_BOUND)));
    return Float64Array.from(this.state);
  }

  /**
   * Push the cart left (action 0) or right (1) for one step.
   * @returns {{observation: Float64Array, reward: number, done: boolean, terminated: boolean}} `terminated`: the
   *   pole fell or the cart left the track (`done` also ends at the time limit)
   */
  step(action) {
    this.checkRunning();
    if (action !== 0 && action !== 1) throw new RangeError(`CartPole action must be 0 or 1, got ${action}`);
    const { sin, cos, square } = this.elementary;
    let [x, xDot, theta, thetaDot] = this.state;
    const force = action === 1 ? FORCE_MAG : -FORCE_MAG;
    const cosTheta = cos(theta);
    const sinTheta = sin(theta);
    const temp = (force + POLE_MASS_LENGTH * square(thetaDot) * sinTheta) / TOTAL_MASS;
    const thetaAcc = (GRAVITY * sinTheta - cosTheta * temp)
      / (LENGTH * (4.0 / 3.0 - MASS_POLE * square(cosTheta) / TOTAL_MASS));
    const xAcc = temp - POLE_MASS_LENGTH * thetaAcc * cosTheta / TOTAL_MASS;
    x = x + TAU * xDot;
    xDot = xDot + TAU * xAcc;
    theta = theta + TAU * thetaDot;
    thetaDot = thetaDot + TAU * thetaAcc;
    const terminated = x < -X_THRESHOLD || x > X_THRESHOLD
      || theta < -THETA_THRESHOLD_RADIANS || theta > THETA_THRESHOLD_RADIANS;
    this.finishStep(Float64Array.of(x, xDot, theta, thetaDot), terminated, MAX_EPISODE_STEPS);
    return { observation: Float64Array.from(this.state), reward: 1.0, done: this.done, terminated };
  }
}
