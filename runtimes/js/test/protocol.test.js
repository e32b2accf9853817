// createProtocolSession, the environment-neutral protocol (spec/conformance-protocol.md), with files in memory.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { createProtocolSession, OP_NAMES } from '../src/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const files = { 'dqn.sbif': readFileSync(join(ROOT, 'conformance', 'golden', 'zoo_dqn_cartpole.sbif')) };
const readFile = async (path) => {
  if (!(path in files)) throw new Error('no such file');
  return files[path];
};
const ask = async (session, message) => JSON.parse(await session.handle(JSON.stringify(message)));

test('hello claims every op and the features; predict only once a handler is set', async () => {
  const session = createProtocolSession({ readFile, language: 'javascript (test)' });
  const hello = await ask(session, { type: 'hello' });
  assert.deepEqual(hello.ops, OP_NAMES);
  assert.deepEqual(hello.features, ['run', 'op', 'recurrent', 'sampling', 'load']);
  assert.equal(hello.runtime.language, 'javascript (test)');
  session.setPredictHandler((message, model) => ({ type: 'result', outputs: {}, inputs: model.inputs.length }));
  assert.ok((await ask(session, { type: 'hello' })).features.includes('predict'));
  assert.deepEqual(await ask(session, { id: 4, type: 'predict', model: 'dqn.sbif' }),
    { id: 4, type: 'result', outputs: {}, inputs: 2 });
});

test('load, run and op requests, int64 answers written exactly', async () => {
  const session = createProtocolSession({ readFile });
  assert.deepEqual(await ask(session, { id: 1, type: 'load', model: 'dqn.sbif' }), { id: 1, type: 'loaded' });
  const refused = await ask(session, { id: 2, type: 'load', model: 'missing.sbif' });
  assert.equal(refused.error_class, 'FileFormatError');
  const run = await ask(session, { id: 3, type: 'run', model: 'dqn.sbif', outputs: ['action'],
    inputs: { obs: { dtype: 'float32', shape: [1, 4], data: [0, 0, 0, 0] } } });
  assert.equal(run.type, 'result');
  assert.equal(run.outputs.action.dtype, 'int64');
  const wide = await session.handle('{"id":5,"type":"op","op":"add","inputs":[{"dtype":"int64","shape":[1],'
    + '"data":[9007199254740993]},{"dtype":"int64","shape":[1],"data":[1]}]}');
  assert.match(wide, /"data":\[9007199254740994\]/);
  const nan = await ask(session, { id: 6, type: 'op', op: 'div', inputs: [
    { dtype: 'float32', shape: [3], data: [0, 1, -1] }, { dtype: 'float32', shape: [3], data: [0, 0, 0] }] });
  assert.deepEqual(nan.outputs['0'].data, ['nan', 'inf', '-inf']);
  assert.equal((await ask(session, { id: 7, type: 'op', op: 'fft', inputs: [] })).type, 'skipped');
});

test('malformed lines are answered with id null, and the session goes on until shutdown', async () => {
  const session = createProtocolSession({ readFile });
  for (const line of ['[1]', '{"a":1,"a":2}', new Uint8Array([0x7b, 0xff, 0x7d]), null]) {
    const answer = JSON.parse(await session.handle(line));
    assert.equal(answer.id, null);
    assert.equal(answer.type, 'errored');
    assert.match(answer.message, /^malformed request/);
  }
  assert.equal(await session.handle('   '), null);
  assert.equal((await ask(session, { type: 'shutdown' })).type, 'bye');
  assert.ok(session.closed);
  assert.equal(await session.handle('{"type":"hello"}'), null);
});
