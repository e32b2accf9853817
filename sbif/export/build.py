"""Turn a `ModelDescription` into an `SbifFile`: one builder for every loader."""
from __future__ import annotations

from typing import Dict, Optional

from ..errors import UnsupportedError
from ..format import SB2_FORMAT_VERSION, SbifFile
from ..version import __version__
from .builders import FAMILY_BUILDERS, Builder
from .description import ModelDescription
from .graph_builder import GraphBuilder
from .her import build_her
from .normalization import ObservationNormalization
from .preprocess import space_document

#: algorithm -> function(builder, model) adding the policy graph; returns (predict entry, resolved kwargs)
BUILDERS: Dict[str, Builder] = dict(FAMILY_BUILDERS, HER=build_her)
SUPPORTED_ALGORITHMS = tuple(BUILDERS)


def build_sbif(model: ModelDescription, normalization: Optional[ObservationNormalization] = None) -> SbifFile:
    """The validated SBIF file for a model: its parameters in SB2 order, then the graph that uses them.

    With `normalization` (VecNormalize statistics), the graph takes raw environment observations.
    """
    builder = GraphBuilder()
    builder.observation_normalization = normalization
    for name, array in model.parameters.items():
        builder.add_tensor(name, array, "parameter")
    if model.algorithm not in SUPPORTED_ALGORITHMS:
        raise UnsupportedError("{} models are not supported by this SBIF version yet (supported: {})".format(
            model.algorithm, ", ".join(SUPPORTED_ALGORITHMS)))
    predict, policy_kwargs = BUILDERS[model.algorithm](builder, model)
    provenance = dict({"producer": "sbif {}".format(__version__)}, **model.provenance)
    provenance.update(algorithm=model.algorithm, policy_class=model.policy_class, policy_kwargs=policy_kwargs)
    if normalization is not None:
        provenance["vecnormalize"] = normalization.as_kwargs()
    document = builder.document(SB2_FORMAT_VERSION, provenance, space_document(model.observation_space),
                                space_document(model.action_space), predict)
    if "observation_dict" in model.extra:
        document["observation_dict"] = model.extra["observation_dict"]
    return SbifFile(document, builder.tensors, source="export of {} {}".format(model.algorithm, model.policy_class))
