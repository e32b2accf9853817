/**
 * The play page: loads an environment's model with fetch, runs episodes in which the JS runtime's policy
 * (agent.js) chooses every action, and draws them on the canvas at the environment's real-time pace (or faster).
 *
 * The page's state is mirrored on <body data-status="loading|running|paused|finished|error">, and each finished
 * episode adds an item to #history with `data-return`, which the browser test (tests/browser/play.test.mjs) reads.
 * Query parameters preset the controls: ?env=CartPole-v1&seed=0&speed=max.
 */
import { ENVIRONMENTS, Episode, loadPolicy } from './agent.js';
import { THETA_THRESHOLD_RADIANS, X_THRESHOLD } from './envs/cartpole.js';
import { MAX_TORQUE } from './envs/pendulum.js';

/** How long a finished episode's last frame stays before the next episode starts. */
const PAUSE_BETWEEN_EPISODES_MS = 1500;
/** At "as fast as it runs", the share of each animation frame spent stepping. */
const MAX_SPEED_BUDGET_MS = 12;

const elements = Object.fromEntries(
  ['environment', 'seed', 'speed', 'reset', 'pause', 'agent', 'scene', 'episode', 'step', 'action', 'return',
    'status', 'history'].map((id) => [id, document.getElementById(id)]),
);
const context = elements.scene.getContext('2d');
/** Policies by environment name, each loaded once (a promise, so concurrent resets share the fetch). */
const policies = new Map();

const run = {
  /** Bumped by every reset: a loop or timer of an older run sees it changed and stops. */
  generation: 0,
  name: null,
  episode: null,
  episodeNumber: 0,
  paused: false,
  /** Simulated steps owed to the clock at real-time speeds. */
  owedSteps: 0,
  lastFrame: null,
};

function setStatus(status, text = status) {
  document.body.dataset.status = status;
  elements.status.textContent = text;
  elements.status.classList.toggle('error', status === 'error');
}

function policyFor(name) {
  if (!policies.has(name)) {
    const url = new URL(ENVIRONMENTS[name].model, import.meta.url);
    policies.set(name, fetch(url).then(async (response) => {
      if (!response.ok) throw new Error(`${url.pathname}: HTTP ${response.status}`);
      return loadPolicy(await response.arrayBuffer(), ENVIRONMENTS[name].model);
    }));
    policies.get(name).catch(() => policies.delete(name)); // a failed fetch may be retried by the next reset
  }
  return policies.get(name);
}

function seedValue() {
  const seed = Number(elements.seed.value);
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`the seed must be a whole number >= 0, got "${elements.seed.value}"`);
  }
  return seed;
}

/** Starts over: the chosen environment, seeded afresh, its first episode. */
async function reset() {
  const generation = ++run.generation;
  const name = elements.environment.value;
  const { Environment, agent } = ENVIRONMENTS[name];
  elements.agent.textContent = `Agent: ${agent}.`;
  elements.history.replaceChildren();
  setStatus('loading', 'loading the model');
  try {
    const seed = seedValue();
    const policy = await policyFor(name);
    if (generation !== run.generation) return;
    run.name = name;
    run.episode = new Episode(new Environment({ seed }), policy);
    run.episodeNumber = 1;
    run.owedSteps = 0;
    run.lastFrame = null;
    showStep();
    setStatus(run.paused ? 'paused' : 'running');
    requestAnimationFrame((time) => frame(time, generation));
  } catch (error) {
    if (generation !== run.generation) return;
    setStatus('error', `${error.name}: ${error.message}`);
    console.error(error);
  }
}

/** One animation frame: the steps the clock owes (or a frame's budget of them), then a drawing. */
function frame(time, generation) {
  if (generation !== run.generation) return;
  const { episode } = run;
  if (!run.paused && !episode.done) {
    const speed = elements.speed.value;
    if (speed === 'max') {
      const start = performance.now();
      while (!episode.done && performance.now() - start < MAX_SPEED_BUDGET_MS) episode.step();
    } else {
      const elapsed = run.lastFrame === null ? 0 : Math.min(time - run.lastFrame, 250);
      run.owedSteps += (elapsed / 1000) * Number(speed) / ENVIRONMENTS[run.name].secondsPerStep;
      while (!episode.done && run.owedSteps >= 1) {
        episode.step();
        run.owedSteps -= 1;
      }
    }
    if (episode.done) finishEpisode(generation);
  }
  run.lastFrame = time;
  showStep();
  requestAnimationFrame((next) => frame(next, generation));
}

function finishEpisode(generation) {
  const { episode } = run;
  const item = document.createElement('li');
  item.dataset.return = String(episode.return);
  item.dataset.steps = String(episode.steps);
  item.textContent = `return ${formatReturn(episode.return)} in ${episode.steps} steps`;
  elements.history.append(item);
  setStatus('finished', `episode ${run.episodeNumber} finished: return ${formatReturn(episode.return)}`);
  setTimeout(() => {
    if (generation !== run.generation) return;
    run.episode.start(); // the environment's next seeded start
    run.episodeNumber += 1;
    run.owedSteps = 0;
    setStatus(run.paused ? 'paused' : 'running');
  }, PAUSE_BETWEEN_EPISODES_MS);
}

function formatReturn(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function formatAction(action) {
  if (action === null) return '–';
  if (run.name === 'CartPole-v1') return action === 1 ? 'push right' : 'push left';
  return `torque ${action[0] >= 0 ? '+' : ''}${action[0].toFixed(3)}`;
}

function showStep() {
  const { episode } = run;
  elements.episode.textContent = String(run.episodeNumber);
  elements.step.textContent = String(episode.steps);
  elements.action.textContent = formatAction(episode.lastAction);
  elements.return.textContent = formatReturn(episode.return);
  if (run.name === 'CartPole-v1') drawCartPole(episode.env.state);
  else drawPendulum(episode.env.state, episode.env.lastTorque);
}

// -- drawing: gym's classic-control pictures, 600x400 ------------------------------------------------------------
const WIDTH = 600;
const HEIGHT = 400;
const COLORS = {
  track: '#1d232b', cart: '#1d232b', pole: '#caa26e', axle: '#8184cb', limit: '#d5d9e0', rod: '#cc4d4d',
  torque: '#2f6fd6',
};

function clear() {
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, WIDTH, HEIGHT);
}

/** @param {Float64Array} state [x, ẋ, θ, θ̇] */
function drawCartPole([x, , theta]) {
  const scale = WIDTH / (2 * X_THRESHOLD);
  const trackY = HEIGHT - 100;
  const cartX = WIDTH / 2 + x * scale;
  const poleLength = scale * 1.0; // gym's pole: 2 × its half-length of 0.5
  clear();
  context.strokeStyle = COLORS.track;
  context.lineWidth = 1;
  context.beginPath();
  context.moveTo(0, trackY);
  context.lineTo(WIDTH, trackY);
  context.stroke();
  // the pole's failure angle, drawn faintly either side of upright
  context.strokeStyle = COLORS.limit;
  context.setLineDash([4, 4]);
  for (const sign of [-1, 1]) {
    context.beginPath();
    context.moveTo(cartX, trackY - 15);
    context.lineTo(cartX + sign * Math.sin(THETA_THRESHOLD_RADIANS) * poleLength,
      trackY - 15 - Math.cos(THETA_THRESHOLD_RADIANS) * poleLength);
    context.stroke();
  }
  context.setLineDash([]);
  context.fillStyle = COLORS.cart;
  context.fillRect(cartX - 25, trackY - 30, 50, 30);
  context.save();
  context.translate(cartX, trackY - 15);
  context.rotate(theta); // θ > 0 leans the pole right, as in gym's picture
  context.fillStyle = COLORS.pole;
  context.fillRect(-5, -poleLength, 10, poleLength);
  context.restore();
  context.fillStyle = COLORS.axle;
  context.beginPath();
  context.arc(cartX, trackY - 15, 5, 0, 2 * Math.PI);
  context.fill();
}

/** @param {Float64Array} state [θ, θ̇], θ = 0 upright, counter-clockwise positive @param {number} torque */
function drawPendulum([theta], torque) {
  const centerX = WIDTH / 2;
  const centerY = HEIGHT / 2;
  const rodLength = 150;
  clear();
  context.save();
  context.translate(centerX, centerY);
  context.rotate(-theta);
  context.strokeStyle = COLORS.rod;
  context.lineCap = 'round';
  context.lineWidth = 24;
  context.beginPath();
  context.moveTo(0, 0);
  context.lineTo(0, -rodLength);
  context.stroke();
  context.restore();
  if (torque !== 0) {
    // the applied torque: an arc around the pivot, as long as the torque is strong, pointing its way
    const sweep = (Math.abs(torque) / MAX_TORQUE) * 1.5 * Math.PI;
    const start = -Math.PI / 2;
    const end = torque > 0 ? start - sweep : start + sweep;
    context.strokeStyle = COLORS.torque;
    context.lineWidth = 4;
    context.beginPath();
    context.arc(centerX, centerY, 40, start, end, torque > 0);
    context.stroke();
    const tipX = centerX + 40 * Math.cos(end);
    const tipY = centerY + 40 * Math.sin(end);
    const heading = end + (torque > 0 ? -Math.PI / 2 : Math.PI / 2);
    context.fillStyle = COLORS.torque;
    context.beginPath();
    context.moveTo(tipX + 10 * Math.cos(heading), tipY + 10 * Math.sin(heading));
    context.lineTo(tipX + 7 * Math.cos(heading + 2.3), tipY + 7 * Math.sin(heading + 2.3));
    context.lineTo(tipX + 7 * Math.cos(heading - 2.3), tipY + 7 * Math.sin(heading - 2.3));
    context.fill();
  }
  context.fillStyle = COLORS.cart;
  context.beginPath();
  context.arc(centerX, centerY, 6, 0, 2 * Math.PI);
  context.fill();
}

// -- controls ------------------------------------------------------------------------------------------------------
function applyQuery() {
  const query = new URLSearchParams(window.location.search);
  const env = query.get('env');
  if (env !== null) {
    if (!Object.hasOwn(ENVIRONMENTS, env)) {
      throw new RangeError(`?env=${env}: not one of ${Object.keys(ENVIRONMENTS).join(', ')}`);
    }
    elements.environment.value = env;
  }
  if (query.has('seed')) elements.seed.value = query.get('seed');
  const speed = query.get('speed');
  if (speed !== null) {
    if (![...elements.speed.options].some((option) => option.value === speed)) {
      throw new RangeError(`?speed=${speed}: not one of 1, 4, max`);
    }
    elements.speed.value = speed;
  }
}

elements.reset.addEventListener('click', reset);
elements.environment.addEventListener('change', reset);
elements.seed.addEventListener('change', reset);
elements.pause.addEventListener('click', () => {
  run.paused = !run.paused;
  elements.pause.textContent = run.paused ? 'Resume' : 'Pause';
  run.lastFrame = null;
  if (document.body.dataset.status === 'running' || document.body.dataset.status === 'paused') {
    setStatus(run.paused ? 'paused' : 'running');
  }
});

try {
  applyQuery();
  reset();
} catch (error) {
  setStatus('error', `${error.name}: ${error.message}`);
  console.error(error);
}
