"""Evaluate an SBIF graph with the NumPy ops, computing only what the requested outputs need."""
from __future__ import annotations

from typing import Dict, FrozenSet, List, Mapping, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..format import SbifFile
from ..ops import get_op, resolve_attrs


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

    def plan(self, outputs: Sequence[str]) -> Tuple[List[Step], FrozenSet[str]]:
        """The steps needed for `outputs`, in graph order, and the graph inputs they read."""
        key = frozenset(outputs)
        if key not in self._plans:
            needed = set(outputs)
            unknown = needed - set(self.model.specs)
            if unknown:
                raise InputError("unknown output(s) {}; this file computes {}".format(
                    ", ".join(sorted(unknown)), ", ".join(o["name"] for o in self.model.document["outputs"])))
            chosen: List[Step] = []
            for step in reversed(self.steps):
                if needed.intersection(step.outputs):
                    chosen.append(step)
                    needed.update(step.inputs)
            self._plans[key] = (chosen[::-1], frozenset(needed & set(self.inputs)))
        return self._plans[key]

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str]) -> Dict[str, np.ndarray]:
        steps, required = self.plan(outputs)
        missing = required - set(feeds)
        if missing:
            raise InputError("missing input(s): {}".format(", ".join(sorted(missing))))
        values: Dict[str, np.ndarray] = dict(self.model.tensors)
        values.update(self.check_feeds({name: feeds[name] for name in required}))
        with np.errstate(all="ignore"):
            for step in steps:
                result = step.compute(*[values[name] for name in step.inputs], **step.attrs)
                if len(step.outputs) == 1:
                    values[step.outputs[0]] = result
                else:
                    values.update(zip(step.outputs, result))
        return {name: values[name] for name in outputs}

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
