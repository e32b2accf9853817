"""Strict JSON, for the container's header and the SBIF document (SPEC sections 1 and 2).

Python's `json` reads the tokens `NaN`, `Infinity` and `-Infinity`, which are not JSON, reads a number beyond a
double's range (`1e400`) as infinity, keeps the last of two equal keys in an object, and recurses once per level of
nesting (a deep enough text ends in a RecursionError). Other readers refuse the first, may read the second
differently, keep the first key or refuse it, and stop at their own depth, so this reader refuses all four: a file
means the same thing, or is refused, in every runtime.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, List, Tuple

import numpy as np

#: Longest number quoted whole in a message; a longer one is shortened to its first digits and its length.
QUOTED_DIGITS = 24
#: Deepest nesting of arrays and objects accepted (SPEC sections 2 and 3), as in the C reader: the outermost value is
#: level 1.
JSON_MAX_DEPTH = 512
#: Longest object key quoted whole in a message.
QUOTED_KEY_CHARS = 80
_TOO_DEEP = "nests arrays and objects more than {} deep".format(JSON_MAX_DEPTH)

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: Characters counted per NumPy pass of the depth scan (8 bytes of working memory each).
_DEPTH_CHUNK = 1 << 20


class StrictJsonError(ValueError):
    """Text that Python's `json` would read but strict JSON refuses. The message is a clause ("contains ...")
    that the caller completes with what was being read (the header, the document) and its error class."""


def loads_strict(text: str) -> Any:
    """`json.loads`, refusing nesting deeper than JSON_MAX_DEPTH, duplicate keys, NaN/Infinity tokens and numbers
    that overflow a double (StrictJsonError); other malformed text raises json's own ValueError. Nesting deep enough
    to exhaust Python's recursion limit stops the parse (json's scanner checks the limit); shallower excess is found
    by scanning the text once it is known to be JSON (every string terminated, so the scan is linear)."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                           object_pairs_hook=_unique_keys)
    except RecursionError:
        raise StrictJsonError(_TOO_DEEP) from None
    _check_depth(text)
    return value


def quoted_number(text: str) -> str:
    """A number's text for a message: whole when short, else its first digits and its length."""
    return text if len(text) <= QUOTED_DIGITS else "{}...({} characters)".format(text[:12], len(text))


def _check_depth(text: str) -> None:
    """Refuse arrays and objects nested deeper than JSON_MAX_DEPTH, from the running count of brackets outside
    strings, summed by NumPy in bounded chunks (a 100 MB header holds millions of brackets). A text with fewer
    opening brackets than the limit cannot exceed it, so it is not scanned."""
    if text.count("[") + text.count("{") <= JSON_MAX_DEPTH:
        return
    codes = np.frombuffer(_STRING.sub("", text).encode("utf-8"), dtype=np.uint8)
    depth = 0
    for start in range(0, codes.size, _DEPTH_CHUNK):
        chunk = codes[start:start + _DEPTH_CHUNK]
        steps = ((chunk == ord("[")) | (chunk == ord("{"))).astype(np.int64)
        steps -= (chunk == ord("]")) | (chunk == ord("}"))
        levels = np.cumsum(steps)
        if depth + int(levels.max()) > JSON_MAX_DEPTH:
            raise StrictJsonError(_TOO_DEEP)
        depth += int(levels[-1])


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


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise StrictJsonError("contains the number {}, beyond the range of a double".format(quoted_number(text)))
    return value
