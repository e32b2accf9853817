"""What an op is: a name, its arity and attributes, a shape/dtype rule and a NumPy computation.

Each op is one small class whose `compute` is the reference semantics of the section of `spec/SPEC.md` with
the same name. `infer` lets a validator check a whole graph without running it. Shapes are tuples in which
`None` stands for the batch dimension, which is only ever the first.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np

from ..errors import DocumentError, UnsupportedError, preview

Shape = Tuple[Optional[int], ...]


class ValueSpec:
    """The static type of a graph value: dtype name and shape (None = batch dimension)."""

    __slots__ = ("dtype", "shape")

    def __init__(self, dtype: str, shape: Sequence[Optional[int]]):
        self.dtype = str(dtype)
        self.shape = tuple(shape)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValueSpec) and (self.dtype, self.shape) == (other.dtype, other.shape)

    def __repr__(self) -> str:
        dims = ",".join("B" if d is None else str(d) for d in self.shape)
        return "{}[{}]".format(self.dtype, dims)

    def nominal_bytes(self, batch: int = 1) -> int:
        """The size the limits of SPEC sections 3.5 and 5.8 bound: bytes with `batch` rows in place of the batch
        dimension, a zero dimension counted as 1, in exact integers. Counting zeros as 1 bounds every dimension
        of an empty value too, which NumPy refuses to describe beyond its index range and a kernel may loop over."""
        count = np.dtype(self.dtype).itemsize
        for dim in self.shape:
            count *= batch if dim is None else max(dim, 1)
        return count


class Op:
    """Base class. Subclasses set `name`, `arity` (None = variadic, at least one) and `attributes`."""

    name: ClassVar[str]
    arity: ClassVar[Optional[int]] = 1
    #: attribute name -> (python type(s), default or REQUIRED)
    attributes: ClassVar[Dict[str, Tuple[Any, Any]]] = {}
    #: how many outputs; None means "as many as the node lists" (split)
    n_outputs: ClassVar[Optional[int]] = 1
    #: why this op's result can be not determined by float evaluation (a NaN error scale it makes itself)
    undetermined_reason: ClassVar[str] = "its error scale overflows (values near the largest float)"

    @classmethod
    def infer(cls, inputs: List[ValueSpec], attrs: Dict[str, Any], n_outputs: int) -> List[ValueSpec]:
        raise NotImplementedError

    @classmethod
    def compute(cls, *inputs: np.ndarray, **attrs: Any):
        raise NotImplementedError

    @classmethod
    def error_scale(cls, inputs: Sequence[np.ndarray], scales: Sequence[np.ndarray], outputs: Sequence[np.ndarray],
                    **attrs: Any) -> List[np.ndarray]:
        """Per-element error scales (float64) of the outputs: how far any correct program's outputs may be from
        the reference's `outputs`, given the reference's `inputs` and their `scales` (`sbif/ops/rounding.py`,
        SPEC section 6)."""
        raise NotImplementedError


class MovesData(Op):
    """An op that only moves, selects or repeats elements: each output element's scale is its source's."""

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        moved = cls.compute(*scales, **attrs)
        return list(moved) if isinstance(moved, tuple) else [moved]


class ExactOutputs(Op):
    """An op whose outputs every correct program computes exactly from the same inputs (indices, bools):
    its scale is 0, or NaN (not determined) where an input it reads is not determined."""

    #: the axis an output element reads all of (argmax, inverse_cdf_sample read a whole row), or None: the
    #: element at the same position
    reads_axis: ClassVar[Optional[int]] = None

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        return [undetermined_where(scales, np.shape(output), cls.reads_axis) for output in outputs]


def undetermined_where(scales: Sequence[np.ndarray], shape: Tuple[int, ...], reads_axis: Optional[int] = None
                       ) -> np.ndarray:
    """The scale of an exactly computed output of `shape`: NaN where an input element it reads is not
    determined (NaN scale), else 0. With `reads_axis`, an output element reads that whole axis of each input."""
    undetermined = np.zeros(shape, dtype=bool)
    for scale in scales:
        nan = np.isnan(scale)
        if reads_axis is not None and nan.ndim:
            nan = np.any(nan, axis=reads_axis)
        undetermined = undetermined | np.broadcast_to(nan, shape)
    return np.where(undetermined, np.nan, 0.0)


REQUIRED = object()
FLOAT_DTYPES = ("float32", "float64")
INT_DTYPES = ("int32", "int64", "uint8", "int8", "int16", "uint16")

REGISTRY: Dict[str, Type[Op]] = {}


def register(cls: Type[Op]) -> Type[Op]:
    """Class decorator adding an op to the registry under its `name`."""
    if cls.name in REGISTRY:
        raise RuntimeError("op {} registered twice".format(cls.name))
    REGISTRY[cls.name] = cls
    return cls


def get_op(name: str) -> Type[Op]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnsupportedError("unknown op {}: this runtime implements {}".format(
            preview(name), ", ".join(sorted(REGISTRY)))) from None


def resolve_attrs(op: Type[Op], attrs: Dict[str, Any], where: str) -> Dict[str, Any]:
    """Check attribute names and types and fill in defaults."""
    unknown = set(attrs) - set(op.attributes)
    if unknown:
        raise DocumentError("{}: op {} has no attribute {}".format(where, op.name, ", ".join(sorted(unknown))))
    resolved = {}
    for key, (kinds, default) in op.attributes.items():
        if key not in attrs:
            if default is REQUIRED:
                raise DocumentError("{}: op {} needs attribute {!r}".format(where, op.name, key))
            resolved[key] = default
            continue
        value = attrs[key]
        if isinstance(value, bool) and bool not in _as_tuple(kinds) or not isinstance(value, kinds):
            raise DocumentError("{}: attribute {!r} of op {} has the wrong type ({})".format(
                where, key, op.name, preview(value)))
        resolved[key] = value
    return resolved


def _as_tuple(kinds: Any) -> tuple:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def fail(message: str) -> None:
    """Raise the error used by `infer` for ill-typed inputs (the caller adds where it happened)."""
    raise DocumentError(message)


def require_dtype(spec: ValueSpec, allowed: Sequence[str], role: str = "input") -> None:
    if spec.dtype not in allowed:
        fail("{} has dtype {}, expected one of {}".format(role, spec.dtype, ", ".join(allowed)))


def broadcast_shapes(shapes: Sequence[Shape]) -> Shape:
    """NumPy broadcasting over static shapes; the batch dimension (None) broadcasts with 1 and itself only."""
    rank = max(len(s) for s in shapes)
    result: List[Optional[int]] = []
    for axis in range(rank):
        dims = [s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0]
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            fail("shapes {} do not broadcast".format(" and ".join(str(s) for s in shapes)))
        result.append(sizes.pop() if sizes else 1)
    return tuple(result)


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        fail("axis {} is out of range for rank {}".format(axis, rank))
    return axis % rank
