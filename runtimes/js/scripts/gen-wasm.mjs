// Regenerates the kernels' bytes (src/wasm/*-bytes.js) from their text (src/wasm/*.wat): `node scripts/gen-wasm.mjs`.
//
// The assembler below reads only the subset of the WebAssembly text format the kernels are written in (one memory
// import; functions with export, param, result and local declarations; flat instructions, labels by name), so the
// library needs no toolchain to rebuild its modules and test/wasm.test.js can check the committed bytes on every run.
// Anything outside the subset is refused with the token it cannot read.
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const wasmDirectory = join(here, '..', 'src', 'wasm');

/**
 * The kernels' modules: the text file, the JavaScript file exporting its bytes, the name they are exported as and
 * what that export's documentation says.
 */
export const MODULES = [
  {
    wat: join(wasmDirectory, 'product.wat'),
    bytes: join(wasmDirectory, 'product-bytes.js'),
    exported: 'PRODUCT_KERNEL',
    description: 'The float32 product kernel: a WebAssembly module that imports env.memory and exports product.',
  },
  {
    wat: join(wasmDirectory, 'elementwise.wat'),
    bytes: join(wasmDirectory, 'elementwise-bytes.js'),
    exported: 'ELEMENTWISE_KERNELS',
    description: 'The float32 element-wise kernels: a module importing env.memory, exporting tanh, sigmoid and relu.',
  },
];

const VALUE_TYPES = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

// Instructions by immediate kind. SIMD opcodes follow the 0xfd prefix as unsigned LEB128.
const PLAIN = {
  end: [0x0b],
  'i32.eqz': [0x45],
  'i32.eq': [0x46],
  'i32.lt_u': [0x49],
  'i32.add': [0x6a],
  'i32.sub': [0x6b],
  'i32.mul': [0x6c],
  'i32.and': [0x71],
  'i32.shl': [0x74],
  'f32x4.lt': [0xfd, ...unsigned(67)],
  'f32x4.gt': [0xfd, ...unsigned(68)],
  'v128.bitselect': [0xfd, ...unsigned(82)],
  'f32x4.add': [0xfd, ...unsigned(228)],
  'f32x4.sub': [0xfd, ...unsigned(229)],
  'f32x4.mul': [0xfd, ...unsigned(230)],
  'f32x4.div': [0xfd, ...unsigned(231)],
  'f32x4.min': [0xfd, ...unsigned(232)],
  'f32x4.max': [0xfd, ...unsigned(233)],
  'f32x4.pmin': [0xfd, ...unsigned(234)],
  'f32x4.pmax': [0xfd, ...unsigned(235)],
};
const LOCAL = { 'local.get': 0x20, 'local.set': 0x21, 'local.tee': 0x22 };
const BRANCH = { br: 0x0c, br_if: 0x0d };
const STRUCTURED = { block: 0x02, loop: 0x03 };
// [opcode bytes, log2 of the natural alignment]
const MEMORY = {
  'v128.load': [[0xfd, ...unsigned(0)], 4],
  'v128.load32_splat': [[0xfd, ...unsigned(9)], 2],
  'v128.store': [[0xfd, ...unsigned(11)], 4],
};

function unsigned(value) {
  const bytes = [];
  let rest = value;
  do {
    const low = rest & 0x7f;
    rest = Math.floor(rest / 128);
    bytes.push(rest === 0 ? low : low | 0x80);
  } while (rest !== 0);
  return bytes;
}

function signed(value) {
  const bytes = [];
  let rest = BigInt(value);
  for (;;) {
    const low = Number(rest & 0x7fn);
    rest >>= 7n;
    const done = (rest === 0n && (low & 0x40) === 0) || (rest === -1n && (low & 0x40) !== 0);
    bytes.push(done ? low : low | 0x80);
    if (done) return bytes;
  }
}

function name(text) {
  const bytes = new TextEncoder().encode(text);
  return [...unsigned(bytes.length), ...bytes];
}

function vector(items) {
  return [...unsigned(items.length), ...items.flat()];
}

function section(id, items) {
  const body = vector(items);
  return [id, ...unsigned(body.length), ...body];
}

// Tokens: parentheses, strings, atoms; `;;` comments run to the end of the line.
function tokenize(text) {
  const tokens = [];
  const pattern = /\s+|;;[^\n]*|(\()|(\))|"([^"]*)"|([^\s()";]+)/gy;
  let match;
  while (pattern.lastIndex < text.length && (match = pattern.exec(text)) !== null) {
    if (match[1] || match[2]) tokens.push(match[1] || match[2]);
    else if (match[3] !== undefined) tokens.push({ string: match[3] });
    else if (match[4] !== undefined) tokens.push(match[4]);
  }
  if (pattern.lastIndex < text.length) {
    const unread = text.slice(pattern.lastIndex, pattern.lastIndex + 20);
    throw new AssemblyError(`cannot read ${JSON.stringify(unread)}`);
  }
  return tokens;
}

// S-expressions as nested arrays; a list's atoms stay in order beside its sub-lists.
function parse(tokens) {
  const stack = [[]];
  for (const token of tokens) {
    if (token === '(') {
      stack.push([]);
    } else if (token === ')') {
      expect(stack.length > 1, 'an unmatched )');
      const list = stack.pop();
      stack[stack.length - 1].push(list);
    } else {
      stack[stack.length - 1].push(token);
    }
  }
  expect(stack.length === 1, 'an unclosed (');
  return stack[0];
}

// What the text cannot be assembled for; assemble() prefixes the file's name.
class AssemblyError extends Error {}

function expect(condition, message) {
  if (!condition) throw new AssemblyError(message);
}

function immediate(token, instruction) {
  expect(token !== undefined, `${instruction} needs an immediate`);
  return token;
}

// One function's body: flat instructions, label names resolved to branch depths.
function assembleBody(items, locals) {
  const code = [];
  const labels = [];
  for (let at = 0; at < items.length; ) {
    const op = items[at++];
    if (op in PLAIN) {
      if (op === 'end') {
        expect(labels.length > 0, 'an end without a block or loop');
        labels.pop();
      }
      code.push(...PLAIN[op]);
    } else if (op in LOCAL) {
      const local = immediate(items[at++], op);
      expect(locals.has(local), `unknown local ${local}`);
      code.push(LOCAL[op], ...unsigned(locals.get(local)));
    } else if (op in BRANCH) {
      const label = immediate(items[at++], op);
      const depth = labels.lastIndexOf(label);
      expect(depth >= 0, `${op} to ${label}, which encloses no branch`);
      code.push(BRANCH[op], ...unsigned(labels.length - 1 - depth));
    } else if (op in STRUCTURED) {
      const label = typeof items[at] === 'string' && items[at].startsWith('$') ? items[at++] : null;
      labels.push(label);
      code.push(STRUCTURED[op], 0x40);
    } else if (op in MEMORY) {
      const [opcode, align] = MEMORY[op];
      let offset = 0;
      while (typeof items[at] === 'string' && items[at].startsWith('offset=')) offset = Number(items[at++].slice(7));
      expect(Number.isInteger(offset) && offset >= 0, `${op}: a bad offset`);
      code.push(...opcode, ...unsigned(align), ...unsigned(offset));
    } else if (op === 'i32.const') {
      code.push(0x41, ...signed(immediate(items[at++], op)));
    } else if (op === 'v128.const') {
      const shape = items[at++];
      expect(shape === 'i32x4' || shape === 'f32x4', 'v128.const is read in i32x4 or f32x4 lanes only');
      const lanes = new DataView(new ArrayBuffer(16));
      for (let lane = 0; lane < 4; lane++) {
        const value = Number(immediate(items[at++], op));
        expect(!Number.isNaN(value), `v128.const: ${items[at - 1]} is not a number`);
        // a decimal read into a double, then rounded to float32: the float nearest the decimal, unless the double
        // falls on a midpoint between two floats (test/wasm.test.js checks the kernels' constants do not)
        if (shape === 'f32x4') lanes.setFloat32(4 * lane, value, true);
        else lanes.setUint32(4 * lane, value >>> 0, true);
      }
      code.push(0xfd, ...unsigned(12), ...new Uint8Array(lanes.buffer));
    } else {
      expect(false, `unknown instruction ${op}`);
    }
  }
  expect(labels.length === 0, 'a block or loop without its end');
  return [...code, 0x0b];
}

function assembleFunction(fields) {
  const locals = new Map();
  const params = [];
  const results = [];
  const declared = [];
  const exports = [];
  const body = [];
  const named = typeof fields[1] === 'string' && fields[1].startsWith('$');
  for (const field of fields.slice(named ? 2 : 1)) {
    if (typeof field === 'string') {
      body.push(field);
      continue;
    }
    const [kind, ...rest] = field;
    if (kind === 'export') {
      exports.push(rest[0].string);
    } else if (kind === 'param' || kind === 'local') {
      const [local, type] = rest;
      expect(local.startsWith('$') && type in VALUE_TYPES && rest.length === 2, `(${kind} $name type) expected`);
      locals.set(local, locals.size);
      (kind === 'param' ? params : declared).push(VALUE_TYPES[type]);
    } else if (kind === 'result') {
      results.push(...rest.map((type) => VALUE_TYPES[type]));
    } else {
      expect(false, `a function field (${kind} ...) outside the subset (instructions are read flat, not folded)`);
    }
  }
  const runs = [];
  for (const type of declared) {
    if (runs.length > 0 && runs[runs.length - 1][1] === type) runs[runs.length - 1][0]++;
    else runs.push([1, type]);
  }
  const code = [...vector(runs.map(([count, type]) => [...unsigned(count), type])), ...assembleBody(body, locals)];
  const signature = [0x60, ...vector(params), ...vector(results)];
  return { signature, exports, code: [...unsigned(code.length), ...code] };
}

/**
 * The binary module of a text module in the subset above.
 * @param {string} text
 * @param {string} source the file's name, which error messages begin with
 */
export function assemble(text, source) {
  try {
    return assembleModule(text);
  } catch (error) {
    if (error instanceof AssemblyError) throw new Error(`${source}: ${error.message}`);
    throw error;
  }
}

function assembleModule(text) {
  const [module, ...extra] = parse(tokenize(text));
  expect(extra.length === 0 && Array.isArray(module) && module[0] === 'module', 'one (module ...) expected');
  const imports = [];
  const functions = [];
  for (const field of module.slice(1)) {
    expect(Array.isArray(field), `a module field expected, got ${field}`);
    if (field[0] === 'import') {
      const [, from, item, [kind, minimum, ...more]] = field;
      expect(kind === 'memory' && more.length === 0, 'only a memory import with its minimum size is read');
      imports.push([...name(from.string), ...name(item.string), 0x02, 0x00, ...unsigned(Number(minimum))]);
    } else if (field[0] === 'func') {
      functions.push(assembleFunction(field));
    } else {
      expect(false, `a module field ${field[0]} outside the subset`);
    }
  }
  const signatures = [];
  const typeIndices = functions.map(({ signature }) => {
    const key = signature.join(',');
    let index = signatures.findIndex((known) => known.join(',') === key);
    if (index < 0) index = signatures.push(signature) - 1;
    return index;
  });
  const exports = functions.flatMap(({ exports: names }, index) =>
    names.map((exported) => [...name(exported), 0x00, ...unsigned(index)]),
  );
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, signatures),
    ...section(2, imports),
    ...section(3, typeIndices.map((index) => unsigned(index))),
    ...section(7, exports),
    ...section(10, functions.map(({ code }) => code)),
  ]);
}

/**
 * The text of a module's *-bytes.js (`module`: an entry of MODULES) for its assembled `bytes`. Every *-bytes.js is
 * this one template's output: what those files have in common is written here, once.
 */
export function bytesModule(module, bytes) {
  const lines = [];
  for (let at = 0; at < bytes.length; at += 24) lines.push(`  ${Array.from(bytes.subarray(at, at + 24)).join(', ')},`);
  return [
    `// Generated by runtimes/js/scripts/gen-wasm.mjs from ${basename(module.wat)}; do not edit (test/wasm.test.js `
      + 'checks it).',
    `/** ${module.description} */`,
    `export const ${module.exported} = new Uint8Array([`,
    ...lines,
    ']);',
    '',
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const module of MODULES) {
    const bytes = assemble(readFileSync(module.wat, 'utf8'), basename(module.wat));
    writeFileSync(module.bytes, bytesModule(module, bytes));
    console.log(`wrote ${module.bytes}: ${bytes.length} bytes`);
  }
}
