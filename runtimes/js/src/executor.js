import { checkDocument, decodeDocument, nominalBytes, showSpec } from './check.js';
import { readContainer } from './container.js';
import { InputError } from './errors.js';
import { show } from './json.js';
import { MAX_BATCH_VALUE_BYTES } from './limits.js';
import { apply, prepareNode } from './ops.js';
import { ARRAYS, checkTensor, tensor } from './tensor.js';

// A validated SBIF file and the running of its graph (SPEC sections 4 and 5): only the nodes the requested outputs
// depend on run, in the graph's order.

/** How many sets of requested outputs keep their plan (a policy uses one to three). */
const KEPT_PLANS = 8;

/**
 * A loaded SBIF model: the file validated in SPEC section 7's order, its tensors copied out of the file's bytes, and
 * the weights of its products packed for the kernels.
 */
export class Model {
  /** The static type ({dtype, shape}, null for the batch dimension) of every graph value, by name. */
  #specs;
  /** The file's tensors, by name. */
  #tensors;
  /** The index of the node computing each value, by name. */
  #producers = new Map();
  /** The graph inputs, by name. */
  #inputsByName;
  /** What running each requested set of outputs needs (`#plan`), by the set; the few most recent sets. */
  #plans = new Map();

  /**
   * @param {Uint8Array} bytes the whole .sbif file
   * @param {string} name the file's name, which error messages begin with
   */
  constructor(bytes, name) {
    const { metadata, entries, start } = readContainer(bytes, name);
    /** The SBIF document (SPEC section 3), as parsed from the file's metadata. */
    this.document = decodeDocument(metadata, name);
    this.#specs = checkDocument(this.document, entries, name);
    this.#tensors = new Map();
    for (const entry of this.document.tensors) {
      const { begin, end } = entries[entry.name];
      // a copy, aligned for its typed array (the file's data need not be)
      const raw = bytes.buffer.slice(bytes.byteOffset + start + begin, bytes.byteOffset + start + end);
      this.#tensors.set(entry.name, tensor(entry.dtype, entry.shape, new ARRAYS[entry.dtype](raw)));
    }
    this.document.graph.forEach((node, index) => node.outputs.forEach((output) => this.#producers.set(output, index)));
    this.#inputsByName = new Map(this.document.inputs.map((entry) => [entry.name, entry]));
    /** The graph inputs a run is fed: [{name, dtype, shape}], shape's null being the batch dimension. */
    this.inputs = this.document.inputs.map(({ name: input, dtype, shape }) => ({ name: input, dtype, shape }));
    /** The graph outputs a run can return: [{name, dtype, shape}]. */
    this.outputs = this.document.outputs.map(({ name: output, dtype, shape }) => ({ name: output, dtype, shape }));
    for (const node of this.document.graph) prepareNode(node.op, node.inputs.map((input) => this.#tensors.get(input)));
  }

  /**
   * Runs the nodes the requested outputs depend on.
   * @param {{[name: string]: {dtype: string, shape: number[], data: ArrayLike<any>}}} feeds the graph inputs those
   *   nodes read, each with its declared dtype and shape (one batch size across all); names the graph does not
   *   declare are ignored
   * @param {string[]} outputs names of graph values (outputs, or any value the graph computes, or a tensor)
   * @returns {{[name: string]: {dtype: string, shape: number[], data: ArrayLike<any>}}}
   * @throws {InputError} a feed of the wrong dtype or shape, a missing one, an unknown output, a batch too large
   */
  run(feeds, outputs) {
    if (!Array.isArray(outputs) || !outputs.every((name) => typeof name === 'string')) {
      throw new InputError('outputs is a list of value names');
    }
    for (const name of outputs) {
      if (!this.#producers.has(name) && !this.#inputsByName.has(name) && !this.#tensors.has(name)) {
        throw new InputError(`unknown output ${show(name)}`);
      }
    }
    const plan = this.#plan(outputs);
    const batch = this.#checkFeeds(feeds);
    const values = new Map(); // the fed inputs and the values computed; the model's tensors are read where they are
    for (const [name, value] of Object.entries(feeds)) if (this.#inputsByName.has(name)) values.set(name, value);
    if (batch !== null) this.#checkBatch(plan, BigInt(batch));
    const valueOf = (name) => {
      const value = values.has(name) ? values.get(name) : this.#tensors.get(name);
      if (value === undefined) throw new InputError(`missing input ${show(name)}`);
      return value;
    };
    for (const index of plan.order) {
      const node = this.document.graph[index];
      const results = apply(node.op, node.inputs.map(valueOf), node.attrs || {});
      node.outputs.forEach((name, i) => values.set(name, results[i]));
    }
    const results = {};
    for (const name of outputs) {
      const value = valueOf(name);
      // the model's own tensors (whose packed copies the kernels read) are returned as copies, safe to change
      results[name] = this.#tensors.get(name) === value ? tensor(value.dtype, value.shape, value.data.slice()) : value;
    }
    return results;
  }

  /**
   * What computing `outputs` needs, worked out once per set of outputs (a policy asks for the same few on every
   * call): the nodes to run in graph order, and the batched values they read or write, each with its bytes per row,
   * for SPEC 5.8's check (`widest`: the largest).
   */
  #plan(outputs) {
    const key = JSON.stringify(outputs);
    let plan = this.#plans.get(key);
    if (plan === undefined) {
      const order = this.#nodesComputing(outputs);
      const batched = [];
      let widest = 0n;
      for (const index of order) {
        const node = this.document.graph[index];
        for (const name of node.inputs.concat(node.outputs)) {
          const s = this.#specs.get(name);
          if (s.shape[0] !== null) continue;
          const perRow = nominalBytes(s, 1n);
          batched.push({ name, s, perRow });
          if (perRow > widest) widest = perRow;
        }
      }
      plan = { order, batched, widest };
      if (this.#plans.size >= KEPT_PLANS) this.#plans.delete(this.#plans.keys().next().value);
      this.#plans.set(key, plan);
    }
    return plan;
  }

  /** The indexes, in graph order, of the nodes computing `outputs` (SPEC section 5: only those run). */
  #nodesComputing(outputs) {
    const needed = new Set();
    const todo = outputs.slice();
    while (todo.length) {
      const name = todo.pop();
      const index = this.#producers.get(name);
      if (index === undefined || needed.has(index)) continue;
      needed.add(index);
      todo.push(...this.document.graph[index].inputs);
    }
    return Array.from(needed).sort((a, b) => a - b);
  }

  /**
   * Checks that every fed graph input has its declared dtype and shape, with one batch size across the batched ones
   * (several are batched: a dict observation space's obs/KEY, noise, states); returns that batch size, or null.
   */
  #checkFeeds(feeds) {
    if (feeds === null || typeof feeds !== 'object') throw new InputError('feeds map input names to tensors');
    let batch = null;
    for (const [name, value] of Object.entries(feeds)) {
      const entry = this.#inputsByName.get(name);
      if (!entry) continue;
      checkTensor(value, `input ${show(name)}`);
      if (entry.dtype !== value.dtype) {
        throw new InputError(`input ${show(name)} must be ${entry.dtype}, got ${value.dtype}`);
      }
      const fits = entry.shape.length === value.shape.length
        && entry.shape.every((d, i) => d === null || d === value.shape[i]);
      if (!fits) {
        throw new InputError(`input ${show(name)} has shape ${show(value.shape)}, but the graph declares `
          + `${showSpec(entry)}`);
      }
      if (entry.shape[0] === null) {
        if (batch !== null && value.shape[0] !== batch) {
          throw new InputError(`input ${show(name)} has batch size ${value.shape[0]} but another input has ${batch}`);
        }
        batch = value.shape[0];
      }
    }
    return batch;
  }

  /**
   * The static type of a graph input, tensor or computed value (SPEC 3.5), as validation derived it: its dtype and
   * shape, null in the shape where the batch goes; null for a name the graph does not have.
   * @param {string} name
   * @returns {{dtype: string, shape: (number|null)[]}|null}
   */
  valueSpec(name) {
    const s = this.#specs.get(name);
    return s === undefined ? null : { dtype: s.dtype, shape: s.shape.slice() };
  }

  /**
   * Refuses a batch of `rows` with which a value that computing `outputs` needs would exceed the run-time limit for one
   * value (SPEC 5.8), as `run` does, so that a caller can check before it allocates what it would feed (predict's
   * state, mask and noise).
   * @param {string[]} outputs names of graph values, as `run` takes them
   * @param {number} rows the batch size
   * @throws {InputError} a batch too large
   */
  checkBatch(outputs, rows) {
    this.#checkBatch(this.#plan(outputs), BigInt(rows));
  }

  /**
   * Refuses, before anything is computed, a batch with which a value the run needs (an input its nodes read or an
   * output they compute) would exceed MAX_BATCH_VALUE_BYTES: the batch times the value's bytes per row (SPEC 5.8),
   * naming the first such value in graph order.
   */
  #checkBatch(plan, batch) {
    if (batch * plan.widest <= MAX_BATCH_VALUE_BYTES) return;
    for (const { name, s, perRow } of plan.batched) {
      if (batch * perRow > MAX_BATCH_VALUE_BYTES) {
        throw new InputError(`a batch of ${batch} rows would make ${show(name)} (${showSpec(s)}) take `
          + `${batch * perRow} bytes, above the limit of ${MAX_BATCH_VALUE_BYTES} bytes for one value: use `
          + `batches of at most ${MAX_BATCH_VALUE_BYTES / perRow} rows`);
      }
    }
  }
}
