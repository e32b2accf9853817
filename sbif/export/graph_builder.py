"""A small helper that assembles a document's tensors, inputs and graph while checking types as it goes."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import ExportError, SbifError
from ..ops import ValueSpec, get_op, resolve_attrs


class GraphBuilder:
    """Collects tensors (SB2 parameters first, in their order), inputs, nodes and outputs."""

    def __init__(self) -> None:
        self.tensors: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self.tensor_entries: List[Dict[str, Any]] = []
        self.inputs: List[Dict[str, Any]] = []
        self.nodes: List[Dict[str, Any]] = []
        self.outputs: List[Dict[str, Any]] = []
        self.specs: Dict[str, ValueSpec] = {}
        #: VecNormalize statistics to apply to the raw observation (see normalization.py), if any
        self.observation_normalization: Optional[Any] = None
        self._counter = 0

    # -- values --------------------------------------------------------------------------------------------
    def add_tensor(self, name: str, array: np.ndarray, origin: str) -> str:
        array = np.asarray(array)
        self._claim(name, ValueSpec(array.dtype.name, array.shape))
        self.tensors[name] = array
        self.tensor_entries.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape),
                                    "origin": origin})
        return name

    def constant_tensor(self, name: str, array: np.ndarray) -> str:
        """An exporter-made tensor (space bounds, scale factors), named under 'sbif/'."""
        return self.add_tensor("sbif/" + name, array, "constant")

    def add_input(self, name: str, dtype: str, shape: Sequence[Optional[int]], kind: str,
                  distribution: Optional[str] = None) -> str:
        self._claim(name, ValueSpec(dtype, shape))
        entry = {"name": name, "dtype": dtype, "shape": list(shape), "kind": kind}
        if distribution is not None:
            entry["distribution"] = distribution
        self.inputs.append(entry)
        return name

    def op(self, op_name: str, inputs: Sequence[str], attrs: Optional[Dict[str, Any]] = None,
           name: Optional[str] = None, n_outputs: int = 1) -> Union[str, List[str]]:
        """Append a node; returns its output name (a list when n_outputs > 1)."""
        op = get_op(op_name)
        attrs = dict(attrs or {})
        resolved = resolve_attrs(op, attrs, "exporter")
        base = name or self._fresh(op_name)
        try:
            results = op.infer([self.specs[i] for i in inputs], resolved, n_outputs)
        except SbifError as exc:
            raise ExportError("cannot build {} ({}): {}; the parameters do not fit the observation or action "
                              "space".format(base, op_name, exc)) from None
        names = [base] if n_outputs == 1 else ["{}:{}".format(base, i) for i in range(n_outputs)]
        for out_name, spec in zip(names, results):
            self._claim(out_name, spec)
        node: Dict[str, Any] = {"op": op_name, "inputs": list(inputs), "outputs": names}
        if attrs:
            node["attrs"] = attrs
        self.nodes.append(node)
        return names[0] if n_outputs == 1 else names

    def declare_output(self, name: str, description: str) -> str:
        spec = self.specs[name]
        self.outputs.append({"name": name, "dtype": spec.dtype,
                             "shape": [None if d is None else d for d in spec.shape],
                             "description": description})
        return name

    def document(self, format_version: int, provenance: Dict[str, Any], observation_space: Dict[str, Any],
                 action_space: Dict[str, Any], predict: Dict[str, Any]) -> Dict[str, Any]:
        """The architecture document of what was built, its members in SPEC section 3's order."""
        return {
            "format": "sbif",
            "format_version": format_version,
            "provenance": provenance,
            "observation_space": observation_space,
            "action_space": action_space,
            "tensors": self.tensor_entries,
            "inputs": self.inputs,
            "graph": self.nodes,
            "outputs": self.outputs,
            "predict": predict,
        }

    def spec(self, name: str) -> ValueSpec:
        return self.specs[name]

    def _claim(self, name: str, spec: ValueSpec) -> None:
        if name in self.specs:
            raise ExportError("internal: graph value {!r} defined twice".format(name))
        self.specs[name] = spec

    def _fresh(self, stem: str) -> str:
        self._counter += 1
        return "{}_{}".format(stem, self._counter)
