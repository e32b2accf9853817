#!/usr/bin/env node
// An SBIF runtime in JavaScript: reads .sbif files (safetensors + JSON document) and runs their graphs, speaking
// the conformance protocol (spec/conformance-protocol.md) on stdin/stdout. No dependencies beyond Node.js.
//
//   node runtimes/node/sbif-runtime.js              # then: sbif conformance run --runtime "node runtimes/node/sbif-runtime.js" ...
//
// It validates every file as SPEC section 7 orders (container, metadata, format_version, the JSON Schema, tensors,
// the observation input, the static type of every node, outputs, predict) and names the class of a refusal, which is
// what `load` requests answer. It implements the ops in OPS below (every SBIF op except conv2d and
// inverse_cdf_sample, so CNN policies and DQN sampling are answered "skipped"), computes only the nodes the
// requested outputs need, and rounds every float32 operation to float32 (Math.fround / Float32Array) as spec/ops.md
// asks.
'use strict';

const fs = require('fs');
const os = require('os');
const pathModule = require('path');

const NAME = 'sbif-node';
const VERSION = '0.1.0';
const PROTOCOL = 1;
const MAX_HEADER = 100 * 1024 * 1024;
// The most tensors a header lists, and the most keys its __metadata__ has (SPEC section 2).
const MAX_HEADER_ENTRIES = 16384;
// The most JSON values a document holds, the document included, and the most nodes its graph has (SPEC section 3).
const MAX_DOCUMENT_VALUES = 2 ** 20;
const MAX_GRAPH_NODES = 16384;
// A request line's bytes with its newline, and the longest number literal in a request (spec/conformance-protocol.md
// section 1): as in the reference's and the C runtime's servers
const MAX_LINE_BYTES = 64 * 1024 * 1024;
const MAX_NUMBER_CHARS = 100;
// The largest value a file may declare, in bytes at batch 1 with zero dimensions counted as 1 (SPEC section 3.5), and
// the largest one a request may make (SPEC section 5.8).
const MAX_VALUE_BYTES = 2n ** 28n;
const MAX_BATCH_VALUE_BYTES = 2n ** 32n;
const FLT_MAX = 3.4028234663852886e38;
const f32 = Math.fround;

// ---- tensors ---------------------------------------------------------------------------------------------------
// A tensor is {dtype, shape, data}; data is a typed array (int64 as a BigInt64Array, so values and wrap-around
// are exact; bool as a Uint8Array of 0/1).
const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, int16: Int16Array, int32: Int32Array,
  int64: BigInt64Array, uint8: Uint8Array, uint16: Uint16Array, bool: Uint8Array,
};
const INT_BITS = { int8: [8, true], int16: [16, true], int32: [32, true], uint8: [8, false], uint16: [16, false] };
const SIZES = { float32: 4, float64: 8, int8: 1, int16: 2, int32: 4, int64: 8, uint8: 1, uint16: 2, bool: 1 };
const isFloat = (dtype) => dtype === 'float32' || dtype === 'float64';
const count = (shape) => shape.reduce((a, b) => a * b, 1);

function tensor(dtype, shape, data) {
  if (!ARRAYS[dtype]) throw new UnsupportedError(`dtype ${dtype}`);
  if (data === undefined) data = new ARRAYS[dtype](count(shape));
  return { dtype, shape: shape.slice(), data };
}

// The errors a load names (SPEC section 7): the container, the document, or valid input this runtime cannot handle
// (a newer format version, an unknown op). InputError is a caller's mistake in a request.
class FileFormatError extends Error {}
class DocumentError extends Error {}
class UnsupportedError extends Error {}
class InputError extends Error {}
const REFUSALS = [FileFormatError, DocumentError, UnsupportedError];

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const has = (object, key) => Object.prototype.hasOwnProperty.call(object, key);
const show = (value) => JSON.stringify(value);

// ---- the container (SPEC section 2) ---------------------------------------------------------------------------------
// safetensors code -> [dtype name, item size]; uint32, uint64 and float16 are container types no SBIF document declares
const CONTAINER_CODES = {
  BOOL: ['bool', 1], U8: ['uint8', 1], I8: ['int8', 1], I16: ['int16', 2], U16: ['uint16', 2], I32: ['int32', 4],
  U32: ['uint32', 4], I64: ['int64', 8], U64: ['uint64', 8], F16: ['float16', 2], F32: ['float32', 4],
  F64: ['float64', 8],
};
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }); // a byte-order mark is not JSON

// Strict JSON, for the header and the document (SPEC section 1). JSON.parse already refuses NaN and Infinity, but
// reads a number beyond a double's range (1e400) as Infinity: written with a fraction or an exponent, such a number is
// refused here, as the reference refuses it. An integer literal that large is read as +-Infinity, which the checks
// that take numbers (a constant's value, a Box bound) refuse, as the reference refuses that integer there. JSON.parse
// also keeps the last of two equal keys silently, nests without limit, reads an escaped lone UTF-16 surrogate
// ("\ud800") into a string no UTF-8 text can hold, and reads 3.0 as 3: the scan of the raw text refuses the first
// three (a key is a string followed by ':'; nesting deeper than JSON_MAX_DEPTH, as in the C reader and the reference)
// and records where the last happens (`isIntegerLiteral`), so that only a number written without fraction or
// exponent is an integer, as SPEC section 1 says.
// Refusals are `ErrorClass`, with messages that begin with `what` ("FILE: the header").
const NUMBER = /-?\d+(\.\d+)?([eE][+-]?\d+)?/y;
const JSON_MAX_DEPTH = 512;
const QUOTED_KEY_CHARS = 80;
// A UTF-16 surrogate that is not half of a pair (JSON.parse joins an escaped pair into one character), and what a
// text must contain for a parsed string to hold one: the escape of a surrogate (the header and the document are
// decoded from strict UTF-8, which has no surrogates).
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;
// Per parsed object or array, the members (keys, or indexes) holding an integral number written with a fraction or an
// exponent (3.0, 1e2): the numbers JSON.parse cannot tell from integers.
const INTEGRAL_FRACTIONS = new WeakMap();
function parseStrict(text, ErrorClass, what) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ErrorClass(`${what} is not valid JSON (${error.message})`);
  }
  const surrogates = SURROGATE_ESCAPE.test(text);
  // the text is valid JSON, so outside strings a '-' or a digit starts a number; `frames` holds, per open container,
  // its parsed value, the keys seen so far (null for an array) and the member being read (its last key, or the index
  // its commas count)
  const frames = [];
  for (let i = 0; i < text.length;) {
    const c = text.charCodeAt(i);
    const frame = frames[frames.length - 1];
    if (c === 0x22) { // a string ends at the first quote after it that an even run of backslashes precedes
      let close = text.indexOf('"', i + 1);
      while (backslashesBefore(text, close) % 2 === 1) close = text.indexOf('"', close + 1);
      const literal = text.slice(i, close + 1);
      if (surrogates && literal.includes('\\u')) {
        const lone = LONE_SURROGATE.exec(JSON.parse(literal));
        if (lone) {
          const code = lone[0].charCodeAt(0).toString(16).toUpperCase();
          throw new ErrorClass(`${what} contains a string with the lone surrogate U+${code}, which is not Unicode text`);
        }
      }
      let after = close + 1;
      while (after < text.length && ' \t\n\r'.includes(text[after])) after++;
      if (frame && frame.keys && text[after] === ':') {
        const key = JSON.parse(literal);
        if (frame.keys.has(key)) {
          const shown = key.length > QUOTED_KEY_CHARS ? `${key.slice(0, QUOTED_KEY_CHARS)}...` : key;
          throw new ErrorClass(`${what} contains the key ${JSON.stringify(shown)} twice in one object`);
        }
        frame.keys.add(key);
        frame.member = key;
      }
      i = close + 1;
    } else if (c === 0x7b || c === 0x5b) { // '{' or '['
      const container = frame ? frame.value[frame.member] : value;
      frames.push({ value: container, keys: c === 0x7b ? new Set() : null, member: 0 });
      if (frames.length > JSON_MAX_DEPTH) {
        throw new ErrorClass(`${what} nests arrays and objects more than ${JSON_MAX_DEPTH} deep`);
      }
      i++;
    } else if (c === 0x7d || c === 0x5d) { // '}' or ']'
      frames.pop();
      i++;
    } else if (c === 0x2c) { // ','
      if (frame && !frame.keys) frame.member++;
      i++;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      NUMBER.lastIndex = i;
      const [token, fraction, exponent] = NUMBER.exec(text);
      if (fraction || exponent) {
        const number = Number(token);
        if (!Number.isFinite(number)) {
          throw new ErrorClass(`${what} contains the number ${quotedNumber(token)}, beyond the range of a double`);
        }
        if (frame && Number.isInteger(number)) {
          if (!INTEGRAL_FRACTIONS.has(frame.value)) INTEGRAL_FRACTIONS.set(frame.value, new Set());
          INTEGRAL_FRACTIONS.get(frame.value).add(frame.member);
        }
      }
      i += token.length;
    } else {
      i++;
    }
  }
  return value;
}

// Whether holder[member] is a JSON integer: a number written without fraction or exponent (SPEC section 1). An
// integer literal beyond a double arrives from JSON.parse as +-Infinity (parseStrict refuses a fraction or exponent
// that large), and is an integer too, as in the reference: the checks of its range refuse it where it matters.
function isIntegerLiteral(holder, member) {
  const value = holder[member];
  if (typeof value !== 'number') return false;
  if (!Number.isFinite(value)) return true;
  const fractions = INTEGRAL_FRACTIONS.get(holder);
  return Number.isInteger(value) && !(fractions && fractions.has(member));
}
// A count in the header (a dimension, an offset): a non-negative integer literal, finite as a double (the byte counts
// are computed with BigInt, which has no infinity; a literal that large is refused either way).
const isCount = (holder, member) => isIntegerLiteral(holder, member) && Number.isFinite(holder[member])
  && holder[member] >= 0;

function backslashesBefore(text, index) {
  let count = 0;
  while (text.charCodeAt(index - 1 - count) === 0x5c) count++;
  return count;
}

// a number's text for a message: whole when short, else its first digits and its length
const quotedNumber = (text) => (text.length > 24 ? `${text.slice(0, 12)}...(${text.length} characters)` : text);

// Whether a header's bytes have at most the objects, arrays and commas (outside strings) that a header within
// MAX_HEADER_ENTRIES tensors and metadata keys can have: one object per tensor, a shape and data_offsets each, and per
// tensor at most 2 commas between its keys, 31 in a shape of MAX_RANK dimensions and 1 in data_offsets, besides the
// commas between the header's and __metadata__'s members. Counted before JSON.parse builds an object per entry, as
// the reference does (sbif/format/container.py).
function headerStructureFits(raw) {
  const mostObjects = MAX_HEADER_ENTRIES + 2;
  const mostArrays = 2 * MAX_HEADER_ENTRIES;
  const mostCommas = 2 * MAX_HEADER_ENTRIES + MAX_HEADER_ENTRIES * (MAX_RANK + 2);
  let objects = 0;
  let arrays = 0;
  let commas = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b) {
      objects++;
    } else if (c === 0x5b) {
      arrays++;
    } else if (c === 0x2c) {
      commas++;
    }
  }
  return objects <= mostObjects && arrays <= mostArrays && commas <= mostCommas;
}

// The number of JSON values in `text`, valid JSON, counted on the text before JSON.parse builds them: 1 (the outermost
// value) + the commas outside strings (each starts a value) + the non-empty arrays and objects (whose first member no
// comma precedes), as the reference counts (sbif/format/document.py). Counting stops once it passes `limit`. On text
// that is not JSON the number means nothing; JSON.parse refuses that text anyway.
function jsonValueCount(text, limit) {
  let values = 1;
  let inString = false;
  let escaped = false;
  let opened = false;
  for (let i = 0; i < text.length && values <= limit; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) continue;
    if (opened && c !== 0x5d && c !== 0x7d) values++; // not ']' or '}'
    opened = c === 0x5b || c === 0x7b; // '[' or '{'
    if (c === 0x2c) values++;
    inString = c === 0x22;
  }
  return values;
}

// Every check before any tensor is created: {metadata, entries: {name: {dtype, shape, begin, end}}, bytes, start}.
function readContainer(path) {
  let bytes;
  try {
    bytes = fs.readFileSync(path);
  } catch (error) {
    throw new FileFormatError(`cannot open ${path}: ${error.message}`);
  }
  if (bytes.length < 8) {
    throw new FileFormatError(`${path}: truncated file (${bytes.length} bytes; a safetensors file starts with an `
      + '8-byte header length)');
  }
  const headerLength = bytes.readBigUInt64LE(0);
  if (headerLength > BigInt(MAX_HEADER)) {
    throw new FileFormatError(`${path}: header length ${headerLength} exceeds the ${MAX_HEADER} byte limit`);
  }
  if (8n + headerLength > BigInt(bytes.length)) {
    throw new FileFormatError(`${path}: truncated file: header says ${headerLength} bytes but only ${bytes.length - 8} `
      + 'follow');
  }
  const start = 8 + Number(headerLength);
  if (!headerStructureFits(bytes.subarray(8, start))) {
    throw new FileFormatError(`${path}: the header holds more objects, arrays or commas than a header of at most `
      + `${MAX_HEADER_ENTRIES} tensors and ${MAX_HEADER_ENTRIES} metadata keys can have`);
  }
  let text;
  try {
    text = UTF8.decode(bytes.subarray(8, start));
  } catch (error) {
    throw new FileFormatError(`${path}: the header is not valid JSON (${error.message})`);
  }
  const header = parseStrict(text, FileFormatError, `${path}: the header`);
  if (!isObject(header)) throw new FileFormatError(`${path}: the header must be a JSON object`);
  const metadata = has(header, '__metadata__') ? header.__metadata__ : {};
  if (!isObject(metadata) || !Object.values(metadata).every((value) => typeof value === 'string')) {
    throw new FileFormatError(`${path}: __metadata__ must map strings to strings`);
  }
  const tensorCount = Object.keys(header).length - (has(header, '__metadata__') ? 1 : 0);
  const metadataKeys = Object.keys(metadata).length;
  if (tensorCount > MAX_HEADER_ENTRIES || metadataKeys > MAX_HEADER_ENTRIES) {
    throw new FileFormatError(`${path}: the header lists ${tensorCount} tensors and ${metadataKeys} metadata keys: at `
      + `most ${MAX_HEADER_ENTRIES} of each`);
  }
  const entries = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const where = `${path}: tensor ${show(name)}`;
    if (name.includes('\u0000')) throw new FileFormatError(`${where}: a tensor name may not contain U+0000`);
    if (!isObject(entry) || Object.keys(entry).sort().join() !== 'data_offsets,dtype,shape') {
      throw new FileFormatError(`${where} needs exactly the keys dtype, shape, data_offsets`);
    }
    const known = typeof entry.dtype === 'string' && has(CONTAINER_CODES, entry.dtype);
    if (!known) throw new FileFormatError(`${where} has unknown dtype ${show(entry.dtype)}`);
    const code = CONTAINER_CODES[entry.dtype];
    const { shape, data_offsets: offsets } = entry;
    if (!Array.isArray(shape) || !shape.every((_, i) => isCount(shape, i))) {
      throw new FileFormatError(`${where} has an invalid shape ${show(shape)} (dimensions are non-negative integers, `
        + 'written without fraction or exponent)');
    }
    if (shape.length > MAX_RANK || shape.some((dim) => dim >= MAX_DIM)) {
      throw new FileFormatError(`${where} has shape ${show(shape)}: at most ${MAX_RANK} dimensions, each at most `
        + '2^63 - 1');
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((_, i) => isCount(offsets, i))
      || offsets[0] > offsets[1]) {
      throw new FileFormatError(`${where} has invalid data_offsets ${show(offsets)} (two non-negative integers, `
        + 'written without fraction or exponent, begin <= end)');
    }
    // exact integers, so that no shape bomb wraps around (dimensions beyond 2^53 are already rounded by JSON.parse,
    // and stay far beyond any real span)
    const needed = shape.reduce((product, dim) => product * BigInt(dim), 1n) * BigInt(code[1]);
    if (BigInt(offsets[1] - offsets[0]) !== needed) {
      throw new FileFormatError(`${where}: shape ${show(shape)} of ${code[0]} needs ${needed} bytes but data_offsets `
        + `span ${offsets[1] - offsets[0]}`);
    }
    const addressed = shape.reduce((product, dim) => (dim === 0 ? product : product * BigInt(dim)), BigInt(code[1]));
    if (addressed > 2n ** 63n - 1n) {
      throw new FileFormatError(`${where} has shape ${show(shape)}, which this runtime cannot represent: its nonzero `
        + 'dimensions times the item size exceed 2^63 - 1 bytes');
    }
    entries[name] = { dtype: code[0], shape, begin: offsets[0], end: offsets[1] };
  }
  const dataLength = bytes.length - start;
  let position = 0;
  const ordered = Object.entries(entries).sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end);
  for (const [name, { begin, end }] of ordered) {
    if (begin !== position) {
      throw new FileFormatError(`${path}: tensor ${show(name)} at byte ${begin} `
        + `${begin < position ? 'overlaps the previous tensor' : 'leaves a gap before it'}`);
    }
    if (end > dataLength) {
      throw new FileFormatError(`${path}: truncated file: tensor ${show(name)} ends at byte ${end} of a ${dataLength} `
        + 'byte data buffer');
    }
    position = end;
  }
  if (position !== dataLength) {
    throw new FileFormatError(`${path}: ${dataLength - position} trailing bytes after the last tensor`);
  }
  return { metadata, entries, bytes, start };
}

// ---- the document (SPEC section 3) ----------------------------------------------------------------------------------
// The format versions this runtime reads (SPEC section 8), each validated by its own schema: 1 (SB2) and 2 (adds
// Stable-Baselines3's predict contract).
const FORMAT_VERSIONS = [1, 2];

function decodeDocument(metadata, path) {
  if (metadata.format !== 'sbif' || !has(metadata, 'sbif')) {
    throw new DocumentError(`${path} is a safetensors file but not an SBIF file (no 'sbif' document in its metadata)`);
  }
  if (jsonValueCount(metadata.sbif, MAX_DOCUMENT_VALUES) > MAX_DOCUMENT_VALUES) {
    throw new DocumentError(`${path}: the SBIF document holds more than ${MAX_DOCUMENT_VALUES} JSON values (SPEC `
      + 'section 3)');
  }
  const document = parseStrict(metadata.sbif, DocumentError, `${path}: the SBIF document`);
  if (!isObject(document)) throw new DocumentError(`${path}: the SBIF document must be a JSON object`);
  const version = document.format_version;
  if (!isIntegerLiteral(document, 'format_version')) {
    throw new DocumentError(`${path}: format_version must be an integer (written without fraction or exponent), got `
      + `${show(version)}`);
  }
  if (!FORMAT_VERSIONS.includes(version)) {
    throw new UnsupportedError(`${path}: format version ${version} is not supported (${NAME} reads versions `
      + `${FORMAT_VERSIONS.join(' and ')})`);
  }
  if (Array.isArray(document.graph) && document.graph.length > MAX_GRAPH_NODES) {
    throw new DocumentError(`${path}: the graph has ${document.graph.length} nodes: at most ${MAX_GRAPH_NODES} (SPEC `
      + 'section 3)');
  }
  const violation = schemaViolation(document, documentSchema(version), documentSchema(version), []);
  if (violation) {
    const where = violation.path.join('/') || '(top level)';
    throw new DocumentError(`${path}: schema violation at ${where}: ${violation.message}`);
  }
  return document;
}

// The JSON Schema of each format version's document (spec/schema: its one home), checked with the draft-7 keywords it
// uses. A keyword this validator does not implement is refused when the schema is read, so a change to the schema
// cannot be ignored.
const schemaPath = (version) => pathModule.join(__dirname, '..', '..', 'spec', 'schema',
  `sbif-document-v${version}.schema.json`);
const SCHEMA_KEYWORDS = new Set(['$ref', 'additionalProperties', 'anyOf', 'const', 'enum', 'items', 'maxLength',
  'minItems', 'minLength', 'minimum', 'oneOf', 'pattern', 'properties', 'required', 'type']);
const SCHEMA_ANNOTATIONS = new Set(['$id', '$schema', 'title', 'description', 'definitions']);
const schemas = new Map();

function documentSchema(version) {
  if (!schemas.has(version)) {
    const file = schemaPath(version);
    const loaded = JSON.parse(fs.readFileSync(file, 'utf8'));
    const walk = (node, where) => {
      if (!isObject(node)) throw new Error(`${file}: ${where} is not a schema object`);
      for (const [keyword, value] of Object.entries(node)) {
        if (!SCHEMA_KEYWORDS.has(keyword) && !SCHEMA_ANNOTATIONS.has(keyword)) {
          throw new Error(`${file}: keyword ${keyword} at ${where} is not implemented by ${NAME}`);
        }
        if (keyword === 'definitions' || keyword === 'properties') {
          for (const [name, sub] of Object.entries(value)) walk(sub, `${where}/${keyword}/${name}`);
        } else if (keyword === 'items' || (keyword === 'additionalProperties' && typeof value !== 'boolean')) {
          walk(value, `${where}/${keyword}`);
        } else if (keyword === 'anyOf' || keyword === 'oneOf') {
          value.forEach((sub, index) => walk(sub, `${where}/${keyword}/${index}`));
        }
      }
    };
    walk(loaded, '#');
    schemas.set(version, loaded);
  }
  return schemas.get(version);
}

// The schema's types, of the value holder[member]: an integer is a number written without fraction or exponent (SPEC
// section 1), not draft 7's integral number.
const JSON_TYPES = {
  object: isObject, array: Array.isArray, string: (v) => typeof v === 'string', boolean: (v) => typeof v === 'boolean',
  null: (v) => v === null, number: (v) => typeof v === 'number',
  integer: (v, holder, member) => (holder === undefined ? Number.isInteger(v) : isIntegerLiteral(holder, member)),
};
// Names (the schema's definition `name`) hold no U+0000 (SPEC section 3): C runtimes name values with C strings.
const NAME_DEFINITION = '#/definitions/name';

function jsonEqual(a, b) {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  }
  if (isObject(a) || isObject(b)) {
    return isObject(a) && isObject(b) && Object.keys(a).length === Object.keys(b).length
      && Object.keys(a).every((key) => has(b, key) && jsonEqual(a[key], b[key]));
  }
  return a === b;
}

// The first violation of `node` by `instance` ({path, message}), keywords in their written order, or null. `holder`
// is the object or array holding `instance` as its member path[path.length - 1] (undefined for the document itself).
function schemaViolation(instance, node, root, path, holder) {
  for (const [keyword, value] of Object.entries(node)) {
    const found = schemaKeyword(keyword, value, instance, node, root, path, holder);
    if (found) return found;
  }
  return null;
}

function schemaKeyword(keyword, value, instance, node, root, path, holder) {
  const fail = (message) => ({ path, message: `${show(instance)} ${message}` });
  switch (keyword) {
    case '$ref': {
      const found = schemaViolation(instance, value.slice(2).split('/').reduce((at, part) => at[part], root), root,
        path, holder);
      if (found || value !== NAME_DEFINITION || typeof instance !== 'string' || !instance.includes('\u0000')) {
        return found;
      }
      return fail('contains U+0000, which no name may hold');
    }
    case 'type': {
      const names = Array.isArray(value) ? value : [value];
      const member = path[path.length - 1];
      if (names.some((name) => JSON_TYPES[name](instance, holder, member))) return null;
      // an integral number that is no integer was written with a fraction or an exponent, which show() drops
      const written = names.includes('integer') && Number.isInteger(instance) ? ' (written with a fraction or exponent)'
        : '';
      return fail(`is not of type ${names.join(', ')}${written}`);
    }
    case 'const':
      return jsonEqual(instance, value) ? null : fail(`is not ${show(value)}`);
    case 'enum':
      return value.some((each) => jsonEqual(instance, each)) ? null : fail(`is not one of ${show(value)}`);
    case 'minimum':
      return typeof instance === 'number' && instance < value ? fail(`is less than the minimum of ${value}`) : null;
    case 'minItems':
      return Array.isArray(instance) && instance.length < value ? fail('is too short') : null;
    case 'minLength':
      return typeof instance === 'string' && [...instance].length < value ? fail('is too short') : null;
    case 'maxLength':
      return typeof instance === 'string' && [...instance].length > value ? fail('is too long') : null;
    case 'pattern':
      return typeof instance === 'string' && !new RegExp(value, 'u').test(instance)
        ? fail(`does not match ${value}`) : null;
    case 'required': {
      const missing = isObject(instance) ? value.filter((name) => !has(instance, name)) : [];
      return missing.length ? { path, message: `${show(missing[0])} is a required property` } : null;
    }
    case 'properties':
      if (!isObject(instance)) return null;
      for (const [name, sub] of Object.entries(value)) {
        if (has(instance, name)) {
          const found = schemaViolation(instance[name], sub, root, path.concat([name]), instance);
          if (found) return found;
        }
      }
      return null;
    case 'additionalProperties': {
      if (!isObject(instance)) return null;
      const extras = Object.keys(instance).filter((name) => !has(node.properties || {}, name));
      if (value === false) {
        const message = `additional properties are not allowed (${extras.map(show).join(', ')})`;
        return extras.length ? { path, message } : null;
      }
      for (const name of typeof value === 'boolean' ? [] : extras) {
        const found = schemaViolation(instance[name], value, root, path.concat([name]), instance);
        if (found) return found;
      }
      return null;
    }
    case 'items':
      if (!Array.isArray(instance)) return null;
      for (let index = 0; index < instance.length; index++) {
        const found = schemaViolation(instance[index], value, root, path.concat([index]), instance);
        if (found) return found;
      }
      return null;
    case 'anyOf':
    case 'oneOf': {
      const valid = value.filter((sub) => schemaViolation(instance, sub, root, path, holder) === null).length;
      if (valid === 0) return fail('is not valid under any of the given schemas');
      return keyword === 'oneOf' && valid > 1 ? fail('is valid under more than one of the given schemas') : null;
    }
    default:
      return null; // annotations
  }
}

// ---- tensors, inputs and the static check of the graph (SPEC sections 3.2 to 3.6) ----------------------------------
// A static type is {dtype, shape}; null in a shape is the batch dimension, which only the first may be.
const DTYPES = ['float32', 'float64', 'int32', 'int64', 'uint8', 'int8', 'int16', 'uint16', 'bool'];
const FLOATS = ['float32', 'float64'];
const INTEGERS = ['int32', 'int64', 'uint8', 'int8', 'int16', 'uint16'];
// Dimensions, strides, sizes and counts must be below MAX_DIM (int64's maximum is 2^63 - 1), and a tensor or graph
// value has at most MAX_RANK dimensions (SPEC sections 2 and 3.5).
const MAX_DIM = 2 ** 63;
const MAX_RANK = 32;
// Whether holder[member] can become a dimension, stride, size or count: an integer literal from `least` to 2^63 - 1.
const isDimension = (holder, member, least = 0) => isIntegerLiteral(holder, member) && holder[member] >= least
  && holder[member] < MAX_DIM;
const spec = (dtype, shape) => ({ dtype, shape: shape.slice() });
const sameShape = (a, b) => a.length === b.length && a.every((d, i) => d === b[i]);
const sameSpec = (a, b) => a.dtype === b.dtype && sameShape(a.shape, b.shape);
const showSpec = (s) => `${s.dtype}[${s.shape.map((d) => (d === null ? 'B' : d)).join(',')}]`;

class TypeFailure extends Error {} // an op's rule is violated (the caller says where)
function typeFail(message) { throw new TypeFailure(message); }
function requireDtype(s, allowed, role = 'input') {
  if (!allowed.includes(s.dtype)) typeFail(`${role} has dtype ${s.dtype}, expected one of ${allowed.join(', ')}`);
}
// An op along the last axis (argmax, softmax, reduce_mean, layer_norm) needs one, and it must not be the batch: along
// a [B] value's last axis the op would mix the rows, which stay independent (SPEC section 3.5). A batch-free value (a
// tensor's) may have any last axis.
function requireRows(x, op) {
  if (x.shape.length < 1) {
    typeFail(`${op} works along the last axis and needs an input of rank at least 1, got ${showSpec(x)}`);
  }
  if (x.shape[x.shape.length - 1] === null) {
    typeFail(`${op} works along the last axis, which of ${showSpec(x)} is the batch: rows must stay independent`);
  }
}
// The value/dtype pairs `constant` allows (spec/ops.md): true and false suit every dtype; a number is finite as a
// double (parseStrict refuses 1e400; an integer literal beyond a double arrives here as +-Infinity), is never a bool,
// and is integral and within range for an integer dtype, where TF refuses it and a cast would wrap or truncate it.
function checkConstantValue(value, dtype) {
  if (typeof value !== 'number') return;
  if (dtype === 'bool') typeFail('constant of dtype bool takes true or false, not a number');
  if (!Number.isFinite(value)) typeFail('constant value is an integer beyond the range of a double, not finite as one');
  if (!INTEGERS.includes(dtype)) return;
  if (!Number.isInteger(value)) typeFail(`constant value ${value} is not an integer, as dtype ${dtype} needs`);
  const [low, high] = integerRange(dtype);
  if (value < low || value > high) typeFail(`constant value ${value} is out of range for ${dtype}`);
}
// The range of an integer dtype, as doubles. int64's ends are +-2^63: literals beyond 2^53 arrive rounded to a
// double, so 9223372036854775807 (which fits) and 2^63 (which does not) look alike, and both are accepted.
function integerRange(dtype) {
  if (dtype === 'int64') return [-(2 ** 63), 2 ** 63];
  const [bits, signed] = INT_BITS[dtype];
  return signed ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}
function normalizeAxisStatic(axis, rank) {
  if (axis < -rank || axis >= rank) typeFail(`axis ${axis} is out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}
// NumPy broadcasting of static shapes; the batch dimension broadcasts with 1 and itself only
function broadcastStatic(shapes) {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = [];
  for (let axis = 0; axis < rank; axis++) {
    const sizes = new Set();
    for (const s of shapes) {
      const d = axis - rank + s.length >= 0 ? s[axis - rank + s.length] : 1;
      if (d !== 1) sizes.add(d);
    }
    if (sizes.size > 1) typeFail(`shapes ${shapes.map((s) => show(s)).join(' and ')} do not broadcast`);
    out.push(sizes.size ? sizes.values().next().value : 1);
  }
  return out;
}

// Attribute kinds of the value attrs[name], as sbif/ops declares them: an 'int' is a number written without fraction or
// exponent, a 'float' one written with either (SPEC section 1).
const KINDS = {
  int: (attrs, name) => isIntegerLiteral(attrs, name),
  float: (attrs, name) => typeof attrs[name] === 'number' && !isIntegerLiteral(attrs, name),
  list: (attrs, name) => Array.isArray(attrs[name]),
  str: (attrs, name) => typeof attrs[name] === 'string',
  scalar: (attrs, name) => typeof attrs[name] === 'number' || typeof attrs[name] === 'boolean',
};
const unaryFloat = { infer: ([x]) => { requireDtype(x, FLOATS); return [x]; } };
// Arithmetic is not defined on bool (TF 1.15 has no bool kernel for Add, Sub or Mul); `less` compares bools.
function binary(resultDtype) {
  return {
    arity: 2,
    infer: ([x, y]) => {
      if (x.dtype !== y.dtype) typeFail(`operands have different dtypes (${x.dtype} and ${y.dtype})`);
      if (x.dtype === 'bool' && resultDtype !== 'bool') typeFail('arithmetic on bool operands is not defined');
      return [spec(resultDtype || x.dtype, broadcastStatic([x.shape, y.shape]))];
    },
  };
}
const productType = (x, w, b) => {
  requireDtype(x, FLOATS, 'x');
  if (x.dtype !== w.dtype || (b && x.dtype !== b.dtype)) typeFail(`x, w${b ? ' and b' : ''} have different dtypes`);
  const given = [x, w, b].filter(Boolean).map(showSpec).join(', ');
  if (x.shape.length !== 2 || w.shape.length !== 2 || (b && b.shape.length !== 1)) {
    typeFail(`needs x [B, K], w [K, N]${b ? ', b [N]' : ''}, got ${given}`);
  }
  if (x.shape[1] !== w.shape[0] || (b && w.shape[1] !== b.shape[0])) typeFail(`shapes do not chain: ${given}`);
  return [spec(x.dtype, [x.shape[0], w.shape[1]])];
};
const convSize = (size, kernel, stride, padding) => {
  if (size === null) return null;
  return padding === 'SAME' ? Math.ceil(size / stride) : Math.floor((size - kernel) / stride) + 1;
};

// Every op of spec/ops.md and spec/ops-sampling.md: arity (default 1; null: one or more), outputs (default 1; null: as
// the node lists), attributes {name: kind} (all required) and the dtype/shape rule. conv2d and inverse_cdf_sample are
// checked but not run.
const STATIC = {
  add: binary(), sub: binary(), mul: binary(), less: binary('bool'),
  div: { arity: 2, infer: ([x, y]) => { requireDtype(x, FLOATS); return binary().infer([x, y]); } },
  neg: unaryFloat, exp: unaryFloat, log: unaryFloat, tanh: unaryFloat, sigmoid: unaryFloat, relu: unaryFloat,
  relu6: unaryFloat, elu: unaryFloat, selu: unaryFloat, softplus: unaryFloat, softsign: unaryFloat, swish: unaryFloat,
  round_half_even: unaryFloat, erf: unaryFloat,
  softmax: { infer: ([x]) => { requireDtype(x, FLOATS); requireRows(x, 'softmax'); return [x]; } },
  leaky_relu: { attrs: { alpha: 'float' }, infer: unaryFloat.infer },
  clip: {
    arity: 3,
    infer: ([x, low, high]) => {
      if (x.dtype !== low.dtype || x.dtype !== high.dtype) typeFail('clip operands have different dtypes');
      if (x.dtype === 'bool') typeFail('clip of bool values is not defined');
      if (!sameShape(broadcastStatic([x.shape, low.shape, high.shape]), x.shape)) {
        typeFail(`clip bounds ${showSpec(low)} and ${showSpec(high)} would change the shape of ${showSpec(x)}`);
      }
      return [x];
    },
  },
  where: {
    arity: 3,
    infer: ([condition, x, y]) => {
      if (condition.dtype !== 'bool') typeFail(`where's condition is ${condition.dtype}, not bool`);
      if (x.dtype !== y.dtype) typeFail(`where's operands have different dtypes (${x.dtype} and ${y.dtype})`);
      return [spec(x.dtype, broadcastStatic([condition.shape, x.shape, y.shape]))];
    },
  },
  cast: {
    attrs: { to: 'str' },
    infer: ([x], attrs) => {
      if (!DTYPES.includes(attrs.to)) typeFail(`cast to unknown dtype ${show(attrs.to)}`);
      return [spec(attrs.to, x.shape)];
    },
  },
  constant: {
    arity: 0,
    attrs: { value: 'scalar', dtype: 'str' },
    infer: (inputs, attrs) => {
      if (!DTYPES.includes(attrs.dtype)) typeFail(`constant of unknown dtype ${show(attrs.dtype)}`);
      checkConstantValue(attrs.value, attrs.dtype);
      return [spec(attrs.dtype, [])];
    },
  },
  one_hot: {
    attrs: { depth: 'int' },
    infer: ([x], attrs) => {
      requireDtype(x, INTEGERS);
      if (attrs.depth < 1) typeFail(`one_hot depth must be positive, got ${attrs.depth}`);
      return [spec('float32', x.shape.concat([attrs.depth]))];
    },
  },
  argmax: {
    infer: ([x]) => {
      requireDtype(x, FLOATS.concat(INTEGERS)); // not bool: TF 1.15 has no ArgMax kernel for it
      requireRows(x, 'argmax');
      if (x.shape[x.shape.length - 1] === 0) {
        typeFail(`argmax needs a last axis of at least one element, got ${showSpec(x)}`);
      }
      return [spec('int64', x.shape.slice(0, -1))];
    },
  },
  matmul: { arity: 2, infer: ([x, w]) => productType(x, w, null) },
  linear: { arity: 3, infer: ([x, w, b]) => productType(x, w, b) },
  conv2d: {
    arity: 3,
    attrs: { strides: 'list', padding: 'str' },
    infer: ([x, w, b], { strides, padding }) => {
      requireDtype(x, FLOATS, 'x');
      if (x.dtype !== w.dtype || x.dtype !== b.dtype) typeFail('conv2d operands have different dtypes');
      if (x.shape.length !== 4 || w.shape.length !== 4 || !sameShape(b.shape, [w.shape[3]])
        || x.shape[3] !== w.shape[2]) {
        typeFail(`conv2d needs x [B,H,W,C], w [kh,kw,C,O], b [O]; got ${[x, w, b].map(showSpec).join(', ')}`);
      }
      if (strides.length !== 2 || !strides.every((_, i) => isDimension(strides, i, 1))) {
        typeFail(`conv2d strides must be two integers from 1 to 2^63 - 1, got ${show(strides)}`);
      }
      if (padding !== 'VALID' && padding !== 'SAME') {
        typeFail(`conv2d padding must be VALID or SAME, got ${show(padding)}`);
      }
      const out = [1, 2].map((axis) => convSize(x.shape[axis], w.shape[axis - 1], strides[axis - 1], padding));
      if (Math.min(...out) < 1) typeFail(`conv2d input ${showSpec(x)} is smaller than the kernel ${showSpec(w)}`);
      return [spec(x.dtype, [x.shape[0], out[0], out[1], w.shape[3]])];
    },
  },
  layer_norm: {
    arity: 3,
    attrs: { epsilon: 'float' },
    infer: ([x, gamma, beta]) => {
      requireDtype(x, FLOATS, 'x');
      requireRows(x, 'layer_norm');
      const last = x.shape.slice(-1);
      if (x.dtype !== gamma.dtype || x.dtype !== beta.dtype || !sameShape(gamma.shape, last)
        || !sameShape(beta.shape, last)) {
        typeFail(`layer_norm needs gamma and beta of shape [${last}] and x's dtype`);
      }
      return [x];
    },
  },
  reduce_mean: {
    infer: ([x]) => {
      requireDtype(x, FLOATS);
      requireRows(x, 'reduce_mean');
      return [spec(x.dtype, x.shape.slice(0, -1).concat([1]))];
    },
  },
  flatten: {
    infer: ([x]) => {
      if (x.shape.length < 1) typeFail('flatten needs a batch dimension');
      return [spec(x.dtype, [x.shape[0], x.shape.slice(1).reduce((a, b) => a * b, 1)])];
    },
  },
  reshape: {
    attrs: { shape: 'list' },
    infer: ([x], attrs) => {
      if (x.shape.includes(null)) {
        typeFail('reshape applies to tensors without a batch dimension (use flatten for batches)');
      }
      const size = (s) => s.reduce((a, b) => a * BigInt(b), 1n);
      if (!attrs.shape.every((_, i) => isDimension(attrs.shape, i)) || size(attrs.shape) !== size(x.shape)) {
        typeFail(`cannot reshape ${showSpec(x)} to ${show(attrs.shape)}`);
      }
      return [spec(x.dtype, attrs.shape)];
    },
  },
  transpose: {
    // perm holds each axis of x once, as integers counted from 0 (never a bool, never from the end); on a batched
    // value perm[0] is 0, since the batch stays first (SPEC section 3.5). Transpose.infer's decisions, in its order.
    attrs: { perm: 'list' },
    infer: ([x], attrs) => {
      const { perm } = attrs;
      const rank = x.shape.length;
      if (!perm.every((_, i) => isIntegerLiteral(perm, i))) {
        typeFail(`transpose perm ${show(perm)} must hold axis indices (integers)`);
      }
      if (perm.some((axis) => axis < 0)) {
        typeFail(`transpose perm ${show(perm)} has a negative axis: perm counts axes from 0, never from the end`);
      }
      if (perm.length !== rank || new Set(perm).size !== rank || !perm.every((axis) => axis < rank)) {
        typeFail(`transpose perm ${show(perm)} is not a permutation of the ${rank} axes of ${showSpec(x)} `
          + `(each of 0..${rank - 1} once)`);
      }
      if (rank > 0 && x.shape[0] === null && perm[0] !== 0) {
        typeFail(`transpose cannot move the batch dimension: perm ${show(perm)} of ${showSpec(x)} must start with 0`);
      }
      return [spec(x.dtype, perm.map((axis) => x.shape[axis]))];
    },
  },
  expand_dims: {
    attrs: { axis: 'int' },
    infer: ([x], attrs) => {
      const axis = normalizeAxisStatic(attrs.axis, x.shape.length + 1);
      return [spec(x.dtype, x.shape.slice(0, axis).concat([1], x.shape.slice(axis)))];
    },
  },
  squeeze: {
    attrs: { axis: 'int' },
    infer: ([x], attrs) => {
      const axis = normalizeAxisStatic(attrs.axis, x.shape.length);
      if (x.shape[axis] === null) typeFail('squeeze cannot remove the batch dimension');
      if (x.shape[axis] !== 1) typeFail(`squeeze axis ${axis} of ${showSpec(x)} does not have size 1`);
      return [spec(x.dtype, x.shape.filter((_, i) => i !== axis))];
    },
  },
  concat: {
    arity: null,
    attrs: { axis: 'int' },
    infer: (inputs, attrs) => {
      const first = inputs[0];
      const axis = normalizeAxisStatic(attrs.axis, first.shape.length);
      const outside = (s) => s.slice(0, axis).concat(s.slice(axis + 1));
      let total = 0;
      for (const s of inputs) {
        if (s.dtype !== first.dtype || s.shape.length !== first.shape.length) {
          typeFail(`concat inputs differ in dtype or rank: ${showSpec(first)} and ${showSpec(s)}`);
        }
        if (!sameShape(outside(s.shape), outside(first.shape))) {
          typeFail(`concat inputs differ outside axis ${axis}: ${showSpec(first)} and ${showSpec(s)}`);
        }
        if (s.shape[axis] === null) typeFail('concat cannot join along the batch dimension');
        total += s.shape[axis];
      }
      return [spec(first.dtype, first.shape.slice(0, axis).concat([total], first.shape.slice(axis + 1)))];
    },
  },
  split: {
    outputs: null,
    attrs: { sizes: 'list', axis: 'int' },
    infer: ([x], attrs, nOutputs) => {
      const axis = normalizeAxisStatic(attrs.axis, x.shape.length);
      if (attrs.sizes.length !== nOutputs || !attrs.sizes.every((_, i) => isDimension(attrs.sizes, i, 1))) {
        typeFail(`split sizes ${show(attrs.sizes)} must be positive and one per output (${nOutputs})`);
      }
      if (x.shape[axis] === null) typeFail('split cannot cut along the batch dimension');
      if (x.shape[axis] !== attrs.sizes.reduce((a, b) => a + b, 0)) {
        typeFail(`split sizes ${show(attrs.sizes)} do not add up to dimension ${axis} of ${showSpec(x)}`);
      }
      return attrs.sizes.map((size) => spec(x.dtype, x.shape.slice(0, axis).concat([size], x.shape.slice(axis + 1))));
    },
  },
  stack: {
    arity: null,
    attrs: { axis: 'int' },
    infer: (inputs, attrs) => {
      const first = inputs[0];
      if (!inputs.every((s) => sameSpec(s, first))) {
        typeFail(`stack inputs must share dtype and shape: ${inputs.map(showSpec).join(', ')}`);
      }
      const axis = normalizeAxisStatic(attrs.axis, first.shape.length + 1);
      return [spec(first.dtype, first.shape.slice(0, axis).concat([inputs.length], first.shape.slice(axis)))];
    },
  },
  inverse_cdf_sample: {
    arity: 2,
    infer: ([p, u]) => {
      requireDtype(p, FLOATS, 'p');
      requireDtype(u, FLOATS, 'u');
      const n = p.shape[p.shape.length - 1];
      if (p.shape.length < 1 || n === null || n < 1) {
        typeFail(`inverse_cdf_sample needs p with a last axis of at least one entry, got ${showSpec(p)}`);
      }
      if (!sameShape(u.shape, p.shape.slice(0, -1).concat([1]))) {
        typeFail(`inverse_cdf_sample needs u of shape p.shape[:-1] + (1,), got p ${showSpec(p)} and u ${showSpec(u)}`);
      }
      return [spec('int64', p.shape.slice(0, -1))];
    },
  },
};

// A node's attributes checked: no unknown name, every declared one present and of its kind.
function checkAttrs(op, rule, attrs, where) {
  const declared = rule.attrs || {};
  const unknown = Object.keys(attrs).filter((name) => !has(declared, name));
  if (unknown.length) throw new DocumentError(`${where}: op ${op} has no attribute ${unknown.sort().join(', ')}`);
  for (const [name, kind] of Object.entries(declared)) {
    if (!has(attrs, name)) throw new DocumentError(`${where}: op ${op} needs attribute ${show(name)}`);
    if (!KINDS[kind](attrs, name)) {
      throw new DocumentError(`${where}: attribute ${show(name)} of op ${op} has the wrong type `
        + `(${show(attrs[name])})`);
    }
  }
}

// The size the limits of SPEC sections 3.5 and 5.8 bound, exactly (a BigInt): bytes with `batch` rows in place of the
// batch dimension, every zero dimension counted as 1. (Dimensions beyond 2^53 arrive rounded from JSON.parse, far
// beyond the limits either way.)
function nominalBytes(s, batch) {
  return s.shape.reduce((bytes, d) => bytes * (d === null ? batch : BigInt(Math.max(d, 1))), BigInt(SIZES[s.dtype]));
}

function define(specs, name, s, where, role) {
  if (specs.has(name)) throw new DocumentError(`${where}: ${role} name ${show(name)} is already defined`);
  if (s.shape.slice(1).includes(null)) {
    throw new DocumentError(`${where}: ${role} ${show(name)}: only the first dimension may be the batch (null)`);
  }
  if (s.shape.some((d) => d !== null && d >= MAX_DIM)) {
    throw new DocumentError(`${where}: ${role} ${show(name)} has shape ${show(s.shape)}: a dimension exceeds 2^63 - 1`);
  }
  if (s.shape.length > MAX_RANK) {
    throw new DocumentError(`${where}: ${role} ${show(name)} has rank ${s.shape.length}, above the limit of `
      + `${MAX_RANK} dimensions`);
  }
  if (nominalBytes(s, 1n) > MAX_VALUE_BYTES) {
    throw new DocumentError(`${where}: ${role} ${show(name)} of type ${showSpec(s)} needs ${nominalBytes(s, 1n)} bytes `
      + `at batch 1 (a zero dimension counted as 1), above the limit of ${MAX_VALUE_BYTES} bytes for one value`);
  }
  specs.set(name, s);
}

// Graph inputs and outputs have the batch (null) as their first dimension (SPEC sections 1, 3.4, 3.6): requests feed
// and return them row by row, so a batch-free one ([2], []) would pass the static check and fail only when run.
function requireBatchFirst(entry, path, role) {
  if (entry.shape.length === 0 || entry.shape[0] !== null) {
    throw new DocumentError(`${path}: ${role} ${show(entry.name)} has shape ${show(entry.shape)}: a graph ${role} has `
      + 'the batch (null) as its first dimension');
  }
}

// The document against the container's entries and its own graph, in SPEC section 7's order; returns the static type
// of every graph value.
function checkDocument(document, entries, path) {
  const specs = new Map();
  for (const entry of document.tensors) {
    const stored = has(entries, entry.name) ? entries[entry.name] : null;
    const where = `${path}: tensor ${show(entry.name)}`;
    if (!stored) throw new DocumentError(`${where} is listed in the document but missing from the file`);
    if (stored.dtype !== entry.dtype) {
      throw new DocumentError(`${where} is declared ${entry.dtype} but stored as ${stored.dtype}`);
    }
    if (!sameShape(stored.shape, entry.shape)) {
      throw new DocumentError(`${where} is declared with shape ${show(entry.shape)} but stored with shape `
        + `${show(stored.shape)}`);
    }
    define(specs, entry.name, spec(entry.dtype, entry.shape), path, 'tensor');
  }
  const stray = Object.keys(entries).filter((name) => !specs.has(name)).sort();
  if (stray.length) {
    throw new DocumentError(`${path}: the file holds tensors the document does not list: `
      + `${stray.slice(0, 5).join(', ')}`);
  }
  for (const entry of document.inputs) {
    requireBatchFirst(entry, path, 'input');
    define(specs, entry.name, spec(entry.dtype, entry.shape), path, 'input');
    if (entry.kind === 'noise' && entry.dtype !== 'float32') { // the schema requires its distribution
      throw new DocumentError(`${path}: noise input ${show(entry.name)} must be float32`);
    }
  }
  if (document.observation_space.kind === 'dict') {
    checkDictObservationInputs(document, specs, path);
  } else {
    if (!specs.has(OBSERVATION_INPUT) || !document.inputs.some((entry) => entry.kind === 'observation')) {
      throw new DocumentError(`${path}: the graph has no observation input named '${OBSERVATION_INPUT}'`);
    }
    const normalized = has(document.provenance, 'vecnormalize');
    if (normalized && has(document.provenance.vecnormalize, 'keys')) {
      throw new DocumentError(`${path}: provenance.vecnormalize.keys belongs to dict observation spaces`);
    }
    checkObservationInput(document, document.observation_space, specs.get(OBSERVATION_INPUT), path, 'observation',
      normalized);
  }
  document.graph.forEach((node, index) => {
    const where = `${path}: graph node ${index} (${node.op})`;
    if (!has(STATIC, node.op)) {
      throw new UnsupportedError(`${where}: unknown op ${show(node.op)}: ${NAME} knows `
        + `${Object.keys(STATIC).sort().join(', ')}`);
    }
    const rule = STATIC[node.op];
    const attrs = node.attrs || {};
    checkAttrs(node.op, rule, attrs, where);
    const arity = rule.arity === undefined ? 1 : rule.arity;
    if (arity === null ? node.inputs.length < 1 : node.inputs.length !== arity) {
      const takes = arity === null ? 'one or more' : arity;
      throw new DocumentError(`${where}: takes ${takes} inputs, got ${node.inputs.length}`);
    }
    const outputs = rule.outputs === undefined ? 1 : rule.outputs;
    if (outputs !== null && node.outputs.length !== outputs) {
      throw new DocumentError(`${where}: has ${outputs} outputs, got ${node.outputs.length}`);
    }
    const missing = node.inputs.filter((name) => !specs.has(name));
    if (missing.length) {
      throw new DocumentError(`${where}: uses ${missing.map(show).join(', ')} before it is defined (not an input, `
        + 'tensor or earlier output)');
    }
    let results;
    try {
      results = rule.infer(node.inputs.map((name) => specs.get(name)), attrs, node.outputs.length);
    } catch (error) {
      if (error instanceof TypeFailure) throw new DocumentError(`${where}: ${error.message}`);
      throw error;
    }
    node.outputs.forEach((name, i) => define(specs, name, results[i], where, 'output'));
  });
  for (const output of document.outputs) {
    requireBatchFirst(output, path, 'output');
    const where = `${path}: output ${show(output.name)}`;
    if (!specs.has(output.name)) throw new DocumentError(`${where} is never computed by the graph`);
    const declared = spec(output.dtype, output.shape);
    if (!sameSpec(specs.get(output.name), declared)) {
      throw new DocumentError(`${where} is declared ${showSpec(declared)} but the graph computes `
        + `${showSpec(specs.get(output.name))}`);
    }
  }
  checkPredict(document, path);
  checkContract(document, path);
  return specs;
}

// Whose predict the file reproduces (SPEC section 5.9): a version-1 document follows SB2's.
const contract = (document) => (has(document.predict, 'contract') ? document.predict.contract : 'sb2');

// The observation input's name (SPEC section 3.2); a dict observation space's inputs are named the prefix + a key.
const OBSERVATION_INPUT = 'obs';
const DICT_INPUT_PREFIX = 'obs/';
// The most characters of a list a message quotes before '...', as the reference's preview() (sbif/errors.py).
const PREVIEW_CHARS = 80;
const previewNames = (names) => {
  const text = `[${names.map((name) => `'${name}'`).join(', ')}]`;
  return text.length <= PREVIEW_CHARS ? text : `${text.slice(0, PREVIEW_CHARS)}...`;
};

// A dict observation space (SB3 contract, SPEC section 3.2): one observation input per key, obs/KEY, in the keys'
// order, each typed for its space (sbif/format/validate.py's _check_dict_observation_inputs: the same decisions, in
// the same order).
function checkDictObservationInputs(document, specs, path) {
  if (contract(document) !== 'sb3') {
    throw new DocumentError(`${path}: a dict observation space belongs to the SB3 contract, but predict.contract is `
      + 'sb2');
  }
  const keys = document.observation_space.spaces.map((entry) => entry.key);
  if (new Set(keys).size !== keys.length) {
    throw new DocumentError(`${path}: the dict observation space names a key twice`);
  }
  const expected = keys.map((key) => DICT_INPUT_PREFIX + key);
  const found = document.inputs.filter((entry) => entry.kind === 'observation').map((entry) => entry.name);
  if (found.length !== expected.length || found.some((name, i) => name !== expected[i])) {
    throw new DocumentError(`${path}: a dict observation space needs the observation inputs ${previewNames(expected)} `
      + `(one per key, in order), got ${previewNames(found)}`);
  }
  // VecNormalize statistics (SPEC section 5.7): listed per key, never with stacked frames
  const vecnormalize = has(document.provenance, 'vecnormalize') ? document.provenance.vecnormalize : {};
  const normalized = new Set(has(vecnormalize, 'keys') ? vecnormalize.keys : []);
  if (has(document.provenance, 'vecnormalize')) {
    if (!has(vecnormalize, 'keys') || has(vecnormalize, 'frame_stack')) {
      throw new DocumentError(`${path}: provenance.vecnormalize of a dict observation space lists its keys and stacks `
        + 'no frames (SPEC section 5.7)');
    }
    const boxes = new Set(document.observation_space.spaces.filter((entry) => entry.space.kind === 'box')
      .map((entry) => entry.key));
    if (normalized.size !== vecnormalize.keys.length || vecnormalize.keys.some((key) => !boxes.has(key))) {
      throw new DocumentError(`${path}: provenance.vecnormalize.keys must name Box keys of the dict observation `
        + `space, each once, got ${previewNames(vecnormalize.keys)}`);
    }
  }
  for (const entry of document.observation_space.spaces) {
    const name = DICT_INPUT_PREFIX + entry.key;
    checkObservationInput(document, entry.space, specs.get(name), path, `observation '${name}'`,
      normalized.has(entry.key));
  }
}

// An observation input must have the dtype and shape its space implies (SPEC section 3.2); `what` names it in
// messages ('observation', or "observation 'obs/KEY'" for a key of a dict space); `normalized` says whether
// VecNormalize statistics are folded in for it (SPEC section 5.7).
function checkObservationInput(document, space, obs, path, what, normalized) {
  const spaceName = what === 'observation' ? 'observation_space' : `${what} space`;
  // SB3 converts Box and MultiBinary observations with .float() (SPEC section 3.2)
  const sb3 = contract(document) === 'sb3';
  let expected;
  if (space.kind === 'box') {
    // with VecNormalize folded in, the graph takes raw float64 observations and normalizes them itself
    const dtype = normalized ? 'float64' : (sb3 ? 'float32' : space.dtype);
    expected = spec(dtype, [null].concat(space.shape));
    const size = space.shape.reduce((a, b) => a * b, 1);
    for (const bound of ['low', 'high']) {
      if (Array.isArray(space[bound]) && space[bound].length !== size) {
        throw new DocumentError(`${path}: ${spaceName} ${bound}: a Box bound has ${space[bound].length} `
          + `values for a space of ${size} elements`);
      }
      // +-Infinity can only be an integer literal beyond a double (parseStrict refuses 1e400): the reference's float()
      // of it overflows, with the same rounding
      if ([].concat(space[bound]).some((v) => typeof v === 'number' && !Number.isFinite(v))) {
        throw new DocumentError(`${path}: ${spaceName} ${bound}: an integer is too large for a float`);
      }
    }
  } else if (space.kind === 'discrete') {
    expected = spec('int32', [null]);
  } else if (space.kind === 'multi_discrete') {
    expected = spec('int32', [null, space.nvec.length]);
  } else {
    expected = spec(sb3 ? 'float32' : 'int32', [null, space.n]);
  }
  if (!sameSpec(obs, expected)) {
    throw new DocumentError(`${path}: ${what} input is ${showSpec(obs)} but a ${space.kind} observation space `
      + `needs ${showSpec(expected)}`);
  }
}

function checkPredict(document, path) {
  const outputs = new Map(document.outputs.map((output) => [output.name, output]));
  const predict = document.predict;
  const names = [predict.deterministic_action].concat(
    predict.stochastic_action === null ? [] : [predict.stochastic_action],
    Object.values(predict.distribution ? predict.distribution.parameters : {}));
  for (const name of names) {
    if (!outputs.has(name)) {
      throw new DocumentError(`${path}: predict refers to ${show(name)}, which is not a declared output`);
    }
  }
  const inputs = new Map(document.inputs.map((entry) => [entry.name, entry]));
  const recurrent = predict.recurrent;
  if (!recurrent) {
    if (document.inputs.some((entry) => entry.kind === 'state' || entry.kind === 'mask')) {
      throw new DocumentError(`${path}: state/mask inputs without predict.recurrent`);
    }
    return;
  }
  const state = inputs.get(recurrent.state_input);
  const mask = inputs.get(recurrent.mask_input);
  if (!state || state.kind !== 'state' || state.dtype !== 'float32' || state.shape.length !== 2) {
    throw new DocumentError(`${path}: predict.recurrent.state_input must name a float32 [B, S] input of kind 'state'`);
  }
  if (!mask || mask.kind !== 'mask' || mask.dtype !== 'float32' || !sameShape(mask.shape, [null])) {
    throw new DocumentError(`${path}: predict.recurrent.mask_input must name a float32 [B] input of kind 'mask'`);
  }
  const out = outputs.get(recurrent.state_output);
  if (!out || out.dtype !== 'float32' || !sameShape(out.shape, state.shape)) {
    throw new DocumentError(`${path}: predict.recurrent.state_output must name a declared output shaped like the state `
      + 'input');
  }
}

// The version-2 predict fields name inputs of the right kind and type, and only the SB3 contract uses them (SPEC
// section 5.9): an SB2 file with an action mask would be run by SB2's rules, which have none.
function checkContract(document, path) {
  const predict = document.predict;
  const inputs = new Map(document.inputs.map((entry) => [entry.name, entry]));
  const recurrent = predict.recurrent || {};
  const sb3Fields = ['channels_last', 'action_mask', 'shared_noise'].filter((field) => has(predict, field))
    .concat(has(recurrent, 'state_layout') ? ['recurrent.state_layout'] : []);
  const masks = document.inputs.filter((entry) => entry.kind === 'action_mask').map((entry) => entry.name);
  if (contract(document) !== 'sb3') {
    if (sb3Fields.length) {
      throw new DocumentError(`${path}: predict.${sb3Fields[0]} belongs to the SB3 contract, but predict.contract is `
        + 'sb2');
    }
    if (masks.length) throw new DocumentError(`${path}: an action_mask input under the SB2 contract, which has none`);
    return;
  }
  if (predict.deterministic_default !== false) {
    throw new DocumentError(`${path}: deterministic_default must be false under the SB3 contract (SB3's predict `
      + 'samples unless told otherwise)');
  }
  const named = has(predict, 'action_mask') ? predict.action_mask : null;
  if (named === null ? masks.length !== 0 : masks.length !== 1 || masks[0] !== named) {
    throw new DocumentError(`${path}: predict.action_mask must name the one input of kind 'action_mask' (inputs of `
      + `that kind: ${masks.map(show).join(', ') || 'none'})`);
  }
  if (named !== null) {
    const mask = inputs.get(named);
    if (mask.dtype !== 'bool' || mask.shape.length !== 2) {
      throw new DocumentError(`${path}: the action mask ${show(named)} must be a bool [B, L] input`);
    }
  }
  const shared = predict.shared_noise || [];
  if (new Set(shared).size !== shared.length) {
    throw new DocumentError(`${path}: predict.shared_noise names an input twice`);
  }
  for (const name of shared) {
    if (!inputs.has(name) || inputs.get(name).kind !== 'noise') {
      throw new DocumentError(`${path}: predict.shared_noise names ${show(name)}, which is not a noise input`);
    }
  }
  if (has(recurrent, 'state_layout')) {
    // checkPredict found the state input float32 [B, S]; S is at most 2^26 (SPEC section 3.5's value limit), so the
    // products compared with it are exact where they could match
    const { layers, hidden } = recurrent.state_layout;
    const size = inputs.get(recurrent.state_input).shape[1];
    const cells = layers * hidden;
    if (size !== 2 * cells && size !== 4 * cells) {
      throw new DocumentError(`${path}: the state has ${size} columns, but an LSTM state of ${layers} layers of `
        + `${hidden} units holds 2 x ${cells} (the actor's h and c) or 4 x ${cells} (with the critic's)`);
    }
  }
}

// A validated file: its document, tensors (created only now, each a copy of its bytes) and graph lookups.
function readModel(path) {
  const { metadata, entries, bytes, start } = readContainer(path);
  const document = decodeDocument(metadata, path);
  const specs = checkDocument(document, entries, path);
  const tensors = {};
  for (const entry of document.tensors) {
    const { begin, end } = entries[entry.name];
    const raw = bytes.buffer.slice(bytes.byteOffset + start + begin, bytes.byteOffset + start + end); // a copy
    tensors[entry.name] = tensor(entry.dtype, entry.shape, new ARRAYS[entry.dtype](raw));
  }
  const producers = new Map();
  document.graph.forEach((node, index) => node.outputs.forEach((name) => producers.set(name, index)));
  return { document, specs, tensors, producers, inputs: new Map(document.inputs.map((e) => [e.name, e])) };
}

const models = new Map();
function loadModel(path) {
  let stat;
  try {
    stat = fs.statSync(path);
  } catch (error) {
    return readModel(path); // the reader says why the file cannot be read
  }
  const key = `${path}:${stat.size}:${stat.mtimeMs}`;
  if (!models.has(key)) models.set(key, readModel(path));
  return models.get(key);
}

// ---- broadcasting helpers ------------------------------------------------------------------------------------------
function broadcastShape(shapes) {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = [];
  for (let i = 0; i < rank; i++) {
    let size = 1;
    for (const s of shapes) {
      const d = s[s.length - rank + i] === undefined ? 1 : s[s.length - rank + i];
      if (d !== 1) {
        if (size !== 1 && size !== d) throw new InputError(`shapes ${JSON.stringify(shapes)} do not broadcast`);
        size = d;
      }
    }
    out.push(size);
  }
  return out;
}

// For each input, the flat index feeding each output element.
function broadcastIndices(shape, inputShapes) {
  const n = count(shape);
  const rank = shape.length;
  return inputShapes.map((s) => {
    const strides = new Array(rank).fill(0);
    let stride = 1;
    for (let i = s.length - 1; i >= 0; i--) {
      const axis = rank - s.length + i;
      strides[axis] = s[i] === 1 ? 0 : stride;
      stride *= s[i];
    }
    const index = new Int32Array(n);
    const position = new Array(rank).fill(0);
    for (let k = 0; k < n; k++) {
      let offset = 0;
      for (let a = 0; a < rank; a++) offset += position[a] * strides[a];
      index[k] = offset;
      for (let a = rank - 1; a >= 0; a--) {
        if (++position[a] < shape[a]) break;
        position[a] = 0;
      }
    }
    return index;
  });
}

function elementwise(inputs, dtype, f) {
  const shape = broadcastShape(inputs.map((t) => t.shape));
  const out = tensor(dtype, shape);
  const same = inputs.every((t) => t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]));
  const n = out.data.length;
  if (same) {
    const arrays = inputs.map((t) => t.data);
    for (let k = 0; k < n; k++) out.data[k] = f(...arrays.map((a) => a[k]));
  } else {
    const index = broadcastIndices(shape, inputs.map((t) => t.shape));
    const arrays = inputs.map((t) => t.data);
    for (let k = 0; k < n; k++) out.data[k] = f(...arrays.map((a, i) => a[index[i][k]]));
  }
  return out;
}

function unary(x, f32f, f64f) {
  if (!isFloat(x.dtype)) throw new InputError(`float input expected, got ${x.dtype}`);
  return elementwise([x], x.dtype, x.dtype === 'float32' ? f32f : (f64f || f32f));
}

// rows of the last axis
function rows(x) {
  const n = x.shape[x.shape.length - 1];
  return { n, count: n === 0 ? 0 : x.data.length / n };
}

const normalizeAxis = (axis, rank) => (axis < 0 ? axis + rank : axis);

// A tensor's memory as unsigned integers of its element's size: a select copies these, so every bit of the chosen
// element is kept (a float read into a JS number and written back may lose a NaN's payload).
const WORDS = { 1: Uint8Array, 2: Uint16Array, 4: Uint32Array, 8: BigUint64Array };
const words = (t) => new WORDS[t.data.BYTES_PER_ELEMENT](t.data.buffer, t.data.byteOffset, t.data.length);

function where(condition, x, y) {
  const shapes = [condition.shape, x.shape, y.shape];
  const shape = broadcastShape(shapes);
  const out = tensor(x.dtype, shape);
  const [k, a, b] = broadcastIndices(shape, shapes);
  const [chosen, xs, ys, zs] = [condition.data, words(x), words(y), words(out)];
  for (let i = 0; i < zs.length; i++) zs[i] = chosen[k[i]] ? xs[a[i]] : ys[b[i]];
  return out;
}

// ---- ops ---------------------------------------------------------------------------------------------------------
const SIGMOID32 = (x) => (x < -18 ? 0 : x > 18 ? 1 : f32(1 / f32(1 + f32(Math.exp(f32(-x))))));
const SIGMOID64 = (x) => 1 / (1 + Math.exp(-x));

// erf in float64 (JavaScript has no Math.erf), to a relative error below 2^-48, so that rounding it to float32 gives
// the reference's float32 result (libm's erf rounded once) in practice. Two expansions, both free of cancellation:
// for |x| <= ERF_SERIES_LIMIT, erf(x) = 2/sqrt(pi) * exp(-x^2) * sum over n of 2^n x^(2n+1) / (1*3*...*(2n+1)), a
// sum of positive terms; above it, erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), the
// continued fraction cut at ERF_FRACTION_DEPTH partial quotients, evaluated from the bottom.
const TWO_OVER_SQRT_PI = 1.1283791670955126;
const ONE_OVER_SQRT_PI = 0.5641895835477563;
const ERF_SERIES_LIMIT = 1.5;
// the depth at which the fraction has converged to double precision at ERF_SERIES_LIMIT (it converges faster above)
const ERF_FRACTION_DEPTH = 120;
// 1 - erf(6) is below 2^-53: erf is +-1 in float64 from there on
const ERF_SATURATION = 6;

// exp(-x^2) without the rounding error of x^2 (which exp would multiply by x^2): x = hi + (x - hi) with hi's square
// exact (hi has 24 significant bits), and exp(-x^2) = exp(-hi^2) * exp(-(x - hi)(x + hi))
function expMinusSquare(x) {
  const hi = f32(x);
  return Math.exp(-hi * hi) * Math.exp((hi - x) * (hi + x));
}

function erf64(x) {
  const a = Math.abs(x);
  if (!(a > 0)) return x; // NaN stays NaN, and +-0 keeps its sign
  if (a >= ERF_SATURATION) return Math.sign(x);
  let y;
  if (a <= ERF_SERIES_LIMIT) {
    const twiceSquare = 2 * a * a;
    let term = a;
    let sum = a;
    for (let n = 1; term > sum * Number.EPSILON / 4; n++) {
      term *= twiceSquare / (2 * n + 1);
      sum += term;
    }
    y = TWO_OVER_SQRT_PI * expMinusSquare(a) * sum;
  } else {
    let fraction = a;
    for (let k = ERF_FRACTION_DEPTH; k >= 1; k--) fraction = a + k / 2 / fraction;
    y = 1 - (ONE_OVER_SQRT_PI * expMinusSquare(a)) / fraction;
  }
  return x < 0 ? -y : y;
}

function roundHalfEven(x) {
  if (!Number.isFinite(x) || Math.abs(x) >= 8388608) return x;
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff < 0.5) return floor;
  if (diff > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

function softplusFor(dtype) {
  const eps = dtype === 'float32' ? 1.1920928955078125e-7 : 2.220446049250313e-16;
  const round = dtype === 'float32' ? f32 : (v) => v;
  const t = round(round(Math.log(eps)) + 2);
  return (x) => (x > -t ? x : x < t ? round(Math.exp(x)) : round(Math.log(round(round(Math.exp(x)) + 1))));
}

// spec/ops.md "cast": float -> int truncates toward zero, int -> int wraps, number -> bool is x != 0
function castValue(value, from, to) {
  const big = typeof value === 'bigint';
  if (to === 'bool') return (big ? value !== 0n : value !== 0) ? 1 : 0; // NaN != 0
  if (isFloat(to)) return big ? Number(value) : value; // the typed array rounds (e.g. float64 -> float32)
  if (isFloat(from)) { // through int64 for an int64 target, int32 otherwise: NaN, inf and values it cannot hold give
    // its lowest value (then wrapped to narrower types), as TF and NumPy on x86
    const lowest = to === 'int64' ? -(2 ** 63) : -(2 ** 31);
    const truncated = Math.trunc(value);
    value = truncated >= lowest && truncated < -lowest ? truncated : lowest;
  }
  if (to === 'int64') return BigInt.asIntN(64, big ? value : BigInt(value));
  if (big) {
    const [bits, signed] = INT_BITS[to];
    return Number(signed ? BigInt.asIntN(bits, value) : BigInt.asUintN(bits, value));
  }
  return value; // narrower integer types wrap modulo 2^n when stored in their typed array
}

const OPS = {
  add: (x, y) => elementwise([x, y], x.dtype, (a, b) => a + b),
  sub: (x, y) => elementwise([x, y], x.dtype, (a, b) => a - b),
  mul: (x, y) => elementwise([x, y], x.dtype, (a, b) => a * b),
  div: (x, y) => elementwise([x, y], x.dtype, (a, b) => a / b),
  less: (x, y) => elementwise([x, y], 'bool', (a, b) => (a < b ? 1 : 0)),
  neg: (x) => unary(x, (a) => -a),
  exp: (x) => unary(x, (a) => Math.exp(a)),
  log: (x) => unary(x, (a) => Math.log(a)),
  tanh: (x) => unary(x, (a) => Math.tanh(a)),
  sigmoid: (x) => unary(x, SIGMOID32, SIGMOID64),
  relu: (x) => unary(x, (a) => Math.max(a, 0)),
  relu6: (x) => unary(x, (a) => Math.min(Math.max(a, 0), 6)),
  elu: (x) => unary(x, (a) => (a < 0 ? f32(f32(Math.exp(a)) - 1) : a), (a) => (a < 0 ? Math.exp(a) - 1 : a)),
  selu: (x) => {
    const sa32 = f32(1.7580993408473768599402175208123);
    const s32 = f32(1.0507009873554804934193349852946);
    return unary(x, (a) => (a < 0 ? f32(sa32 * f32(f32(Math.exp(a)) - 1)) : f32(s32 * a)),
      (a) => (a < 0 ? 1.7580993408473768 * (Math.exp(a) - 1) : 1.0507009873554805 * a));
  },
  softplus: (x) => unary(x, softplusFor(x.dtype)),
  softsign: (x) => unary(x, (a) => f32(a / f32(Math.abs(a) + 1)), (a) => a / (Math.abs(a) + 1)),
  swish: (x) => unary(x, (a) => f32(a * SIGMOID32(a)), (a) => a * SIGMOID64(a)),
  erf: (x) => unary(x, (a) => f32(erf64(a)), erf64),
  leaky_relu: (x, attrs) => {
    const alpha = x.dtype === 'float32' ? f32(attrs.alpha) : attrs.alpha;
    return unary(x, (a) => (a > 0 ? a : a * alpha));
  },
  round_half_even: (x) => unary(x, roundHalfEven),
  clip: (x, low, high) => elementwise([x, low, high], x.dtype, (a, l, h) => Math.min(Math.max(a, l), h)),
  where,
  cast: (x, attrs) => elementwise([x], attrs.to, (a) => castValue(a, x.dtype, attrs.to)),
  constant: (attrs) => {
    const value = typeof attrs.value === 'boolean' ? (attrs.value ? 1 : 0) : attrs.value;
    const out = tensor(attrs.dtype, []);
    out.data[0] = castValue(value, Number.isInteger(value) ? 'int32' : 'float64', attrs.dtype);
    return out;
  },
  one_hot: (x, attrs) => {
    const depth = attrs.depth;
    const out = tensor('float32', x.shape.concat([depth]));
    for (let k = 0; k < x.data.length; k++) {
      const v = x.data[k];
      if (v >= 0 && v < depth) out.data[k * depth + Number(v)] = 1;
    }
    return out;
  },
  argmax: (x) => {
    const { n, count: m } = rows(x);
    const lowest = x.dtype === 'float32' ? -FLT_MAX : x.dtype === 'float64' ? -Number.MAX_VALUE
      : -(2 ** (8 * SIZES[x.dtype] - 1));
    const out = tensor('int64', x.shape.slice(0, -1));
    for (let r = 0; r < m; r++) {
      let best = 0;
      let value = lowest;
      for (let j = 0; j < n; j++) {
        if (x.data[r * n + j] > value) { best = j; value = x.data[r * n + j]; }
      }
      out.data[r] = BigInt(best);
    }
    return out;
  },
  softmax: (x) => {
    const round = x.dtype === 'float32' ? f32 : (v) => v;
    const { n, count: m } = rows(x);
    const out = tensor(x.dtype, x.shape);
    for (let r = 0; r < m; r++) {
      let max = -Infinity;
      let nan = false;
      for (let j = 0; j < n; j++) {
        const v = x.data[r * n + j];
        if (v !== v) nan = true; else if (v > max) max = v;
      }
      if (nan) max = NaN;
      let sum = 0;
      for (let j = 0; j < n; j++) {
        const e = round(Math.exp(round(x.data[r * n + j] - max)));
        out.data[r * n + j] = e;
        sum = round(sum + e);
      }
      const inverse = round(1 / sum);
      for (let j = 0; j < n; j++) out.data[r * n + j] = round(out.data[r * n + j] * inverse);
    }
    return out;
  },
  matmul: (x, w) => product(x, w, null),
  linear: (x, w, b) => product(x, w, b),
  layer_norm: (x, gamma, beta, attrs) => {
    const round = x.dtype === 'float32' ? f32 : (v) => v;
    const eps = round(attrs.epsilon);
    const { n, count: m } = rows(x);
    const out = tensor(x.dtype, x.shape);
    for (let r = 0; r < m; r++) {
      let sum = 0;
      for (let j = 0; j < n; j++) sum = round(sum + x.data[r * n + j]);
      const mean = round(sum / n);
      let squares = 0;
      for (let j = 0; j < n; j++) {
        const d = round(x.data[r * n + j] - mean);
        squares = round(squares + round(d * d));
      }
      const scale = round(Math.sqrt(round(round(squares / n) + eps)));
      for (let j = 0; j < n; j++) {
        const centered = round(x.data[r * n + j] - mean);
        out.data[r * n + j] = round(round(round(centered / scale) * gamma.data[j]) + beta.data[j]);
      }
    }
    return out;
  },
  reduce_mean: (x) => {
    const round = x.dtype === 'float32' ? f32 : (v) => v;
    const { n, count: m } = rows(x);
    const out = tensor(x.dtype, x.shape.slice(0, -1).concat([1]));
    for (let r = 0; r < m; r++) {
      let sum = 0;
      for (let j = 0; j < n; j++) sum = round(sum + x.data[r * n + j]);
      out.data[r] = round(sum / n);
    }
    return out;
  },
  flatten: (x) => tensor(x.dtype, [x.shape[0], x.shape.length === 1 ? 1 : count(x.shape.slice(1))], x.data),
  reshape: (x, attrs) => tensor(x.dtype, attrs.shape, x.data),
  squeeze: (x, attrs) => {
    const axis = normalizeAxis(attrs.axis, x.shape.length);
    if (x.shape[axis] !== 1) throw new InputError(`squeeze of a dimension of size ${x.shape[axis]}`);
    return tensor(x.dtype, x.shape.filter((_, i) => i !== axis), x.data);
  },
  transpose: (x, attrs) => {
    // y's elements in order, each read from x by an odometer over y's index that moves the source offset by x's
    // stride along the axis perm names
    const { perm } = attrs;
    const rank = x.shape.length;
    const strides = new Array(rank);
    for (let i = rank - 1, elements = 1; i >= 0; i--) {
      strides[i] = elements;
      elements *= x.shape[i];
    }
    const out = tensor(x.dtype, perm.map((axis) => x.shape[axis]));
    const steps = perm.map((axis) => strides[axis]);
    const index = new Array(rank).fill(0);
    let source = 0;
    for (let k = 0; k < out.data.length; k++) {
      out.data[k] = x.data[source];
      for (let i = rank - 1; i >= 0; i--) {
        source += steps[i];
        if (++index[i] < out.shape[i]) break;
        source -= steps[i] * out.shape[i];
        index[i] = 0;
      }
    }
    return out;
  },
  expand_dims: (x, attrs) => {
    const axis = normalizeAxis(attrs.axis, x.shape.length + 1);
    return tensor(x.dtype, x.shape.slice(0, axis).concat([1], x.shape.slice(axis)), x.data);
  },
  concat: (...args) => {
    const attrs = args.pop();
    return join(args, normalizeAxis(attrs.axis, args[0].shape.length), false);
  },
  stack: (...args) => {
    const attrs = args.pop();
    const axis = normalizeAxis(attrs.axis, args[0].shape.length + 1);
    const expanded = args.map((t) => tensor(t.dtype, t.shape.slice(0, axis).concat([1], t.shape.slice(axis)), t.data));
    return join(expanded, axis, true);
  },
  split: (x, attrs) => {
    const axis = normalizeAxis(attrs.axis, x.shape.length);
    const outer = count(x.shape.slice(0, axis));
    const inner = count(x.shape.slice(axis + 1));
    const total = x.shape[axis];
    let start = 0;
    return attrs.sizes.map((size) => {
      const out = tensor(x.dtype, x.shape.slice(0, axis).concat([size], x.shape.slice(axis + 1)));
      for (let o = 0; o < outer; o++) {
        for (let s = 0; s < size; s++) {
          for (let i = 0; i < inner; i++) {
            out.data[(o * size + s) * inner + i] = x.data[(o * total + start + s) * inner + i];
          }
        }
      }
      start += size;
      return out;
    });
  },
};

function product(x, w, b) {
  if (x.shape.length !== 2 || w.shape.length !== 2 || x.shape[1] !== w.shape[0]) {
    throw new InputError(`cannot multiply ${JSON.stringify(x.shape)} by ${JSON.stringify(w.shape)}`);
  }
  const round = x.dtype === 'float32' ? f32 : (v) => v;
  const [m, k] = x.shape;
  const n = w.shape[1];
  const out = tensor(x.dtype, [m, n]);
  for (let r = 0; r < m; r++) {
    for (let c = 0; c < n; c++) {
      let sum = 0;
      for (let i = 0; i < k; i++) sum = round(sum + round(x.data[r * k + i] * w.data[i * n + c]));
      out.data[r * n + c] = b ? round(sum + b.data[c]) : sum;
    }
  }
  return out;
}

function join(inputs, axis, stacking) {
  const first = inputs[0];
  const outer = count(first.shape.slice(0, axis));
  const inner = count(first.shape.slice(axis + 1));
  const total = inputs.reduce((s, t) => s + t.shape[axis], 0);
  const shape = first.shape.slice(0, axis).concat([total], first.shape.slice(axis + 1));
  const out = tensor(first.dtype, shape);
  let start = 0;
  for (const t of inputs) {
    const size = t.shape[axis];
    for (let o = 0; o < outer; o++) {
      for (let s = 0; s < size; s++) {
        for (let i = 0; i < inner; i++) out.data[(o * total + start + s) * inner + i] = t.data[(o * size + s) * inner + i];
      }
    }
    start += size;
  }
  return out;
}

const SPLIT_LIKE = new Set(['split']);
const NO_INPUTS = new Set(['constant']);

function apply(op, inputs, attrs) {
  const f = OPS[op];
  if (!f) throw new UnsupportedError(`op ${op} is not implemented by ${NAME}`);
  const result = NO_INPUTS.has(op) ? f(attrs) : f(...inputs, attrs);
  return SPLIT_LIKE.has(op) ? result : [result];
}

// ---- running a graph -------------------------------------------------------------------------------------------------
// Refuse, before anything is computed, a batch with which a value the run needs (an input its nodes read or an output
// they compute) would exceed MAX_BATCH_VALUE_BYTES: the batch times the value's bytes per row (SPEC section 5.8).
function checkBatch(model, order, feeds) {
  const batched = (name) => model.inputs.has(name) && model.inputs.get(name).shape[0] === null;
  const fed = Object.entries(feeds).find(([name]) => batched(name));
  if (!fed) return;
  const batch = BigInt(fed[1].shape[0]);
  for (const index of order) {
    const node = model.document.graph[index];
    for (const name of node.inputs.concat(node.outputs)) {
      const s = model.specs.get(name);
      if (s.shape[0] === null && nominalBytes(s, batch) > MAX_BATCH_VALUE_BYTES) {
        throw new InputError(`a batch of ${batch} rows would make ${show(name)} (${showSpec(s)}) take `
          + `${nominalBytes(s, batch)} bytes, above the limit of ${MAX_BATCH_VALUE_BYTES} bytes for one value: use `
          + `batches of at most ${MAX_BATCH_VALUE_BYTES / nominalBytes(s, 1n)} rows`);
      }
    }
  }
}

function run(model, feeds, wanted) {
  const { document, tensors, producers } = model;
  const needed = new Set();
  const values = new Map(Object.entries(tensors));
  const todo = wanted.slice();
  for (const name of wanted) {
    if (!producers.has(name) && !model.inputs.has(name) && !values.has(name)) throw new InputError(`unknown output ${name}`);
  }
  while (todo.length) {
    const name = todo.pop();
    if (!producers.has(name)) continue;
    const index = producers.get(name);
    if (needed.has(index)) continue;
    needed.add(index);
    todo.push(...document.graph[index].inputs);
  }
  const order = Array.from(needed).sort((a, b) => a - b);
  const missingOps = order.map((i) => document.graph[i].op).filter((op) => !OPS[op]);
  if (missingOps.length) throw new UnsupportedError(`op(s) ${Array.from(new Set(missingOps)).join(', ')} not implemented by ${NAME}`);
  // every fed input has its declared dtype and shape, with one batch size across all inputs (several are batched: a
  // dict observation space's obs/KEY, noise, states)
  let batch = null;
  for (const [name, value] of Object.entries(feeds)) {
    const entry = model.inputs.get(name);
    if (!entry) continue;
    if (entry.dtype !== value.dtype) throw new InputError(`input ${name} must be ${entry.dtype}, got ${value.dtype}`);
    const fits = entry.shape.length === value.shape.length && entry.shape.every((d, i) => d === null || d === value.shape[i]);
    if (!fits) throw new InputError(`input ${name} has shape ${JSON.stringify(value.shape)}`);
    if (entry.shape[0] === null) {
      if (batch !== null && value.shape[0] !== batch) {
        throw new InputError(`input ${show(name)} has batch size ${value.shape[0]} but another input has ${batch}`);
      }
      batch = value.shape[0];
    }
    values.set(name, value);
  }
  checkBatch(model, order, feeds);
  for (const index of order) {
    const node = document.graph[index];
    const inputs = node.inputs.map((name) => {
      if (!values.has(name)) throw new InputError(`missing input ${name}`);
      return values.get(name);
    });
    const results = apply(node.op, inputs, node.attrs || {});
    node.outputs.forEach((name, i) => values.set(name, results[i]));
  }
  const outputs = {};
  for (const name of wanted) outputs[name] = values.get(name);
  return outputs;
}

// ---- the protocol ------------------------------------------------------------------------------------------------------
function decodeTensor(obj) {
  const { dtype, shape, data } = obj;
  if (!ARRAYS[dtype] || !Array.isArray(shape) || !Array.isArray(data) || data.length !== count(shape)) {
    throw new InputError('malformed tensor');
  }
  const special = { nan: NaN, inf: Infinity, '-inf': -Infinity };
  if (dtype === 'int64') return tensor(dtype, shape, BigInt64Array.from(data, (v) => BigInt(v)));
  const values = data.map((v) => (typeof v === 'string' ? special[v] : typeof v === 'boolean' ? (v ? 1 : 0) : v));
  return tensor(dtype, shape, ARRAYS[dtype].from(values));
}

function encodeTensor(t) {
  const data = new Array(t.data.length);
  for (let k = 0; k < t.data.length; k++) {
    const v = t.data[k];
    if (t.dtype === 'bool') data[k] = v !== 0;
    else if (t.dtype === 'int64') data[k] = BIG_MARK + v.toString();
    else if (v !== v) data[k] = 'nan';
    else if (v === Infinity) data[k] = 'inf';
    else if (v === -Infinity) data[k] = '-inf';
    else data[k] = v;
  }
  return { dtype: t.dtype, shape: t.shape, data };
}

// JSON numbers beyond 2^53 lose digits in JSON.parse / JSON.stringify: long integer literals inside "data" arrays
// are quoted before parsing (and turned into BigInts), and int64 values are written as exact literals.
const BIG_MARK = '\u0000big:';
class ProtocolError extends Error {}
const JSON_STRING = /"[^"\\]*(?:\\.[^"\\]*)*"/g;
const LONG_NUMBER = new RegExp(`[-+.0-9eE]{${MAX_NUMBER_CHARS + 1},}`);

function parseMessage(line) {
  const long = line.length > MAX_NUMBER_CHARS ? LONG_NUMBER.exec(line.replace(JSON_STRING, '""')) : null;
  if (long) throw new ProtocolError(`contains the number ${quotedNumber(long[0])}, longer than ${MAX_NUMBER_CHARS} characters`);
  const quoted = line.replace(/"data":\[([^\]]*)\]/g,
    (whole, items) => '"data":[' + items.replace(/(^|,)\s*(-?\d{16,})\s*(?=,|$)/g, '$1"$2"') + ']');
  return parseStrict(quoted, ProtocolError, 'the request');
}

// Calls `onLine` with each line of `stream` (a string without its newline), or with null for a line longer than
// MAX_LINE_BYTES, which is read past without being kept; then `onEnd`. Lines are decoded as strict UTF-8 (a line
// that is not UTF-8 is passed as undefined).
function readLines(stream, onLine, onEnd) {
  let parts = [];
  let length = 0;
  let skipping = false;
  stream.on('data', (chunk) => {
    let start = 0;
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, newline);
      start = newline + 1;
      if (skipping || length + piece.length + 1 > MAX_LINE_BYTES) {
        onLine(null);
      } else {
        let text;
        try { text = UTF8.decode(Buffer.concat(parts.concat([piece]))); } catch (error) { text = undefined; }
        onLine(text);
      }
      parts = [];
      length = 0;
      skipping = false;
    }
    const rest = chunk.subarray(start);
    if (skipping || length + rest.length >= MAX_LINE_BYTES) {
      skipping = true;
      parts = [];
      length = 0;
    } else if (rest.length) {
      parts.push(rest);
      length += rest.length;
    }
  });
  stream.on('end', () => {
    if (skipping) onLine(null);
    else if (length) {
      let text;
      try { text = UTF8.decode(Buffer.concat(parts)); } catch (error) { text = undefined; }
      onLine(text);
    }
    onEnd();
  });
}
// Answers are UTF-8 text: a lone surrogate in a string (V8's JSON.parse messages cut the input at a UTF-16 unit,
// which can split a pair) becomes U+FFFD, as strict readers refuse the escape JSON.stringify would write for it.
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');
const wellFormed = (key, value) => (typeof value === 'string' ? value.replace(LONE_SURROGATES, '\uFFFD') : value);
function stringify(message) {
  return JSON.stringify(message, wellFormed).replace(/"\\u0000big:(-?\d+)"/g, '$1');
}

function hello() {
  return {
    type: 'hello', protocol: PROTOCOL,
    runtime: { name: NAME, version: VERSION, language: `javascript (node ${process.version})` },
    features: ['run', 'op', 'recurrent', 'sampling', 'load'],
    ops: Object.keys(OPS).sort(),
  };
}

function handle(message) {
  if (message.type === 'run') {
    const model = loadModel(message.model);
    const feeds = {};
    for (const [name, value] of Object.entries(message.inputs || {})) feeds[name] = decodeTensor(value);
    const outputs = run(model, feeds, message.outputs);
    const encoded = {};
    for (const [name, value] of Object.entries(outputs)) encoded[name] = encodeTensor(value);
    return { type: 'result', outputs: encoded };
  }
  if (message.type === 'load') {
    if (typeof message.model !== 'string') throw new InputError("load requests name the model file in 'model'");
    loadModel(message.model);
    return { type: 'loaded' };
  }
  if (message.type === 'op') {
    const inputs = message.inputs.map(decodeTensor);
    const results = apply(message.op, inputs, message.attrs || {});
    const encoded = {};
    results.forEach((t, i) => { encoded[String(i)] = encodeTensor(t); });
    return { type: 'result', outputs: encoded };
  }
  throw new UnsupportedError(`${NAME} does not implement ${message.type} requests`);
}

function main() {
  if (os.endianness() !== 'LE') {
    process.stderr.write('sbif-node reads tensors with typed arrays and needs a little-endian machine\n');
    process.exit(2);
  }
  const write = (message) => process.stdout.write(stringify(message) + '\n');
  let done = false;
  readLines(process.stdin, (line) => {
    if (done || (typeof line === 'string' && !line.trim())) return;
    let message;
    try {
      if (line === null) throw new ProtocolError(`a request line is longer than ${MAX_LINE_BYTES} bytes`);
      if (line === undefined) throw new ProtocolError('a request line is not UTF-8 text');
      message = parseMessage(line);
      if (!isObject(message)) throw new ProtocolError('a message is a JSON object');
    } catch (error) {
      write({ id: null, type: 'errored', message: `malformed request: ${error.message}` });
      return;
    }
    if (message.type === 'hello') { write(hello()); return; }
    if (message.type === 'shutdown') { write({ type: 'bye' }); done = true; process.stdin.destroy(); return; }
    try {
      write(Object.assign({ id: message.id }, handle(message)));
    } catch (error) {
      const refusal = REFUSALS.find((kind) => error instanceof kind);
      if (message.type === 'load' && refusal) {
        // a refusal of the file, by class: an unsupported version or op too (SPEC section 7), never a skip
        write({ id: message.id, type: 'errored', message: `${refusal.name}: ${error.message}`, error_class: refusal.name });
      } else if (error instanceof UnsupportedError) {
        write({ id: message.id, type: 'skipped', reason: error.message });
      } else {
        write({ id: message.id, type: 'errored', message: error.message, details: error.stack });
      }
    }
  }, () => {});
}

main();
