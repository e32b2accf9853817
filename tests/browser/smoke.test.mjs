// The harness (browser.mjs) and the library in Chromium: runtimes/js/src imported by the page as shipped, golden pack
// files fetched and run there, bit for bit as in Node; what the route serves and refuses; errors failing a page.
import assert from 'node:assert/strict';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { loadModel, tensor } from '../../runtimes/js/src/index.js';
import { PageErrors, REPOSITORY_ROOT, closeBrowser, fileUrl, openPage } from './browser.mjs';

after(closeBrowser);

/** Golden pack files with float inputs only: an MLP with categorical actions, and SAC's layer-normalised MLP. */
const PACKS = ['conformance/golden/ppo2_mlp_box_discrete.sbif', 'conformance/golden/sac_lnmlp_box.sbif'];
const BATCH = 7;

/**
 * Feeds for every input of a model: BATCH rows of values in (0, 1) from a fixed sequence (noise inputs want (0, 1);
 * observations take anything).
 */
function feedsFor(inputs) {
  let state = 12345;
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state + 0.5) / 2 ** 32;
  };
  const feeds = {};
  for (const { name, dtype, shape } of inputs) {
    assert.ok(dtype === 'float32' || dtype === 'float64', `${name} is ${dtype}: the smoke test feeds floats only`);
    const dims = [BATCH, ...shape.slice(1)];
    feeds[name] = tensor(dtype, dims, Array.from({ length: dims.reduce((a, b) => a * b, 1) }, next));
  }
  return feeds;
}

// Playwright carries typed arrays and BigInts across the page boundary as they are: outputs compare bit for bit
// (NaN equal to NaN, 0 unequal to -0).
test('the library runs golden pack files in Chromium bit for bit as in Node', async (t) => {
  const session = await openPage();
  t.after(() => session.close());
  for (const pack of PACKS) {
    const inNode = loadModel(await readFile(join(REPOSITORY_ROOT, pack)), { name: pack });
    const feeds = feedsFor(inNode.inputs);
    const names = inNode.outputs.map(({ name }) => name);
    const inPage = await session.page.evaluate(async ([path, feeds, names]) => {
      const { loadModel } = await import('/runtimes/js/src/index.js');
      const model = loadModel(await (await fetch(`/${path}`)).arrayBuffer(), { name: path });
      return model.run(feeds, names);
    }, [pack, feeds, names]);
    const expected = inNode.run(feeds, names);
    assert.deepEqual(inPage, expected, pack);
    assert.ok(names.every((name) => expected[name].data.length >= BATCH), pack);
  }
});

test('the route serves the repository and allowed files only, and no request reaches the network', async (t) => {
  const session = await openPage();
  t.after(() => session.close());
  const outside = join(REPOSITORY_ROOT, 'tests', 'browser', 'package.json');  // served through the file route too
  session.allowFile(outside);
  const answers = await session.page.evaluate(async (urls) => Promise.all(urls.map(async (url) => {
    try {
      const response = await fetch(url);
      return [response.status, response.headers.get('content-type')];
    } catch (error) {
      return [error.name];
    }
  })), ['/runtimes/js/src/index.js', '/conformance/golden/sac_lnmlp_box.sbif', '/no/such/file.js',
    fileUrl(outside), fileUrl('/etc/passwd'), 'https://example.com/', 'http://127.0.0.1:9/']);
  assert.deepEqual(answers, [
    [200, 'text/javascript; charset=utf-8'], [200, 'application/octet-stream'], [404, 'text/plain'],
    [200, 'application/json; charset=utf-8'], [403, 'text/plain'], ['TypeError'], ['TypeError'],
  ]);
  session.errors.splice(0);  // the refusals above are what the page was meant to see
});

test('a console error or an uncaught exception fails the page on close', async () => {
  const session = await openPage();
  const uncaught = session.page.waitForEvent('pageerror');
  await session.page.evaluate(() => {
    console.error('drawn with the wrong scale');
    setTimeout(() => { throw new RangeError('no policy loaded'); });
  });
  await uncaught;  // the session's own listener, registered first, has seen it too
  const closing = session.close();
  await assert.rejects(closing, (error) => error instanceof PageErrors && error.errors.length === 2
    && /drawn with the wrong scale/.test(error.errors[0]) && /RangeError: no policy loaded/.test(error.errors[1]));
});

test('screenshots are PNG files', async (t) => {
  const session = await openPage();
  t.after(() => session.close());
  await session.page.setContent('<h1 style="color: teal">SBIF</h1>');
  const path = await session.screenshot('smoke-test', { fullPage: false });
  t.after(() => rm(path));
  const png = await readFile(path);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.ok((await stat(path)).size > 100);
});
