// sbif-runtime: read and run SBIF files (a Stable-Baselines policy as a safetensors container holding a JSON document
// and its graph's tensors) in any JavaScript environment: browsers, Node >= 18, workers. No dependencies, nothing read
// from disk (the Node helper loadModelFile lives in "sbif-runtime/node").
import { checkOpCall } from './check.js';
import { InputError, UnsupportedError } from './errors.js';
import { Model } from './executor.js';
import { has } from './json.js';
import { OPS, apply } from './ops.js';
import { checkTensor } from './tensor.js';

export { SbifError, FileFormatError, DocumentError, UnsupportedError, InputError } from './errors.js';
export { Model } from './executor.js';
export { tensor } from './tensor.js';
export { createProtocolSession } from './protocol.js';
export { createPolicy, createGenerator, Policy } from './predict.js';
export { answerPredict } from './protocol-predict.js';
export { NAME, VERSION } from './about.js';

/**
 * Reads and validates an SBIF file (SPEC section 7: the container, the document, its schema, tensors, inputs, the
 * static type of every node, outputs, predict) and returns the model, ready to run.
 * @param {Uint8Array|ArrayBuffer} bytes the whole file (a fetch() response's arrayBuffer(), a file input's bytes)
 * @param {{name?: string}} [options] `name` begins every error message (default "model")
 * @returns {Model}
 * @throws {FileFormatError|DocumentError|UnsupportedError} the file's refusal, by SPEC section 7's class
 */
export function loadModel(bytes, { name = 'model' } = {}) {
  if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
  if (!(bytes instanceof Uint8Array)) throw new InputError('loadModel reads a Uint8Array or an ArrayBuffer');
  return new Model(bytes, name);
}

/**
 * Runs one op of spec/ops.md or spec/ops-sampling.md on tensors, as a graph node would (the protocol's `op` request).
 * @param {string} op the op's name, e.g. "linear"
 * @param {{dtype: string, shape: number[], data: ArrayLike<any>}[]} inputs in the op's order
 * @param {object} [attrs] the op's attributes, as a graph node lists them
 * @returns {{dtype: string, shape: number[], data: ArrayLike<any>}[]} the op's outputs (one, except for split)
 * @throws {InputError} attributes, arity, dtypes or shapes the op's rule refuses (spec/ops.md), named
 */
export function runOp(op, inputs, attrs = {}) {
  if (typeof op !== 'string' || !has(OPS, op)) throw new UnsupportedError(`unknown op ${JSON.stringify(op)}`);
  if (!Array.isArray(inputs)) throw new InputError('runOp takes its inputs as a list of tensors');
  inputs.forEach((input, index) => checkTensor(input, `${op}'s input ${index}`));
  checkOpCall(op, inputs, attrs, false);
  return apply(op, inputs, attrs);
}

/** The ops this library runs: every op of spec/ops.md and spec/ops-sampling.md. */
export const OP_NAMES = Object.freeze(Object.keys(OPS).sort());
