"""HER: the goal-conditioned wrapper over DQN, SAC, TD3 or DDPG (`stable_baselines/her/`).

The exported graph is the inner model's; what HER adds is the dict observation, which SB2's
`HERGoalEnvWrapper` flattens by concatenating `observation`, `achieved_goal`, `desired_goal` (KEY_ORDER).
The file records that order and the dict's spaces, so `predict` accepts the dict as well as the flat vector.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

from ..errors import ExportError, UnsupportedError
from .builders import FAMILY_BUILDERS
from .description import ModelDescription, Space
from .graph_builder import GraphBuilder

#: SB2's her/utils.py KEY_ORDER
KEY_ORDER = ("observation", "achieved_goal", "desired_goal")
#: the algorithms HER wraps in SB2 (off-policy ones)
INNER_ALGORITHMS = ("DQN", "SAC", "TD3", "DDPG")


def observation_dict(dict_space: Any) -> Dict[str, Any]:
    """The document's `observation_dict` entry for a gym Dict space (read by attribute, no gym import)."""
    from .preprocess import space_document

    spaces = getattr(dict_space, "spaces", None)
    if not hasattr(spaces, "keys") or any(key not in spaces for key in KEY_ORDER):
        raise ExportError("HER needs a Dict observation space with keys {}".format(", ".join(KEY_ORDER)))
    return {"keys": list(KEY_ORDER), "spaces": {key: space_document(Space.from_gym(spaces[key])) for key in KEY_ORDER}}


def build_her(builder: GraphBuilder, model: ModelDescription) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The inner model's graph; the dict layout travels in `model.extra['observation_dict']`."""
    inner = model.extra.get("model_class")
    if inner not in INNER_ALGORITHMS:
        raise UnsupportedError("HER over {!r} is not something SB2 builds (model_class must be one of {})".format(
            inner, ", ".join(INNER_ALGORITHMS)))
    predict, kwargs = FAMILY_BUILDERS[inner](builder, model)
    return predict, dict(kwargs, model_class=inner)
