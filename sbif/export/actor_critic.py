"""The actor-critic family (A2C, ACER, ACKTR, PPO1, PPO2, TRPO, GAIL): `common/policies.py` as graph ops.

The architecture is read from the parameters themselves (names and shapes), so custom subclasses with any
`net_arch` export without their class being importable. What the weights cannot tell (the activation) comes
from the policy kwargs.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Tuple

import numpy as np

from ..errors import ExportError, UnsupportedError
from .description import ModelDescription, Space
from .distributions import distribution_head
from .graph_builder import GraphBuilder
from .preprocess import flat_features, processed_observation

SCOPE = "model/"
Layer = Tuple[str, int]  # (SB2 layer scope, width)


def build_actor_critic(builder: GraphBuilder, model: ModelDescription) -> Dict[str, Any]:
    """Add the policy graph to `builder`; return the document's `predict` entry."""
    params = model.parameters
    names = [name for name in params if name.startswith(SCOPE)]
    if any(re.match(r"model/c\d+/w:0$", name) for name in names):
        raise UnsupportedError("{} {} uses a CNN feature extractor; this SBIF version exports MLP actor-critic "
                               "policies only".format(model.algorithm, model.policy_class))
    if any(name.startswith(SCOPE + "lstm") for name in names):
        raise UnsupportedError("{} {} is recurrent (LSTM); this SBIF version exports feed-forward actor-critic "
                               "policies only".format(model.algorithm, model.policy_class))
    shared, pi_layers, vf_layers = infer_mlp_arch(params)
    activation = model.policy_kwargs.get("act_fun", {"name": "tanh"})
    model.policy_kwargs = {"net_arch": [width for _, width in shared] + [
        {"pi": [w for _, w in pi_layers], "vf": [w for _, w in vf_layers]}], "act_fun": activation}

    features = flat_features(builder, processed_observation(builder, model.observation_space, scale=False))
    latent = _mlp(builder, features, shared, activation, params)
    pi_latent = _mlp(builder, latent, pi_layers, activation, params)
    vf_latent = _mlp(builder, latent, vf_layers, activation, params)

    value = _linear(builder, vf_latent, "vf", params)
    builder.op("squeeze", [value], {"axis": 1}, name="value")
    builder.declare_output("value", "state value estimate V(s), SB2's value_flat")
    flat = _linear(builder, pi_latent, "pi", params, name="mean" if model.action_space.kind == "box" else "logits")
    logstd = _parameter(builder, "pi/logstd", params) if model.action_space.kind == "box" else ""
    check_head(model.action_space, params)
    distribution = distribution_head(builder, model.action_space, flat, logstd)
    if model.algorithm == "ACER":
        _linear(builder, vf_latent, "q", params, name="q_values")
        builder.declare_output("q_values", "ACER's Q-value head, one value per action")
    check_all_used(builder, names)
    return {"deterministic_default": False, "deterministic_action": "action", "stochastic_action": "action_sample",
            "distribution": distribution}


def infer_mlp_arch(params) -> Tuple[List[Layer], List[Layer], List[Layer]]:
    """Shared, policy-only and value-only layers, in order, from `model/{shared,pi,vf}_fc{i}/w:0`."""
    def layers(kind: str) -> List[Layer]:
        found = sorted(int(m.group(1)) for m in (re.match(r"model/{}_fc(\d+)/w:0$".format(kind), n) for n in params)
                       if m)
        if found != list(range(len(found))):
            raise ExportError("the {}_fc layers are numbered {}; SB2's mlp_extractor numbers them 0, 1, ... "
                              "(is this a policy SBIF does not know?)".format(kind, found))
        return [("{}_fc{}".format(kind, i), int(params["model/{}_fc{}/w:0".format(kind, i)].shape[1])) for i in found]

    return layers("shared"), layers("pi"), layers("vf")


def check_head(space: Space, params) -> None:
    width = {"discrete": space.n, "multi_binary": space.n,
             "multi_discrete": int(np.sum(space.nvec or [0])), "box": int(np.prod(space.shape))}[space.kind]
    if params[SCOPE + "pi/w:0"].shape[1] != width:
        raise ExportError("the policy head model/pi has {} outputs but the {} action space needs {}".format(
            params[SCOPE + "pi/w:0"].shape[1], space.kind, width))


def check_all_used(builder: GraphBuilder, names: List[str]) -> None:
    """Every `model/` parameter must be part of the graph (or be SB2's unused q head): else we misread it."""
    used = {name for node in builder.nodes for name in node["inputs"]}
    ignored = {SCOPE + "q/w:0", SCOPE + "q/b:0"}
    unknown = [name for name in names if name not in used and name not in ignored]
    if unknown:
        raise UnsupportedError("the policy has parameters SBIF does not know how to use: {} (a custom policy "
                               "architecture?)".format(", ".join(unknown)))


def _mlp(builder: GraphBuilder, x: str, layers: List[Layer], activation: Dict[str, Any], params) -> str:
    for scope, _ in layers:
        x = _activate(builder, _linear(builder, x, scope, params), activation, SCOPE + scope + "/act")
    return x


def _activate(builder: GraphBuilder, x: str, activation: Dict[str, Any], name: str) -> str:
    if activation["name"] == "identity":
        return x
    attrs = {key: value for key, value in activation.items() if key != "name"}
    return builder.op(activation["name"], [x], attrs, name=name)


def _linear(builder: GraphBuilder, x: str, scope: str, params, name: str = "") -> str:
    weight, bias = _parameter(builder, scope + "/w", params), _parameter(builder, scope + "/b", params)
    return builder.op("linear", [x, weight, bias], name=name or SCOPE + scope)


def _parameter(builder: GraphBuilder, short_name: str, params) -> str:
    name = SCOPE + short_name + ":0"
    if name not in params:
        raise ExportError("parameter {} is missing: the file is incomplete or not an SB2 actor-critic "
                          "policy".format(name))
    if name not in builder.specs:
        raise ExportError("internal: parameter {} was not registered".format(name))
    return name
