"""The actor-critic family (A2C, ACER, ACKTR, PPO1, PPO2, TRPO, GAIL): `common/policies.py` as graph ops.

Feed-forward (`FeedForwardPolicy`: MlpPolicy, CnnPolicy) and recurrent (`LstmPolicy`: Mlp/Cnn, with or without
layer-normalised LSTM) policies. The architecture is read from the parameters themselves (names and shapes),
so custom subclasses export without their class being importable; what the weights cannot tell (the
activation, whether `net_arch` or the legacy `layers` layout built an LSTM policy) comes from the kwargs.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import ExportError, UnsupportedError
from .cnn import policy_features
from .description import ModelDescription, Space
from .distributions import distribution_head
from .graph_builder import GraphBuilder
from .mlp import activate
from .parameter_layouts import (ACTOR_CRITIC_SCOPE, LINEAR_LEAVES, LOG_STD, LSTM, LSTM_LAYER_NORM_LEAVES, LSTM_LEAVES,
                                POLICY_HEAD, POLICY_STEM, Q_HEAD, SHARED_STEM, VALUE_HEAD, VALUE_STEM, fc_scope,
                                has_nature_cnn, variable)

SCOPE = ACTOR_CRITIC_SCOPE
Layer = Tuple[str, int]  # (SB2 layer scope, width)
#: epsilon of SB2's own layer norm in the LnLSTM (`common/tf_layers.py:_ln`)
LSTM_LAYER_NORM_EPSILON = 1e-5


def build_actor_critic(builder: GraphBuilder, model: ModelDescription) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Add the policy graph to `builder`; return the document's `predict` entry and the resolved kwargs."""
    params = model.parameters
    names = [name for name in params if name.startswith(SCOPE)]
    kwargs = model.policy_kwargs
    activation = kwargs.get("act_fun", {"name": "tanh"})
    cnn = has_nature_cnn(params, SCOPE)
    recurrent = _lstm_variable("wx") in params

    features = policy_features(builder, model, SCOPE, cnn)
    resolved: Dict[str, Any] = {"feature_extraction": "cnn", "cnn_extractor": "nature_cnn"} if cnn else {
        "act_fun": activation}
    state: Optional[Dict[str, str]] = None
    if recurrent:
        before, after, pi_layers, vf_layers, legacy = infer_recurrent_arch(params, kwargs, cnn)
        latent = _mlp(builder, features, before, activation, params)
        latent, state = _lstm(builder, latent, params)
        latent = _mlp(builder, latent, after, activation, params)
        resolved.update(n_lstm=int(params[_lstm_variable("wh")].shape[0]), layer_norm=_lstm_variable("gx") in params)
        if legacy and not cnn:
            resolved["layers"] = [width for _, width in before]
        elif not legacy:
            resolved["net_arch"] = _net_arch(before) + ["lstm"] + _net_arch(after) + [_split_arch(pi_layers, vf_layers)]
    else:
        shared, pi_layers, vf_layers = infer_mlp_arch(params)
        latent = _mlp(builder, features, shared, activation, params)
        if not cnn:
            resolved["net_arch"] = _net_arch(shared) + [_split_arch(pi_layers, vf_layers)]
    pi_latent = _mlp(builder, latent, pi_layers, activation, params)
    vf_latent = _mlp(builder, latent, vf_layers, activation, params)

    value = _linear(builder, vf_latent, VALUE_HEAD, params)
    builder.op("squeeze", [value], {"axis": 1}, name="value")
    builder.declare_output("value", "state value estimate V(s), SB2's value_flat")
    flat = _linear(builder, pi_latent, POLICY_HEAD, params,
                   name="mean" if model.action_space.kind == "box" else "logits")
    logstd = _parameter(builder, LOG_STD, params) if model.action_space.kind == "box" else ""
    check_head(model.action_space, params)
    distribution = distribution_head(builder, model.action_space, flat, logstd)
    if model.algorithm == "ACER":
        _linear(builder, vf_latent, Q_HEAD, params, name="q_values")
        builder.declare_output("q_values", "ACER's Q-value head, one value per action")
    check_all_used(builder, names)
    predict = {"deterministic_default": False, "deterministic_action": "action",
               "stochastic_action": "action_sample", "distribution": distribution}
    if state is not None:
        predict["recurrent"] = state
    return predict, resolved


def infer_mlp_arch(params) -> Tuple[List[Layer], List[Layer], List[Layer]]:
    """Shared, policy-only and value-only layers, in order, from `model/{shared,pi,vf}_fc{i}/w:0`."""
    shared = _numbered_layers(params, SHARED_STEM)
    if [int(scope[len(SHARED_STEM):]) for scope, _ in shared] != list(range(len(shared))):
        raise ExportError("the shared layers are numbered {}; SB2's mlp_extractor numbers them 0, 1, ... (is this "
                          "a policy SBIF does not know?)".format([scope for scope, _ in shared]))
    return shared, _contiguous(params, POLICY_STEM), _contiguous(params, VALUE_STEM)


def infer_recurrent_arch(params, kwargs: Dict[str, Any], cnn: bool):
    """(layers before the LSTM, shared layers after it, pi-only, vf-only, legacy layout?) of an LstmPolicy.

    Legacy layout (`net_arch` not given): `pi_fc{i}` layers feed the LSTM and the heads read its output.
    `net_arch` layout: `shared_fc{i}` layers, the LSTM taking the missing index, then `pi_fc`/`vf_fc` layers.
    """
    shared = _numbered_layers(params, SHARED_STEM)
    legacy = "net_arch" not in kwargs
    if cnn or legacy:
        if shared or _numbered_layers(params, VALUE_STEM):
            raise ExportError("an LSTM policy without net_arch has no shared_fc or vf_fc layers; these parameters "
                              "do not fit SB2's LstmPolicy")
        return ([] if cnn else _contiguous(params, POLICY_STEM)), [], [], [], True
    indices = [int(scope[len(SHARED_STEM):]) for scope, _ in shared]
    missing = [i for i in range(len(shared) + 1) if i not in indices]
    if len(missing) != 1 or max(indices + [0]) > len(shared):
        raise ExportError("the shared layers around the LSTM are numbered {}; SB2 numbers them by position in "
                          "net_arch with one gap for 'lstm'".format(indices))
    position = missing[0]
    before = [layer for layer, i in zip(shared, indices) if i < position]
    after = [layer for layer, i in zip(shared, indices) if i > position]
    return before, after, _contiguous(params, POLICY_STEM), _contiguous(params, VALUE_STEM), False


def check_head(space: Space, params) -> None:
    width = {"discrete": space.n, "multi_binary": space.n,
             "multi_discrete": int(np.sum(space.nvec or [0])), "box": int(np.prod(space.shape))}[space.kind]
    outputs = params[variable(SCOPE + POLICY_HEAD, LINEAR_LEAVES[0])].shape[1]
    if outputs != width:
        raise ExportError("the policy head model/pi has {} outputs but the {} action space needs {}".format(
            outputs, space.kind, width))


def check_all_used(builder: GraphBuilder, names: List[str]) -> None:
    """Every `model/` parameter must be part of the graph (or be SB2's unused q head): else we misread it."""
    used = {name for node in builder.nodes for name in node["inputs"]}
    ignored = {variable(SCOPE + Q_HEAD, leaf) for leaf in LINEAR_LEAVES}
    unknown = [name for name in names if name not in used and name not in ignored]
    if unknown:
        raise UnsupportedError("the policy has parameters SBIF does not know how to use: {} (a custom policy "
                               "architecture?)".format(", ".join(unknown)))


def _lstm(builder: GraphBuilder, x: str, params) -> Tuple[str, Dict[str, str]]:
    """One step of SB2's `lstm` (`common/tf_layers.py`) with the state [c | h] and the reset mask as inputs."""
    n = int(params[_lstm_variable("wh")].shape[0])
    layer_norm = _lstm_variable("gx") in params
    leaves = LSTM_LEAVES + (tuple(leaf for leaf, _ in LSTM_LAYER_NORM_LEAVES) if layer_norm else ())
    p = {short: _parameter(builder, LSTM + "/" + short, params) for short in leaves}
    state = builder.add_input("state", "float32", (None, 2 * n), "state")
    mask = builder.add_input("mask", "float32", (None,), "mask")
    one = builder.op("constant", [], {"value": 1.0, "dtype": "float32"}, name="lstm1/one")
    keep = builder.op("expand_dims", [builder.op("sub", [one, mask], name="lstm1/not_done")], {"axis": 1},
                      name="lstm1/keep")
    cell, hidden = builder.op("split", [state], {"sizes": [n, n], "axis": 1}, name="lstm1/state", n_outputs=2)
    cell = builder.op("mul", [cell, keep], name="lstm1/c_masked")
    hidden = builder.op("mul", [hidden, keep], name="lstm1/h_masked")
    from_x = builder.op("matmul", [x, p["wx"]], name="lstm1/x_wx")
    from_h = builder.op("matmul", [hidden, p["wh"]], name="lstm1/h_wh")
    if layer_norm:
        eps = {"epsilon": LSTM_LAYER_NORM_EPSILON}
        from_x = builder.op("layer_norm", [from_x, p["gx"], p["bx"]], eps, name="lstm1/x_wx_ln")
        from_h = builder.op("layer_norm", [from_h, p["gh"], p["bh"]], eps, name="lstm1/h_wh_ln")
    gates = builder.op("add", [builder.op("add", [from_x, from_h], name="lstm1/z_sum"), p["b"]], name="lstm1/z")
    i, f, o, g = builder.op("split", [gates], {"sizes": [n] * 4, "axis": 1}, name="lstm1/gates", n_outputs=4)
    i = builder.op("sigmoid", [i], name="lstm1/input_gate")
    f = builder.op("sigmoid", [f], name="lstm1/forget_gate")
    o = builder.op("sigmoid", [o], name="lstm1/output_gate")
    g = builder.op("tanh", [g], name="lstm1/candidate")
    cell = builder.op("add", [builder.op("mul", [f, cell], name="lstm1/c_kept"),
                              builder.op("mul", [i, g], name="lstm1/c_written")], name="lstm1/c")
    shown = cell
    if layer_norm:
        shown = builder.op("layer_norm", [cell, p["gc"], p["bc"]], {"epsilon": LSTM_LAYER_NORM_EPSILON},
                           name="lstm1/c_ln")
    hidden = builder.op("mul", [o, builder.op("tanh", [shown], name="lstm1/c_tanh")], name="lstm1/h")
    builder.op("concat", [cell, hidden], {"axis": 1}, name="state_out")
    builder.declare_output("state_out", "the LSTM state [c | h] after this step")
    return hidden, {"state_input": state, "mask_input": mask, "state_output": "state_out"}


def _net_arch(layers: List[Layer]) -> List[int]:
    return [width for _, width in layers]


def _split_arch(pi_layers: List[Layer], vf_layers: List[Layer]) -> Dict[str, List[int]]:
    return {"pi": _net_arch(pi_layers), "vf": _net_arch(vf_layers)}


def _lstm_variable(leaf: str) -> str:
    return variable(SCOPE + LSTM, leaf)


def _numbered_layers(params, stem: str) -> List[Layer]:
    """The layers `{stem}{i}` present (`shared_fc`, `pi_fc`, `vf_fc`), by index, with their widths."""
    weight = LINEAR_LEAVES[0]
    pattern = re.compile(re.escape(SCOPE + stem) + r"(\d+)/" + weight + ":0$")
    found = sorted(int(m.group(1)) for m in (pattern.match(n) for n in params) if m)
    return [(fc_scope(stem, i), int(params[variable(SCOPE + fc_scope(stem, i), weight)].shape[1])) for i in found]


def _contiguous(params, stem: str) -> List[Layer]:
    layers = _numbered_layers(params, stem)
    if [scope for scope, _ in layers] != [fc_scope(stem, i) for i in range(len(layers))]:
        raise ExportError("the {} layers are numbered {}; SB2 numbers them 0, 1, ... (is this a policy SBIF "
                          "does not know?)".format(stem, [scope for scope, _ in layers]))
    return layers


def _mlp(builder: GraphBuilder, x: str, layers: List[Layer], activation: Dict[str, Any], params) -> str:
    for scope, _ in layers:
        x = activate(builder, _linear(builder, x, scope, params), activation, SCOPE + scope + "/act")
    return x


def _linear(builder: GraphBuilder, x: str, scope: str, params, name: str = "") -> str:
    weight, bias = (_parameter(builder, scope + "/" + leaf, params) for leaf in LINEAR_LEAVES)
    return builder.op("linear", [x, weight, bias], name=name or SCOPE + scope)


def _parameter(builder: GraphBuilder, short_name: str, params) -> str:
    name = SCOPE + short_name + ":0"
    if name not in params:
        raise ExportError("parameter {} is missing: the file is incomplete or not an SB2 actor-critic "
                          "policy".format(name))
    return name
