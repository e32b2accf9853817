"""The errors SBIF raises. Every failure a user can cause is one of these, with a message they can act on."""
import numbers


class SbifError(Exception):
    """Base class of every error SBIF raises on purpose."""


class FileFormatError(SbifError):
    """The file is not a readable safetensors container (truncated, bad header, overlapping data...)."""


class DocumentError(SbifError):
    """The container is readable but the SBIF document in it is invalid (schema, graph or tensor mismatch)."""


class UnsupportedError(SbifError):
    """Valid input that this version cannot handle: a newer format version, an unknown op, a policy we cannot export.

    Not a NotImplementedError: SB2 raises that while *building* a model it cannot make, which SBIF refuses at
    export, and Python reserves it for abstract methods; no SB2 caller catches it around predict."""


class InputError(SbifError, ValueError):
    """A caller passed data of the wrong shape, dtype or kind (observation, state, mask, noise).

    Also a ValueError, as SB2's own refusals of such data are ("Error: Unexpected observation shape ..."), so code
    written against an SB2 model that catches ValueError around predict keeps working. The file errors stay
    SbifErrors only: SB2 has no one convention for an unreadable file (a missing one is a ValueError, a corrupt
    one whatever zipfile or pickle raises).
    """


class ExportError(SbifError):
    """The source model could not be read or does not look like what its metadata claims."""


#: Characters of an offending value an error message quotes (enough to recognise it, never the whole input).
PREVIEW_CHARS = 80


def preview(value: object, limit: int = PREVIEW_CHARS) -> str:
    """A one-line repr of `value`, at most `limit` characters plus an ellipsis, built in time bounded by `limit`.

    `repr()` or `str()` of input-derived data is unbounded: a 352-byte pickle of shared references expands to
    gigabytes of text, and a 10 MB name would be echoed whole. This walks containers itself and stops as soon
    as the budget is spent, so the cost never depends on the value's size. Numbers, strings and bytes are
    quoted through bounded slices; anything else shows only its type name (its own repr could run code or be
    unbounded).
    """
    parts: list = []
    budget = [limit + 1]  # one character past the limit tells that something was cut

    def emit(text: str) -> bool:
        if budget[0] <= 0:
            return False
        parts.append(text[:budget[0]])
        budget[0] -= len(parts[-1])
        return budget[0] > 0

    def walk(item: object, depth: int) -> bool:
        if isinstance(item, bool) or item is None:
            return emit(repr(item))
        if isinstance(item, int):
            if item.bit_length() > 256:  # repr of a huge int is quadratic in its digits
                return emit("<{}-bit integer>".format(item.bit_length()))
            return emit(repr(item))
        if isinstance(item, numbers.Number):  # floats, complex numbers and numpy scalars: short reprs
            return emit(repr(item))
        if isinstance(item, (str, bytes, bytearray)):
            return emit(repr(item[:budget[0] + 2]).replace("\n", "\\n"))
        brackets = {list: "[]", tuple: "()", dict: "{}", set: "{}", frozenset: "{}"}.get(type(item))
        if brackets is None or depth > 16:
            return emit("<{}>".format(type(item).__name__) if brackets is None else "...")
        if not emit(brackets[0]):
            return False
        for index, element in enumerate(item.items() if isinstance(item, dict) else item):  # type: ignore
            if index and not emit(", "):
                return False
            if isinstance(item, dict):
                if not (walk(element[0], depth + 1) and emit(": ") and walk(element[1], depth + 1)):
                    return False
            elif not walk(element, depth + 1):
                return False
        return emit(brackets[1])

    walk(value, 0)
    text = "".join(parts)
    return text if len(text) <= limit else text[:limit] + "..."
