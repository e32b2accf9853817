// The predict panel: an observation typed as JSON (or sampled from the space) run through the file's policy —
// predict, action_probability and value, as Stable-Baselines' own methods answer them (SPEC section 5) — in the page.
import { h } from './dom.js';
import { errorText, float32Text, shapeText, spaceText } from './format.js';
import { nest, sampleSpace } from './space-sample.js';

/** Results with more elements than this are shown in part (an action or a state is far smaller). */
const SHOWN_ELEMENTS = 4096;
/**
 * A sampled observation whose JSON is longer than this is kept by the panel and the field shows what it is instead:
 * a text area holding an Atari batch's megabytes of JSON takes the browser seconds to lay out.
 */
const SAMPLE_TEXT_CHARS = 65536;

/**
 * Builds the panel for `policy` into `container`.
 * @param {HTMLElement} container
 * @param {import('../../runtimes/js/src/predict.js').Policy} policy
 * @param {object} document the file's document
 */
export function predictPanel(container, policy, document) {
  const { predict } = document;
  const recurrent = predict.recurrent ?? null;
  const field = (id, label, hint, rows = 3) => {
    const input = h('textarea', { id, rows, spellcheck: 'false', placeholder: hint, autocomplete: 'off' });
    return { input, row: h('label', { class: 'field', for: id }, h('span', {}, label), input) };
  };
  const observation = field('observation', 'Observation (JSON)', observationHint(document), 4);
  const state = recurrent ? field('state', 'State (JSON rows, empty: zeros)',
    `[[…${policy.stateSize} floats…]] one row per observation`, 2) : null;
  const mask = recurrent ? field('mask', `${recurrent.mask_input} (JSON, empty: no reset)`,
    '[false, true]: true resets that env first', 1) : null;
  const actionMasks = predict.action_mask ? field('action-masks', 'Action masks (JSON, empty: all allowed)',
    'true allows an action', 1) : null;
  const actions = field('actions', 'Actions for action_probability (JSON, optional)',
    'one action per observation', 1);
  const batch = h('input', { id: 'sample-batch', type: 'number', min: 1, max: 1024, value: 1, title:
    'observations to sample: 1 samples one observation, more a batch' });
  const deterministic = h('input', { id: 'deterministic', type: 'checkbox' });
  deterministic.checked = predict.deterministic_default;
  const logp = h('input', { id: 'logp', type: 'checkbox' });
  const noiseInputs = document.inputs.filter((entry) => entry.kind === 'noise');
  const noise = noiseInputs.length ? field('noise', 'Noise for a sampled action (JSON, empty: drawn from the seed)',
    `{${noiseInputs.map((entry) => `"${entry.name}": ${entry.distribution} draws, one row per observation`)
      .join(', ')}}`, 2) : null;
  const seed = h('input', { id: 'seed', type: 'text', inputmode: 'numeric', placeholder: 'random', size: 8, title:
    "the seed of the noise a sampled action draws: the same seed, the same action (empty: a generator seeded at "
    + 'random once, whose draws go on from call to call)' });
  const result = h('div', { id: 'predict-result', class: 'result', 'aria-live': 'polite' });
  let lastState = null;
  /** The last sampled observation too large to show, and the text the field shows for it. */
  let sampled = null;
  const keepState = recurrent ? h('button', { type: 'button', id: 'use-state', class: 'small', disabled: true,
    title: "feed the returned state to the next step", onclick: () => {
      state.input.value = formatValue(lastState);
    } }, 'Use returned state') : null;

  const run = (method) => {
    result.replaceChildren();
    result.dataset.method = method;
    delete result.dataset.status;
    try {
      const obs = observation.input.value === sampled?.summary ? sampled.value
        : parseField(observation.input, 'observation', true);
      const common = {};
      if (recurrent) {
        // SBIF's state rows, zeros when the field is empty: given no state, SB3's predict would answer with its
        // (h, c) pair, which leaves out a separate critic LSTM's half and could not be fed back as rows
        common.state = parseField(state.input, 'state', false)
          ?? policy.initialState(policy.observationFeeds(obs).rows);
        common.mask = parseField(mask.input, recurrent.mask_input, false);
      }
      let answer;
      if (method === 'predict') {
        const options = { ...common, deterministic: deterministic.checked };
        if (actionMasks) options.actionMasks = parseField(actionMasks.input, 'action masks', false);
        if (seed.value.trim() !== '') options.rng = parseSeed(seed.value);
        const given = noise ? parseField(noise.input, 'noise', false) : null;
        if (given !== null) options.noise = given;
        answer = policy.predict(obs, options);
        lastState = recurrent ? answer.state : null;
        if (keepState) keepState.disabled = lastState === null;
        showFields(result, recurrent ? { action: answer.action, state: answer.state } : { action: answer.action });
      } else if (method === 'action_probability') {
        const given = parseField(actions.input, 'actions', false);
        answer = policy.actionProbability(obs, { ...common, actions: given, logp: logp.checked });
        showFields(result, { probability: answer });
      } else {
        showFields(result, { value: policy.value(obs, common) });
      }
      result.dataset.status = 'ok';
    } catch (error) {
      result.dataset.status = 'error';
      result.replaceChildren(h('div', { class: 'error inline', role: 'alert' }, errorText(error)));
    }
    result.scrollIntoView({ block: 'nearest' });
  };

  const hasValue = document.outputs.some((output) => output.name === 'value');
  container.replaceChildren(
    h('p', { class: 'muted' }, `${spaceText(document.observation_space)} → ${spaceText(document.action_space)}`),
    observation.row,
    h('div', { class: 'row' },
      h('button', { type: 'button', id: 'sample', onclick: () => {
        const count = Math.max(1, Math.min(1024, Number.parseInt(batch.value, 10) || 1));
        const value = sampleSpace(document.observation_space, count === 1 ? null : count);
        const text = formatValue(value);
        sampled = text.length > SAMPLE_TEXT_CHARS ? { value, summary: sampleSummary(value, text.length) } : null;
        observation.input.value = sampled ? sampled.summary : text;
        if (recurrent) { // a new observation (perhaps another batch size) starts its envs afresh
          state.input.value = '';
          mask.input.value = '';
        }
      } }, 'Sample from the space'),
      h('label', { class: 'inline' }, '×', batch)),
    ...[state, mask, actionMasks].filter(Boolean).map((optional) => optional.row),
    h('div', { class: 'row' },
      h('label', { class: 'inline', title: predict.stochastic_action === null
        ? 'this file cannot sample: its exploration noise is not in the file' : 'sample the action from the noise' },
      deterministic, ' deterministic'),
      h('label', { class: 'inline' }, 'seed ', seed)),
    h('div', { class: 'row buttons' },
      h('button', { type: 'button', id: 'run-predict', class: 'primary', onclick: () => run('predict') }, 'predict'),
      h('button', { type: 'button', id: 'run-action-probability',
        title: predict.distribution ? '' : 'this policy has no action distribution: SB2 returns None',
        onclick: () => run('action_probability') }, 'action_probability'),
      h('button', { type: 'button', id: 'run-value', disabled: !hasValue,
        title: hasValue ? '' : 'this file has no value output', onclick: () => run('value') }, 'value'),
      keepState),
    h('details', { class: 'more' }, h('summary', {}, 'More options'),
      noise?.row ?? null, actions.row, h('label', { class: 'inline' }, logp, ' log-probability (logp)')),
    result);
}

/** What the field shows for a sampled observation too large to show: its shape, and how to replace it. */
function sampleSummary(value, characters) {
  const shape = (item) => (Array.isArray(item) ? [item.length, ...shape(item[0])] : []);
  const describe = (item) => `an array of shape (${shape(item).join(', ')})`;
  const what = Array.isArray(value) ? describe(value)
    : `{${Object.entries(value).map(([key, item]) => `${key}: ${describe(item)}`).join(', ')}}`;
  return `(sampled: ${what}, ${Math.round(characters / 1024)} KB as JSON, kept out of this field for speed; `
    + 'predict uses it while this text is unchanged)';
}

/** What the observation field takes, from the space. */
function observationHint(document) {
  const space = document.observation_space;
  const one = (s) => {
    switch (s.kind) {
      case 'box': return `${s.dtype} array of shape (${s.shape.join(', ')}${s.shape.length === 1 ? ',' : ''})`;
      case 'discrete': return `an integer in [0, ${s.n})`;
      case 'multi_discrete': return `${s.nvec.length} integers below [${s.nvec.join(', ')}]`;
      case 'multi_binary': return `${s.n} zeros or ones`;
      default: return s.kind;
    }
  };
  if (space.kind === 'dict') {
    return `{${space.spaces.map((entry) => `"${entry.key}": ${one(entry.space)}`).join(', ')}}, or a batch of each`;
  }
  return `${one(space)}, or a batch of them`;
}

/** A field's JSON, or null when it is empty and optional; a parse error names the field. */
function parseField(input, what, required) {
  const text = input.value.trim();
  if (text === '') {
    if (required) throw new Error(`type an ${what} as JSON, or sample one from the space`);
    return null;
  }
  try {
    return parseJsonWithSpecialNumbers(text);
  } catch (error) {
    throw new Error(`the ${what} is not JSON: ${error.message}`);
  }
}

/** NaN, Infinity and -Infinity outside strings, which JSON lacks, read as those numbers (formatValue writes them). */
const SPECIAL_NUMBER = /"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)/g;
const SPECIAL_MARK = '#sbif-viewer-number:'; // no control character: JSON strings cannot hold one
function parseJsonWithSpecialNumbers(text) {
  const marked = text.replace(SPECIAL_NUMBER, (match, special) => (special ? `"${SPECIAL_MARK}${special}"` : match));
  return JSON.parse(marked, (key, value) => (typeof value === 'string' && value.startsWith(SPECIAL_MARK)
    ? Number(value.slice(SPECIAL_MARK.length)) : value));
}

function parseSeed(text) {
  const value = text.trim();
  if (!/^-?\d+$/.test(value)) throw new Error(`the seed is an integer, got ${JSON.stringify(value)}`);
  return BigInt(value);
}

/**
 * Shows each result (a tensor, a list of tensors, or null) as its type and its values as JSON: floats as the
 * shortest text that reads back as the same number, so a result copied from the page is the value computed.
 */
function showFields(container, fields) {
  for (const [name, value] of Object.entries(fields)) {
    const parts = Array.isArray(value) ? value.map((item, index) => [`${name}[${index}]`, item]) : [[name, value]];
    for (const [field, tensor] of parts) container.appendChild(resultField(field, tensor));
  }
}

function resultField(name, tensor) {
  const shape = tensor?.shape.length ? `(${shapeText(tensor.shape)})` : 'scalar';
  const type = tensor === null ? 'None' : `${tensor.dtype} ${shape}`;
  const text = tensor === null ? 'null' : formatTensor(tensor);
  return h('div', { class: 'result-field', 'data-field': name, 'data-dtype': tensor?.dtype ?? 'None',
    'data-shape': tensor === null ? 'null' : JSON.stringify(tensor.shape) },
    h('div', { class: 'result-head' }, h('strong', {}, name), ' ', h('span', { class: 'muted' }, type)),
    h('pre', { class: 'result-values' }, text));
}

/** A tensor as JSON text: nested arrays, innermost ones on one line. */
function formatTensor(tensor) {
  const show = tensor.dtype === 'float32' ? float32Text : String;
  const values = Array.from(tensor.data.slice(0, SHOWN_ELEMENTS), (value) => new RawNumber(show(value)));
  if (tensor.data.length > SHOWN_ELEMENTS) {
    return `${values.map((value) => value.text).join(', ')}, … (${tensor.data.length - SHOWN_ELEMENTS} more of `
      + `${tensor.data.length} values)`;
  }
  return formatValue(nest(values, tensor.shape));
}

/** A number already written as text, placed in JSON as it is. */
class RawNumber {
  constructor(text) { this.text = text; }
}

/**
 * Nested arrays (and objects, and tensors) as JSON text with innermost arrays on one line, so an observation stays
 * readable. A number that is a float32 is written as the shortest text that reads back as that float32; NaN and the
 * infinities as JavaScript names them, which `parseField` reads back.
 */
function formatValue(value, indent = '') {
  if (value instanceof RawNumber) return value.text;
  if (typeof value === 'number') return Math.fround(value) === value ? float32Text(value) : String(value);
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (isTensorLike(value)) return formatTensor(value);
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.every((item) => item === null || typeof item !== 'object' || item instanceof RawNumber)) {
      return `[${value.map((item) => formatValue(item)).join(', ')}]`;
    }
    return `[\n${value.map((item) => inner + formatValue(item, inner)).join(',\n')}\n${indent}]`;
  }
  return `{\n${Object.entries(value).map(([key, item]) => `${inner}${JSON.stringify(key)}: ${formatValue(item, inner)}`)
    .join(',\n')}\n${indent}}`;
}

const isTensorLike = (value) => typeof value.dtype === 'string' && Array.isArray(value.shape)
  && value.data !== undefined;
