// Strict JSON reading (SPEC section 1) and the small helpers on parsed JSON every module uses.

export const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
export const has = (object, key) => Object.prototype.hasOwnProperty.call(object, key);
export const show = (value) => JSON.stringify(value);
export const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }); // a byte-order mark is not JSON

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
export const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;
// Per parsed object or array, the members (keys, or indexes) holding an integral number written with a fraction or an
// exponent (3.0, 1e2): the numbers JSON.parse cannot tell from integers.
const INTEGRAL_FRACTIONS = new WeakMap();
export function parseStrict(text, ErrorClass, what) {
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
export function isIntegerLiteral(holder, member) {
  const value = holder[member];
  if (typeof value !== 'number') return false;
  if (!Number.isFinite(value)) return true;
  const fractions = INTEGRAL_FRACTIONS.get(holder);
  return Number.isInteger(value) && !(fractions && fractions.has(member));
}
// A count in the header (a dimension, an offset): a non-negative integer literal, finite as a double (the byte counts
// are computed with BigInt, which has no infinity; a literal that large is refused either way).
export const isCount = (holder, member) => isIntegerLiteral(holder, member) && Number.isFinite(holder[member])
  && holder[member] >= 0;

function backslashesBefore(text, index) {
  let count = 0;
  while (text.charCodeAt(index - 1 - count) === 0x5c) count++;
  return count;
}

// a number's text for a message: whole when short, else its first digits and its length
export const quotedNumber = (text) => (text.length > 24 ? `${text.slice(0, 12)}...(${text.length} characters)` : text);
// The number of JSON values in `text`, valid JSON, counted on the text before JSON.parse builds them: 1 (the outermost
// value) + the commas outside strings (each starts a value) + the non-empty arrays and objects (whose first member no
// comma precedes), as the reference counts (sbif/format/document.py). Counting stops once it passes `limit`. On text
// that is not JSON the number means nothing; JSON.parse refuses that text anyway.
export function jsonValueCount(text, limit) {
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

