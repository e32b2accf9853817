"""The errors SBIF raises. Every failure a user can cause is one of these, with a message they can act on."""


class SbifError(Exception):
    """Base class of every error SBIF raises on purpose."""


class FileFormatError(SbifError):
    """The file is not a readable safetensors container (truncated, bad header, overlapping data...)."""


class DocumentError(SbifError):
    """The container is readable but the SBIF document in it is invalid (schema, graph or tensor mismatch)."""


class UnsupportedError(SbifError):
    """Valid input that this version cannot handle: a newer format version, an unknown op, a policy we cannot export."""


class InputError(SbifError):
    """A caller passed data of the wrong shape, dtype or kind (observation, state, mask, noise)."""


class ExportError(SbifError):
    """The source model could not be read or does not look like what its metadata claims."""
