"""Turn an `Sb3Description` into a version-2 `SbifFile` (SPEC section 8): the policy's state dict in its order and
bytes, then the graph of its family, under the SB3 predict contract (SPEC section 5.9)."""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from ...errors import ExportError
from ...format import SB3_FORMAT_VERSION, SbifFile
from ...version import __version__
from ..graph_builder import GraphBuilder
from ..normalization import ObservationNormalization
from ..preprocess import space_document
from .description import ClassName, Sb3Description
from .families import FAMILIES
from .torch_layers import TorchGraph, is_image_space


def build_sb3_sbif(model: Sb3Description, normalization: Optional[ObservationNormalization] = None) -> SbifFile:
    """The validated SBIF file for an SB3 model; with `normalization`, the graph takes raw observations."""
    builder = GraphBuilder()
    builder.observation_normalization = normalization
    for name, array in model.parameters.items():
        builder.add_tensor(name, array, "parameter")
    graph = TorchGraph(builder, model.parameters)
    decided, ignored = FAMILIES[model.policy_class.family](graph, model)
    unused = graph.unused(ignored)
    if unused:
        raise ExportError("the policy has parameters its {} graph does not use ({}{}): a layer this SBIF version does "
                          "not know, so the export would be wrong".format(
                              model.algorithm, ", ".join(unused[:5]), ", ..." if len(unused) > 5 else ""))
    predict: Dict[str, Any] = {"contract": "sb3", "deterministic_default": False, "deterministic_action": "action",
                               "stochastic_action": "action_sample"}
    predict.update(decided)
    space = model.observation_space
    if space.kind == "dict":
        images = [key for key, sub in space.spaces.items() if is_image_space(sub)]
        if images:
            predict["channels_last_keys"] = images
    elif is_image_space(space):
        predict["channels_last"] = True
    provenance: Dict[str, Any] = {"producer": "sbif {}".format(__version__)}
    provenance.update(model.provenance)
    provenance.update(framework="sb3", algorithm=model.algorithm, policy_class=str(model.policy),
                      policy_kwargs=json_kwargs(model.policy_kwargs))
    if normalization is not None:
        provenance["vecnormalize"] = normalization.as_kwargs()
    document = builder.document(SB3_FORMAT_VERSION, provenance, space_document(model.observation_space),
                                space_document(model.action_space), predict)
    return SbifFile(document, builder.tensors, source="export of {} {}".format(model.algorithm, model.policy.name))


def json_kwargs(value: Any) -> Any:
    """`policy_kwargs` as JSON: classes by their dotted name, tuples as lists, keys as text; values JSON cannot hold
    (a schedule, an optimizer's settings object) by their type's name."""
    if isinstance(value, ClassName):
        return str(value)
    if isinstance(value, dict):
        return {str(key): json_kwargs(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_kwargs(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    return "<{}>".format(type(value).__name__)
