import { NAME, VERSION } from './about.js';
import { checkOpCall } from './check.js';
import { FileFormatError, InputError, REFUSALS, UnsupportedError } from './errors.js';
import { Model } from './executor.js';
import { LONE_SURROGATE, UTF8, has, isObject, parseStrict, quotedNumber } from './json.js';
import { OPS, apply } from './ops.js';
import { ARRAYS, tensor } from './tensor.js';

// The conformance protocol (spec/conformance-protocol.md) as a session that answers one request line at a time,
// independent of where lines come from: bin/sbif-protocol.js wires it to stdin/stdout and the file system, and a
// browser page can wire it to a WebSocket and fetch().

const PROTOCOL = 1;
// A request line's bytes with its newline, and the longest number literal in a request (spec/conformance-protocol.md
// section 1): as in the reference's and the C runtime's servers.
export const MAX_LINE_BYTES = 64 * 1024 * 1024;
const MAX_NUMBER_CHARS = 100;
/** The features a session claims (hello), `predict` added once a predict handler is set. */
const FEATURES = ['run', 'op', 'recurrent', 'sampling', 'load'];

class ProtocolError extends Error {}

// JSON numbers beyond 2^53 lose digits in JSON.parse / JSON.stringify: long integer literals inside "data" arrays
// are quoted before parsing (and turned into BigInts), and int64 values are written as exact literals, marked by
// BIG_MARK while the answer is a JS object.
const BIG_MARK = '\u0000big:';
const JSON_STRING = /"[^"\\]*(?:\\.[^"\\]*)*"/g;
const LONG_NUMBER = new RegExp(`[-+.0-9eE]{${MAX_NUMBER_CHARS + 1},}`);
const NON_FINITE = { nan: NaN, inf: Infinity, '-inf': -Infinity };

function parseMessage(line) {
  const long = line.length > MAX_NUMBER_CHARS ? LONG_NUMBER.exec(line.replace(JSON_STRING, '""')) : null;
  if (long) {
    throw new ProtocolError(`contains the number ${quotedNumber(long[0])}, longer than ${MAX_NUMBER_CHARS} characters`);
  }
  const quoted = line.replace(/"data":\[([^\]]*)\]/g,
    (whole, items) => '"data":[' + items.replace(/(^|,)\s*(-?\d{16,})\s*(?=,|$)/g, '$1"$2"') + ']');
  return parseStrict(quoted, ProtocolError, 'the request');
}

/** A tensor from its protocol encoding ({dtype, shape, data}, data flat, non-finite floats as strings). */
export function decodeTensor(encoded) {
  if (!isObject(encoded)) throw new InputError('a tensor is a JSON object {dtype, shape, data}');
  const { dtype, shape, data } = encoded;
  if (typeof dtype !== 'string' || !has(ARRAYS, dtype)) throw new InputError(`unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(data)) throw new InputError("a tensor's data is a flat JSON array");
  if (dtype === 'int64') return tensor(dtype, shape, BigInt64Array.from(data, (v) => BigInt(v)));
  const values = data.map((v) => (typeof v === 'string' ? NON_FINITE[v] : typeof v === 'boolean' ? Number(v) : v));
  return tensor(dtype, shape, ARRAYS[dtype].from(values));
}

/** A tensor's protocol encoding. */
export function encodeTensor(t) {
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

// Answers are UTF-8 text: a lone surrogate in a string (V8's JSON.parse messages cut the input at a UTF-16 unit,
// which can split a pair) becomes U+FFFD, as strict readers refuse the escape JSON.stringify would write for it.
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');
const wellFormed = (key, value) => (typeof value === 'string' ? value.replace(LONE_SURROGATES, '\uFFFD') : value);
function stringify(message) {
  return JSON.stringify(message, wellFormed).replace(/"\\u0000big:(-?\d+)"/g, '$1');
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A conformance-protocol session.
 * @param {object} options
 * @param {(path: string) => Uint8Array|Promise<Uint8Array>} options.readFile reads the file a request names
 * @param {string} [options.language] the hello's runtime language, e.g. "javascript (node v20.1.0)"
 * @returns {{handle: (line: string|Uint8Array|null) => Promise<string|null>, closed: boolean,
 *   setPredictHandler: (handler: (message: object, model: Model) => object|Promise<object>) => void}}
 *   `handle` answers one request line (without its newline): a string, the line's bytes (decoded as strict UTF-8), or
 *   null for a line longer than MAX_LINE_BYTES that the caller skipped; it resolves to the answer line (without its
 *   newline), or null for a blank line or after `shutdown`, when `closed` becomes true.
 */
export function createProtocolSession({ readFile, language = 'javascript' }) {
  // path -> {bytes, model}: a model is read again only when its file's bytes change
  const models = new Map();
  let predictHandler = null;

  async function modelAt(path) {
    if (typeof path !== 'string') throw new InputError("requests name the model file in 'model'");
    let bytes;
    try {
      bytes = await readFile(path);
    } catch (error) {
      throw new FileFormatError(`cannot open ${path}: ${error.message}`);
    }
    const cached = models.get(path);
    if (cached && sameBytes(cached.bytes, bytes)) return cached.model;
    models.delete(path);
    const model = new Model(bytes, path);
    models.set(path, { bytes, model });
    return model;
  }

  function hello() {
    return {
      type: 'hello', protocol: PROTOCOL,
      runtime: { name: NAME, version: VERSION, language },
      features: predictHandler ? FEATURES.concat(['predict']) : FEATURES,
      ops: Object.keys(OPS).sort(),
    };
  }

  async function answer(message) {
    if (message.type === 'run') {
      const model = await modelAt(message.model);
      const feeds = {};
      for (const [name, value] of Object.entries(message.inputs || {})) feeds[name] = decodeTensor(value);
      const outputs = model.run(feeds, message.outputs);
      const encoded = {};
      for (const [name, value] of Object.entries(outputs)) encoded[name] = encodeTensor(value);
      return { type: 'result', outputs: encoded };
    }
    if (message.type === 'load') {
      await modelAt(message.model);
      return { type: 'loaded' };
    }
    if (message.type === 'op') {
      if (!Array.isArray(message.inputs)) throw new InputError("op requests list their tensors in 'inputs'");
      if (typeof message.op !== 'string' || !has(OPS, message.op)) {
        throw new UnsupportedError(`${NAME} does not implement op ${JSON.stringify(message.op)}`);
      }
      const inputs = message.inputs.map(decodeTensor);
      const attrs = message.attrs || {};
      checkOpCall(message.op, inputs, attrs, true);
      const results = apply(message.op, inputs, attrs);
      const encoded = {};
      results.forEach((t, i) => { encoded[String(i)] = encodeTensor(t); });
      return { type: 'result', outputs: encoded };
    }
    if (message.type === 'predict' && predictHandler) {
      return predictHandler(message, await modelAt(message.model));
    }
    throw new UnsupportedError(`${NAME} does not implement ${message.type} requests`);
  }

  const session = {
    closed: false,
    /** Makes the session claim and answer `predict` requests: `handler(request, model)` resolves to the answer. */
    setPredictHandler(handler) {
      predictHandler = handler;
    },
    async handle(line) {
      if (session.closed || (typeof line === 'string' && !line.trim())) return null;
      let message;
      try {
        if (line === null) throw new ProtocolError(`a request line is longer than ${MAX_LINE_BYTES} bytes`);
        if (line instanceof Uint8Array) {
          try {
            line = UTF8.decode(line);
          } catch {
            throw new ProtocolError('a request line is not UTF-8 text');
          }
          if (!line.trim()) return null;
        }
        message = parseMessage(line);
        if (!isObject(message)) throw new ProtocolError('a message is a JSON object');
      } catch (error) {
        return stringify({ id: null, type: 'errored', message: `malformed request: ${error.message}` });
      }
      if (message.type === 'hello') return stringify(hello());
      if (message.type === 'shutdown') {
        session.closed = true;
        return stringify({ type: 'bye' });
      }
      try {
        return stringify(Object.assign({ id: message.id }, await answer(message)));
      } catch (error) {
        const refusal = REFUSALS.find((kind) => error instanceof kind);
        if (message.type === 'load' && refusal) {
          // a refusal of the file, by class: an unsupported version or op too (SPEC section 7), never a skip
          return stringify({ id: message.id, type: 'errored', message: `${refusal.name}: ${error.message}`,
            error_class: refusal.name });
        }
        if (error instanceof UnsupportedError) {
          return stringify({ id: message.id, type: 'skipped', reason: error.message });
        }
        return stringify({ id: message.id, type: 'errored', message: error.message, details: error.stack });
      }
    },
  };
  return session;
}
