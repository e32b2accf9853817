// Type declarations of sbif-runtime/node (src/node.js): the library, and loading a model from a path.
import type { Model } from './sbif.js';

export * from './sbif.js';

/**
 * Reads and validates the SBIF file at `path`; error messages begin with the path.
 * @throws {FileFormatError} when the file cannot be read, and every refusal loadModel throws
 */
export function loadModelFile(path: string): Model;
