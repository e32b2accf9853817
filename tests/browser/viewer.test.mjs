// The policy viewer (web/viewer) in Chromium: every golden pack's model opens through the file input, its graph is
// drawn with one box per node, and the predict panel's answers to the pack's recorded predict_api requests equal
// Stable-Baselines' recorded answers by the pack's own rules (spec/golden-packs.md: |actual - expected| <= 8 * scale
// for floats, equality for discrete actions); a refused file shows the runtime's error in the page. The layout and
// the parts of the policy are checked without a browser. UPDATE_DOCS_IMAGES=1 rewrites docs/images/viewer.png, the
// README's screenshot.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ORIGIN, REPOSITORY_ROOT, closeBrowser, openPage } from './browser.mjs';
import { loadModel } from '../../runtimes/js/src/index.js';
import { buildGraphModel } from '../../web/viewer/graph-model.js';
import { countCrossings, layoutGraph } from '../../web/viewer/layout.js';

const GOLDEN = join(REPOSITORY_ROOT, 'conformance', 'golden');
const MALFORMED = join(REPOSITORY_ROOT, 'conformance', 'malformed');
/** The pack the README's screenshot shows: an LSTM policy, whose recurrent cell the graph draws as its own part. */
const SCREENSHOT_PACK = 'ppo2_lstm_box_discrete';
const SCREENSHOT = join(REPOSITORY_ROOT, 'docs', 'images', 'viewer.png');
/** SPEC section 6.2's λ. */
const CONFIDENCE = 8;

// ---- reading files without the viewer ---------------------------------------------------------------------------

const SAFETENSORS_TYPES = {
  F32: Float32Array, F64: Float64Array, I64: BigInt64Array, I32: Int32Array, U8: Uint8Array, BOOL: Uint8Array,
  I8: Int8Array, I16: Int16Array, U16: Uint16Array,
};

/** A safetensors file's metadata and tensors ({dtype code, shape, data}), data copied out aligned. */
function readSafetensors(path) {
  const bytes = readFileSync(path);
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8'));
  const tensors = new Map();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [begin, end] = entry.data_offsets;
    const raw = bytes.buffer.slice(bytes.byteOffset + 8 + length + begin, bytes.byteOffset + 8 + length + end);
    tensors.set(name, { code: entry.dtype, shape: entry.shape, data: new SAFETENSORS_TYPES[entry.dtype](raw) });
  }
  return { metadata: header.__metadata__, tensors };
}

/** The packs of conformance/golden, each with its manifest, tensors and model document. */
function goldenPacks() {
  return readdirSync(GOLDEN).filter((name) => name.endsWith('.golden')).sort().map((file) => {
    const { metadata, tensors } = readSafetensors(join(GOLDEN, file));
    const manifest = JSON.parse(metadata.manifest);
    const modelPath = join(GOLDEN, manifest.model.file);
    const document = JSON.parse(readSafetensors(modelPath).metadata.sbif);
    return { name: file.replace(/\.golden$/, ''), manifest, tensors, modelPath, document };
  });
}

/** A manifest value with its {"tensor": KEY} references replaced by the tensors. */
function resolve(value, tensors) {
  if (Array.isArray(value)) return value.map((item) => resolve(item, tensors));
  if (value !== null && typeof value === 'object') {
    if (Object.keys(value).length === 1 && typeof value.tensor === 'string') return tensors.get(value.tensor);
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, resolve(item, tensors)]));
  }
  return value;
}

/** A tensor (or a dict of them) as the JSON a person would type: exact numbers, nested arrays. */
function jsonOf(value) {
  if (value.data === undefined) {
    return `{${Object.entries(value).map(([key, item]) => `${JSON.stringify(key)}: ${jsonOf(item)}`).join(', ')}}`;
  }
  const texts = Array.from(value.data, (item) => (value.code === 'BOOL' ? String(item !== 0) : String(item)));
  const nest = (offset, shape) => {
    if (!shape.length) return texts[offset];
    const step = shape.slice(1).reduce((a, b) => a * b, 1);
    return `[${Array.from({ length: shape[0] }, (_, i) => nest(offset + i * step, shape.slice(1))).join(', ')}]`;
  };
  return nest(0, value.shape);
}

/**
 * The predict_api probes: every predict (sampled ones with their recorded noise), action_probability and value
 * request with a recorded answer. SB3 has no action_probability: its packs record no answer for it.
 */
function panelProbes(pack) {
  return pack.manifest.probes.map((probe, index) => ({ ...probe, index }))
    .filter((probe) => probe.check === 'predict_api' && probe.request.type === 'predict'
      && Object.keys(probe.expected).length > 0);
}

// ---- comparing by the pack's rules ------------------------------------------------------------------------------

/** Numbers of a result's text as the page writes them (NaN and infinities by name). */
function parseResult(text) {
  if (text === 'null') return null;
  return JSON.parse(text.replace(/-?Infinity|NaN/g, (token) => JSON.stringify(`#${token}`)),
    (key, value) => (typeof value === 'string' && value.startsWith('#') ? Number(value.slice(1)) : value));
}

function flatten(value) {
  return Array.isArray(value) ? value.flatMap(flatten) : [value];
}

/** Checks one result field against the expected tensor by its rule; returns a description of the first failure. */
function compareField(name, actual, expected, scale, rule) {
  if (expected === null || expected === undefined) {
    return actual.text === 'null' ? null : `${name}: expected None, got ${actual.text.slice(0, 80)}`;
  }
  if (JSON.stringify(actual.shape) !== JSON.stringify(expected.shape)) {
    return `${name}: shape ${JSON.stringify(actual.shape)}, expected ${JSON.stringify(expected.shape)}`;
  }
  const read = actual.dtype === 'float32' ? Math.fround : Number; // the page writes a float32 in its shortest text
  const values = flatten(parseResult(actual.text)).map(read);
  const wanted = Array.from(expected.data, Number);
  if (values.length !== wanted.length) return `${name}: ${values.length} values, expected ${wanted.length}`;
  for (let i = 0; i < wanted.length; i += 1) {
    const [a, e] = [values[i], wanted[i]];
    if (rule === 'float') {
      const bound = CONFIDENCE * scale.data[i];
      if (Number.isNaN(bound)) continue; // not determined (SPEC section 6.3)
      const same = Number.isNaN(e) ? Number.isNaN(a) : !Number.isFinite(e) ? a === e : Math.abs(a - e) <= bound;
      if (!same) return `${name}[${i}]: ${a}, expected ${e} within ${bound}`;
    } else if (a !== e) {
      return `${name}[${i}]: ${a}, expected ${e}`;
    }
  }
  return null;
}

// ---- the layout and the parts, without a browser -----------------------------------------------------------------

describe('layout', () => {
  const packs = goldenPacks();

  test('every golden model: edges point down, boxes in a layer do not overlap', () => {
    for (const pack of packs) {
      const graph = buildGraphModel(pack.document);
      const nodes = graph.nodes.map((node) => ({ id: node.id, width: 40 + node.name.length * 6, height: 36 }));
      const layout = layoutGraph(nodes, graph.edges);
      assert.equal(layout.nodes.size, pack.document.graph.length + pack.document.inputs.length
        + pack.document.outputs.length, pack.name);
      for (const edge of graph.edges) {
        assert.ok(layout.nodes.get(edge.from).layer < layout.nodes.get(edge.to).layer, `${pack.name}: ${edge.value}`);
      }
      const byLayer = new Map();
      for (const place of layout.nodes.values()) {
        byLayer.set(place.layer, (byLayer.get(place.layer) ?? []).concat([place]));
      }
      for (const row of byLayer.values()) {
        row.sort((a, b) => a.x - b.x);
        for (let i = 1; i < row.length; i += 1) {
          assert.ok(row[i - 1].x + row[i - 1].width / 2 <= row[i].x - row[i].width / 2 + 1e-6, `${pack.name}: overlap`);
        }
      }
    }
  });

  test('the actor-critic MLP of the demo is drawn without crossings', () => {
    // its value branch comes first in the file and its policy branch's head first among the heads
    const pack = packs.find((candidate) => candidate.name === 'demo_ppo2_cartpole');
    const graph = buildGraphModel(pack.document);
    const nodes = graph.nodes.map((node) => ({ id: node.id, width: 40 + node.name.length * 6, height: 36 }));
    assert.equal(layoutGraph(nodes, graph.edges).crossings, 0);
  });

  test('barycentre ordering undoes a crossing that the input order makes', () => {
    // a -> d and b -> c, listed so that the first layer's order crosses them
    const nodes = ['a', 'b', 'c', 'd'].map((id) => ({ id, width: 20, height: 10 }));
    const layout = layoutGraph(nodes, [{ from: 'a', to: 'd' }, { from: 'b', to: 'c' }]);
    const x = (id) => layout.nodes.get(id).x;
    assert.equal(Math.sign(x('a') - x('b')), Math.sign(x('d') - x('c')));
    const layers = [[0, 1], [2, 3]];
    const items = [{ down: [3], position: 0 }, { down: [2], position: 1 }, { position: 0 }, { position: 1 }];
    assert.equal(countCrossings(layers, items), 1);
  });

  test('a cycle and an unknown node are refused', () => {
    const nodes = [{ id: 'a', width: 1, height: 1 }, { id: 'b', width: 1, height: 1 }];
    assert.throws(() => layoutGraph(nodes, [{ from: 'a', to: 'b' }, { from: 'b', to: 'a' }]), /cycle/);
    assert.throws(() => layoutGraph(nodes, [{ from: 'a', to: 'z' }]), /unknown node "z"/);
  });

  test('the parts of a CNN-LSTM policy and parameter counts', () => {
    const pack = packs.find((candidate) => candidate.name === 'a2c_cnnlstm_uint8_box');
    const graph = buildGraphModel(pack.document);
    const groupOf = (output) => graph.byId.get(graph.producers.get(output)).group;
    assert.equal(groupOf('input/scaled'), 'preprocessing');
    assert.equal(groupOf('model/c1'), 'body');
    assert.equal(groupOf('lstm1/c'), 'recurrent');
    assert.equal(groupOf('state_out'), 'recurrent');
    assert.equal(groupOf('value'), 'head');
    assert.equal(groupOf('action'), 'postprocessing');
    const conv = graph.layers.find((layer) => layer.node.name === 'model/c1');
    assert.equal(conv.count, 8 * 8 * 2 * 32 + 32); // the weight, and the bias read through its reshape
    const total = pack.document.tensors.filter((entry) => entry.origin === 'parameter')
      .reduce((sum, entry) => sum + entry.shape.reduce((a, b) => a * b, 1), 0);
    assert.equal(graph.parameterCount, total);
    assert.deepEqual(graph.unusedParameters, ['model/q/w:0', 'model/q/b:0']); // ACER's Q head, unused by A2C
  });
});

// ---- the page ----------------------------------------------------------------------------------------------------

describe('viewer page', () => {
  let session;
  /**
   * Requests that could carry a file away: any but a GET of the page's own site (the runtime may fetch its own code).
   * Opening and running files must make none.
   */
  const requests = [];
  before(async () => {
    session = await openPage('web/viewer/index.html', { viewport: { width: 1440, height: 900 } });
    await session.page.waitForSelector('body[data-ready="true"]');
    session.page.on('request', (request) => {
      if (request.method() !== 'GET' || new URL(request.url()).hostname !== new URL(ORIGIN).hostname) {
        requests.push(`${request.method()} ${request.url()}`);
      }
    });
  });
  after(async () => {
    await session?.close();
    await closeBrowser();
  });

  /** Opens a file through the file input and waits for its graph, or for the error banner. */
  async function open(name, buffer) {
    const { page } = session;
    await page.evaluate(() => { document.getElementById('graph').replaceChildren(); });
    await page.setInputFiles('#file-input', { name, mimeType: 'application/octet-stream', buffer });
    await page.waitForFunction((fileName) => !document.getElementById('error').hidden
      || (document.getElementById('file-name').textContent === fileName && document.querySelector('#graph svg')), name);
  }

  /** Fills the panel's fields for a probe, presses its button and returns the result fields. */
  async function ask(probe, tensors, document) {
    const { page } = session;
    const request = resolve(probe.request, tensors);
    await page.locator('#section-predict details.more').evaluate((details) => { details.open = true; });
    await page.fill('#observation', jsonOf(request.observation));
    if (await page.locator('#state').count()) {
      await page.fill('#state', request.state ? jsonOf(request.state) : '');
      await page.fill('#mask', request.mask ? jsonOf(request.mask) : '');
    }
    const button = { predict: '#run-predict', action_probability: '#run-action-probability', value: '#run-value' };
    if (request.method === 'predict') {
      await page.setChecked('#deterministic', request.deterministic ?? document.predict.deterministic_default);
      if (await page.locator('#noise').count()) await page.fill('#noise', request.noise ? jsonOf(request.noise) : '');
    }
    if (request.method === 'action_probability') {
      await page.fill('#actions', request.actions ? jsonOf(request.actions) : '');
      await page.setChecked('#logp', Boolean(request.logp));
    }
    await page.click(button[request.method]);
    return page.$$eval('#predict-result > *', (elements) => elements.map((element) => ({
      field: element.dataset.field ?? null, error: element.classList.contains('error') ? element.textContent : null,
      dtype: element.dataset.dtype,
      shape: element.dataset.shape === undefined ? undefined : JSON.parse(element.dataset.shape),
      text: element.querySelector('pre')?.textContent ?? null,
    })));
  }

  for (const pack of goldenPacks()) {
    test(`${pack.name}: graph drawn, predict panel answers as recorded`, async () => {
      await open(`${pack.name}.sbif`, readFileSync(pack.modelPath));
      const { page } = session;
      assert.equal(await page.locator('#error').isHidden(), true, await page.locator('#error').textContent());
      assert.equal(await page.locator('#graph .node-op').count(), pack.document.graph.length);
      assert.equal(await page.locator('#graph .node-input').count(), pack.document.inputs.length);
      assert.equal(await page.locator('#graph .node-output').count(), pack.document.outputs.length);
      const probes = panelProbes(pack);
      assert.ok(probes.length > 0, 'no predict_api probe the panel can send');
      for (const probe of probes) {
        const expectedRequest = resolve(probe.request, pack.tensors);
        const fields = await ask(probe, pack.tensors, pack.document);
        const where = `${pack.name} probe ${probe.index} (${probe.label})`;
        const errors = fields.filter((field) => field.error);
        assert.deepEqual(errors, [], where);
        const expected = resolve(probe.expected, pack.tensors);
        const scales = resolve(probe.scales ?? {}, pack.tensors);
        for (const [name, value] of Object.entries(expected)) {
          if (name === 'state' && !pack.document.predict.recurrent) continue; // a feed-forward policy returns no state
          const pieces = Array.isArray(value) ? value.map((item, i) => [`${name}[${i}]`, item, scales[name]?.[i]])
            : [[name, value, scales[name]]];
          for (const [field, item, scale] of pieces) {
            const actual = fields.find((candidate) => candidate.field === field);
            assert.ok(actual, `${where}: no ${field} in the page's result`);
            const rule = probe.rules[name]?.rule ?? 'float';
            assert.equal(compareField(field, actual, item, scale, rule), null, `${where}: ${expectedRequest.method}`);
          }
        }
      }
      // an observation sampled from the space, one and a batch of three, is one the policy takes
      const actionShapes = [];
      for (const count of ['1', '3']) {
        await page.fill('#sample-batch', count);
        await page.click('#sample');
        await page.setChecked('#deterministic', true);
        await page.click('#run-predict');
        assert.equal(await page.locator('#predict-result').getAttribute('data-status'), 'ok',
          `${pack.name}, ${count} sampled: ${await page.locator('#predict-result').textContent()}`);
        const action = page.locator('#predict-result [data-field="action"]');
        actionShapes.push(JSON.parse(await action.getAttribute('data-shape')));
      }
      assert.deepEqual(actionShapes[1], [3, ...actionShapes[0]], `${pack.name}: one action, then a batch of three`);
      assert.deepEqual(requests, [], 'the page sent a file away: it must be read and run in the page alone');
    });
  }

  test('refused files show the runtime\'s error in the page', async () => {
    const demo = readFileSync(join(GOLDEN, 'demo_ppo2_cartpole.sbif'));
    const cases = [
      ['truncated.sbif', demo.subarray(0, 1000)],
      ['newer.sbif', readFileSync(join(MALFORMED, '21_format_version_newer.sbif'))],
      ['schema.sbif', readFileSync(join(MALFORMED, '24_schema_extra_property.sbif'))],
      ['unknown_op.sbif', readFileSync(join(MALFORMED, '39_unknown_op.sbif'))],
    ];
    const { page } = session;
    for (const [name, bytes] of cases) {
      let refusal = null;
      try {
        loadModel(new Uint8Array(bytes), { name });
      } catch (error) {
        refusal = error;
      }
      assert.ok(refusal, `${name} loads`);
      await open(name, bytes);
      assert.equal(await page.locator('#error').textContent(),
        `Cannot open ${name}: ${refusal.name}: ${refusal.message}`);
      assert.equal(await page.locator('#welcome').isVisible(), true, `${name}: the page is blank`);
      assert.equal(await page.locator('#graph-area').isHidden(), true);
    }
    // and a good file afterwards opens again, the error gone
    await open('demo_ppo2_cartpole.sbif', demo);
    assert.equal(await page.locator('#error').isHidden(), true);
  });

  test('a file dropped on the page opens', async () => {
    const { page } = session;
    const bytes = readFileSync(join(GOLDEN, 'zoo_td3_pendulum.sbif'));
    const document = JSON.parse(readSafetensors(join(GOLDEN, 'zoo_td3_pendulum.sbif')).metadata.sbif);
    await page.evaluate((base64) => {
      const data = Uint8Array.from(atob(base64), (character) => character.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([data], 'dropped.sbif', { type: 'application/octet-stream' }));
      for (const type of ['dragenter', 'dragover', 'drop']) {
        document.body.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
      }
    }, bytes.toString('base64'));
    await page.waitForFunction(() => document.getElementById('file-name').textContent === 'dropped.sbif');
    assert.equal(await page.locator('#graph .node-op').count(), document.graph.length);
    assert.equal(await page.locator('#drop-overlay').isHidden(), true);
  });

  test('the observation field names a mistake', async () => {
    const { page } = session;
    await open('demo_ppo2_cartpole.sbif', readFileSync(join(GOLDEN, 'demo_ppo2_cartpole.sbif')));
    await page.fill('#observation', '[1, 2, 3');
    await page.click('#run-predict');
    assert.match(await page.locator('#predict-result').textContent(), /the observation is not JSON/);
    await page.fill('#observation', '[1, 2, 3]');
    await page.click('#run-predict');
    assert.match(await page.locator('#predict-result').textContent(), /^InputError: .*\(3,\)/);
    await page.click('#sample');
    await page.click('#run-predict');
    assert.equal(await page.locator('#predict-result').getAttribute('data-status'), 'ok');
  });

  test('clicking a node shows its op, attributes and tensors', async () => {
    const { page } = session;
    const path = join(GOLDEN, 'a2c_cnnlstm_uint8_box.sbif');
    const { graph } = JSON.parse(readSafetensors(path).metadata.sbif);
    const index = graph.findIndex((node) => node.outputs[0] === 'model/c1');
    await open('a2c_cnnlstm_uint8_box.sbif', readFileSync(path));
    // where the box is from the graph area's centre: the properties panel narrows the area, not the view's centre
    const fromCentre = () => page.evaluate((id) => {
      const box = document.querySelector(`#graph .node[data-id="${id}"]`).getBoundingClientRect();
      const area = document.getElementById('graph').getBoundingClientRect();
      return Math.round(box.x + box.width / 2 - (area.x + area.width / 2));
    }, `node:${index}`);
    const before = await fromCentre();
    await page.click(`#graph .node[data-id="node:${index}"]`); // the graph opens at its top, where the first layer is
    const panel = page.locator('#node-properties');
    await panel.waitFor();
    await page.waitForFunction(() => document.getElementById('graph').getBoundingClientRect().width < 1000);
    await page.evaluate(() => new Promise(requestAnimationFrame)); // the resize observer has run
    assert.ok(Math.abs(await fromCentre() - before) <= 1, `${before} -> ${await fromCentre()}`);
    const text = await panel.textContent();
    assert.match(await page.locator('#node-title').textContent(), /^conv2d · model\/c1$/);
    assert.match(text, /strides\[4,4\]/);
    assert.match(text, /float32\[B×36×44×2\]/);
    assert.match(text, /model\/c1\/w:0.*float32\[8×8×2×32\].*4,096/s);
    await page.locator('#node-properties button', { hasText: 'statistics' }).first().click();
    assert.match(await panel.textContent(), /min.*max.*mean.*std/s);
  });

  test('the landing page links the viewer, which opens a model of the site with ?open=', async (t) => {
    const landing = await openPage('web/index.html');
    t.after(() => landing.close());
    await landing.page.click('text=the CartPole agent (PPO2)');
    await landing.page.waitForSelector('body[data-ready="true"]');
    const model = join(REPOSITORY_ROOT, 'web', 'play', 'models', 'ppo2_cartpole.sbif');
    const document = JSON.parse(readSafetensors(model).metadata.sbif);
    assert.equal(await landing.page.locator('#file-name').textContent(), 'ppo2_cartpole.sbif');
    assert.equal(await landing.page.locator('#graph .node-op').count(), document.graph.length);
    await landing.goto('web/viewer/index.html?open=missing.sbif');
    await landing.page.waitForSelector('body[data-ready="true"]');
    assert.match(await landing.page.locator('#error').textContent(),
      /^Cannot open missing\.sbif: the server answered 404/);
    landing.errors.length = 0; // the browser reports the 404 on the console as well: that is the case tested
  });

  test('a large sampled observation is kept out of the field and still predicted', async () => {
    const { page } = session;
    await open('ppo2_cnn_uint8_discrete.sbif', readFileSync(join(GOLDEN, 'ppo2_cnn_uint8_discrete.sbif')));
    await page.fill('#sample-batch', '8'); // 8 images of 36x44x2: about 100 KB of JSON
    await page.click('#sample');
    assert.match(await page.inputValue('#observation'),
      /^\(sampled: an array of shape \(8, 36, 44, 2\), \d+ KB as JSON/);
    await page.setChecked('#deterministic', true);
    await page.click('#run-predict');
    const action = page.locator('#predict-result [data-field="action"]');
    assert.equal(await action.getAttribute('data-shape'), '[8]');
    await page.fill('#observation', '[1, 2]'); // typed text replaces it
    await page.click('#run-predict');
    assert.match(await page.locator('#predict-result').textContent(), /^InputError: /);
  });

  test("a recurrent policy's returned state feeds the next step", async () => {
    const { page } = session;
    const name = 'sb3_recurrentppo_lstm_discrete.sbif'; // SB3: without rows, predict would return the (h, c) pair
    await open(name, readFileSync(join(GOLDEN, name)));
    await page.click('#sample');
    await page.setChecked('#deterministic', true);
    await page.click('#run-predict');
    const first = await page.locator('#predict-result [data-field="state"] pre').textContent();
    assert.equal(await page.locator('#predict-result [data-field="state"]').getAttribute('data-shape'), '[1,16]');
    await page.click('#use-state');
    assert.equal(await page.inputValue('#state'), first);
    await page.click('#run-predict');
    assert.equal(await page.locator('#predict-result').getAttribute('data-status'), 'ok');
    assert.notEqual(await page.locator('#predict-result [data-field="state"] pre').textContent(), first);
  });

  test('the find field marks matching boxes and Enter selects them in turn', async () => {
    const { page } = session;
    await open('ppo2_lstm_box_discrete.sbif', readFileSync(join(GOLDEN, 'ppo2_lstm_box_discrete.sbif')));
    await page.fill('#find', 'sigmoid');
    assert.equal(await page.locator('#graph .node.match').count(), 3); // the input, forget and output gates
    assert.equal(await page.locator('#find-count').textContent(), '3');
    await page.press('#find', 'Enter');
    assert.equal(await page.locator('#find-count').textContent(), '1 of 3');
    assert.equal(await page.locator('#node-title').textContent(), 'sigmoid · lstm1/input_gate');
    await page.press('#find', 'Shift+Enter');
    assert.equal(await page.locator('#find-count').textContent(), '3 of 3');
    await page.fill('#find', 'no such node');
    assert.equal(await page.locator('#find-count').textContent(), 'none');
    assert.equal(await page.locator('#graph .node.match').count(), 0);
    await page.press('#find', 'Escape');
  });

  test('screenshot for the README', async (t) => {
    // a page of its own, so the picture does not depend on which tests ran before
    const shot = await openPage('web/viewer/index.html', { viewport: { width: 1600, height: 1000 } });
    t.after(() => shot.close());
    const { page } = shot;
    await page.waitForSelector('body[data-ready="true"]');
    await page.setInputFiles('#file-input', join(GOLDEN, `${SCREENSHOT_PACK}.sbif`));
    await page.waitForSelector('#graph svg');
    // the graph opens at its top, where the recurrent cell's input weights are: a click shows their properties
    const { graph } = JSON.parse(readSafetensors(join(GOLDEN, `${SCREENSHOT_PACK}.sbif`)).metadata.sbif);
    await page.click(`#graph .node[data-id="node:${graph.findIndex((node) => node.outputs[0] === 'lstm1/x_wx')}"]`);
    assert.match(await page.locator('#node-title').textContent(), /^matmul · lstm1\/x_wx$/);
    for (const section of ['#section-spaces', '#section-parameters']) await page.click(`${section} > summary`);
    await page.fill('#observation', '[0.5, -1.25, 2.0, 0.75, 0.0]');
    await page.setChecked('#deterministic', true); // a sampled action would differ from run to run
    await page.click('#run-predict');
    await page.locator('#predict-result').scrollIntoViewIfNeeded();
    await page.locator('#observation').blur();
    const picture = await page.screenshot();
    assert.ok(picture.length > 10000, 'an empty screenshot');
    if (process.env.UPDATE_DOCS_IMAGES === '1') {
      mkdirSync(join(REPOSITORY_ROOT, 'docs', 'images'), { recursive: true });
      writeFileSync(SCREENSHOT, picture);
    }
  });
});
