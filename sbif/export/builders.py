"""The policy-family builders by algorithm: what `build_sbif` dispatches to, and what HER's builder runs for the
model it wraps. A builder adds a family's graph to a `GraphBuilder` and returns (the document's `predict` entry,
the resolved policy kwargs)."""
from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

from .actor_critic import build_actor_critic
from .description import ACTOR_CRITIC_ALGORITHMS, ModelDescription
from .dqn import build_dqn
from .graph_builder import GraphBuilder
from .off_policy import build_ddpg, build_sac, build_td3

Builder = Callable[[GraphBuilder, ModelDescription], Tuple[Dict[str, Any], Dict[str, Any]]]

#: algorithm -> builder of its own policy graph (HER, a wrapper, is registered in `build.BUILDERS`)
FAMILY_BUILDERS: Dict[str, Builder] = dict({algorithm: build_actor_critic for algorithm in ACTOR_CRITIC_ALGORITHMS},
                                           SAC=build_sac, TD3=build_td3, DDPG=build_ddpg, DQN=build_dqn)
