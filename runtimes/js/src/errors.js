// The errors SBIF raises on purpose, mirroring SPEC section 7 and the reference's sbif/errors.py: a load refuses a
// file with FileFormatError (the container), DocumentError (the document) or UnsupportedError (valid input this
// runtime cannot handle: a newer format version, an op SBIF does not define); InputError is a caller's mistake in a
// request (a feed of the wrong dtype or shape, an unknown output). Callers tell them apart with `instanceof`, and
// `error.name` is the class's name, which the conformance protocol's `load` answers report.

/** Base class of every error this library raises on purpose. */
export class SbifError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** The file is not a readable safetensors container (truncated, bad header, overlapping data...). */
export class FileFormatError extends SbifError {}

/** The container is readable but the SBIF document in it is invalid (schema, graph or tensor mismatch). */
export class DocumentError extends SbifError {}

/** Valid input that this runtime cannot handle: a newer format version, an op SBIF does not define. */
export class UnsupportedError extends SbifError {}

/** A caller passed data of the wrong shape, dtype or kind (a feed, an output name, an op's inputs). */
export class InputError extends SbifError {}

/** The classes a load's refusal of a file belongs to (SPEC section 7). */
export const REFUSALS = [FileFormatError, DocumentError, UnsupportedError];
