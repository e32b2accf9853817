import { FileFormatError } from './errors.js';
import { UTF8, has, isCount, isObject, parseStrict, show } from './json.js';
import { MAX_DIM, MAX_HEADER, MAX_HEADER_ENTRIES, MAX_RANK } from './limits.js';

// The safetensors container (SPEC section 2): every check on the bytes before any tensor is created. Messages begin
// with the file's name (`path`), as every reader's do.

// safetensors code -> [dtype name, item size]; uint32, uint64 and float16 are container types no SBIF document declares
const CONTAINER_CODES = {
  BOOL: ['bool', 1], U8: ['uint8', 1], I8: ['int8', 1], I16: ['int16', 2], U16: ['uint16', 2], I32: ['int32', 4],
  U32: ['uint32', 4], I64: ['int64', 8], U64: ['uint64', 8], F16: ['float16', 2], F32: ['float32', 4],
  F64: ['float64', 8],
};
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

// Every check of the container `bytes` (a Uint8Array) before any tensor is created: {metadata, entries: {name: {dtype,
// shape, begin, end}}, start}, where `start` is the data buffer's offset in `bytes`.
export function readContainer(bytes, path) {
  if (bytes.length < 8) {
    throw new FileFormatError(`${path}: truncated file (${bytes.length} bytes; a safetensors file starts with an `
      + '8-byte header length)');
  }
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
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
  return { metadata, entries, start };
}

