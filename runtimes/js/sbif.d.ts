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
  /** The static type of a graph input, tensor or computed value (SPEC 3.5); null for a name the graph lacks. */
  valueSpec(name: string): { dtype: Dtype; shape: (number | null)[] } | null;
  /**
   * Refuses, as `run` would, a batch of `rows` with which a value that computing `outputs` needs would exceed the
   * run-time limit for one value (SPEC 5.8): a check a caller can make before it allocates its feeds.
   * @throws {InputError} a batch too large
   */
  checkBatch(outputs: string[], rows: number): void;
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

/**
 * What a caller may pass where the Python reference takes a NumPy array: a Tensor; a number, BigInt or boolean (shape
 * []); a typed array (one dimension, of its own dtype); or rectangular nested arrays, whose dtype is NumPy's for the
 * same Python list (bool, int64 when every element is an integer, float64 otherwise).
 */
export type ArrayInput = Tensor | number | bigint | boolean | any[] | Float32Array | Float64Array | Int8Array |
  Int16Array | Int32Array | Uint8Array | Uint16Array | BigInt64Array;

/** A source of noise draws (`createGenerator`). */
export interface RandomGenerator {
  /** A float32 value from U[0, 1). */
  uniform(): number;
  /** A float32 value from N(0, 1). */
  normal(): number;
}

/**
 * A seeded generator: xoshiro128** seeded by SplitMix64. Same distributions as NumPy's generators, not the same
 * numbers for a seed.
 */
export function createGenerator(seed: number | bigint): RandomGenerator;

/** The state a recurrent policy carries: rows [n, S], or under SB3's contract the (h, c) pair. */
export type PolicyState = Tensor | Tensor[] | null;

/** Options every method of a Policy takes for a recurrent policy. */
export interface RecurrentOptions {
  /** The state rows [n, S] (null or absent: zeros, SB2's initial_state). */
  state?: ArrayInput | Tensor[] | null;
  /** One flag per observation: true when the previous step ended that env's episode. */
  mask?: ArrayInput | null;
  /** SB3's name for `mask` (pass one of them). */
  episodeStart?: ArrayInput | null;
}

/** SB2's (and SB3's) predict interface over a model (SPEC section 5). */
export class Policy {
  constructor(model: Model);
  readonly model: Model;
  /** The algorithm the file came from, e.g. "PPO2". */
  readonly algorithm: string;
  /** "sb2" or "sb3": whose predict conventions apply (SPEC sections 5 and 5.9). */
  readonly contract: string;
  /**
   * The action for one observation or a batch (SPEC 5.1), deterministic or sampled (absent or null: the algorithm's
   * default), and a recurrent policy's next state.
   */
  predict(observation: ArrayInput | { [key: string]: ArrayInput }, options?: RecurrentOptions & {
    deterministic?: boolean | null;
    /** The noise inputs' values, replacing the generator's draws. */
    noise?: { [input: string]: ArrayInput };
    /** Where draws come from when `noise` does not give them: a generator or a seed. */
    rng?: RandomGenerator | number | bigint;
    /** MaskablePPO (SB3): true allows an action; null allows all. */
    actionMasks?: ArrayInput | null;
  }): { action: Tensor; state: PolicyState };
  /**
   * SB2's action_probability (SPEC 5.4): the distribution's parameters, or with `actions` their probability (or
   * log-probability); null for a policy without a distribution (TD3, DDPG, SAC as SB2 reports it).
   */
  actionProbability(observation: ArrayInput | { [key: string]: ArrayInput }, options?: RecurrentOptions & {
    actions?: ArrayInput | null;
    logp?: boolean;
  }): Tensor | Tensor[] | null;
  /** The value estimate of each observation (SPEC 5.5). */
  value(observation: ArrayInput | { [key: string]: ArrayInput }, options?: RecurrentOptions): Tensor;
  /** A recurrent policy's initial state for `nEnvs` environments (zeros), or null for a feed-forward one. */
  initialState(nEnvs?: number): Tensor | null;
}

/** The predict interface of SPEC section 5 over a loaded model. */
export function createPolicy(model: Model): Policy;

/** Answers a conformance-protocol `predict` request (spec/conformance-protocol.md 4.2) with `model`. */
export function answerPredict(request: { [key: string]: unknown }, model: Model): object;

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
