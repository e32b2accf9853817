"""SB3's and sb3-contrib's policy classes, and what each one fixes: the family its graph belongs to, the feature
extractor and activation it uses unless `policy_kwargs` say otherwise, and the flags its constructor sets.

This is the one home of that knowledge: the safe loader reads a class the file names (module and name, never
imported), the live loader the class of the loaded policy; both resolve it here. Sizes are never taken from here:
the state dict's shapes say them.
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Tuple

from ...errors import UnsupportedError, preview

#: torch.nn activations SB3 users pass as `activation_fn`, by class name -> SBIF op (SPEC ops.md) and its attributes,
#: at the defaults SB3 builds them with (`activation_fn()`, no arguments). Softplus: torch returns x above 20 and
#: TF-derived `softplus` above about 13.9; the two differ there by less than exp(-13.9) relative, below float32's
#: rounding, so the op's tolerance holds.
ACTIVATIONS: Dict[str, Dict[str, object]] = {
    "Tanh": {"name": "tanh"},
    "ReLU": {"name": "relu"},
    "ReLU6": {"name": "relu6"},
    "ELU": {"name": "elu"},
    "SELU": {"name": "selu"},
    "LeakyReLU": {"name": "leaky_relu", "alpha": 0.01},
    "Sigmoid": {"name": "sigmoid"},
    "SiLU": {"name": "swish"},
    "Softplus": {"name": "softplus"},
    "Softsign": {"name": "softsign"},
    "Identity": {"name": "identity"},
    # torch's own compositions of SBIF ops, at their defaults (torch/nn/modules/activation.py; CELU's alpha is 1,
    # where it is ELU; Hardtanh's bounds are -1 and 1); `torch_layers.activate` builds them
    "CELU": {"name": "elu"},
    "Hardtanh": {"composite": "hardtanh"},
    "Hardswish": {"composite": "hardswish"},
    "Mish": {"composite": "mish"},
    "GELU": {"composite": "gelu"},
}
#: Where torch keeps its activation classes (`torch.nn.ReLU` pickles as this module's).
ACTIVATION_MODULE = "torch.nn.modules.activation"
IDENTITY_MODULE = "torch.nn.modules.linear"

#: The feature extractors SBIF expresses, by class name; any other `features_extractor_class` is custom code.
EXTRACTOR_MODULE = "stable_baselines3.common.torch_layers"
FLATTEN, NATURE_CNN, COMBINED = "FlattenExtractor", "NatureCNN", "CombinedExtractor"
EXTRACTORS = (FLATTEN, NATURE_CNN, COMBINED)


class PolicyClass(NamedTuple):
    """What a policy class fixes. `family` names the graph builder; `activation` is the class name of its default
    `activation_fn`; `flags` are constructor defaults that change the graph (ARS's bias and squashing)."""

    family: str
    algorithms: Tuple[str, ...]
    activation: str
    flags: Tuple[Tuple[str, bool], ...] = ()


_ACTOR_CRITIC = ("ActorCriticPolicy", "ActorCriticCnnPolicy", "MultiInputActorCriticPolicy")
_Q_NETWORK = ("CnnPolicy", "MultiInputPolicy")

#: (module, class name) -> what it fixes. Aliases such as `MlpPolicy` pickle as the class they alias.
POLICY_CLASSES: Dict[Tuple[str, str], PolicyClass] = {}
for _name in _ACTOR_CRITIC:
    POLICY_CLASSES[("stable_baselines3.common.policies", _name)] = PolicyClass(
        "actor_critic", ("A2C", "PPO", "TRPO"), "Tanh")
for _name in ("DQNPolicy",) + _Q_NETWORK:
    POLICY_CLASSES[("stable_baselines3.dqn.policies", _name)] = PolicyClass("dqn", ("DQN",), "ReLU")
for _name in ("QRDQNPolicy",) + _Q_NETWORK:
    POLICY_CLASSES[("sb3_contrib.qrdqn.policies", _name)] = PolicyClass("qrdqn", ("QRDQN",), "ReLU")
for _name in ("SACPolicy",) + _Q_NETWORK:
    POLICY_CLASSES[("stable_baselines3.sac.policies", _name)] = PolicyClass("sac", ("SAC",), "ReLU")
for _name in ("TQCPolicy",) + _Q_NETWORK:
    POLICY_CLASSES[("sb3_contrib.tqc.policies", _name)] = PolicyClass("sac", ("TQC",), "ReLU")
for _name in ("TD3Policy",) + _Q_NETWORK:
    POLICY_CLASSES[("stable_baselines3.td3.policies", _name)] = PolicyClass("td3", ("TD3", "DDPG"), "ReLU")
for _name in ("MaskableActorCriticPolicy", "MaskableActorCriticCnnPolicy", "MaskableMultiInputActorCriticPolicy"):
    POLICY_CLASSES[("sb3_contrib.common.maskable.policies", _name)] = PolicyClass(
        "maskable_actor_critic", ("MaskablePPO",), "Tanh")
for _name in ("RecurrentActorCriticPolicy", "RecurrentActorCriticCnnPolicy", "RecurrentMultiInputActorCriticPolicy"):
    POLICY_CLASSES[("sb3_contrib.common.recurrent.policies", _name)] = PolicyClass(
        "recurrent_actor_critic", ("RecurrentPPO",), "Tanh")
POLICY_CLASSES[("sb3_contrib.crossq.policies", "CrossQPolicy")] = PolicyClass("crossq", ("CrossQ",), "ReLU")
POLICY_CLASSES[("sb3_contrib.ars.policies", "ARSPolicy")] = PolicyClass(
    "ars", ("ARS",), "ReLU", (("with_bias", True), ("squash_output", True)))
POLICY_CLASSES[("sb3_contrib.ars.policies", "ARSLinearPolicy")] = PolicyClass(
    "ars", ("ARS",), "ReLU", (("with_bias", False), ("squash_output", False)))
del _name

#: Policy classes of algorithms SBIF does not export yet, with what is missing (refused by name).
NOT_YET: Dict[str, str] = {}
#: CrossQ's BatchRenorm epsilon unless `policy_kwargs` set `batch_norm_eps` (`crossq/policies.py`; not in the state
#: dict).
CROSSQ_BATCH_NORM_EPS = 1e-3


def policy_class(module: str, name: str) -> PolicyClass:
    """What the policy class `module.name` fixes, or UnsupportedError naming it (a custom policy class is code the
    file does not describe; an SB3 one SBIF does not export yet says what is missing)."""
    known = POLICY_CLASSES.get((module, name))
    if known is not None:
        return known
    if module in NOT_YET:
        raise UnsupportedError("{}.{}: {} are not supported by this SBIF version yet".format(
            module, name, NOT_YET[module]))
    raise UnsupportedError("the policy class {} is not one of SB3's or sb3-contrib's: a custom policy is code the "
                           "file does not describe, so SBIF cannot export it".format(
                               preview("{}.{}".format(module, name))))


def default_extractor(name: str) -> str:
    """The feature extractor a policy class uses unless `features_extractor_class` is given."""
    if "MultiInput" in name:
        return COMBINED
    if "Cnn" in name:
        return NATURE_CNN
    return FLATTEN
