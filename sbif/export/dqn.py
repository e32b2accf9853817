"""DQN (`deepq/policies.py`, `FeedForwardPolicy` and its subclasses) as graph ops.

SB2's DQN policy computes Q-values from `deepq/model/`:
- features: `flatten(obs)` (feature_extraction "mlp") or nature_cnn on the min-max scaled image ("cnn", whose
  parameters live under `action_value/`);
- `action_value/`: `layers` hidden `fully_connected` layers (MLP mode only), each optionally followed by
  `tf.contrib.layers.layer_norm` and then the activation; a last `fully_connected` gives one score per action;
- `state_value/` (dueling only): the same hidden layers (in MLP *and* CNN mode) on the same features, and a
  last `fully_connected` with one output; then q = V + (A - mean_a(A)).

The architecture is read from the parameter names and shapes (`fully_connected{,_1,...}/weights`,
`LayerNorm{,_1,...}/gamma`, `c1..c3`, `fc1`), so custom subclasses such as the zoo's `CustomDQNPolicy` export
without their class; the activation comes from the kwargs (or the TF graph, see `live.trace_activation`).
`predict` is SB2's: argmax of q (deterministic, the default), or a draw from softmax(q) made as NumPy's
`random.choice` makes it (inverse CDF, `inverse_cdf_sample`) from the uniform noise input.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

from ..errors import ExportError, UnsupportedError
from .cnn import policy_features
from .description import ModelDescription
from .graph_builder import GraphBuilder
from .mlp import activate, contrib_layer_norm
from .parameter_layouts import (CONTRIB_DENSE_LEAVES, CONTRIB_DENSE_STEM, DQN_ACTION_SCOPE, DQN_EPSILON,
                                DQN_MODEL_SCOPE, DQN_NOISE_COPIES, DQN_STATE_SCOPE, DQN_TARGET, LAYER_NORM_LEAVES,
                                LAYER_NORM_STEM, has_nature_cnn, numbered_scope, variable)

SCOPE = DQN_MODEL_SCOPE
ACTION_SCOPE = DQN_ACTION_SCOPE
STATE_SCOPE = DQN_STATE_SCOPE
#: parameters DQN saves that inference does not use: exploration epsilon, target network, param-noise copies
IGNORED_PREFIXES = (DQN_EPSILON, DQN_TARGET) + DQN_NOISE_COPIES
UNIFORM_NOISE = "noise_uniform"
DEFAULT_ACTIVATION = {"name": "relu"}  # FeedForwardPolicy's act_fun=tf.nn.relu
WEIGHTS, BIASES = CONTRIB_DENSE_LEAVES
BETA, GAMMA = LAYER_NORM_LEAVES


def _layer_pattern(stem: str, leaves: Tuple[str, str]) -> "re.Pattern[str]":
    """`stem`, `stem_1`, ... with one of `leaves`: group 1 is the index (None for 0)."""
    return re.compile(r"{}(?:_(\d+))?/({}):0$".format(stem, "|".join(leaves)))


_DENSE = _layer_pattern(CONTRIB_DENSE_STEM, CONTRIB_DENSE_LEAVES)
_NORM = _layer_pattern(LAYER_NORM_STEM, LAYER_NORM_LEAVES)


class Branch:
    """One of the two towers: hidden dense layers (with or without layer norm), then the output layer."""

    def __init__(self, scope: str, params):
        self.scope = scope
        self.dense = _numbered(params, scope, _DENSE, CONTRIB_DENSE_STEM, CONTRIB_DENSE_LEAVES)
        self.norms = _numbered(params, scope, _NORM, LAYER_NORM_STEM, LAYER_NORM_LEAVES)
        if not self.dense:
            raise ExportError("{} has no fully_connected layer: this is not an SB2 DQN policy".format(scope))
        self.hidden = self.dense[:-1]
        if self.norms and len(self.norms) != len(self.hidden):
            raise UnsupportedError("{} has {} hidden layers but {} LayerNorm parameter sets; SB2's DQN policies "
                                   "normalise every hidden layer or none".format(scope, len(self.hidden),
                                                                                len(self.norms)))
        self.layer_norm = bool(self.norms)
        self.widths = [int(params[variable(name, WEIGHTS)].shape[1]) for name in self.hidden]
        self.outputs = int(params[variable(self.dense[-1], WEIGHTS)].shape[1])
        if self.layer_norm and 1 in self.widths:
            # contrib computes x * inv + (beta - mean * inv) with inv = gamma * rsqrt(0 + 1e-12): for one unit
            # that is beta plus the rounding noise of x * gamma * 1e6, which no layer_norm formula reproduces.
            raise UnsupportedError("{} has a layer-normalised hidden layer of width 1, where TensorFlow's "
                                   "contrib layer_norm returns beta plus rounding noise of x * gamma * 1e6; "
                                   "SBIF cannot reproduce that".format(scope))

    def build(self, builder: GraphBuilder, x: str, activation: Dict[str, Any], name: str = "") -> str:
        for index, layer in enumerate(self.hidden):
            x = builder.op("linear", [x, variable(layer, WEIGHTS), variable(layer, BIASES)], name=layer)
            if self.layer_norm:
                norm = self.norms[index]
                x = contrib_layer_norm(builder, x, variable(norm, GAMMA), variable(norm, BETA), norm)
            x = activate(builder, x, activation, layer + "/act")
        last = self.dense[-1]
        return builder.op("linear", [x, variable(last, WEIGHTS), variable(last, BIASES)], name=name or last)


def build_dqn(builder: GraphBuilder, model: ModelDescription) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Add the Q-network, the greedy action and the softmax sampling; return (predict entry, resolved kwargs)."""
    params = model.parameters
    if model.action_space.kind != "discrete":
        raise ExportError("DQN needs a Discrete action space, this model has {}".format(model.action_space.kind))
    n_actions = int(model.action_space.n)
    kwargs = model.policy_kwargs
    activation = kwargs.get("act_fun", DEFAULT_ACTIVATION)
    cnn = has_nature_cnn(params, ACTION_SCOPE)
    action = Branch(ACTION_SCOPE, params)
    state: Optional[Branch] = Branch(STATE_SCOPE, params) if any(
        name.startswith(STATE_SCOPE) for name in params) else None
    _check_architecture(action, state, cnn, n_actions)

    features = policy_features(builder, model, ACTION_SCOPE, cnn)

    if state is None:
        q_values = action.build(builder, features, activation, name="q_values")
    else:
        scores = action.build(builder, features, activation)
        state_score = state.build(builder, features, activation)
        # SB2: q = state_score + (action_scores - expand_dims(reduce_mean(action_scores, axis=1), 1))
        mean = builder.op("reduce_mean", [scores], name=SCOPE + "action_scores_mean")
        centered = builder.op("sub", [scores, mean], name=SCOPE + "action_scores_centered")
        q_values = builder.op("add", [state_score, centered], name="q_values")
    builder.op("argmax", [q_values], name="action")
    probabilities = builder.op("softmax", [q_values], name="probabilities")
    noise = builder.add_input(UNIFORM_NOISE, "float32", (None, 1), "noise", "uniform")
    builder.op("inverse_cdf_sample", [probabilities, noise], name="action_sample")
    builder.declare_output("action", "greedy action argmax(q_values), SB2's DQN predict(deterministic=True)")
    builder.declare_output("action_sample", "action drawn from softmax(q_values) as SB2's DQN predict("
                           "deterministic=False) does with numpy.random.choice: inverse CDF of the probabilities "
                           "at noise_uniform (one U[0,1) draw per row)")
    builder.declare_output(q_values, "Q-values, one per action (SB2's step_model.q_values)")
    builder.declare_output(probabilities, "softmax(q_values), SB2's DQN action_probability")
    _check_all_placed(builder, params)

    predict = {"deterministic_default": True, "deterministic_action": "action", "stochastic_action": "action_sample",
               "distribution": {"kind": "categorical",
                                "parameters": {"logits": q_values, "probabilities": probabilities}}}
    resolved: Dict[str, Any] = {"feature_extraction": "cnn" if cnn else "mlp", "dueling": state is not None}
    if cnn:
        resolved["cnn_extractor"] = "nature_cnn"
        if "pad" in kwargs:
            resolved["pad"] = kwargs["pad"]
    hidden_from = action if not cnn else state
    if hidden_from is not None:
        resolved["layers"] = list(hidden_from.widths)
        if hidden_from.widths:
            resolved["layer_norm"] = hidden_from.layer_norm
            resolved["act_fun"] = activation
    return predict, resolved


def _check_architecture(action: Branch, state: Optional[Branch], cnn: bool, n_actions: int) -> None:
    """The two towers must be the ones SB2's FeedForwardPolicy builds from one `layers`/`layer_norm` setting."""
    if action.outputs != n_actions:
        raise ExportError("{} ends with {} outputs but the action space has {} actions".format(
            action.scope, action.outputs, n_actions))
    if state is not None and state.outputs != 1:
        raise ExportError("{} ends with {} outputs; SB2's dueling state value has 1".format(state.scope, state.outputs))
    if cnn and action.hidden:
        raise UnsupportedError("{} has dense layers between nature_cnn and the action scores; SB2's DQN "
                               "CnnPolicy has none (a custom policy?)".format(action.scope))
    if not cnn and state is not None and (state.widths, state.layer_norm) != (action.widths, action.layer_norm):
        raise UnsupportedError("the action and state towers differ (hidden widths {} vs {}, layer norm {} vs {}); "
                               "SB2's DQN FeedForwardPolicy builds both from one `layers` (a custom policy?)".format(
                                   action.widths, state.widths, action.layer_norm, state.layer_norm))


def _check_all_placed(builder: GraphBuilder, params) -> None:
    """Every `deepq/model/` parameter is in the graph; every other parameter is one inference never reads."""
    used = {name for node in builder.nodes for name in node["inputs"]}
    unknown = [name for name in params
               if name not in used and (name.startswith(SCOPE) or not name.startswith(IGNORED_PREFIXES))]
    if unknown:
        raise UnsupportedError("the DQN policy has parameters SBIF does not know how to use: {} (a custom policy "
                               "architecture?)".format(", ".join(unknown)))


def _numbered(params, scope: str, pattern, stem: str, leaves: Tuple[str, str]) -> List[str]:
    """The layer scopes `{scope}{stem}`, `{scope}{stem}_1`, ... present, in order; they must be contiguous."""
    indices = sorted({int(m.group(1) or 0) for m in (pattern.match(name[len(scope):]) for name in params
                                                     if name.startswith(scope)) if m})
    if indices != list(range(len(indices))):
        raise ExportError("the {} layers of {} are numbered {}; TensorFlow numbers them 0 (no suffix), 1, 2, ... "
                          "without gaps".format(stem, scope, indices))
    layers = [scope + numbered_scope(stem, i) for i in indices]
    for layer in layers:
        missing = [leaf for leaf in leaves if variable(layer, leaf) not in params]
        if missing:
            raise ExportError("parameter {}/{}:0 is missing".format(layer, missing[0]))
    return layers
