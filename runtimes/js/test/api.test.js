// The public API on a real file (a golden pack's DQN): loading from every kind of bytes, running, and the errors.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  DocumentError, FileFormatError, InputError, OP_NAMES, SbifError, UnsupportedError, loadModel, tensor,
} from '../src/index.js';
import { loadModelFile } from '../src/node.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const DQN = join(ROOT, 'conformance', 'golden', 'zoo_dqn_cartpole.sbif');
const bytes = new Uint8Array(readFileSync(DQN));
const observations = tensor('float32', [3, 4], [0, 0, 0, 0, 0.1, -0.2, 0.03, 0.4, -1, 1, -0.5, 0.5]);

// The file `source` with its SBIF document's text replaced by edit(text) (the tensors' bytes unchanged).
function withDocumentText(source, edit) {
  const view = new DataView(source.buffer, source.byteOffset, source.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(source.subarray(8, 8 + headerLength)));
  const edited = edit(header.__metadata__.sbif);
  assert.notEqual(edited, header.__metadata__.sbif, 'the edit changes the document');
  header.__metadata__.sbif = edited;
  const text = new TextEncoder().encode(JSON.stringify(header));
  const result = new Uint8Array(8 + text.length + source.length - 8 - headerLength);
  new DataView(result.buffer).setBigUint64(0, BigInt(text.length), true);
  result.set(text, 8);
  result.set(source.subarray(8 + headerLength), 8 + text.length);
  return result;
}

test('a model loads from a Uint8Array, an ArrayBuffer, a view at an offset and a path, alike', () => {
  const padded = new Uint8Array(bytes.length + 3);
  padded.set(bytes, 3);
  const models = [loadModel(bytes), loadModel(bytes.slice().buffer), loadModel(padded.subarray(3)), loadModelFile(DQN)];
  const answers = models.map((model) => model.run({ obs: observations }, ['q_values']).q_values.data);
  for (const answer of answers) assert.deepEqual(answer, answers[0]);
  assert.equal(models[0].document.format, 'sbif');
  assert.deepEqual(models[0].inputs.map((input) => input.name), ['obs', 'noise_uniform']);
  assert.deepEqual(models[0].outputs.find((output) => output.name === 'action'),
    { name: 'action', dtype: 'int64', shape: [null] });
});

test('run returns typed tensors and computes only what the requested outputs need', () => {
  const model = loadModel(bytes);
  // the greedy action needs no noise; the sampled one does
  const { action, q_values: q } = model.run({ obs: observations }, ['action', 'q_values']);
  assert.equal(action.dtype, 'int64');
  assert.ok(action.data instanceof BigInt64Array);
  assert.deepEqual(q.shape, [3, 2]);
  for (let row = 0; row < 3; row++) {
    const best = q.data[2 * row + 1] > q.data[2 * row] ? 1n : 0n;
    assert.equal(action.data[row], best);
  }
  assert.throws(() => model.run({ obs: observations }, ['action_sample']), (error) => error instanceof InputError
    && /missing input "noise_uniform"/.test(error.message));
  const noise = tensor('float32', [3, 1], [0, 0.5, 0.999]);
  const sampled = model.run({ obs: observations, noise_uniform: noise }, ['action_sample']).action_sample;
  assert.deepEqual(sampled.shape, [3]);
});

test('bad feeds and outputs are InputErrors naming the problem', () => {
  const model = loadModel(bytes);
  const cases = [
    [{ obs: tensor('float64', [1, 4]) }, ['q_values'], /input "obs" must be float32, got float64/],
    [{ obs: tensor('float32', [1, 5]) }, ['q_values'], /input "obs" has shape \[1,5\]/],
    [{ obs: { dtype: 'float32', shape: [1, 4], data: [1, 2, 3, 4] } }, ['q_values'], /its data is a Float32Array/],
    [{ obs: observations }, ['no_such_value'], /unknown output "no_such_value"/],
    [{ obs: observations, noise_uniform: tensor('float32', [2, 1]) }, ['action_sample'], /batch size 2 but/],
  ];
  for (const [feeds, outputs, message] of cases) {
    assert.throws(() => model.run(feeds, outputs),
      (error) => error instanceof InputError && message.test(error.message));
  }
});

test('refusals are the classes of SPEC section 7, each an SbifError whose name is its class', () => {
  const truncated = () => loadModel(bytes.subarray(0, 5), { name: 'cut.sbif' });
  assert.throws(truncated, (error) => error instanceof FileFormatError && error instanceof SbifError
    && error.name === 'FileFormatError' && error.message.startsWith('cut.sbif: truncated file'));
  // the same container with a document whose format_version is 9: unsupported, not malformed
  const newer = withDocumentText(bytes, (text) => text.replace('"format_version":1', '"format_version":9'));
  assert.throws(() => loadModel(newer),
    (error) => error instanceof UnsupportedError && /format version 9 is not supported/.test(error.message));
  assert.throws(() => loadModel(withDocumentText(bytes, (text) => text.replace('"graph":', '"grap":'))), DocumentError);
  assert.throws(() => loadModel('model.sbif'), InputError);
  assert.throws(() => loadModelFile(join(ROOT, 'no-such-file.sbif')), FileFormatError);
});

test('tensor() checks its shape and data and converts plain arrays', () => {
  assert.deepEqual(tensor('int64', [2], [1, -2]).data, BigInt64Array.from([1n, -2n]));
  assert.deepEqual(tensor('bool', [2], [1, 0]).data, Uint8Array.from([1, 0]));
  assert.throws(() => tensor('float32', [2, 2], [1, 2, 3]), /holds 4 values, got 3/);
  assert.throws(() => tensor('float32', [-1]), InputError);
  assert.throws(() => tensor('complex64', [1]), UnsupportedError);
});

test('every op of spec/ops.md and spec/ops-sampling.md is listed', () => {
  const specOps = ['ops.md', 'ops-sampling.md'].map((file) => readFileSync(join(ROOT, 'spec', file), 'utf8')).join('');
  const documented = Array.from(specOps.matchAll(/^## ([a-z0-9_]+)$/gm), (match) => match[1]).sort();
  assert.deepEqual(OP_NAMES, documented);
});

test('the core imports no node: builtin and uses no Node global, so it runs in a browser unchanged', () => {
  const source = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');
  for (const file of readdirSync(source).filter((name) => name.endsWith('.js') && name !== 'node.js')) {
    const text = readFileSync(join(source, file), 'utf8');
    assert.doesNotMatch(text, /from 'node:|require\(|\bprocess\.|\bBuffer\.|__dirname/, file);
  }
});

test("a model's own tensor is returned as a copy: changing it changes no later run", () => {
  const model = loadModel(bytes);
  const weight = model.document.tensors.find((entry) => entry.shape.length === 2 && entry.dtype === 'float32').name;
  const first = model.run({}, [weight])[weight];
  const values = Array.from(first.data);
  assert.ok(values.some((v) => v !== 0));
  first.data.fill(0);
  assert.deepEqual(Array.from(model.run({}, [weight])[weight].data), values);
});

test('Model.valueSpec gives the static type validation derived for inputs, tensors and computed values', () => {
  const model = loadModelFile(new URL('../../../conformance/golden/ppo2_lstm_box_discrete.sbif', import.meta.url)
    .pathname);
  const input = model.document.inputs[0];
  assert.deepEqual(model.valueSpec(input.name), { dtype: input.dtype, shape: input.shape });
  const node = model.document.graph.find((entry) => entry.op === 'matmul');
  const product = model.valueSpec(node.outputs[0]);
  assert.equal(product.dtype, 'float32');
  assert.equal(product.shape[0], null);
  assert.equal(product.shape[1], model.valueSpec(node.inputs[1]).shape[1]);
  assert.equal(model.valueSpec('no such value'), null);
  model.valueSpec(input.name).shape.push(7); // a copy: the model's own type is unchanged
  assert.deepEqual(model.valueSpec(input.name).shape, input.shape);
});
