"""Strict JSON, for the container's header and the SBIF document (SPEC section 1).

Python's `json` reads the tokens `NaN`, `Infinity` and `-Infinity`, which are not JSON, and reads a number beyond
a double's range (`1e400`) as infinity. Another reader refuses the first and may read the second differently, so
this reader refuses both: a file means the same thing, or is refused, in every runtime.
"""
from __future__ import annotations

import json
import math
from typing import Any

#: Longest number quoted whole in a message; a longer one is shortened to its first digits and its length.
QUOTED_DIGITS = 24


class StrictJsonError(ValueError):
    """Text that Python's `json` would read but strict JSON refuses. The message is a clause ("contains ...")
    that the caller completes with what was being read (the header, the document) and its error class."""


def loads_strict(text: str) -> Any:
    """`json.loads`, refusing NaN/Infinity tokens and numbers that overflow a double (StrictJsonError); other
    malformed text raises json's own ValueError."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def quoted_number(text: str) -> str:
    """A number's text for a message: whole when short, else its first digits and its length."""
    return text if len(text) <= QUOTED_DIGITS else "{}...({} characters)".format(text[:12], len(text))


def _refuse_constant(token: str) -> float:
    raise StrictJsonError("contains {}, which is not JSON".format(token))


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise StrictJsonError("contains the number {}, beyond the range of a double".format(quoted_number(text)))
    return value
