// What the viewer draws, derived from an SBIF document alone (spec/SPEC.md section 3): one box per graph input, graph
// node and output, edges named by the value they carry, each node's parameter tensors, and the part of the policy
// it belongs to. The parts come from the graph's structure and the document's `predict` names, never from a file's
// node names, so a file from any exporter is drawn the same way. No DOM: the tests run it in Node.

/** The parts of a policy, in the order a reader meets them, with what each holds. */
export const GROUPS = Object.freeze({
  input: 'a graph input: the observation, noise, recurrent state or mask',
  preprocessing: 'observation encoding before the first layer: casts, one-hot, scaling, normalization',
  body: 'the network: layers with parameters and what lies between them',
  recurrent: 'the recurrent cell: from the state and mask inputs to the next state',
  head: 'the distribution and value heads after the last layers, sampling included',
  postprocessing: 'what turns the distribution into the returned action: clipping, unscaling',
  output: 'a named result of the file',
});

/** Ops whose product with a weight makes a layer (their second input is the weight). */
const LAYER_OPS = new Set(['linear', 'matmul', 'conv2d']);
/** Ops that may sit between the distribution and the returned action with constant operands (SPEC section 4). */
const POSTPROCESSING_OPS = new Set(['clip', 'add', 'sub', 'mul', 'div', 'cast', 'reshape', 'squeeze']);

/**
 * @typedef {{id: string, kind: 'input'|'op'|'output', index: number, group: string, op?: string, name: string,
 *   node?: object, entry?: object, parameters: string[], constants: string[], inputs: string[], outputs: string[]}}
 *   ViewNode
 *   `index`: the position in the document's `inputs`, `graph` or `outputs`; op nodes also have `tensorReads`,
 *   `tensorOnly` and, with `parameters` and `constants`, the tensors they read (see attachTensors).
 */

/**
 * @param {object} document the SBIF document (validated)
 * @returns {{nodes: ViewNode[], byId: Map<string, ViewNode>, edges: {from: string, to: string, value: string}[],
 *   producers: Map<string, string>,
 *   tensors: Map<string, object>, layers: {node: ViewNode, tensors: {name: string, shape: number[], count: number}[],
 *   count: number}[], parameterCount: number, parameterTensors: number, unusedParameters: string[]}}
 *   `layers`: the nodes that read parameters; the counts are over every parameter tensor, used or not.
 */
export function buildGraphModel(document) {
  const tensors = new Map(document.tensors.map((entry) => [entry.name, entry]));
  const nodes = [];
  const producers = new Map(); // value name -> id of the view node that makes it
  document.inputs.forEach((entry, index) => {
    const id = `input:${entry.name}`;
    nodes.push({ id, kind: 'input', index, group: 'input', name: entry.name, entry, parameters: [], constants: [],
      inputs: [], outputs: [entry.name] });
    producers.set(entry.name, id);
  });
  document.graph.forEach((node, index) => {
    const id = `node:${index}`;
    nodes.push({ id, kind: 'op', index, group: 'body', op: node.op, name: node.outputs[0] || node.op, node,
      parameters: [], constants: [], inputs: node.inputs, outputs: node.outputs });
    for (const output of node.outputs) producers.set(output, id);
  });
  document.outputs.forEach((entry, index) => {
    nodes.push({ id: `output:${entry.name}`, kind: 'output', index, group: 'output', name: entry.name, entry,
      parameters: [], constants: [], inputs: [entry.name], outputs: [] });
  });
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const edges = [];
  for (const node of nodes) {
    for (const value of node.inputs) {
      if (producers.has(value)) edges.push({ from: producers.get(value), to: node.id, value });
    }
  }
  const graph = adjacency(nodes, edges);
  attachTensors(nodes, byId, producers, tensors, graph);
  assignGroups(document, nodes, byId, producers, graph);
  const layers = nodes.filter((node) => node.parameters.length).map((node) => {
    const rows = node.parameters.map((name) => {
      const { shape } = tensors.get(name);
      return { name, shape, count: elementCount(shape) };
    });
    return { node, tensors: rows, count: rows.reduce((sum, row) => sum + row.count, 0) };
  });
  const parameters = document.tensors.filter((entry) => entry.origin === 'parameter');
  const used = new Set(nodes.flatMap((node) => node.parameters));
  return {
    nodes, byId, edges, producers, tensors, layers,
    parameterCount: parameters.reduce((sum, entry) => sum + elementCount(entry.shape), 0),
    parameterTensors: parameters.length,
    unusedParameters: parameters.map((entry) => entry.name).filter((name) => !used.has(name)),
  };
}

/** The number of elements of a fixed shape (a scalar has one). */
export function elementCount(shape) {
  return shape.reduce((product, dimension) => product * dimension, 1);
}

function adjacency(nodes, edges) {
  const successors = new Map(nodes.map((node) => [node.id, []]));
  const predecessors = new Map(nodes.map((node) => [node.id, []]));
  for (const edge of edges) {
    successors.get(edge.from).push(edge.to);
    predecessors.get(edge.to).push(edge.from);
  }
  return { successors, predecessors };
}

/** Every node reachable from `starts` along `next` (the starts included). */
function reach(starts, next) {
  const seen = new Set(starts);
  const todo = Array.from(starts);
  while (todo.length) {
    for (const id of next.get(todo.pop())) {
      if (!seen.has(id)) {
        seen.add(id);
        todo.push(id);
      }
    }
  }
  return seen;
}

/**
 * A node that reads tensors alone (a reshaped bias, a transposed weight, a `constant`) is folded into the nodes that
 * read it: each op node lists in `tensorReads` the tensors it reads, directly or through such nodes, with the
 * position of the input they arrive at, and in `parameters` and `constants` those it counts (a node that reads
 * tensors alone counts nothing: its readers do).
 */
function attachTensors(nodes, byId, producers, tensors, graph) {
  for (const node of nodes) node.tensorOnly = node.kind === 'op' && graph.predecessors.get(node.id).length === 0;
  const behind = (value) => {
    if (tensors.has(value)) return [value];
    const producer = producers.has(value) ? byId.get(producers.get(value)) : null;
    return producer && producer.tensorOnly ? producer.inputs.flatMap(behind) : [];
  };
  for (const node of nodes) {
    if (node.kind !== 'op') continue;
    node.tensorReads = node.inputs.flatMap((value, position) => behind(value).map((name) => ({ position, name })));
    if (node.tensorOnly) continue;
    const read = Array.from(new Set(node.tensorReads.map((entry) => entry.name)));
    node.parameters = read.filter((name) => tensors.get(name).origin === 'parameter');
    node.constants = read.filter((name) => tensors.get(name).origin !== 'parameter');
  }
}

/**
 * The part each node belongs to, from the structure (first rule that applies):
 * recurrent — downstream of the state or mask input and upstream of the next state, and a layer read by those
 *   alone (the cell's input projection);
 * postprocessing — the chain that ends in an action output, each step an elementwise or reshaping op whose other
 *   operands are constant, up to a named output that is not an action (a distribution parameter such as `mean`) or
 *   a node where two computed values meet (a mean plus scaled noise: the distribution itself);
 * preprocessing — downstream of an observation input, upstream of a layer, and no layer before it;
 * head — a final layer (one with a path to an output through no other layer), or downstream of a final layer or a
 *   noise input, with a path to an output through no layer (a critic fed the action is body, the action is not);
 * body — the rest. A node computed from tensors and constants alone takes the part of the node that reads it.
 */
function assignGroups(document, nodes, byId, producers, graph) {
  const ops = nodes.filter((node) => node.kind === 'op');
  const idsOfInputs = (kinds) => document.inputs.filter((entry) => kinds.includes(entry.kind))
    .map((entry) => `input:${entry.name}`);
  const layers = ops.filter((node) => (LAYER_OPS.has(node.op) && node.parameters.length > 0));
  const layerIds = new Set(layers.map((node) => node.id));
  const upstreamOfLayer = reach(layers.flatMap((node) => graph.predecessors.get(node.id)), graph.predecessors);
  const downstreamOfLayer = reach(layers.map((node) => node.id), graph.successors);
  const nearOutputs = reach(nodes.filter((node) => node.kind === 'output').map((node) => node.id),
    new Map(Array.from(graph.predecessors, ([id, before]) => [id, layerIds.has(id) ? [] : before])));
  const afterFinal = reach(layers.filter((node) => nearOutputs.has(node.id)).map((node) => node.id), graph.successors);
  const afterNoise = reach(idsOfInputs(['noise']), graph.successors);
  const afterObservation = reach(idsOfInputs(['observation']), graph.successors);
  const dependsOnInputs = reach(nodes.filter((node) => node.kind === 'input').map((node) => node.id),
    graph.successors);

  const recurrent = new Set();
  const spec = document.predict.recurrent;
  if (spec && producers.has(spec.state_output)) {
    const fromState = reach([`input:${spec.state_input}`, `input:${spec.mask_input}`], graph.successors);
    const toState = reach([producers.get(spec.state_output)], graph.predecessors);
    for (const id of fromState) if (toState.has(id) && byId.get(id).kind === 'op') recurrent.add(id);
    for (const node of ops) { // the cell's input projection (features times its input weights) reads into it alone
      const readers = graph.successors.get(node.id);
      if (node.parameters.length && readers.length && readers.every((id) => recurrent.has(id))) recurrent.add(node.id);
    }
  }
  const postprocessing = postprocessingChain(document, byId, producers, graph, dependsOnInputs);

  for (const node of ops) {
    const { id } = node;
    if (recurrent.has(id)) node.group = 'recurrent';
    else if (postprocessing.has(id)) node.group = 'postprocessing';
    else if (afterObservation.has(id) && upstreamOfLayer.has(id) && !downstreamOfLayer.has(id)) {
      node.group = 'preprocessing';
    } else if ((afterFinal.has(id) || afterNoise.has(id)) && nearOutputs.has(id)) node.group = 'head';
    else node.group = 'body';
  }
  // nodes computed from tensors alone, last to first so a chain of them takes the part of the node at its end
  for (const node of ops.slice().reverse()) {
    if (!dependsOnInputs.has(node.id)) {
      const reader = graph.successors.get(node.id).map((id) => byId.get(id)).find((next) => next.kind === 'op');
      if (reader) node.group = reader.group;
    }
  }
}

function postprocessingChain(document, byId, producers, graph, dependsOnInputs) {
  const named = new Set(document.outputs.map((entry) => entry.name));
  const actions = [document.predict.deterministic_action, document.predict.stochastic_action]
    .filter((name) => typeof name === 'string' && producers.has(name));
  const chain = new Set();
  for (const action of actions) {
    let id = producers.get(action);
    for (;;) {
      const node = byId.get(id);
      if (node.kind !== 'op' || !POSTPROCESSING_OPS.has(node.op)) break;
      const variable = node.inputs.filter((value) => producers.has(value) && dependsOnInputs.has(producers.get(value)));
      if (variable.length !== 1) break; // two values meet (a mean plus noise): that is the distribution, not after it
      const onlyFeedsChain = graph.successors.get(id)
        .every((next) => chain.has(next) || byId.get(next).kind === 'output');
      if (!onlyFeedsChain) break;
      chain.add(id);
      if (named.has(variable[0]) && !actions.includes(variable[0])) break; // a distribution parameter (`mean`)
      id = producers.get(variable[0]);
    }
  }
  return chain;
}
