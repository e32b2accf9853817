// The side panels: what the file is (provenance, predict contract), its spaces, inputs and outputs, parameters per
// layer, and the properties of the node selected in the graph.
import { dataTable, h, propertyTable } from './dom.js';
import { GROUPS, elementCount } from './graph-model.js';
import { boundText, byteText, countText, float32Text, shapeText, spaceText, typeText } from './format.js';

/** A tensor's statistics are computed on request, and at most this many of its first values are listed. */
const PREVIEW_VALUES = 8;

/**
 * Provenance and the predict contract.
 * @param {object} document
 * @param {{name: string, size: number}} file
 * @param {ReturnType<import('./graph-model.js').buildGraphModel>} graphModel
 */
export function modelSummary(document, file, graphModel) {
  const { provenance, predict } = document;
  const framework = provenance.framework === 'sb3'
    ? `Stable-Baselines3${provenance.framework_version ? ` ${provenance.framework_version}` : ''}`
    : `Stable-Baselines${provenance.sb2_version ? ` ${provenance.sb2_version}` : ''}`;
  const source = provenance.source;
  const kwargs = provenance.policy_kwargs && Object.keys(provenance.policy_kwargs).length
    ? h('code', { class: 'wrap' }, JSON.stringify(provenance.policy_kwargs)) : null;
  const cell = predict.recurrent;
  const recurrent = cell ? `state ${cell.state_input} → ${cell.state_output}, reset by ${cell.mask_input}` : null;
  const normalization = provenance.vecnormalize
    ? `VecNormalize folded in (${Object.entries(provenance.vecnormalize)
      .map(([key, value]) => `${key} ${Array.isArray(value) ? value.join(', ') : value}`).join(', ')}): `
      + 'takes raw float64 observations'
    : null;
  return h('div', {},
    h('p', { class: 'headline' }, h('strong', {}, provenance.algorithm), ' ', provenance.policy_class),
    propertyTable([
      ['framework', framework],
      ['file', `${file.name} (${byteText(file.size)}, format version ${document.format_version})`],
      ['exported by', `${provenance.producer} (${provenance.exporter} loader)`],
      ['source', h('span', { title: `sha256 ${source.sha256}` }, `${source.file_name} (${source.format}, sha256 `
        + `${source.sha256.slice(0, 12)}…)`)],
      ['policy kwargs', kwargs],
      ['normalization', normalization],
      ['predict', `${(predict.contract ?? 'sb2').toUpperCase()} contract; `
        + `${predict.distribution ? `${predict.distribution.kind} distribution` : 'no distribution'}; `
        + `deterministic by default: ${predict.deterministic_default ? 'yes' : 'no'}`],
      ['recurrent', recurrent],
      ['graph', `${document.graph.length} nodes, ${countText(graphModel.parameterCount)} parameters`],
    ]));
}

/** The observation and action spaces, bounds summarised. */
export function spacesPanel(document) {
  return h('div', {},
    h('h3', {}, 'Observation'), spaceDetails(document.observation_space),
    document.observation_dict ? h('p', { class: 'muted' }, `also takes a dict of ${document.observation_dict.keys
      .join(', ')}, concatenated in that order`) : null,
    h('h3', {}, 'Action'), spaceDetails(document.action_space));
}

function spaceDetails(space) {
  if (space.kind === 'dict') {
    return h('div', {}, space.spaces.map((entry) => h('div', { class: 'dict-key' }, h('code', {}, entry.key),
      spaceDetails(entry.space))));
  }
  const rows = [['kind', spaceText(space)]];
  if (space.kind === 'box') {
    rows.push(['low', boundText(space.low, space.dtype)], ['high', boundText(space.high, space.dtype)]);
  }
  return propertyTable(rows);
}

/** The graph's inputs and outputs with their types; clicking a name selects its box. */
export function inputsOutputsPanel(document, selectNode) {
  const link = (name, id) => h('a', { href: '#', class: 'value-link', onclick: (event) => {
    event.preventDefault();
    selectNode(id);
  } }, name);
  return h('div', {},
    h('h3', {}, 'Inputs'),
    dataTable(['name', 'type', 'kind'], document.inputs.map((entry) => [link(entry.name, `input:${entry.name}`),
      typeText(entry), entry.kind + (entry.distribution ? ` (${entry.distribution})` : '')])),
    h('h3', {}, 'Outputs'),
    dataTable(['name', 'type', 'description'], document.outputs.map((entry) => [
      link(entry.name, `output:${entry.name}`), typeText(entry), entry.description ?? ''])));
}

/** Parameters per layer (each node that reads parameter tensors) and in all. */
export function parametersPanel(graphModel, selectNode) {
  const rows = graphModel.layers.map(({ node, tensors, count }) => [
    h('a', { href: '#', class: 'value-link', onclick: (event) => {
      event.preventDefault();
      selectNode(node.id);
    } }, node.name),
    node.op,
    tensors.map((tensor) => shapeText(tensor.shape)).join(', '),
    countText(count),
  ]);
  const unused = graphModel.unusedParameters;
  return h('div', {},
    dataTable(['layer', 'op', 'shapes', 'parameters'], rows, [3], 'layers'),
    h('p', { class: 'total' }, `Total: ${countText(graphModel.parameterCount)} parameters in `
      + `${graphModel.parameterTensors} tensors`),
    unused.length ? h('p', { class: 'muted', title: unused.join('\n') }, `${unused.length} of them not used for `
      + `inference (${countText(unused.reduce((n, name) => n + elementCount(graphModel.tensors.get(name).shape), 0))}`
      + ' parameters: kept as the framework saved them)') : null);
}

/**
 * The properties of one box of the graph.
 * @param {object} viewNode from graph-model.js
 * @param {object} context {document, graphModel, valueSpec, selectNode, tensorValues}: `tensorValues(name)` gives a
 *   tensor's data for its statistics
 */
export function nodeProperties(viewNode, context) {
  const { document, graphModel, valueSpec, selectNode } = context;
  const nodeLink = (id, text) => h('a', { href: '#', class: 'value-link', onclick: (event) => {
    event.preventDefault();
    selectNode(id);
  } }, text);
  // a value links to the box computing it; a tensor has none (its details are listed below)
  const link = (name) => (graphModel.producers.has(name) ? nodeLink(graphModel.producers.get(name), name) : name);
  const consumerLinks = (value) => {
    const readers = graphModel.edges.filter((edge) => edge.value === value).map((edge) => graphModel.byId.get(edge.to));
    return readers.length ? readers.map((reader, i) => [i ? ', ' : '',
      nodeLink(reader.id, reader.kind === 'op' ? `${reader.op} ${reader.name}` : reader.name)]) : '—';
  };
  const part = h('span', { class: `swatch group-${viewNode.group}`, title: GROUPS[viewNode.group] }, viewNode.group);
  if (viewNode.kind !== 'op') {
    const { entry } = viewNode;
    const value = viewNode.name;
    return h('div', {},
      propertyTable([
        ['part', part],
        ['type', typeText(entry)],
        ['kind', entry.kind ? entry.kind + (entry.distribution ? ` (${entry.distribution})` : '') : null],
        ['description', entry.description ?? null],
        [viewNode.kind === 'input' ? 'read by' : 'computed by', viewNode.kind === 'input' ? consumerLinks(value)
          : link(value)],
      ]));
  }
  const { node } = viewNode;
  const attrs = Object.entries(node.attrs || {});
  const valueRow = (name) => {
    const spec = valueSpec(name);
    const tensor = graphModel.tensors.get(name);
    return [link(name), spec ? typeText(spec) : '', tensor ? `tensor (${tensor.origin})` : ''];
  };
  const tensorsRead = Array.from(new Set(viewNode.tensorReads.map((read) => read.name)),
    (name) => graphModel.tensors.get(name));
  return h('div', {},
    propertyTable([
      ['op', h('code', {}, node.op)],
      ['node', `${viewNode.index} of ${document.graph.length} (graph order)`],
      ['part', part],
    ]),
    h('h3', {}, 'Attributes'),
    attrs.length
      ? propertyTable(attrs.map(([key, value]) => [key, h('code', { class: 'wrap' }, JSON.stringify(value))]))
      : h('p', { class: 'muted' }, 'none'),
    h('h3', {}, 'Inputs'),
    dataTable(['name', 'type', ''], node.inputs.map(valueRow)),
    h('h3', {}, 'Outputs'),
    dataTable(['name', 'type', 'read by'], node.outputs.map((name) => {
      const spec = valueSpec(name);
      return [name, spec ? typeText(spec) : '', consumerLinks(name)];
    })),
    tensorsRead.length ? [h('h3', {}, 'Tensors'), tensorsRead.map((entry) => tensorDetails(entry, context))] : null);
}

function tensorDetails(entry, context) {
  const count = elementCount(entry.shape);
  const statistics = h('div', { class: 'tensor-stats' });
  const button = h('button', { type: 'button', class: 'small', onclick: () => {
    button.remove();
    statistics.replaceChildren(tensorStatistics(context.tensorValues(entry.name)));
  } }, 'statistics');
  return h('div', { class: 'tensor' },
    h('div', { class: 'tensor-name' }, h('code', {}, entry.name)),
    propertyTable([
      ['type', `${entry.dtype}[${shapeText(entry.shape)}]`],
      ['elements', countText(count)],
      ['origin', entry.origin],
    ]),
    button, statistics);
}

/** Minimum, maximum, mean and standard deviation of a tensor and its first values: never all of its values. */
function tensorStatistics(tensor) {
  const values = tensor.data;
  const number = (value) => (typeof value === 'bigint' ? Number(value) : value);
  let low = Infinity;
  let high = -Infinity;
  let sum = 0;
  let squares = 0;
  let finite = 0;
  for (let i = 0; i < values.length; i += 1) {
    const value = number(values[i]);
    if (!Number.isFinite(value)) continue;
    finite += 1;
    if (value < low) low = value;
    if (value > high) high = value;
    sum += value;
    squares += value * value;
  }
  const show = tensor.dtype === 'float32' ? float32Text : String;
  const mean = finite ? sum / finite : NaN;
  const deviation = finite ? Math.sqrt(Math.max(0, squares / finite - mean * mean)) : NaN;
  const first = Array.from(values.slice(0, PREVIEW_VALUES), (value) => show(number(value)));
  return propertyTable([
    ['min', finite ? show(low) : '—'],
    ['max', finite ? show(high) : '—'],
    ['mean', finite ? mean.toPrecision(6) : '—'],
    ['std', finite ? deviation.toPrecision(6) : '—'],
    ['non-finite', finite < values.length ? countText(values.length - finite) : null],
    ['first values', h('code', { class: 'wrap' }, first.join(', ') + (values.length > PREVIEW_VALUES ? ', …' : ''))],
  ]);
}
