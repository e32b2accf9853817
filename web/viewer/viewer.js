// The SBIF policy viewer: open or drop an .sbif file and see what it is — provenance, spaces, the graph drawn by
// parts with each node's op, attributes and shapes, parameters per layer — and run its policy on an observation.
// Everything runs in the page with the JavaScript runtime (runtimes/js); the file is never uploaded.
import { createPolicy, loadModel } from '../../runtimes/js/src/index.js';

import { h } from './dom.js';
import { errorText } from './format.js';
import { GROUPS, buildGraphModel } from './graph-model.js';
import { drawGraph } from './graph-view.js';
import { inputsOutputsPanel, modelSummary, nodeProperties, parametersPanel, spacesPanel } from './panels.js';
import { predictPanel } from './predict-panel.js';

const $ = (id) => document.getElementById(id);

/** The open file's view, or null before one is opened (or after one failed to open). */
let current = null;

/**
 * Opens a file's bytes: validates and loads them with the runtime, then shows the model; a refused file shows the
 * runtime's message (the spec's error class and its reason) and no model.
 * @param {ArrayBuffer} bytes
 * @param {{name: string, size: number}} file
 */
function openBytes(bytes, file) {
  let model;
  try {
    model = loadModel(new Uint8Array(bytes), { name: file.name });
  } catch (error) {
    showModelView(false);
    current = null;
    $('file-name').textContent = '';
    document.title = 'SBIF policy viewer';
    showError(`Cannot open ${file.name}: ${errorText(error)}`);
    return;
  }
  showError(null);
  const { document: sbif } = model;
  const graphModel = buildGraphModel(sbif);
  const valueSpec = (name) => model.valueSpec(name);
  const view = { model, graphModel, file, found: -1 }; // found: the find field's selected match
  current = view;
  document.title = `${file.name} — SBIF policy viewer`;
  $('file-name').textContent = file.name;
  showModelView(true);

  const selectNode = (id) => view.graph.select(id);
  const context = {
    document: sbif, graphModel, valueSpec, selectNode,
    tensorValues: (name) => model.run({}, [name])[name],
  };
  $('model-summary').replaceChildren(modelSummary(sbif, file, graphModel));
  $('spaces').replaceChildren(spacesPanel(sbif));
  $('inputs-outputs').replaceChildren(inputsOutputsPanel(sbif, selectNode));
  $('parameters').replaceChildren(parametersPanel(graphModel, selectNode));
  predictPanel($('predict'), createPolicy(model), sbif);
  $('legend').replaceChildren(...Object.keys(GROUPS)
    .filter((group) => graphModel.nodes.some((node) => node.group === group))
    .map((group) => h('span', { class: `swatch group-${group}`, title: GROUPS[group] }, group)));
  view.graph = drawGraph($('graph'), graphModel, valueSpec, (viewNode) => showNode(viewNode, context));
  showNode(null, context);
  findNodes();
}

/** Marks the boxes the find field names and says how many; `step` selects the next (1) or previous (-1) of them. */
function findNodes(step = 0) {
  if (!current) return;
  const query = $('find').value;
  const matches = current.graph.find(query);
  if (step === 0) current.found = -1; // a new query starts again from the first match
  else if (matches.length) {
    current.found = current.found < 0 ? (step > 0 ? 0 : matches.length - 1)
      : (current.found + step + matches.length) % matches.length;
    current.graph.select(matches[current.found]);
  }
  const position = current.found >= 0 ? `${current.found + 1} of ` : '';
  $('find-count').textContent = query.trim() === '' ? '' : matches.length ? `${position}${matches.length}` : 'none';
}

function showNode(viewNode, context) {
  const panel = $('node-panel');
  panel.hidden = viewNode === null;
  if (viewNode === null) return;
  $('node-title').textContent = `${viewNode.kind === 'op' ? viewNode.op : viewNode.kind} · ${viewNode.name}`;
  $('node-properties').replaceChildren(nodeProperties(viewNode, context));
}

function showModelView(shown) {
  $('welcome').hidden = shown;
  $('model-panel').hidden = !shown;
  $('graph-area').hidden = !shown;
  $('graph-controls').hidden = !shown;
  if (!shown) $('node-panel').hidden = true;
}

function showError(message) {
  const banner = $('error');
  banner.hidden = message === null;
  banner.textContent = message ?? '';
}

async function openFile(file) {
  if (!file) return;
  openBytes(await file.arrayBuffer(), { name: file.name, size: file.size });
}

function setUp() {
  for (const input of [$('file-input'), $('welcome-input')]) {
    input.addEventListener('change', async () => {
      await openFile(input.files[0]);
      input.value = ''; // the same file can be opened again
    });
  }
  // a drop anywhere on the page opens the file; the overlay says so while a file is dragged over
  const overlay = $('drop-overlay');
  let depth = 0;
  const carriesFiles = (event) => Array.from(event.dataTransfer?.types ?? []).includes('Files');
  window.addEventListener('dragenter', (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth += 1;
    overlay.hidden = false;
  });
  window.addEventListener('dragover', (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
  });
  window.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) overlay.hidden = true;
  });
  window.addEventListener('drop', (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    overlay.hidden = true;
    openFile(event.dataTransfer.files[0]);
  });

  $('find').addEventListener('input', () => findNodes());
  $('find').addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      findNodes(event.shiftKey ? -1 : 1);
    } else if (event.key === 'Escape') {
      $('find').value = '';
      findNodes();
      $('find').blur();
    }
  });
  $('fit').addEventListener('click', () => current?.graph.fit());
  $('zoom-in').addEventListener('click', () => current?.graph.zoom(1.25));
  $('zoom-out').addEventListener('click', () => current?.graph.zoom(0.8));
  $('node-close').addEventListener('click', () => current?.graph.select(null));
  window.addEventListener('keydown', (event) => {
    if (!current || event.target.closest('input, textarea, select')) return;
    if (event.key === '/') {
      event.preventDefault();
      $('find').focus();
    } else if (event.key === 'Escape') current.graph.select(null);
    else if (event.key === 'f' || event.key === 'F') current.graph.fit();
    else if (event.key === '+' || event.key === '=') current.graph.zoom(1.25);
    else if (event.key === '-') current.graph.zoom(0.8);
  });
}

/**
 * `?open=URL` opens a file the page's own site serves (a relative URL: the landing page links the play page's
 * models); anything else the user opens is read from their disk, and no file leaves the page.
 */
async function openFromQuery() {
  const target = new URLSearchParams(window.location.search).get('open');
  if (!target) return;
  const url = new URL(target, window.location.href);
  const name = decodeURIComponent(url.pathname.split('/').pop() || target);
  if (url.origin !== window.location.origin) {
    showError(`Cannot open ${target}: ?open= takes a file of this site (${window.location.origin}), not of another`);
    return;
  }
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    showError(`Cannot open ${target}: ${error.message}`);
    return;
  }
  if (!response.ok) {
    showError(`Cannot open ${target}: the server answered ${response.status} ${response.statusText}`.trim());
    return;
  }
  const bytes = await response.arrayBuffer();
  openBytes(bytes, { name, size: bytes.byteLength });
}

setUp();
await openFromQuery();
document.body.dataset.ready = 'true'; // the tests wait for this before opening files
