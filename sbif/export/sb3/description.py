"""What the exporter knows about an SB3 model, however it was read: the safe loader (the file as data) and the
live loader (SB3 itself) both fill an `Sb3Description`, and one builder turns it into the document, so a file does
not depend on the loader that made it."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, NamedTuple, Optional

import numpy as np

from ...errors import ExportError, UnsupportedError, preview
from ...format.document import SPACE_DTYPES
from ..description import Space, real_number
from .policy_classes import PolicyClass, policy_class

#: Every algorithm SB3 2.9 and sb3-contrib 2.9 have, by class name (`--algo` is matched in any case).
SB3_ALGORITHMS = ("A2C", "PPO", "DQN", "SAC", "TD3", "DDPG", "ARS", "QRDQN", "TQC", "TRPO", "RecurrentPPO",
                  "MaskablePPO", "CrossQ")


class ClassName(NamedTuple):
    """A class a model refers to, by module and name (the safe loader never imports it)."""

    module: str
    name: str

    def __str__(self) -> str:
        return "{}.{}".format(self.module, self.name)


class Sb3Description:
    """Everything the SB3 builders need.

    `parameters` is the policy's state dict in its order, arrays exactly as torch holds them; `policy_kwargs` the
    model's, with classes as `ClassName`s; `use_sde` and `exploration_rate` the algorithm's settings that change
    what predict computes; `provenance` the source file and how it was read.
    """

    def __init__(self, algorithm: str, policy: ClassName, policy_kwargs: Dict[str, Any], observation_space: Space,
                 action_space: Space, parameters: "OrderedDict[str, np.ndarray]", provenance: Dict[str, Any],
                 use_sde: bool = False, exploration_rate: Optional[float] = None):
        if algorithm not in SB3_ALGORITHMS:
            raise ExportError("unknown SB3 algorithm {}; SB3 and sb3-contrib have {}".format(
                preview(algorithm), ", ".join(SB3_ALGORITHMS)))
        self.algorithm = algorithm
        self.policy = policy
        self.policy_class: PolicyClass = policy_class(policy.module, policy.name)
        if algorithm not in self.policy_class.algorithms:
            raise ExportError("the model says {} but its policy {} belongs to {}".format(
                algorithm, policy, " or ".join(self.policy_class.algorithms)))
        self.policy_kwargs = dict(policy_kwargs)
        self.observation_space = observation_space
        self.action_space = action_space
        self.parameters = parameters
        self.provenance = provenance
        self.use_sde = bool(use_sde)
        self.exploration_rate = (None if exploration_rate is None else
                                 real_number(exploration_rate, "exploration_rate"))
        self.notes: List[str] = []

    def flag(self, name: str) -> Any:
        """A constructor setting: `policy_kwargs` if it sets it, else the policy class's default."""
        if name in self.policy_kwargs:
            return self.policy_kwargs[name]
        return dict(self.policy_class.flags).get(name)


def sb3_space(record: Any, what: str, nested: bool = False) -> Space:
    """A space as the builders take it, from anything with a space record's fields (`kind`, `shape`, `dtype`,
    `low`, `high`, `n`, `nvec`; a dict's `spaces`): the safe loader's records and the live loader's conversion of
    gymnasium spaces.
    SB3 ignores Discrete's and MultiDiscrete's `start` (its one-hot and argmax count from 0), and so does SBIF."""
    kind = record.kind
    if kind == "box":
        shape = tuple(int(d) for d in record.shape)
        dtype = np.dtype(record.dtype)
        low = np.broadcast_to(np.asarray(record.low, dtype), shape).copy()
        high = np.broadcast_to(np.asarray(record.high, dtype), shape).copy()
        return Space("box", shape, dtype.name, low, high)
    if kind == "discrete":
        return Space("discrete", (), SPACE_DTYPES["discrete"], n=int(record.n))
    if kind == "multi_discrete":
        nvec = np.asarray(record.nvec)
        if nvec.ndim != 1:
            raise UnsupportedError("{}: a MultiDiscrete space of shape {} (SB3 policies take 1-D nvec)".format(
                what, list(nvec.shape)))
        return Space("multi_discrete", (len(nvec),), SPACE_DTYPES["multi_discrete"], nvec=[int(v) for v in nvec])
    if kind == "multi_binary":
        shape = tuple(int(d) for d in record.shape)
        if len(shape) != 1:
            raise UnsupportedError("{}: a MultiBinary space of shape {} (SBIF takes 1-D MultiBinary)".format(
                what, list(shape)))
        return Space("multi_binary", shape, SPACE_DTYPES["multi_binary"], n=shape[0])
    if kind == "dict" and not nested:
        return Space("dict", (), "", spaces=OrderedDict(
            (str(key), sb3_space(sub, "{} key {}".format(what, preview(key)), nested=True))
            for key, sub in record.spaces.items()))
    raise UnsupportedError("{}: {} spaces {}are not supported by this SBIF version yet".format(
        what, preview(kind), "inside a dict space " if nested else ""))
