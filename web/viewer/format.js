// Text for people: shapes, counts, numbers and bounds as the viewer shows them. No DOM: the tests run it in Node.

/** A shape with the batch dimension (null in documents) written B: `B×4×84×84`, `scalar` for []. */
export function shapeText(shape) {
  if (!shape.length) return 'scalar';
  return shape.map((dimension) => (dimension === null ? 'B' : String(dimension))).join('×');
}

/** `float32[B×64]`, or the shape alone for float32 values where `omitFloat32` (edge labels stay short). */
export function typeText(spec, omitFloat32 = false) {
  if (!spec) return '';
  const shape = shapeText(spec.shape);
  return omitFloat32 && spec.dtype === 'float32' ? shape : `${spec.dtype}[${shape}]`;
}

/** 1234567 as `1,234,567`. */
export function countText(count) {
  return count.toLocaleString('en-US');
}

/** Bytes as `606.6 KB`. */
export function byteText(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * The shortest decimal text that reads back as the same float32 (NumPy's repr: `0.1`, not 0.10000000149011612), so a
 * result copied from the page is the exact value computed.
 */
export function float32Text(value) {
  if (!Number.isFinite(value)) return String(value);
  for (let digits = 1; digits <= 9; digits += 1) {
    const text = String(Number(value.toPrecision(digits))); // no trailing zeros, no forced exponent
    if (Math.fround(Number(text)) === value) return text;
  }
  return String(value);
}

/** An error as the page shows it: `InputError: ...`, the runtime's class and message (a plain Error: the message). */
export function errorText(error) {
  return error?.name && error.name !== 'Error' ? `${error.name}: ${error.message}` : String(error?.message ?? error);
}

/** A Box bound's element as a number: the strings "inf", "-inf" and "nan" that bounds may hold (SPEC section 1). */
export function boundValue(value) {
  if (value === 'inf') return Infinity;
  if (value === '-inf') return -Infinity;
  if (value === 'nan') return NaN;
  return value;
}

/**
 * A Box bound for reading: one value when every element has it, else the first elements and a summary, so an image
 * space's 100,800 bounds never become 100,800 elements of the page.
 * @param {number|string|(number|string)[]} bound as in the document
 * @param {string} dtype the space's dtype (an integer space shows integers)
 * @param {number} [shown] how many elements a non-uniform bound lists
 */
export function boundText(bound, dtype, shown = 6) {
  const show = (value) => (dtype.startsWith('float') ? float32Text(value) : String(value));
  if (!Array.isArray(bound)) return show(boundValue(bound));
  const values = bound.map(boundValue);
  const first = values[0];
  if (values.every((value) => Object.is(value, first) || value === first)) return show(first);
  const head = values.slice(0, shown).map(show).join(', ');
  if (values.length <= shown) return `[${head}]`;
  let low = Infinity;
  let high = -Infinity;
  for (const value of values) {
    if (value < low) low = value;
    if (value > high) high = value;
  }
  return `[${head}, …] (${countText(values.length)} values from ${show(low)} to ${show(high)})`;
}

/** One line for a space: `box float32 [4] low -4.8…`, `discrete n=2`, `dict {observation: …}`. */
export function spaceText(space) {
  switch (space.kind) {
    case 'box':
      return `box ${space.dtype} ${shapeText(space.shape)}`;
    case 'discrete':
    case 'multi_binary':
      return `${space.kind} n=${space.n}`;
    case 'multi_discrete':
      return `multi_discrete nvec=[${space.nvec.join(', ')}]`;
    case 'dict':
      return `dict {${space.spaces.map((entry) => `${entry.key}: ${spaceText(entry.space)}`).join(', ')}}`;
    default:
      return space.kind;
  }
}
