"""Who a file's policy class is, as SB2 would resolve it: its short name, module, SB2 base class and default
activation (`PolicyIdentity`), read from a pickled class reference, a class pickled by value, or `--policy`.

Both loaders need it: the safe loader to describe the file, the unnamed-list namer to pick the network, and the
live loader to stand in for a class this interpreter cannot import; it reads pickles only through `safe_pickle`.
"""
from __future__ import annotations

from typing import Any, Optional

from ..errors import ExportError
from .description import ACTOR_CRITIC_ALGORITHMS
from .safe_pickle import BY_VALUE, Stub, is_stub_class, stub_reference

FEED_FORWARD_CLASSES = {"MlpPolicy", "CnnPolicy", "LnMlpPolicy", "LnCnnPolicy", "FeedForwardPolicy"}
RECURRENT_CLASSES = {"MlpLstmPolicy", "MlpLnLstmPolicy", "CnnLstmPolicy", "CnnLnLstmPolicy", "LstmPolicy"}
#: rl-baselines-zoo's `utils` policies (not installable): SB2 base class and activation, from its source.
ZOO_POLICIES = {"CustomDQNPolicy": ("FeedForwardPolicy", "relu"), "CustomMlpPolicy": ("FeedForwardPolicy", "tanh"),
                "CustomSACPolicy": ("FeedForwardPolicy", "relu")}


class PolicyIdentity(object):
    """The policy class as the file names it: short name, module, SB2 base class, activation default."""

    def __init__(self, name: str, module: str = "", base: str = "", default_activation: Optional[str] = None):
        self.name, self.module, self.base = name, module, base
        #: None when the class is not one whose default we know (a user's subclass may change it)
        self.default_activation = default_activation

    @property
    def is_stock(self) -> bool:
        return self.module.split(".")[0] == "stable_baselines"


def policy_identity(value: Any, override: Optional[str], algorithm: str, path: str) -> PolicyIdentity:
    """Who the policy class is: from --policy, a pickled class reference, or a class pickled by value."""
    if override:
        module, _, name = str(override).rpartition(".")
        return _identity(module or POLICY_MODULES.get(algorithm, ""), name)
    cls = _class_of(value)
    if cls is not None and cls.sbif_module == BY_VALUE:
        bases = getattr(cls, "sbif_bases", ())
        return PolicyIdentity(cls.sbif_name, "", _base_name(bases[0]) if bases else "", None)
    if cls is not None:
        return _identity(cls.sbif_module, cls.sbif_name.split(".")[-1])
    raise ExportError("{}: cannot tell the policy class from the file; pass --policy CLASS (e.g. "
                      "--policy MlpPolicy)".format(path))


def _class_of(value: Any) -> Optional[type]:
    """The stand-in class a pickled class value is, seen through cloudpickle's rehydration calls."""
    for _ in range(4):
        if is_stub_class(value):
            return value
        reference = stub_reference(value) if isinstance(value, Stub) else None
        if reference is None or reference[1] not in ("_rehydrate_skeleton_class", "_class_setstate") \
                or not value.args:
            return None
        value = value.args[0]
    return None


#: Where each algorithm's stock policy classes live (a bare --policy name refers to these).
POLICY_MODULES = dict({name: "stable_baselines.common.policies" for name in ACTOR_CRITIC_ALGORITHMS},
                      DQN="stable_baselines.deepq.policies", SAC="stable_baselines.sac.policies",
                      TD3="stable_baselines.td3.policies", DDPG="stable_baselines.ddpg.policies")


def _identity(module: str, name: str) -> PolicyIdentity:
    if module.split(".")[0] == "stable_baselines":
        base = "FeedForwardPolicy" if name in FEED_FORWARD_CLASSES else \
            "LstmPolicy" if name in RECURRENT_CLASSES else ""
        activation = "tanh" if module == "stable_baselines.common.policies" else "relu"
        return PolicyIdentity(name, module, base, activation if base else None)
    if module.split(".")[0] == "utils" and name in ZOO_POLICIES:
        base, activation = ZOO_POLICIES[name]
        return PolicyIdentity(name, module, base, activation)
    return PolicyIdentity(name, module, "", None)


def _base_name(base: Any) -> str:
    """The SB2 base ('FeedForwardPolicy', 'LstmPolicy' or '') of a base class, through by-value subclasses."""
    for _ in range(8):
        cls = _class_of(base)
        if cls is None:
            return ""
        if cls.sbif_module != BY_VALUE:
            return _identity(cls.sbif_module, cls.sbif_name.split(".")[-1]).base
        bases = getattr(cls, "sbif_bases", ())
        if not bases:
            return ""
        base = bases[0]
    return ""
