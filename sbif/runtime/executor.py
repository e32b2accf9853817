"""Evaluate an SBIF graph with the NumPy ops, computing only what the requested outputs need."""
from __future__ import annotations

from typing import Dict, FrozenSet, List, Mapping, Sequence, Tuple

import numpy as np

from ..errors import InputError, preview
from ..format import SbifFile
from ..format.subgraph import required_subgraph
from ..ops import ValueSpec, get_op, resolve_attrs

#: Largest value one request may make, in bytes (SPEC section 5.8): a batch of B rows makes every batched value B
#: times its size at batch 1, so a file within the static limit (2^28 bytes at batch 1) can still ask for any amount
#: of memory through a large batch. 4 GiB holds a batch of 38,000 Atari observations (113 KB a row as float32).
MAX_BATCH_VALUE_BYTES = 2 ** 32


class Step:
    """One graph node bound to its op's compute function and resolved attributes."""

    __slots__ = ("op_name", "compute", "error_scale", "undetermined_reason", "inputs", "outputs", "attrs")

    def __init__(self, node: dict):
        op = get_op(node["op"])
        self.op_name = op.name
        self.compute = op.compute
        self.error_scale = op.error_scale
        self.undetermined_reason = op.undetermined_reason
        self.inputs: Tuple[str, ...] = tuple(node["inputs"])
        self.outputs: Tuple[str, ...] = tuple(node["outputs"])
        self.attrs = resolve_attrs(op, node.get("attrs", {}), node["op"])


class GraphExecutor:
    """Runs a validated file's graph. Plans (the steps an output set needs) are cached per output set."""

    backend = "numpy"

    def __init__(self, model: SbifFile):
        self.model = model
        self.steps: List[Step] = [Step(node) for node in model.document["graph"]]
        self.inputs = {entry["name"]: entry for entry in model.document["inputs"]}
        self._plans: Dict[FrozenSet[str], Tuple[List[Step], FrozenSet[str]]] = {}
        self._widest: Dict[FrozenSet[str], Tuple[str, ValueSpec]] = {}

    def plan(self, outputs: Sequence[str]) -> Tuple[List[Step], FrozenSet[str]]:
        """The steps needed for `outputs`, in graph order, and the graph inputs they read."""
        key = frozenset(outputs)
        if key not in self._plans:
            part = required_subgraph(self.model.document, list(outputs))
            self._plans[key] = ([self.steps[index] for index in part.node_indices], frozenset(part.inputs))
        return self._plans[key]

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str]) -> Dict[str, np.ndarray]:
        steps, required = self.plan(outputs)
        missing = required - set(feeds)
        if missing:
            raise InputError("missing input(s): {}".format(", ".join(sorted(missing))))
        values: Dict[str, np.ndarray] = dict(self.model.tensors)
        checked = self.check_feeds({name: feeds[name] for name in required})
        self.check_batch(outputs, _batch_of(checked, self.inputs))
        values.update(checked)
        with np.errstate(all="ignore"):
            for step in steps:
                result = step.compute(*[values[name] for name in step.inputs], **step.attrs)
                if len(step.outputs) == 1:
                    values[step.outputs[0]] = result
                else:
                    values.update(zip(step.outputs, result))
        return {name: values[name] for name in outputs}

    def check_batch(self, outputs: Sequence[str], batch: int) -> None:
        """Refuse, before anything is allocated, a batch with which a value computed for `outputs` (or an input they
        read) would exceed MAX_BATCH_VALUE_BYTES: batch x the value's bytes per row, exactly (SPEC section 5.8)."""
        key = frozenset(outputs)
        if key not in self._widest:
            steps, required = self.plan(outputs)
            names = sorted(required) + [name for step in steps for name in step.outputs]
            batched = [(name, self.model.specs[name]) for name in names if self.model.specs[name].shape[:1] == (None,)]
            self._widest[key] = max(batched, key=lambda item: item[1].nominal_bytes(batch=1),
                                    default=("", ValueSpec("bool", [None])))
        name, spec = self._widest[key]
        if spec.nominal_bytes(batch) > MAX_BATCH_VALUE_BYTES:
            raise InputError("a batch of {} rows would make {} ({}) take {} bytes, above the limit of {} bytes for "
                             "one value (SPEC section 5.8): use batches of at most {} rows".format(
                                 batch, preview(name), spec, spec.nominal_bytes(batch), MAX_BATCH_VALUE_BYTES,
                                 MAX_BATCH_VALUE_BYTES // spec.nominal_bytes(batch=1)))

    def check_feeds(self, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Every fed array must have its input's dtype and shape, with one batch size across all inputs."""
        batch = None
        checked = {}
        for name, value in feeds.items():
            declared = self.inputs[name]
            array = np.asarray(value)
            if array.dtype.name != declared["dtype"]:
                raise InputError("input {!r} must be {}, got {}".format(name, declared["dtype"], array.dtype.name))
            shape = declared["shape"]
            fits = len(array.shape) == len(shape) and all(
                d is None or d == actual for d, actual in zip(shape, array.shape))
            if not fits:
                expected = "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"
                raise InputError("input {!r} must have shape {}, got {}".format(name, expected, array.shape))
            if shape and shape[0] is None:
                if batch is not None and array.shape[0] != batch:
                    raise InputError("input {!r} has batch size {} but another input has {}".format(
                        name, array.shape[0], batch))
                batch = array.shape[0]
            checked[name] = array
        return checked


def _batch_of(feeds: Mapping[str, np.ndarray], inputs: Mapping[str, dict]) -> int:
    """The batch size of checked feeds (their common first dimension; 0 when none is batched)."""
    for name, array in feeds.items():
        if inputs[name]["shape"][:1] == [None]:
            return int(array.shape[0])
    return 0
