// The graph as SVG: one box per input, node and output, laid out by layout.js, coloured by the part of the policy it
// belongs to (graph-model.js), edges labelled with the shape of the value they carry. Wheel zooms about the pointer,
// dragging pans, a click selects a node (the viewer shows its properties), "fit" shows the whole graph.
import { layoutGraph } from './layout.js';
import { shapeText, typeText } from './format.js';

const SVG = 'http://www.w3.org/2000/svg';
/** The fonts of a box's lines, as styles.css sets them: the widths of the boxes are measured with these. */
const FAMILY = 'system-ui, -apple-system, "Segoe UI", sans-serif';
const FONTS = { title: `600 12px ${FAMILY}`, subtitle: `12px ${FAMILY}`, detail: `11px ${FAMILY}` };
const LINE_HEIGHT = 16;
/** The height of an op box's coloured band, which holds its title. */
const BAND = LINE_HEIGHT + 6;
const PADDING_X = 10;
const MIN_WIDTH = 72;
/** Names longer than this are cut in the box (the properties panel shows them whole). */
const NAME_CHARS = 30;
/** At most this many tensor lines in a box; the rest are counted. */
const TENSOR_LINES = 3;
const ZOOM_LIMITS = [0.05, 4];
/** Pixels kept free around the drawing when it is fitted to its area. */
const MARGIN = 24;
/** The smallest zoom at which a box's text can be read; a graph that needs less to fit starts at its top instead. */
const READABLE_ZOOM = 0.8;
/** A press that moves less than this many pixels is a click, not a drag. */
const CLICK_SLOP = 4;

/** The ops whose weight and bias inputs are named W and b in a box, as Netron names them. */
const WEIGHT_ROLES = { linear: ['x', 'W', 'b'], matmul: ['x', 'W'], conv2d: ['x', 'W', 'b'] };

let measureContext = null;
function textWidth(text, font) {
  measureContext ??= document.createElement('canvas').getContext('2d');
  measureContext.font = font;
  return measureContext.measureText(text).width;
}

function element(name, attributes = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

const cut = (text, limit = NAME_CHARS) => (text.length > limit ? `${text.slice(0, limit - 1)}…` : text);

/** A node attribute in a few characters: `strides=[4,4]`, `value=1`. */
function attributeText(key, value) {
  return `${key}=${Array.isArray(value) ? `[${value.join(',')}]` : String(value)}`;
}

/**
 * The lines a box shows: its title (op, or the input's or output's name), its subtitle (the node's first output, or
 * the value's type), its attributes, and the tensors it reads.
 */
function boxLines(viewNode, graphModel) {
  if (viewNode.kind !== 'op') {
    const spec = viewNode.entry;
    return { title: viewNode.name, subtitle: typeText(spec), details: [] };
  }
  const { node } = viewNode;
  const details = [];
  const attrs = Object.entries(node.attrs || {});
  if (attrs.length) details.push(cut(attrs.map(([key, value]) => attributeText(key, value)).join(' '), 40));
  const lines = tensorLines(viewNode, graphModel);
  details.push(...lines.slice(0, TENSOR_LINES));
  if (lines.length > TENSOR_LINES) details.push(`+${lines.length - TENSOR_LINES} more tensors`);
  const subtitle = node.outputs.length > 1 ? `${cut(node.outputs[0], 22)} +${node.outputs.length - 1}`
    : cut(viewNode.name);
  return { title: node.op, subtitle, details };
}

/** `W ⟨64×4⟩` for each tensor a node reads, named by its role in a layer or by the last part of its name. */
function tensorLines(viewNode, graphModel) {
  const roles = WEIGHT_ROLES[viewNode.op] || [];
  return viewNode.tensorReads.map(({ position, name }) => {
    const role = roles[position] || name.split('/').pop();
    return `${cut(role, 18)} ⟨${shapeText(graphModel.tensors.get(name).shape)}⟩`;
  });
}

/**
 * Draws `graphModel` into `container` and returns the controls.
 * @param {HTMLElement} container an empty element that the SVG fills
 * @param {ReturnType<import('./graph-model.js').buildGraphModel>} graphModel
 * @param {(name: string) => {dtype: string, shape: (number|null)[]}|null} valueSpec the static type of a value
 * @param {(viewNode: object|null) => void} onSelect called with the clicked node, or null for the background
 */
export function drawGraph(container, graphModel, valueSpec, onSelect) {
  const boxes = new Map();
  for (const viewNode of graphModel.nodes) {
    const lines = boxLines(viewNode, graphModel);
    const widest = Math.max(textWidth(lines.title, FONTS.title), textWidth(lines.subtitle, FONTS.subtitle),
      ...lines.details.map((line) => textWidth(line, FONTS.detail)));
    const width = Math.max(MIN_WIDTH, Math.ceil(widest) + 2 * PADDING_X);
    const height = viewNode.kind === 'op' ? LINE_HEIGHT * (2 + lines.details.length) + 8 : LINE_HEIGHT * 2 + 8;
    boxes.set(viewNode.id, { viewNode, lines, width, height });
  }
  const layout = layoutGraph(graphModel.nodes.map((viewNode) => ({ id: viewNode.id, ...boxes.get(viewNode.id) })),
    graphModel.edges);

  container.replaceChildren();
  const svg = element('svg', {
    class: 'graph', 'aria-label': 'the policy graph: Tab moves between boxes, Enter selects',
  });
  container.appendChild(svg);
  const defs = element('defs', {}, svg);
  const marker = element('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9,
    markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' }, defs);
  element('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow-head' }, marker);
  const scene = element('g', { class: 'scene' }, svg);
  const edgeLayer = element('g', { class: 'edges' }, scene);
  const nodeLayer = element('g', { class: 'nodes' }, scene);

  const edgeElements = layout.edges.map((edge, index) => {
    const { value } = graphModel.edges[index];
    const group = element('g', { class: 'edge', 'data-from': edge.from, 'data-to': edge.to }, edgeLayer);
    element('path', { d: smoothPath(edge.points), 'marker-end': 'url(#arrow)' }, group);
    const spec = valueSpec(value);
    if (spec) {
      const [a, b] = edge.points.slice(-2);
      const label = element('text', { x: (a.x + b.x) / 2 + 4, y: a.y + (b.y - a.y) * 0.55, class: 'edge-label' },
        group);
      label.textContent = typeText(spec, true);
      element('title', {}, group).textContent = `${value}: ${typeText(spec)}`;
    }
    return group;
  });

  const nodeElements = new Map();
  for (const viewNode of graphModel.nodes) {
    const box = boxes.get(viewNode.id);
    const place = layout.nodes.get(viewNode.id);
    const left = place.x - box.width / 2;
    const top = place.y - box.height / 2;
    const group = element('g', {
      class: `node node-${viewNode.kind} group-${viewNode.group}`, transform: `translate(${left},${top})`,
      'data-id': viewNode.id, 'data-kind': viewNode.kind, 'data-group': viewNode.group, tabindex: 0,
    }, nodeLayer);
    element('title', {}, group).textContent = `${viewNode.kind === 'op' ? `${viewNode.op} → ` : ''}${viewNode.name}`
      + ` (${viewNode.group})`;
    const radius = viewNode.kind === 'op' ? 5 : box.height / 2;
    element('rect', { class: 'box', width: box.width, height: box.height, rx: radius, ry: radius }, group);
    if (viewNode.kind === 'op') {
      element('path', { class: 'band', d: `M0,${BAND} V${radius} a${radius},${radius} 0 0 1 ${radius},-${radius} `
        + `H${box.width - radius} a${radius},${radius} 0 0 1 ${radius},${radius} V${BAND} Z` }, group);
    }
    const lines = [[box.lines.title, 'title'], [box.lines.subtitle, 'subtitle'],
      ...box.lines.details.map((line) => [line, 'detail'])];
    lines.forEach(([text, kind], row) => {
      // baselines: an op's title in its band, the other lines below it; an input's or output's two lines centred
      const y = viewNode.kind === 'op' ? (row === 0 ? BAND - 5 : BAND - 1 + LINE_HEIGHT * row)
        : box.height / 2 + (row === 0 ? -3 : LINE_HEIGHT - 5);
      const label = element('text', { x: viewNode.kind === 'op' ? PADDING_X : box.width / 2, y, class: kind }, group);
      if (viewNode.kind !== 'op') label.setAttribute('text-anchor', 'middle');
      label.textContent = text;
    });
    nodeElements.set(viewNode.id, group);
  }

  const view = { x: 0, y: 0, k: 1 };
  const apply = () => scene.setAttribute('transform', `translate(${view.x},${view.y}) scale(${view.k})`);
  /** The drawing area's size that the view was last placed for (null before it had one). */
  let placedFor = null;
  const areaSize = () => {
    const { width, height } = svg.getBoundingClientRect();
    placedFor = width && height ? { width, height } : null;
    return { width, height };
  };
  /** The zoom that shows the drawing's whole width, and its whole, in the drawing area (null before it has a size). */
  const scales = () => {
    const { width, height } = areaSize();
    if (!width || !height) return null;
    const across = (width - 2 * MARGIN) / Math.max(layout.width, 1);
    return { width, height, across, whole: Math.min(across, (height - 2 * MARGIN) / Math.max(layout.height, 1)) };
  };
  const fit = () => {
    const area = scales();
    if (!area) return;
    view.k = Math.max(ZOOM_LIMITS[0], Math.min(1.25, area.whole));
    view.x = (area.width - layout.width * view.k) / 2;
    view.y = Math.max(MARGIN, (area.height - layout.height * view.k) / 2);
    apply();
  };
  const zoomAt = (factor, clientX, clientY) => {
    const rect = svg.getBoundingClientRect();
    const px = clientX - rect.left;
    const py = clientY - rect.top;
    const k = Math.min(ZOOM_LIMITS[1], Math.max(ZOOM_LIMITS[0], view.k * factor));
    view.x = px - ((px - view.x) * k) / view.k;
    view.y = py - ((py - view.y) * k) / view.k;
    view.k = k;
    apply();
  };
  svg.addEventListener('wheel', (event) => {
    event.preventDefault();
    const lines = event.deltaMode === 1 ? 16 : 1; // Firefox scrolls by lines
    zoomAt(Math.exp(-event.deltaY * lines * 0.0015), event.clientX, event.clientY);
  }, { passive: false });

  let press = null;
  svg.addEventListener('pointerdown', (event) => {
    if (event.button !== 0) return;
    press = { x: event.clientX, y: event.clientY, viewX: view.x, viewY: view.y, moved: false, id: event.pointerId };
  });
  svg.addEventListener('pointermove', (event) => {
    if (!press || event.pointerId !== press.id) return;
    const dx = event.clientX - press.x;
    const dy = event.clientY - press.y;
    if (!press.moved && Math.hypot(dx, dy) < CLICK_SLOP) return;
    if (!press.moved) svg.setPointerCapture(event.pointerId);
    press.moved = true;
    svg.classList.add('panning');
    view.x = press.viewX + dx;
    view.y = press.viewY + dy;
    apply();
  });
  const release = (event) => {
    if (!press || event.pointerId !== press.id) return;
    const { moved } = press;
    press = null;
    svg.classList.remove('panning');
    if (moved) return;
    const hit = event.target.closest('.node');
    select(hit ? hit.dataset.id : null);
  };
  svg.addEventListener('pointerup', release);
  svg.addEventListener('pointercancel', () => { press = null; svg.classList.remove('panning'); });
  svg.addEventListener('keydown', (event) => {
    const hit = event.target.closest('.node');
    if (hit && (event.key === 'Enter' || event.key === ' ')) {
      event.preventDefault();
      select(hit.dataset.id);
    }
  });

  let selected = null;
  function select(id, { reveal = false } = {}) {
    if (selected) nodeElements.get(selected).classList.remove('selected');
    edgeElements.forEach((edge) => edge.classList.remove('related'));
    selected = id && nodeElements.has(id) ? id : null;
    if (selected) {
      nodeElements.get(selected).classList.add('selected');
      edgeElements.forEach((edge) => {
        if (edge.dataset.from === selected || edge.dataset.to === selected) edge.classList.add('related');
      });
    }
    onSelect(selected ? graphModel.byId.get(selected) : null);
    if (selected && reveal) centreOn(selected); // after onSelect: the properties panel it opens narrows the graph
  }
  function centreOn(id) {
    const place = layout.nodes.get(id);
    const { width, height } = areaSize();
    view.x = width / 2 - place.x * view.k;
    view.y = height / 2 - place.y * view.k;
    apply();
  }

  /** The first view: the top of the graph at a readable size (all of it when it fits), as a reader starts. */
  const start = () => {
    const area = scales();
    if (!area) return;
    if (area.whole >= READABLE_ZOOM) {
      fit();
      return;
    }
    view.k = Math.max(READABLE_ZOOM, Math.min(1, area.across));
    view.x = Math.max(MARGIN, (area.width - layout.width * view.k) / 2);
    view.y = MARGIN + 20; // below the legend
    apply();
  };

  start();
  // when the area changes size (the properties panel opens or closes, the window is resized), what was at its centre
  // stays there; an area that had no size yet (drawn while hidden) gets its first view
  const resized = new ResizeObserver(() => {
    if (!svg.isConnected) {
      resized.disconnect(); // a newer file's drawing replaced this one
      return;
    }
    const { width, height } = svg.getBoundingClientRect();
    if (!width || !height) return;
    if (placedFor === null) {
      start();
      return;
    }
    view.x += (width - placedFor.width) / 2;
    view.y += (height - placedFor.height) / 2;
    placedFor = { width, height };
    apply();
  });
  resized.observe(svg);
  return {
    fit,
    /** Zooms by `factor` about the drawing area's centre. */
    zoom(factor) {
      const rect = svg.getBoundingClientRect();
      zoomAt(factor, rect.left + rect.width / 2, rect.top + rect.height / 2);
    },
    /** Selects the node with `id` (or none) and scrolls it into view, as a click would select it. */
    select: (id) => select(id, { reveal: true }),
    /**
     * Marks the boxes whose op or value names contain `query` (case-insensitive; none for an empty query) and returns
     * their ids in graph order.
     */
    find(query) {
      const wanted = query.trim().toLowerCase();
      const matches = [];
      for (const viewNode of graphModel.nodes) {
        const names = [viewNode.op ?? '', viewNode.name, ...viewNode.outputs,
          ...(viewNode.tensorReads ?? []).map((read) => read.name)];
        const match = wanted !== '' && names.some((name) => name.toLowerCase().includes(wanted));
        nodeElements.get(viewNode.id).classList.toggle('match', match);
        if (match) matches.push(viewNode.id);
      }
      return matches;
    },
  };
}

/** A smooth path through the points: straight segments joined by curves, vertical at both ends. */
function smoothPath(points) {
  let d = `M${points[0].x},${points[0].y}`;
  for (let i = 1; i < points.length; i += 1) {
    const a = points[i - 1];
    const b = points[i];
    const bend = (b.y - a.y) / 2;
    d += ` C${a.x},${a.y + bend} ${b.x},${b.y - bend} ${b.x},${b.y}`;
  }
  return d;
}
