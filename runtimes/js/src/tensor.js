import { InputError, UnsupportedError } from './errors.js';

// Tensors and the numeric helpers every module shares.

// The largest finite float32, and rounding to float32.
export const FLT_MAX = 3.4028234663852886e38;
export const f32 = Math.fround;

// A tensor is {dtype, shape, data}; data is a typed array (int64 as a BigInt64Array, so values and wrap-around
// are exact; bool as a Uint8Array of 0/1).
export const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, int16: Int16Array, int32: Int32Array,
  int64: BigInt64Array, uint8: Uint8Array, uint16: Uint16Array, bool: Uint8Array,
};
// the integer dtypes of at most 32 bits: [bits, signed]
export const INT_BITS = { int8: [8, true], int16: [16, true], int32: [32, true], uint8: [8, false], uint16: [16, false] };
// bytes per element
export const SIZES = { float32: 4, float64: 8, int8: 1, int16: 2, int32: 4, int64: 8, uint8: 1, uint16: 2, bool: 1 };
export const isFloat = (dtype) => dtype === 'float32' || dtype === 'float64';
export const count = (shape) => shape.reduce((a, b) => a * b, 1);

/**
 * A tensor of `dtype` and `shape` holding `data` (a typed array of the dtype's kind is kept, other values are copied
 * into one), or zeros when `data` is omitted.
 * @param {string} dtype one of float32, float64, int8, int16, int32, int64, uint8, uint16, bool
 * @param {number[]} shape
 * @param {ArrayLike<number>|ArrayLike<bigint>} [data] a typed array of the dtype's kind, or values to copy into one
 */
export function tensor(dtype, shape, data) {
  if (!Object.prototype.hasOwnProperty.call(ARRAYS, dtype)) {
    throw new UnsupportedError(`unknown dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new InputError(`a tensor's shape is a list of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  const Type = ARRAYS[dtype];
  if (data === undefined) data = new Type(count(shape));
  else if (!(data instanceof Type)) data = Type.from(data, dtype === 'int64' ? BigInt : Number);
  if (data.length !== count(shape)) {
    throw new InputError(`a ${dtype} tensor of shape ${JSON.stringify(shape)} holds ${count(shape)} values, got `
      + `${data.length}`);
  }
  return { dtype, shape: shape.slice(), data };
}

/**
 * Checks that `value` is a tensor: a known dtype, a shape of non-negative integers, and data of the dtype's typed
 * array (int64: BigInt64Array, bool: Uint8Array) holding as many values as the shape. `what` names it in the error.
 */
export function checkTensor(value, what) {
  if (value === null || typeof value !== 'object') throw new InputError(`${what} is not a tensor {dtype, shape, data}`);
  const { dtype, shape, data } = value;
  if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(ARRAYS, dtype)) {
    throw new InputError(`${what} has unknown dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new InputError(`${what} has shape ${JSON.stringify(shape)}: a list of non-negative integers`);
  }
  if (!(data instanceof ARRAYS[dtype])) {
    throw new InputError(`${what} is ${dtype}, so its data is a ${ARRAYS[dtype].name}`);
  }
  if (data.length !== count(shape)) {
    throw new InputError(`${what} has shape ${JSON.stringify(shape)} but ${data.length} values`);
  }
}
