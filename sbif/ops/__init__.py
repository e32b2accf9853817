"""The op set of SBIF format version 1: one small class per op, each specified in `spec/SPEC.md`."""
from . import elementwise, layers, nn, shape  # noqa: F401  (importing registers the ops)
from . import sampling  # noqa: F401
from .base import REGISTRY, Op, ValueSpec, get_op, resolve_attrs

__all__ = ["REGISTRY", "Op", "ValueSpec", "get_op", "resolve_attrs"]
