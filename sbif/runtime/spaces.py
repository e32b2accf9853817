"""The spaces of a loaded policy as gym-like objects: `Box`, `Discrete`, `MultiDiscrete`, `MultiBinary` (and, for
SB3's dict observations, `DictSpace`).

SB2 code reads `model.observation_space.shape`, `.low`, `.high`, `.n`, `.nvec` and calls `.contains` and
`.sample`; these classes offer the same attributes (bounds as NumPy arrays, not the document's "-inf" strings)
without importing gym. The file's JSON form (SPEC section 3.2) stays available as `space.to_json()`, for `--json`
output and for code that wants the document's data. dtypes follow gym: Discrete and MultiDiscrete int64,
MultiBinary int8 (`sbif.format.document.SPACE_DTYPES`), Box the dtype the file declares.
"""
from __future__ import annotations

import abc
import copy
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from ..format.document import SPACE_DTYPES, decode_bound

#: What sampling draws from: None (a fresh generator), a seed, or a `numpy.random.Generator` (named as a string:
#: importing `numpy.random` is a sizeable part of a cold start, and only sampling needs it).
RandomSource = Union[None, int, "np.random.Generator"]


class Space(abc.ABC):
    """A space of a loaded policy. `kind` is the document's name for it ('box', 'discrete', 'multi_discrete',
    'multi_binary'); `shape` and `dtype` are those of one element, as in gym."""

    kind = ""
    shape: Tuple[int, ...] = ()
    dtype: np.dtype

    def __init__(self, spec: Mapping[str, Any]):
        self._spec = spec

    def to_json(self) -> Dict[str, Any]:
        """The space as the file's document stores it (SPEC section 3.2): a new dict, safe to change."""
        return copy.deepcopy(dict(self._spec))

    def __getitem__(self, field: str) -> Any:
        """The document's field `field` (`space["kind"]`, `space["low"]`...), as code that reads the file's JSON
        spaces spells it; the attributes, or `to_json()` for the whole JSON form, are the typed way."""
        return self._spec[field]

    __iter__ = None  # `__getitem__` takes field names: a space is not a sequence of them

    @abc.abstractmethod
    def contains(self, x: Any) -> bool:
        """Whether `x` is an element of the space (gym's `contains`): its shape, a dtype that casts safely to the
        space's, and its values within the space."""

    def __contains__(self, x: Any) -> bool:
        return self.contains(x)

    def sample(self, rng: RandomSource = None) -> np.ndarray:
        """One element, drawn by `sbif.compare.sample_observations` (the project's sampler of a document space:
        uniform within finite bounds, normal with scale 10 where a Box bound is infinite)."""
        from ..compare import sample_observations

        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        return sample_observations(self.to_json(), 1, generator)[0]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and dict(self._spec) == dict(other._spec)

    __hash__ = None  # type: ignore[assignment]  # equal spaces compare by their (mutable) JSON form

    def __repr__(self) -> str:
        return "{}({})".format(type(self).__name__, self._describe())

    @abc.abstractmethod
    def _describe(self) -> str:
        """What `repr` shows between the class name's parentheses."""

    @staticmethod
    def _array(x: Any, dtype: Optional[np.dtype] = None) -> Optional[np.ndarray]:
        """`x` as an array, or None when it is not numeric. A Box converts lists to its `dtype`, as gym does (the
        integer spaces take the list's own dtype: 1.5 is no index)."""
        if isinstance(x, np.ndarray):
            array = x
        else:
            try:
                array = np.asarray(x, dtype=dtype) if isinstance(x, (list, tuple)) else np.asarray(x)
            except (TypeError, ValueError, OverflowError):
                return None
        return array if array.dtype.kind in "biuf" else None


class Box(Space):
    """A box of `shape` in `dtype`, between `low` and `high` (arrays of `shape` in `dtype`; infinite bounds are
    infinities for float dtypes and the dtype's limits for integer ones)."""

    kind = "box"

    def __init__(self, spec: Mapping[str, Any]):
        super().__init__(spec)
        self.shape = tuple(int(size) for size in spec["shape"])
        self.dtype = np.dtype(spec["dtype"])
        self._low: Optional[np.ndarray] = None
        self._high: Optional[np.ndarray] = None

    @property
    def low(self) -> np.ndarray:
        """The lower bound, per element (built on first use: an image space holds one bound per pixel)."""
        if self._low is None:
            self._low = self._bound("low")
        return self._low

    @property
    def high(self) -> np.ndarray:
        """The upper bound, per element."""
        if self._high is None:
            self._high = self._bound("high")
        return self._high

    def _bound(self, field: str) -> np.ndarray:
        values = decode_bound(self._spec[field], self.shape, "float64")
        if self.dtype.kind in "iub":  # infinite or NaN bounds of an integer box: the dtype's own limits
            limits = (0, 1) if self.dtype.kind == "b" else (np.iinfo(self.dtype).min, np.iinfo(self.dtype).max)
            values = np.clip(np.where(np.isnan(values), limits[field == "high"], values), *limits)
        with np.errstate(over="ignore"):  # a float64 bound beyond float32's range is float32's infinity
            bound = values.astype(self.dtype)
        bound.flags.writeable = False  # shared by every caller: nobody may move the space's bounds
        return bound

    def contains(self, x: Any) -> bool:
        array = self._array(x, self.dtype)
        if array is None or array.shape != self.shape or not np.can_cast(array.dtype, self.dtype):
            return False
        return bool(np.all(array >= self.low) and np.all(array <= self.high))

    def _describe(self) -> str:
        return "shape={}, dtype={}".format(self.shape, self.dtype.name)


class Discrete(Space):
    """The integers 0 .. n-1."""

    kind = "discrete"
    dtype = np.dtype(SPACE_DTYPES[kind])

    def __init__(self, spec: Mapping[str, Any]):
        super().__init__(spec)
        self.n = int(spec["n"])

    def contains(self, x: Any) -> bool:
        array = self._array(x)
        if array is None or array.shape != () or array.dtype.kind not in "iu":
            return False
        return 0 <= int(array) < self.n

    def _describe(self) -> str:
        return str(self.n)


class MultiDiscrete(Space):
    """A vector whose element i is an integer 0 .. nvec[i]-1."""

    kind = "multi_discrete"
    dtype = np.dtype(SPACE_DTYPES[kind])

    def __init__(self, spec: Mapping[str, Any]):
        super().__init__(spec)
        self.nvec = np.array(spec["nvec"], dtype=self.dtype)
        self.nvec.flags.writeable = False
        self.shape = self.nvec.shape

    def contains(self, x: Any) -> bool:
        array = self._array(x)
        if array is None or array.shape != self.shape or array.dtype.kind not in "iu":
            return False
        return bool(np.all(array >= 0) and np.all(array < self.nvec))

    def _describe(self) -> str:
        return str(self.nvec.tolist())


class MultiBinary(Space):
    """A vector of n bits."""

    kind = "multi_binary"
    dtype = np.dtype(SPACE_DTYPES[kind])

    def __init__(self, spec: Mapping[str, Any]):
        super().__init__(spec)
        self.n = int(spec["n"])
        self.shape = (self.n,)

    def contains(self, x: Any) -> bool:
        array = self._array(x)
        if array is None or array.shape != self.shape:
            return False
        return bool(np.all((array == 0) | (array == 1)))

    def _describe(self) -> str:
        return str(self.n)


class DictSpace(Space):
    """A dict of spaces (SB3's `MultiInputPolicy`, SPEC section 3.2): `spaces` maps each key, in the file's order,
    to its space. An element is a mapping with exactly those keys."""

    kind = "dict"

    def __init__(self, spec: Mapping[str, Any]):
        super().__init__(spec)
        self.spaces: "OrderedDict[str, Space]" = OrderedDict(
            (entry["key"], space_from_json(entry["space"])) for entry in spec["spaces"])

    def contains(self, x: Any) -> bool:
        return isinstance(x, Mapping) and set(x) == set(self.spaces) and all(
            space.contains(x[key]) for key, space in self.spaces.items())

    def sample(self, rng: RandomSource = None) -> Dict[str, np.ndarray]:  # type: ignore[override]
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        return {key: space.sample(generator) for key, space in self.spaces.items()}

    def _describe(self) -> str:
        return ", ".join("{}: {!r}".format(key, space) for key, space in self.spaces.items())


SPACES = {space.kind: space for space in (Box, Discrete, MultiDiscrete, MultiBinary, DictSpace)}


def space_from_json(spec: Mapping[str, Any]) -> Space:
    """The space object of a document space (validated by the reader: its kind is one of `SPACES`)."""
    return SPACES[spec["kind"]](spec)
