// A small element builder: the panels are built from data, and text always goes in as text (a file's names and
// descriptions are never parsed as HTML).

/**
 * `h('td', {class: 'num'}, '64')`: an element with attributes (a function value becomes an event listener, `on` +
 * the event's name) and children (strings become text nodes; null, undefined and false are skipped; arrays are
 * flattened).
 */
export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') node.addEventListener(key.replace(/^on/, '').toLowerCase(), value);
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A two-column table of label and value rows; rows whose value is null or undefined are left out. */
export function propertyTable(rows) {
  return h('table', { class: 'properties' }, rows.filter(([, value]) => value !== null && value !== undefined)
    .map(([label, value]) => h('tr', {}, h('th', {}, label), h('td', {}, value))));
}

/** A table with a header row; `numeric` names the columns aligned right; `kind` is a class for its styles. */
export function dataTable(headers, rows, numeric = [], kind = '') {
  const cell = (tag, value, index) => h(tag, numeric.includes(index) ? { class: 'num' } : {}, value);
  return h('table', { class: `data ${kind}`.trim() },
    h('thead', {}, h('tr', {}, headers.map((header, index) => cell('th', header, index)))),
    h('tbody', {}, rows.map((row) => h('tr', {}, row.map((value, index) => cell('td', value, index))))));
}
