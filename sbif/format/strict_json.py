"""Strict JSON, for the container's header and the SBIF document (SPEC sections 1 and 2).

Python's `json` reads the tokens `NaN`, `Infinity` and `-Infinity`, which are not JSON, reads a number beyond a
double's range (`1e400`) as infinity, keeps the last of two equal keys in an object, recurses once per level of
nesting (a deep enough text ends in a RecursionError), and reads an escaped lone UTF-16 surrogate (`"\\ud800"`) into a
string no UTF-8 text can hold. Other readers refuse the first, may read the second differently, keep the first key or
refuse it, stop at their own depth, and refuse lone surrogates or replace them (RFC 8259 section 8.2 leaves it open),
so this reader refuses all five: a file means the same thing, or is refused, in every runtime.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np

#: Longest number quoted whole in a message; a longer one is shortened to its first digits and its length.
QUOTED_DIGITS = 24
#: Deepest nesting of arrays and objects accepted (SPEC sections 2 and 3), as in the C reader: the outermost value is
#: level 1.
JSON_MAX_DEPTH = 512
#: Longest object key quoted whole in a message.
QUOTED_KEY_CHARS = 80
#: Integer literals with more digits than this are read as a `LongInteger`: beyond every double (which has at most
#: 309 integer digits) and every int64, and below the 4300 digits where Python 3.11's `int()` refuses a literal (and
#: where older Pythons spend quadratic time on a long one).
LONG_INTEGER_DIGITS = 400
_TOO_DEEP = "nests arrays and objects more than {} deep".format(JSON_MAX_DEPTH)

#: An escaped UTF-16 surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
#: What `quoted_number` makes of a long number's text.
_SHORTENED_NUMBER = re.compile(r"[^.]{1,12}\.\.\.\(\d+ characters\)$")
#: Bytes per NumPy pass of a scan outside strings (about 10 bytes of working memory each).
SCAN_CHUNK = 1 << 20
#: Longest number literal in JSON from a user or a peer (observations, --policy-kwargs, protocol requests): far beyond
#: any float64 or int64, and short enough that no conversion of one takes noticeable time.
MAX_NUMBER_CHARS = 100
#: A JSON string literal (escapes included), and a run of number characters longer than MAX_NUMBER_CHARS.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_LONG_NUMBER = re.compile(r"[-+.0-9eE]{%d,}" % (MAX_NUMBER_CHARS + 1))


class LongInteger(int):
    """An integer literal of more than LONG_INTEGER_DIGITS digits, read in time bounded by its length.

    Strict JSON has no limit on an integer's length and other readers accept any (a huge value in
    `provenance.policy_kwargs` is valid), so such a literal must not make the text unreadable, as `int()` does on
    Python 3.11 beyond 4300 digits. Its value is +-10^LONG_INTEGER_DIGITS (the literal's sign, not its digits): every
    integer SBIF uses is an int64 and every float a double, so wherever SBIF reads one of these it refuses it from
    its magnitude alone, and no check compares two of them. `str()` and `repr()` give the literal, shortened
    (`quoted_number`), so messages quoting it stay bounded; `literal` is the text as written.
    """

    literal: str

    def __new__(cls, literal: str) -> "LongInteger":
        magnitude = 10 ** LONG_INTEGER_DIGITS
        number = super().__new__(cls, -magnitude if literal.startswith("-") else magnitude)
        number.literal = literal
        return number

    def __repr__(self) -> str:
        return quoted_number(self.literal)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)


class StrictJsonError(ValueError):
    """Text that Python's `json` would read but strict JSON refuses. The message is a clause ("contains ...")
    that the caller completes with what was being read (the header, the document) and its error class."""


def loads_strict(text: str) -> Any:
    """`json.loads`, refusing nesting deeper than JSON_MAX_DEPTH, duplicate keys, NaN/Infinity tokens, numbers
    that overflow a double and strings holding a lone surrogate (StrictJsonError), and reading integer literals longer
    than LONG_INTEGER_DIGITS as `LongInteger`s; other malformed text raises json's own ValueError. Nesting deep enough to exhaust Python's recursion limit stops the parse (json's scanner checks the
    limit); shallower excess is found by scanning the text once it is known to be JSON (every string terminated, so
    the scan is linear)."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                           parse_int=_integer, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise StrictJsonError(_TOO_DEEP) from None
    _check_depth(text)
    if _may_hold_surrogates(text):
        _refuse_lone_surrogates(value)
    return value


def _may_hold_surrogates(text: str) -> bool:
    """Whether a parsed string of `text` can hold a surrogate: the text escapes one, or holds one itself (only
    surrogates make UTF-8 encoding fail). Both tests run at C speed; a regular expression searching for either
    took seconds on a 100 MB text."""
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def loads_json_input(text: str) -> Any:
    """JSON from a user or a peer: `loads_strict`, with number literals of at most MAX_NUMBER_CHARS characters,
    checked in linear time before any is converted (StrictJsonError). Other malformed text raises ValueError."""
    if len(text) > MAX_NUMBER_CHARS:
        long_number = _LONG_NUMBER.search(_JSON_STRING.sub('""', text))
        if long_number is not None:
            raise StrictJsonError("contains the number {}, longer than {} characters".format(
                quoted_number(long_number.group()), MAX_NUMBER_CHARS))
    return loads_strict(text)


def outside_strings(raw: bytes, chunk_bytes: int = SCAN_CHUNK) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Chunks of `raw` (JSON text as UTF-8) as uint8 arrays, each with a mask of the bytes outside strings, in
    memory proportional to the chunk: the one scan the readers' size and depth checks share (the C and Node readers
    scan alike). Escape sequences are two characters, read left to right, so removing every escaped backslash, then
    every escaped quote, leaves exactly the quotes that open and close strings; a closing quote counts as outside.
    Only brackets, braces, commas and quotes are meaningful in what is yielded (escapes inside strings are gone)."""
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    codes = np.frombuffer(raw, dtype=np.uint8)
    in_string = 0
    for start in range(0, codes.size, chunk_bytes):
        chunk = codes[start:start + chunk_bytes]
        quotes = np.cumsum(chunk == ord('"'), dtype=np.int64) + in_string
        in_string = int(quotes[-1]) & 1
        yield chunk, (quotes & 1) == 0


def quoted_number(text: str) -> str:
    """A number's text for a message: whole when short, else its first digits and its length. A text it already
    shortened (such as a `LongInteger`'s `str()`) comes back unchanged, so the length shown stays the literal's."""
    if len(text) <= QUOTED_DIGITS or _SHORTENED_NUMBER.match(text):
        return text
    return "{}...({} characters)".format(text[:12], len(text))


def _check_depth(text: str) -> None:
    """Refuse arrays and objects nested deeper than JSON_MAX_DEPTH, from the running count of brackets outside
    strings, summed by NumPy in bounded chunks (a 100 MB header holds millions of brackets). A text with fewer
    opening brackets than the limit cannot exceed it, so it is not scanned."""
    if text.count("[") + text.count("{") <= JSON_MAX_DEPTH:
        return
    depth = 0
    for chunk, outside in outside_strings(text.encode("utf-8", "surrogatepass")):
        steps = (((chunk == ord("[")) | (chunk == ord("{"))) & outside).astype(np.int64)
        steps -= ((chunk == ord("]")) | (chunk == ord("}"))) & outside
        levels = np.cumsum(steps)
        if depth + int(levels.max()) > JSON_MAX_DEPTH:
            raise StrictJsonError(_TOO_DEEP)
        depth += int(levels[-1])


def _refuse_lone_surrogates(value: Any) -> None:
    """Refuse a key or string holding a UTF-16 surrogate that is not half of a pair (json joins escaped pairs into
    one character, so any surrogate left is alone). Iterative: the depth is bounded, but not by the stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise StrictJsonError("contains a string with the lone surrogate U+{:04X}, which is not Unicode "
                                      "text".format(ord(item[exc.start]))) from None


def _unique_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    """An object's members as a dict, refusing a key that occurs twice (json would keep the last silently)."""
    members = dict(pairs)
    if len(members) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                shown = key if len(key) <= QUOTED_KEY_CHARS else key[:QUOTED_KEY_CHARS] + "..."
                raise StrictJsonError("contains the key {} twice in one object".format(json.dumps(shown)))
            seen.add(key)
    return members


def _refuse_constant(token: str) -> float:
    raise StrictJsonError("contains {}, which is not JSON".format(token))


def _integer(text: str) -> int:
    return int(text) if len(text) - text.startswith("-") <= LONG_INTEGER_DIGITS else LongInteger(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise StrictJsonError("contains the number {}, beyond the range of a double".format(quoted_number(text)))
    return value
