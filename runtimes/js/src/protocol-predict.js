import { InputError } from './errors.js';
import { Policy } from './predict.js';
import { decodeTensor, encodeTensor } from './protocol.js';

// The conformance protocol's `predict` request (spec/conformance-protocol.md section 4.2, feature `predict`): SB2's
// (or, for a file under the SB3 contract, SB3's) predict, action_probability and value through `Policy`, with the
// tensors of the wire. Answers are what the reference's server (conformance/protocol.py, PythonRuntime._predict) gives.

const METHODS = ['predict', 'action_probability', 'value'];

/** One Policy per loaded model, so that a session's requests share it (and its generator). */
const policies = new WeakMap();

function policyOf(model) {
  if (!policies.has(model)) policies.set(model, new Policy(model));
  return policies.get(model);
}

/** A request's state, mask or actions: a tensor, or null (absent). */
function decodeOptional(value, what) {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) throw new InputError(`${what} must be a tensor or null`);
  return decodeTensor(value);
}

/** A request's observation: a tensor, or (a HER or dict observation) an object of tensors by key. */
function decodeObservation(observation) {
  if (observation === undefined || observation === null) throw new InputError("predict requests need an 'observation'");
  if (typeof observation !== 'object' || Array.isArray(observation)) {
    throw new InputError('the observation must be a tensor or an object of tensors');
  }
  if (Object.hasOwn(observation, 'dtype')) return decodeTensor(observation);
  const keys = {}; // a dict observation: key -> tensor
  for (const [key, value] of Object.entries(observation)) keys[key] = decodeTensor(value);
  return keys;
}

/** A predict result on the wire: null, a tensor, or a list of tensors (action_probability's lists). */
function encodeValue(value) {
  if (value === null) return null;
  return Array.isArray(value) ? value.map(encodeTensor) : encodeTensor(value);
}

/** SB3's pair [h, c] as the reference's server sends it: NumPy's asarray of the tuple, one tensor [2, ...h.shape]. */
function stackPair([h, c]) {
  const data = new Float32Array(h.data.length + c.data.length);
  data.set(h.data);
  data.set(c.data, h.data.length);
  return { dtype: 'float32', shape: [2].concat(h.shape), data };
}

/**
 * Answers a protocol `predict` request (its JSON object, tensors still in their wire form) for `model`.
 * @param {object} request {method, observation, state, mask, deterministic, noise, actions, logp}
 * @param {object} model the Model the request's `model` path names
 * @returns {{type: 'result', outputs: object}} `action` and `state`, `probability`, or `value` (section 4.2's table)
 * @throws {InputError} a malformed request, or one SPEC section 5 refuses; the session answers it `errored`
 */
export function answerPredict(request, model) {
  const { method } = request;
  if (!METHODS.includes(method)) {
    throw new InputError(`predict requests need 'method', one of ${METHODS.join(', ')}`);
  }
  const policy = policyOf(model);
  const observation = decodeObservation(request.observation);
  const state = decodeOptional(request.state, 'state');
  const mask = decodeOptional(request.mask, 'mask');
  if (method === 'predict') {
    let noise = null;
    if (request.noise !== undefined && request.noise !== null) {
      if (typeof request.noise !== 'object' || Array.isArray(request.noise)) {
        throw new InputError('noise must be an object of tensors or null');
      }
      noise = {};
      for (const [name, value] of Object.entries(request.noise)) noise[name] = decodeTensor(value);
    }
    const deterministic = request.deterministic ?? null;
    const result = policy.predict(observation, { state, mask, deterministic, noise });
    const nextState = Array.isArray(result.state) ? stackPair(result.state) : result.state;
    return { type: 'result', outputs: { action: encodeTensor(result.action), state: encodeValue(nextState) } };
  }
  if (method === 'value') {
    return { type: 'result', outputs: { value: encodeTensor(policy.value(observation, { state, mask })) } };
  }
  const actions = decodeOptional(request.actions, 'actions');
  const probability = policy.actionProbability(observation, { state, mask, actions, logp: Boolean(request.logp) });
  return { type: 'result', outputs: { probability: encodeValue(probability) } };
}
