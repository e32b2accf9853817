#!/usr/bin/env node
// Writes src/schema-data.js, the JSON Schemas of spec/schema (their one home) as an ES module, so that the library
// validates documents without reading files at run time (in a browser there are none to read).
//
// The format versions' schemas share most of their definitions. Each document, definition and property, and any
// other part that stands in more than one place (an enum, a reference), is written once, as a constant the schemas
// refer to, a later version's as its earlier one's changes, so the module says each thing once; every schema is
// still, value for value and key order for key order, the file it comes from (test/schema-data.test.js compares
// them). The schemas are read, never written, by the validator, so sharing the objects is safe.
//
//   node runtimes/js/scripts/gen-schema.mjs           # rewrite src/schema-data.js
//   node runtimes/js/scripts/gen-schema.mjs --check   # exit 1 if it differs from what spec/schema gives
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const SCHEMA_DIRECTORY = join(here, '..', '..', '..', 'spec', 'schema');
const TARGET = join(here, '..', 'src', 'schema-data.js');
const FILE_NAME = /^sbif-document-v(\d+)\.schema\.json$/;
// A repeated part is written once when its JSON text is at least this long; smaller ones (`{"type": "string"}`, a
// lone reference) read better where they stand.
const SHARED_MIN_CHARACTERS = 24;
const LINE_WIDTH = 120;
// Path steps that name no part of a document: left out of the shared constants' names.
const STRUCTURAL_KEYWORDS = new Set(['properties', 'definitions', 'items']);

/** Each format version's schema as spec/schema holds it, by ascending version: [[version, schema], ...]. */
export function readSchemas() {
  return readdirSync(SCHEMA_DIRECTORY)
    .map((name) => FILE_NAME.exec(name))
    .filter(Boolean)
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .map(([name, version]) => [version, JSON.parse(readFileSync(join(SCHEMA_DIRECTORY, name), 'utf8'))]);
}

const isComposite = (value) => value !== null && typeof value === 'object';
const children = (node) => (Array.isArray(node) ? node.map((value, index) => [String(index), value])
  : Object.entries(node));

/**
 * The parts to write once, by their JSON text: {name, path, base?} (the constant's name, where the part first stands,
 * the earlier version's part it is written against). Besides the definitions, repeated parts are picked largest first,
 * so that a part inside a shared part is shared only if it also stands elsewhere.
 */
function sharedParts(schemas) {
  const shared = definitionParts(schemas);
  for (;;) {
    // Where each unshared composite part stands, walking the shared parts' bodies (the documents among them) but not
    // into a shared part where it is referred to.
    const places = new Map();
    const walk = (node, path) => {
      for (const [step, value] of children(node)) {
        if (!isComposite(value)) continue;
        const text = JSON.stringify(value);
        if (shared.has(text)) continue;
        if (!places.has(text)) places.set(text, { value, path: [...path, step], count: 0 });
        places.get(text).count++;
        walk(value, [...path, step]);
      }
    };
    for (const [text, { path }] of shared) walk(JSON.parse(text), path);
    const candidates = [...places.entries()]
      .filter(([text, { count }]) => count > 1 && text.length >= SHARED_MIN_CHARACTERS)
      .sort(([a], [b]) => b.length - a.length);
    if (candidates.length === 0) return shared;
    const [text, { path, value }] = candidates[0];
    shared.set(text, { name: constantName(path, value, shared), path });
  }
}

// Each version's document, every definition, and every property of one but the small (`{"type": "string"}`, a lone
// reference) as a constant named after it (DOCUMENT, SPACE, PROVENANCE_ALGORITHM), with the version (PROVENANCE_V1,
// PROVENANCE_V2) where the versions define it differently: a version's table of definitions, and a definition's table
// of properties, is then a list of names, which shows at a glance what the versions share. A later version's part is
// written as its earlier one's changes (see `literal`), kept as `base`.
function definitionParts(schemas) {
  const places = new Map();
  for (const [version, schema] of schemas) {
    const named = [[[], schema]];
    for (const [name, body] of Object.entries(schema.definitions ?? {})) {
      named.push([['definitions', name], body]);
      for (const [property, value] of Object.entries(isComposite(body.properties) ? body.properties : {})) {
        if (isComposite(value) && JSON.stringify(value).length >= SHARED_MIN_CHARACTERS && !isReference(value)) {
          named.push([['definitions', name, 'properties', property], value]);
        }
      }
    }
    for (const [path, value] of named) {
      const key = path.join('/');
      if (!places.has(key)) places.set(key, { path, texts: new Map() });
      const { texts } = places.get(key);
      if (!texts.has(JSON.stringify(value))) texts.set(JSON.stringify(value), version);
    }
  }
  const parts = new Map();
  for (const { path, texts } of places.values()) {
    let base = null;
    for (const [text, version] of texts) {
      if (parts.has(text)) continue;
      const words = path.filter((step) => !STRUCTURAL_KEYWORDS.has(step)).join('_') || 'DOCUMENT';
      const constant = `${words.replace(/[^A-Za-z0-9_]/g, '_').toUpperCase()}${texts.size > 1 ? `_V${version}` : ''}`;
      parts.set(text, { name: constant, path, base });
      base = { value: JSON.parse(text), expression: constant };
    }
  }
  return parts;
}

const REFERENCE_PREFIX = '#/definitions/';
// Whether `value` is a lone reference to a definition, {"$ref": "#/definitions/..."}.
const isReference = (value) => Object.keys(value).length === 1 && typeof value.$ref === 'string'
  && value.$ref.startsWith(REFERENCE_PREFIX);

// A constant's name from where the part first stands: "definitions/space" -> SPACE, "definitions/provenance/
// properties/algorithm" -> PROVENANCE_ALGORITHM; a lone reference by what it refers to: {"$ref":
// "#/definitions/space"} -> REF_SPACE; a name taken gets a number.
function constantName(path, value, shared) {
  const words = isReference(value) ? ['REF', value.$ref.slice(REFERENCE_PREFIX.length)]
    : path.filter((step) => !STRUCTURAL_KEYWORDS.has(step));
  const base = (words.join('_') || 'PART').replace(/[^A-Za-z0-9_]/g, '_').toUpperCase();
  const taken = new Set([...shared.values()].map(({ name }) => name));
  let name = /^[0-9]/.test(base) ? `_${base}` : base;
  for (let suffix = 2; taken.has(name); suffix++) name = `${base}_${suffix}`;
  return name;
}

// `value` as a JavaScript literal indented by `indent`, a shared part other than `self` by its constant's name. Members
// that take one line each (plain values, constants' names, small parts) are filled into lines of at most LINE_WIDTH
// characters, so a version's table of definitions reads as one list; a member that takes more lines stands alone.
// With a `base` ({value, expression}: the earlier version's part at the same place), what equals the base is the
// base's expression, and an object that keeps the base's keys in their order (adding some after them) and some of
// their values is the base spread with its changed members: `{ ...INPUT_V1.oneOf[1], "properties": ... }` (a spread
// member overridden keeps its place, so the key order stays the file's); an array that starts with the base's
// elements is the base spread with the elements added: `[ ...PROVENANCE_V1.required, "framework" ]`. `lead`: the
// characters before the literal on its first line.
function literal(value, indent, shared, self = null, base = null, lead = 0) {
  if (!isComposite(value)) return JSON.stringify(value);
  const text = JSON.stringify(value);
  if (value !== self && shared.has(text)) return shared.get(text).name;
  if (base !== null && text === JSON.stringify(base.value)) return base.expression;
  const entries = children(value);
  const [open, close] = Array.isArray(value) ? ['[', ']'] : ['{', '}'];
  if (entries.length === 0) return `${open}${close}`;
  const sameKind = base !== null && isComposite(base.value) && Array.isArray(base.value) === Array.isArray(value);
  const baseOf = (key) => (sameKind && Object.hasOwn(base.value, key)
    ? { value: base.value[key], expression: memberExpression(base.expression, key) } : null);
  const baseKeys = sameKind ? Object.keys(base.value) : [];
  const same = (key) => JSON.stringify(value[key]) === JSON.stringify(base.value[key]);
  const spread = baseKeys.length > 0 && baseKeys.every((key, index) => Object.keys(value)[index] === key)
    && (Array.isArray(value) ? baseKeys.every(same) : baseKeys.some(same));
  const inner = `${indent}  `;
  const members = (spread ? [[null, null], ...entries.filter(([key]) => !Object.hasOwn(base.value, key) || !same(key))]
    : entries)
    .map(([key, member]) => (key === null ? `...${base.expression}`
      : keyed(Array.isArray(value) ? '' : `${JSON.stringify(key)}: `, member, inner, shared, baseOf(key))));
  const lines = [];
  let filling = false;
  for (const member of members) {
    const last = lines.length - 1;
    const multiline = member.includes('\n');
    if (filling && !multiline && inner.length + lines[last].length + member.length + 3 <= LINE_WIDTH) {
      lines[last] += `, ${member}`;
    } else {
      lines.push(member);
    }
    filling = !multiline;
  }
  if (lines.length === 1 && !lines[0].includes('\n') && indent.length + lead + lines[0].length + 4 <= LINE_WIDTH) {
    return `${open} ${lines[0]} ${close}`;
  }
  return `${open}\n${lines.map((line) => `${inner}${line}`).join(',\n')}\n${indent}${close}`;
}

// A member's text: `prefix` (its key, if any) and its value's literal, placed after the prefix.
function keyed(prefix, member, indent, shared, base) {
  return `${prefix}${literal(member, indent, shared, null, base, prefix.length)}`;
}

// The expression for member `key` of the value `expression` stands for: INPUT_V1.oneOf[1], PROVENANCE_V1["$id"].
function memberExpression(expression, key) {
  if (/^\d+$/.test(key)) return `${expression}[${key}]`;
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${expression}.${key}` : `${expression}[${JSON.stringify(key)}]`;
}

/** The text src/schema-data.js must hold: each format version's schema, its repeated parts written once. */
export function schemaModuleText() {
  const schemas = readSchemas();
  const shared = sharedParts(schemas);
  // Each constant after those its body refers to.
  const written = new Set();
  const constants = [];
  const declare = (value) => {
    for (const [, member] of children(value)) {
      if (!isComposite(member)) continue;
      const text = JSON.stringify(member);
      if (shared.has(text)) {
        if (!written.has(text)) {
          written.add(text);
          declare(member);
          const { name, base = null } = shared.get(text);
          constants.push(`const ${name} = ${literal(member, '', shared, member, base, `const ${name} = `.length)};\n`);
        }
      } else {
        declare(member);
      }
    }
  };
  const documents = Object.fromEntries(schemas);
  declare(documents);
  return '// Generated by scripts/gen-schema.mjs from spec/schema, the schemas\' one home: do not edit; run\n'
    + '// `node runtimes/js/scripts/gen-schema.mjs` after changing them (test/schema-data.test.js fails until then).\n'
    + '// Each version\'s document, each definition and property, and any part that stands in more than one place is\n'
    + '// written once, as a constant; a later version\'s spreads its earlier one\'s and states what changed.\n'
    + constants.join('')
    + '/** The JSON Schema of each format version\'s document, by version. */\n'
    + `export const DOCUMENT_SCHEMAS = ${literal(documents, '', shared)};\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = schemaModuleText();
  if (process.argv.includes('--check')) {
    let current = '';
    try { current = readFileSync(TARGET, 'utf8'); } catch { /* missing: out of sync */ }
    if (current !== text) {
      process.stderr.write(`${TARGET} is out of sync with ${SCHEMA_DIRECTORY}: `
        + 'run node runtimes/js/scripts/gen-schema.mjs\n');
      process.exit(1);
    }
  } else {
    writeFileSync(TARGET, text);
  }
}
