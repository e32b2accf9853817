// Type declarations of sbif-runtime's public API (src/index.js).

/** A dtype of SBIF values (spec/ops.md). */
export type Dtype = 'float32' | 'float64' | 'int8' | 'int16' | 'int32' | 'int64' | 'uint8' | 'uint16' | 'bool';

/** The typed array holding each dtype's values: int64 as BigInt64Array, bool as Uint8Array of 0 and 1. */
export interface DtypeArrays {
  float32: Float32Array;
  float64: Float64Array;
  int8: Int8Array;
  int16: Int16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  uint8: Uint8Array;
  uint16: Uint16Array;
  bool: Uint8Array;
}

/** A dense row-major tensor. */
export interface Tensor<D extends Dtype = Dtype> {
  dtype: D;
  shape: number[];
  data: DtypeArrays[D];
}

/** A graph input or output as the document declares it; null in `shape` is the batch dimension. */
export interface ValueSpec {
  name: string;
  dtype: Dtype;
  shape: (number | null)[];
}

/** A loaded, validated SBIF model. */
export class Model {
  constructor(bytes: Uint8Array, name: string);
  /** The SBIF document (SPEC section 3), as parsed from the file's metadata. */
  readonly document: { [key: string]: unknown };
  /** The graph inputs a run is fed. */
  readonly inputs: ValueSpec[];
  /** The graph outputs a run can return. */
  readonly outputs: ValueSpec[];
  /**
   * Runs the nodes the requested outputs depend on. Feeds are the graph inputs those nodes read, with their declared
   * dtypes and shapes (one batch size across all); names the graph does not declare are ignored.
   * @throws {InputError} a feed of the wrong dtype or shape, a missing one, an unknown output, a batch too large
   */
  run(feeds: { [name: string]: Tensor }, outputs: string[]): { [name: string]: Tensor };
}

/**
 * Reads and validates an SBIF file (SPEC section 7) and returns the model, ready to run.
 * @throws {FileFormatError | DocumentError | UnsupportedError} the file's refusal
 */
export function loadModel(bytes: Uint8Array | ArrayBuffer, options?: { name?: string }): Model;

/** A tensor of `dtype` and `shape` holding `data` (a typed array is kept, values are copied), or zeros. */
export function tensor<D extends Dtype>(
  dtype: D, shape: number[], data?: DtypeArrays[D] | ArrayLike<number> | ArrayLike<bigint>,
): Tensor<D>;

/** Runs one op of spec/ops.md or spec/ops-sampling.md; returns its outputs (one, except for split). */
export function runOp(op: string, inputs: Tensor[], attrs?: { [name: string]: unknown }): Tensor[];

/** The ops this library runs: every op of spec/ops.md and spec/ops-sampling.md, sorted. */
export const OP_NAMES: readonly string[];

/** This runtime's name and version, as its protocol hello gives them. */
export const NAME: string;
export const VERSION: string;

/** A conformance-protocol session (spec/conformance-protocol.md), independent of where request lines come from. */
export interface ProtocolSession {
  /**
   * Answers one request line (without its newline): a string, its UTF-8 bytes, or null for a line longer than the
   * protocol's limit that the caller skipped. Resolves to the answer line, or null (a blank line, after shutdown).
   */
  handle(line: string | Uint8Array | null): Promise<string | null>;
  /** True once a shutdown request was answered. */
  readonly closed: boolean;
  /** Makes the session claim and answer `predict` requests. */
  setPredictHandler(handler: (request: { [key: string]: unknown }, model: Model) => object | Promise<object>): void;
}

export function createProtocolSession(options: {
  /** Reads the model file a request names. */
  readFile: (path: string) => Uint8Array | Promise<Uint8Array>;
  /** The hello's runtime language, e.g. "javascript (node v20.1.0)". */
  language?: string;
}): ProtocolSession;

/** Base class of every error this library raises on purpose; `name` is the class's name. */
export class SbifError extends Error {}
/** The file is not a readable safetensors container. */
export class FileFormatError extends SbifError {}
/** The container is readable but the SBIF document in it is invalid. */
export class DocumentError extends SbifError {}
/** Valid input this runtime cannot handle: a newer format version, an op SBIF does not define. */
export class UnsupportedError extends SbifError {}
/** A caller passed data of the wrong shape, dtype or kind. */
export class InputError extends SbifError {}
