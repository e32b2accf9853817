// The Node.js helper: load a model from a path. The only module that imports node: builtins, so that the rest of the
// library runs unchanged in a browser.
import { readFileSync } from 'node:fs';

import { FileFormatError } from './errors.js';
import { loadModel } from './index.js';

export * from './index.js';

/**
 * Reads and validates the SBIF file at `path` (see loadModel); error messages begin with the path.
 * @param {string} path
 * @returns {import('./executor.js').Model}
 * @throws {FileFormatError} when the file cannot be read, and every refusal loadModel throws
 */
export function loadModelFile(path) {
  let bytes;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new FileFormatError(`cannot open ${path}: ${error.message}`);
  }
  return loadModel(bytes, { name: path });
}
