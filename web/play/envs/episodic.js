/**
 * What the page's environments share, as gym wraps them: a seeded generator of initial states, the elementary
 * functions the dynamics call, and an episode's bookkeeping (the state, the steps taken, `TimeLimit`'s end).
 */
import { CORRECTLY_ROUNDED } from './elementary.js';
import { Mulberry32 } from './random.js';

export class EpisodicEnvironment {
  /**
   * @param {string} kind the environment's short name, for error messages ('CartPole')
   * @param {string[]} components the state's components, as gym names them
   * @param {{seed?: number, elementary?: import('./elementary.js').Elementary}} [options] `seed` makes the
   *   initial states of successive resets; `elementary` the sin/cos/square the dynamics call.
   */
  constructor(kind, components, { seed = 0, elementary = CORRECTLY_ROUNDED } = {}) {
    this.kind = kind;
    this.components = components;
    this.random = new Mulberry32(seed);
    this.elementary = elementary;
    this.state = null;
    this.steps = 0;
    this.done = true;
  }

  /** Start an episode at `state`, checked to be one finite number per component and kept as a float64 copy. */
  startEpisode(state) {
    if (state.length !== this.components.length || !Array.from(state).every(Number.isFinite)) {
      throw new RangeError(`${this.kind} state must be ${this.components.length} finite numbers `
        + `[${this.components.join(', ')}], got [${state}]`);
    }
    this.state = Float64Array.from(state);
    this.steps = 0;
    this.done = false;
  }

  /** Refuse a step once the episode is over. */
  checkRunning() {
    if (this.done) throw new Error(`${this.kind}: the episode is over; call reset() before step()`);
  }

  /** Count a step into `state`; the episode is done when `terminated` or at the time limit of `maxSteps`. */
  finishStep(state, terminated, maxSteps) {
    this.state = state;
    this.steps += 1;
    this.done = terminated || this.steps >= maxSteps;
  }
}
