"""What an op is: a name, its arity and attributes, a shape/dtype rule and a NumPy computation.

Each op is one small class whose `compute` is the reference semantics of the section of `spec/SPEC.md` with
the same name. `infer` lets a validator check a whole graph without running it. Shapes are tuples in which
`None` stands for the batch dimension, which is only ever the first.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np

from ..errors import DocumentError, UnsupportedError

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


class Op:
    """Base class. Subclasses set `name`, `arity` (None = variadic, at least one) and `attributes`."""

    name: ClassVar[str]
    arity: ClassVar[Optional[int]] = 1
    #: attribute name -> (python type(s), default or REQUIRED)
    attributes: ClassVar[Dict[str, Tuple[Any, Any]]] = {}
    #: how many outputs; None means "as many as the node lists" (split)
    n_outputs: ClassVar[Optional[int]] = 1

    @classmethod
    def infer(cls, inputs: List[ValueSpec], attrs: Dict[str, Any], n_outputs: int) -> List[ValueSpec]:
        raise NotImplementedError

    @classmethod
    def compute(cls, *inputs: np.ndarray, **attrs: Any):
        raise NotImplementedError


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
        raise UnsupportedError("unknown op {!r}: this runtime implements {}".format(
            name, ", ".join(sorted(REGISTRY)))) from None


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
            raise DocumentError("{}: attribute {!r} of op {} has the wrong type ({!r})".format(
                where, key, op.name, value))
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
