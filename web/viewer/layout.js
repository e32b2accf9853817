// A layered drawing of a directed acyclic graph (Sugiyama's method, kept small): longest-path layers, dummy nodes on
// edges that span layers, barycentre ordering over a few sweeps, then x positions pulled towards each node's
// neighbours. No DOM: the viewer draws the result as SVG, and the tests run it in Node.

/** Gaps in pixels between neighbours in a layer, between layers, and the width an edge's dummy node takes. */
const SPACING = Object.freeze({ node: 28, layer: 56, dummy: 14 });

/** Barycentre sweeps (each one down and one up); the best ordering seen is kept. */
const ORDERING_SWEEPS = 6;
/** At most this many passes of neighbour exchanges over every layer. */
const EXCHANGE_ROUNDS = 8;
/** Passes that move nodes towards the mean x of their neighbours while keeping each layer's order. */
const STRAIGHTENING_PASSES = 8;

/**
 * Lays out a DAG.
 * @param {{id: string, width: number, height: number}[]} nodes in a topological order (the graph's own)
 * @param {{from: string, to: string}[]} edges; an edge between unknown nodes or a cycle throws
 * @returns {{nodes: Map<string, {x: number, y: number, width: number, height: number, layer: number}>,
 *            edges: {from: string, to: string, points: {x: number, y: number}[]}[], width: number, height: number,
 *            crossings: number}}
 *   x, y are a node's centre; each edge's points run from the bottom of `from` to the top of `to`; `crossings` counts
 *   the pairs of edges that cross between consecutive layers.
 */
export function layoutGraph(nodes, edges) {
  const ids = new Map(nodes.map((node, index) => [node.id, index]));
  if (ids.size !== nodes.length) throw new Error('layoutGraph: two nodes share an id');
  for (const edge of edges) {
    for (const end of [edge.from, edge.to]) {
      if (!ids.has(end)) throw new Error(`layoutGraph: an edge names the unknown node ${JSON.stringify(end)}`);
    }
  }
  const layerOf = assignLayers(nodes, edges, ids);
  const { layers, items, chains } = insertDummies(nodes, edges, ids, layerOf);
  orderLayers(layers, items);
  const crossings = countCrossings(layers, items);
  const width = placeHorizontally(layers, items);
  const height = placeVertically(layers, items);
  const placed = new Map();
  nodes.forEach((node, index) => {
    const item = items[index];
    placed.set(node.id, { x: item.x, y: item.y, width: node.width, height: node.height, layer: item.layer });
  });
  const routed = edges.map((edge, index) => ({ from: edge.from, to: edge.to, points: route(chains[index], items) }));
  return { nodes: placed, edges: routed, width, height, crossings };
}

/**
 * Longest-path layering from the sources, then, from the sinks back, every node moved down to just above its first
 * consumer: a constant, a noise input or a side branch sits beside the node that reads it rather than at the top of
 * the drawing, and edges stay short.
 */
function assignLayers(nodes, edges, ids) {
  const successors = nodes.map(() => []);
  const indegree = nodes.map(() => 0);
  for (const edge of edges) {
    successors[ids.get(edge.from)].push(ids.get(edge.to));
    indegree[ids.get(edge.to)] += 1;
  }
  const layer = nodes.map(() => 0);
  const remaining = indegree.slice();
  const ready = [];
  remaining.forEach((count, index) => { if (count === 0) ready.push(index); });
  const order = [];
  while (ready.length) {
    const index = ready.shift();
    order.push(index);
    for (const next of successors[index]) {
      layer[next] = Math.max(layer[next], layer[index] + 1);
      remaining[next] -= 1;
      if (remaining[next] === 0) ready.push(next);
    }
  }
  if (order.length !== nodes.length) throw new Error('layoutGraph: the graph has a cycle');
  for (const index of order.reverse()) {
    if (successors[index].length) layer[index] = Math.min(...successors[index].map((next) => layer[next])) - 1;
  }
  return layer;
}

/** Splits every edge longer than one layer with dummy items, so ordering and routing see one layer at a time. */
function insertDummies(nodes, edges, ids, layerOf) {
  const items = nodes.map((node, index) => ({
    width: node.width, height: node.height, layer: layerOf[index], up: [], down: [], dummy: false, x: 0, y: 0,
  }));
  const chains = edges.map((edge) => {
    const from = ids.get(edge.from);
    const to = ids.get(edge.to);
    const chain = [from];
    for (let layer = layerOf[from] + 1; layer < layerOf[to]; layer += 1) {
      items.push({ width: SPACING.dummy, height: 0, layer, up: [], down: [], dummy: true, x: 0, y: 0 });
      chain.push(items.length - 1);
    }
    chain.push(to);
    for (let i = 1; i < chain.length; i += 1) {
      items[chain[i - 1]].down.push(chain[i]);
      items[chain[i]].up.push(chain[i - 1]);
    }
    return chain;
  });
  const depth = Math.max(0, ...items.map((item) => item.layer)) + 1;
  const layers = Array.from({ length: depth }, () => []);
  items.forEach((item, index) => layers[item.layer].push(index));
  return { layers, items, chains };
}

/** Reorders each layer by the barycentre of its neighbours' positions, sweeping down then up; keeps the best. */
function orderLayers(layers, items) {
  const setPositions = () => layers.forEach((layer) => layer.forEach((index, position) => {
    items[index].position = position;
  }));
  setPositions();
  let best = layers.map((layer) => layer.slice());
  let fewest = countCrossings(layers, items);
  for (let sweep = 0; sweep < ORDERING_SWEEPS && fewest > 0; sweep += 1) {
    for (let l = 1; l < layers.length; l += 1) sortByBarycentre(layers[l], items, 'up');
    for (let l = layers.length - 2; l >= 0; l -= 1) sortByBarycentre(layers[l], items, 'down');
    const crossings = countCrossings(layers, items);
    if (crossings < fewest) {
      fewest = crossings;
      best = layers.map((layer) => layer.slice());
    }
  }
  best.forEach((layer, l) => { layers[l] = layer; });
  setPositions();
  exchangeNeighbours(layers, items);
}

/**
 * Swaps neighbours in a layer wherever that removes crossings with the layers above and below (the "transpose"
 * step of Gansner et al.), until no swap helps: the barycentre sweeps leave ties that this settles.
 */
function exchangeNeighbours(layers, items) {
  // crossings between the edges of u and of v to one side when u is left of v
  const crossingsOf = (u, v, side) => {
    let count = 0;
    for (const a of items[u][side]) {
      for (const b of items[v][side]) if (items[a].position > items[b].position) count += 1;
    }
    return count;
  };
  const cost = (u, v) => crossingsOf(u, v, 'up') + crossingsOf(u, v, 'down');
  for (let improved = true, rounds = 0; improved && rounds < EXCHANGE_ROUNDS; rounds += 1) {
    improved = false;
    for (const layer of layers) {
      for (let i = 0; i + 1 < layer.length; i += 1) {
        const [u, v] = [layer[i], layer[i + 1]];
        if (cost(v, u) < cost(u, v)) {
          [layer[i], layer[i + 1]] = [v, u];
          items[u].position = i + 1;
          items[v].position = i;
          improved = true;
        }
      }
    }
  }
}

function sortByBarycentre(layer, items, side) {
  const keyed = layer.map((index) => {
    const neighbours = items[index][side];
    const key = neighbours.length
      ? neighbours.reduce((sum, n) => sum + items[n].position, 0) / neighbours.length
      : items[index].position; // a node without neighbours on that side keeps its place
    return { index, key, position: items[index].position };
  });
  keyed.sort((a, b) => a.key - b.key || a.position - b.position);
  keyed.forEach((entry, position) => {
    layer[position] = entry.index;
    items[entry.index].position = position; // the next layer of the sweep sorts by these
  });
}

/** Edge crossings between consecutive layers (pairs of edges whose ends are in opposite orders). */
export function countCrossings(layers, items) {
  let crossings = 0;
  for (let l = 0; l + 1 < layers.length; l += 1) {
    const pairs = [];
    for (const index of layers[l]) {
      for (const next of items[index].down) pairs.push([items[index].position, items[next].position]);
    }
    for (let i = 0; i < pairs.length; i += 1) {
      for (let j = i + 1; j < pairs.length; j += 1) {
        const [a, b] = [pairs[i], pairs[j]];
        if ((a[0] - b[0]) * (a[1] - b[1]) < 0) crossings += 1;
      }
    }
  }
  return crossings;
}

/**
 * Packs each layer left to right, then moves items towards the mean x of their neighbours in a few passes, each
 * layer's order and minimum gaps kept; returns the drawing's width (x from 0).
 */
function placeHorizontally(layers, items) {
  const gap = (a, b) => (items[a].width + items[b].width) / 2
    + (items[a].dummy || items[b].dummy ? SPACING.dummy : SPACING.node);
  for (const layer of layers) {
    let x = 0;
    layer.forEach((index, position) => {
      x += position === 0 ? items[index].width / 2 : gap(layer[position - 1], index);
      items[index].x = x;
    });
  }
  const mean = (indices) => indices.reduce((sum, n) => sum + items[n].x, 0) / indices.length;
  for (let pass = 0; pass < STRAIGHTENING_PASSES; pass += 1) {
    const downward = pass % 2 === 0;
    const sequence = downward ? layers : layers.slice().reverse();
    for (const layer of sequence) {
      const wanted = layer.map((index) => {
        const item = items[index];
        const neighbours = downward ? item.up : item.down;
        const all = neighbours.length ? neighbours : item.up.concat(item.down);
        return all.length ? mean(all) : item.x;
      });
      resolveOverlaps(layer, wanted, gap).forEach((x, position) => { items[layer[position]].x = x; });
    }
  }
  const left = Math.min(...items.map((item) => item.x - item.width / 2));
  for (const item of items) item.x -= left;
  return Math.max(...items.map((item) => item.x + item.width / 2));
}

/**
 * The x positions closest (in squared distance) to `wanted` that keep the layer's order and gaps: blocks of items
 * pushed together are placed at the mean of their wishes (pool-adjacent-violators on the gap-shifted targets).
 */
function resolveOverlaps(layer, wanted, gap) {
  const offsets = [0];
  for (let i = 1; i < layer.length; i += 1) offsets.push(offsets[i - 1] + gap(layer[i - 1], layer[i]));
  const blocks = [];
  wanted.forEach((x, i) => {
    blocks.push({ start: i, count: 1, sum: x - offsets[i] });
    while (blocks.length > 1) {
      const last = blocks[blocks.length - 1];
      const before = blocks[blocks.length - 2];
      if (before.sum / before.count <= last.sum / last.count) break;
      before.count += last.count;
      before.sum += last.sum;
      blocks.pop();
    }
  });
  const result = [];
  for (const block of blocks) {
    const base = block.sum / block.count;
    for (let i = block.start; i < block.start + block.count; i += 1) result.push(base + offsets[i]);
  }
  return result;
}

/** Each layer's band is as tall as its tallest item; returns the drawing's height (y from 0). */
function placeVertically(layers, items) {
  let top = 0;
  for (const layer of layers) {
    const tallest = Math.max(0, ...layer.map((index) => items[index].height));
    for (const index of layer) items[index].y = top + tallest / 2;
    top += tallest + SPACING.layer;
  }
  return Math.max(0, top - SPACING.layer);
}

function route(chain, items) {
  const first = items[chain[0]];
  const last = items[chain[chain.length - 1]];
  const points = [{ x: first.x, y: first.y + first.height / 2 }];
  for (const index of chain.slice(1, -1)) points.push({ x: items[index].x, y: items[index].y });
  points.push({ x: last.x, y: last.y - last.height / 2 });
  return points;
}
