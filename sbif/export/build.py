"""Turn a `ModelDescription` into an `SbifFile`: one builder for every loader."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

from .. import __version__
from ..errors import UnsupportedError
from ..format import FORMAT_VERSION, SbifFile
from .actor_critic import build_actor_critic
from .off_policy import build_ddpg, build_sac, build_td3
from .description import ACTOR_CRITIC_ALGORITHMS, ModelDescription
from .dqn import build_dqn
from .her import build_her
from .graph_builder import GraphBuilder
from .normalization import ObservationNormalization
from .preprocess import space_document

#: algorithm -> function(builder, model) adding the policy graph; returns (predict entry, resolved kwargs)
BUILDERS: Dict[str, Callable[[GraphBuilder, ModelDescription], Tuple[Dict[str, Any], Dict[str, Any]]]] = {
    algorithm: build_actor_critic for algorithm in ACTOR_CRITIC_ALGORITHMS}
BUILDERS["SAC"] = build_sac
BUILDERS["TD3"] = build_td3
BUILDERS["DDPG"] = build_ddpg
BUILDERS["DQN"] = build_dqn
BUILDERS["HER"] = build_her
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
    document = {
        "format": "sbif",
        "format_version": FORMAT_VERSION,
        "provenance": provenance,
        "observation_space": space_document(model.observation_space),
        "action_space": space_document(model.action_space),
        "tensors": builder.tensor_entries,
        "inputs": builder.inputs,
        "graph": builder.nodes,
        "outputs": builder.outputs,
        "predict": predict,
    }
    if "observation_dict" in model.extra:
        document["observation_dict"] = model.extra["observation_dict"]
    return SbifFile(document, builder.tensors, source="export of {} {}".format(model.algorithm, model.policy_class))
