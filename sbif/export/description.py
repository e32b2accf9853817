"""What an exporter knows about an SB2 model, independent of how it was read (live SB2 or the safe reader).

Both loaders fill a `ModelDescription`; one builder turns it into the same document, so a file does not
depend on the loader that made it.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import ExportError, preview
from ..format.document import SPACE_DTYPES

ACTOR_CRITIC_ALGORITHMS = ("A2C", "ACER", "ACKTR", "PPO1", "PPO2", "TRPO", "GAIL")
ALGORITHMS = ACTOR_CRITIC_ALGORITHMS + ("DQN", "SAC", "TD3", "DDPG", "HER")
#: policy kwargs that shape the network (besides act_fun and cnn_extractor), kept in `policy_kwargs` as the
#: builders read them; both loaders resolve them alike
STRUCTURAL_KWARGS = ("net_arch", "layers", "n_lstm", "layer_norm", "feature_extraction", "pad", "data_format",
                     "dueling")


def real_number(value: Any, what: str, finite: bool = True) -> float:
    """A number read from a model or statistics file as the float it stands for, or ExportError naming `what`
    and the value: booleans, text, complex numbers and integers a float cannot hold (a 4000-digit `clip_obs`)
    are refused, and so are NaN and, when `finite`, infinities."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    number = None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float's range
            pass
    if number is None or math.isnan(number) or (finite and math.isinf(number)):
        raise ExportError("{} must be a {}number, got {}".format(what, "finite " if finite else "", preview(value)))
    return number


class Space:
    """A gym space reduced to data: kind, shape, dtype, bounds, n or nvec; a dict space (SB3's MultiInputPolicy)
    holds its keys' spaces in `spaces`, in order."""

    def __init__(self, kind: str, shape=(), dtype: str = "int64", low: Optional[np.ndarray] = None,
                 high: Optional[np.ndarray] = None, n: Optional[int] = None, nvec: Optional[list] = None,
                 spaces: "Optional[OrderedDict[str, Space]]" = None):
        self.kind, self.shape, self.dtype = kind, tuple(int(d) for d in shape), str(dtype)
        self.low, self.high, self.n, self.nvec = low, high, n, nvec
        self.spaces = spaces

    @classmethod
    def from_gym(cls, space: Any) -> "Space":
        """Read a gym space by its class name and public attributes (no gym import needed)."""
        kind = type(space).__name__
        if kind == "Box":
            low, high = np.asarray(space.low), np.asarray(space.high)
            shape = tuple(space.shape)
            if low.shape != shape or high.shape != shape:
                low, high = np.broadcast_to(low, shape).copy(), np.broadcast_to(high, shape).copy()
            return cls("box", shape, np.dtype(space.dtype).name, low, high)
        if kind == "Discrete":
            return cls("discrete", (), SPACE_DTYPES["discrete"], n=int(space.n))
        if kind == "MultiDiscrete":
            return cls("multi_discrete", (len(space.nvec),), SPACE_DTYPES["multi_discrete"],
                       nvec=[int(v) for v in np.ravel(space.nvec)])
        if kind == "MultiBinary":
            return cls("multi_binary", (int(space.n),), SPACE_DTYPES["multi_binary"], n=int(space.n))
        raise ExportError("unsupported space {} (SB2 policies take Box, Discrete, MultiDiscrete and "
                          "MultiBinary; dict observations come from HER)".format(preview(kind)))


class ModelDescription:
    """Everything the builder needs: algorithm, policy identity and kwargs, spaces, parameters, provenance."""

    def __init__(self, algorithm: str, policy_class: str, policy_kwargs: Dict[str, Any], observation_space: Space,
                 action_space: Space, parameters: "OrderedDict[str, np.ndarray]", provenance: Dict[str, Any],
                 policy_base: str = "", extra: Optional[Dict[str, Any]] = None):
        if algorithm not in ALGORITHMS:
            raise ExportError("unknown algorithm {}; SB2 has {}".format(preview(algorithm), ", ".join(ALGORITHMS)))
        self.algorithm = algorithm
        self.policy_class = policy_class
        #: the SB2 base class the policy derives from, e.g. 'FeedForwardPolicy' (tells custom subclasses apart)
        self.policy_base = policy_base
        self.policy_kwargs = dict(policy_kwargs)
        self.observation_space = observation_space
        self.action_space = action_space
        self.parameters = parameters
        self.provenance = provenance
        #: algorithm settings outside the policy that change what predict computes, as plain data (NumPy arrays
        #: allowed): DDPG's `observation_range`, `return_range`, `normalize_observations`, `normalize_returns`,
        #: `param_noise` (bool); TD3/DDPG's `action_noise` (None, {'kind': 'normal', 'mean', 'sigma'} as float64
        #: arrays, or {'kind': CLASS NAME} for noise SBIF cannot express). Empty for the actor-critic family.
        self.extra: Dict[str, Any] = dict(extra or {})
        #: what the loader decided that the file does not say, in words for the caller (the safe loader's
        #: architecture inferred from an unnamed parameter list's shapes); `export` reports them
        self.notes: List[str] = []
