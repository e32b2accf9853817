"""The off-policy actor-critic family (SAC, TD3, DDPG): their policies and `predict` as graph ops.

Sources of truth: `sac/policies.py`, `td3/policies.py`, `ddpg/policies.py` (the networks), `sac/sac.py`,
`td3/td3.py`, `ddpg/ddpg.py` (`predict`, DDPG's `_policy` and observation normalization),
`common/math_util.py` (`unscale_action`) and `common/mpi_running_mean_std.py` (DDPG's running statistics).

Every tower (actor, critics) is read from the parameter names and shapes under its own scope:
`[c1, c2, c3 /w,b, fc1/w,b]` (nature_cnn) or nothing (flatten), then `fc{i}/kernel,bias` each optionally followed
by `LayerNorm{,_i}/beta,gamma`, then the head. CNN towers have both `fc1/w` (nature_cnn's dense layer) and
`fc1/kernel` (the second MLP layer): the leaf name tells them apart. What the weights cannot tell (the activation,
DDPG's observation range and the exploration noise) comes from the kwargs and `ModelDescription.extra`.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import ExportError, UnsupportedError
from .cnn import check_cnn_kwargs, nature_cnn
from .description import ModelDescription, Space
from .distributions import NORMAL_NOISE
from .graph_builder import GraphBuilder
from .mlp import activate, contrib_layer_norm
from .parameter_layouts import (ACTOR, CRITICS, DDPG_ACTOR_HEAD, DDPG_CRITIC, DDPG_CRITIC_HEAD, DDPG_NOISE_ACTORS,
                                DDPG_OBSERVATION_STATISTICS, DDPG_RETURN_STATISTICS, KERAS_DENSE_LEAVES,
                                LAYER_NORM_LEAVES, LAYER_NORM_STEM, OFF_POLICY_FC_STEM, OFF_POLICY_SCOPE, Q_FUNCTIONS,
                                RUNNING_STATISTICS_LEAVES, SAC_LOG_ENTROPY, SAC_LOG_STD, SAC_MEAN, STATE_VALUE,
                                has_nature_cnn, numbered_scope, off_policy_fc_scope)
from .preprocess import flat_features, processed_observation

#: SAC's clip of the log standard deviation (`sac/policies.py` LOG_STD_MIN, LOG_STD_MAX)
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
#: DDPG's defaults (`ddpg/ddpg.py` __init__) when a description does not carry them
DEFAULT_OBSERVATION_RANGE = (-5.0, 5.0)
DEFAULT_RETURN_RANGE = (-np.inf, np.inf)
#: RunningMeanStd's variance floor (`common/mpi_running_mean_std.py`: tf.maximum(var, 1e-2))
RUNNING_VARIANCE_FLOOR = 1e-2
#: parameters under model/ that inference never reads (SAC's entropy coefficient, when learned)
TRAINING_ONLY = (SAC_LOG_ENTROPY,)
#: the towers' scopes: the actor, SAC's and TD3's critics (and SAC's state value), DDPG's critic and noisy actor
ACTOR_PREFIX = OFF_POLICY_SCOPE + ACTOR + "/"
CRITICS_PREFIX = OFF_POLICY_SCOPE + CRITICS + "/"
STATE_VALUE_PREFIX = CRITICS_PREFIX + STATE_VALUE + "/"
DDPG_CRITIC_PREFIX = OFF_POLICY_SCOPE + DDPG_CRITIC + "/"
DDPG_NOISE_ACTOR_PREFIX = DDPG_NOISE_ACTORS[0] + ACTOR + "/"
KERNEL_LEAF, BIAS_LEAF = KERAS_DENSE_LEAVES

Predict = Dict[str, Any]


# -- the three algorithms ---------------------------------------------------------------------------------------
def build_sac(builder: GraphBuilder, model: ModelDescription) -> Tuple[Predict, Dict[str, Any]]:
    """SAC: squashed Gaussian actor, two Q critics and a state-value critic."""
    net = _Network(builder, model)
    width = net.action_width()
    hidden = net.mlp(net.features(ACTOR_PREFIX), ACTOR_PREFIX)
    mean = net.dense(hidden, ACTOR_PREFIX + SAC_MEAN, width, name="mean")
    log_std = _clip(net, net.dense(hidden, ACTOR_PREFIX + SAC_LOG_STD, width), LOG_STD_MIN, LOG_STD_MAX, "float32",
                    "log_std")
    std = builder.op("exp", [log_std], name="std")
    squashed = builder.op("tanh", [mean], name="scaled_action")
    unscale(builder, squashed, model.action_space, "action")
    noise = builder.add_input(NORMAL_NOISE, "float32", (None, width), "noise", "normal")
    raw = builder.op("add", [mean, builder.op("mul", [noise, std], name="scaled_noise")], name="raw_sample")
    unscale(builder, builder.op("tanh", [raw], name="scaled_action_sample"), model.action_space, "action_sample")
    builder.declare_output("action", "deterministic action: unscale(tanh(mean)), as SB2's predict(deterministic="
                                     "True); not clipped, as in SB2")
    builder.declare_output("action_sample", "sampled action: unscale(tanh(mean + std * noise_normal))")
    builder.declare_output("mean", "mean of the Gaussian before the tanh squash (SB2's proba_step)")
    builder.declare_output("std", "standard deviation before the squash: exp(clip(log_std, -20, 2))")

    if net.has_tower(STATE_VALUE_PREFIX):
        value = net.dense(net.mlp(net.features(CRITICS_PREFIX), STATE_VALUE_PREFIX), STATE_VALUE_PREFIX + STATE_VALUE, 1)
        builder.op("squeeze", [value], {"axis": 1}, name="value")
        builder.declare_output("value", "SAC's state-value critic V(s) (values_fn/vf)")
    for q in Q_FUNCTIONS:
        _critic(net, q, squashed, "tanh(mean)")
    net.check_all_used()
    predict = {"deterministic_default": True, "deterministic_action": "action", "stochastic_action": "action_sample"}
    return predict, net.resolved_kwargs()


def build_td3(builder: GraphBuilder, model: ModelDescription) -> Tuple[Predict, Dict[str, Any]]:
    """TD3: deterministic tanh actor; stochastic predict adds the saved NormalActionNoise (if any)."""
    net = _Network(builder, model)
    width = net.action_width()
    hidden = net.mlp(net.features(ACTOR_PREFIX), ACTOR_PREFIX)
    squashed = builder.op("tanh", [net.dense(hidden, ACTOR_PREFIX + SAC_MEAN, width)], name="scaled_action")
    unscale(builder, squashed, model.action_space, "action")
    builder.declare_output("action", "deterministic action: unscale(tanh(actor)), as SB2's predict")
    stochastic: Optional[str] = "action"
    noise = model.extra.get("action_noise")
    if noise is not None:
        if noise.get("kind") == "normal":
            # td3.py: np.clip(actions + self.action_noise(), -1, 1): float32 + float64 noise, in float64
            noisy = builder.op("add", [builder.op("cast", [squashed], {"to": "float64"}, name="scaled_action/f64"),
                                       action_noise(builder, noise, width)], name="noisy_scaled_action")
            clipped = _clip(net, noisy, -1.0, 1.0, "float64", "noisy_scaled_action/clip")
            unscale(builder, clipped, model.action_space, "action_sample")
            builder.declare_output("action_sample", "exploration action: unscale(clip(tanh(actor) + mean + sigma * "
                                                    "noise_normal, -1, 1)) in float64, as SB2 adds its "
                                                    "NormalActionNoise")
            stochastic = "action_sample"
        else:
            stochastic = None
    for q in Q_FUNCTIONS:
        _critic(net, q, squashed, "tanh(actor)")
    net.check_all_used()
    predict = {"deterministic_default": True, "deterministic_action": "action", "stochastic_action": stochastic}
    return predict, net.resolved_kwargs()


def build_ddpg(builder: GraphBuilder, model: ModelDescription) -> Tuple[Predict, Dict[str, Any]]:
    """DDPG: observation normalization and clip, tanh actor, clip to [-1, 1], unscale; one Q critic."""
    net = _Network(builder, model, normalize=True)
    width = net.action_width()
    squashed = _ddpg_actor(net, ACTOR_PREFIX, width)
    clipped = _clip(net, squashed, -1.0, 1.0, "float32", "clipped_action")
    unscale(builder, clipped, model.action_space, "action")
    builder.declare_output("action", "deterministic action: unscale(clip(tanh(actor(clip(normalize(obs)))), -1, 1))")

    extra = model.extra
    noise = extra.get("action_noise")
    param_noise = bool(extra.get("param_noise", False))
    stochastic: Optional[str] = "action"
    if noise is not None and noise.get("kind") != "normal":
        stochastic = None
    elif noise is not None or param_noise:
        # ddpg.py _policy: the perturbed actor (param noise), then `action += noise` in place (a float32 array,
        # computed in float64), then np.clip(action, -1, 1)
        sample = _ddpg_actor(net, DDPG_NOISE_ACTOR_PREFIX, width) if param_noise else squashed
        if noise is not None:
            wide = builder.op("cast", [sample], {"to": "float64"}, name="exploration/f64")
            noisy = builder.op("add", [wide, action_noise(builder, noise, width)], name="exploration/noisy")
            sample = builder.op("cast", [noisy], {"to": "float32"}, name="exploration/noisy_f32")
        sample = _clip(net, sample, -1.0, 1.0, "float32", "exploration/clip")
        unscale(builder, sample, model.action_space, "action_sample")
        what = " + ".join(["tanh(perturbed actor noise/pi)" if param_noise else "tanh(actor)"] +
                          (["mean + sigma * noise_normal"] if noise is not None else []))
        builder.declare_output("action_sample", "exploration action, as SB2's predict(deterministic=False): "
                                                "unscale(clip({}, -1, 1))".format(what))
        stochastic = "action_sample"

    if net.has_tower(DDPG_CRITIC_PREFIX):
        hidden = net.mlp(net.features(DDPG_CRITIC_PREFIX), DDPG_CRITIC_PREFIX, inject=squashed)
        q_value = net.dense(hidden, DDPG_CRITIC_PREFIX + DDPG_CRITIC_HEAD, 1)
        low, high = extra.get("return_range", DEFAULT_RETURN_RANGE)
        q_value = _clip(net, q_value, low, high, "float32", DDPG_CRITIC_PREFIX + "clipped")
        statistics = net.running_statistics(DDPG_RETURN_STATISTICS)
        if statistics is not None:
            mean, std = statistics
            q_value = builder.op("add", [builder.op("mul", [q_value, std], name="qf/times_std"), mean],
                                 name="qf/denormalized")
        builder.op("squeeze", [q_value], {"axis": 1}, name="qf")
        builder.declare_output("qf", "critic Q(s, a) at a = tanh(actor) (before the [-1, 1] clip), clipped to "
                                     "return_range and de-normalized with ret_rms: SB2's critic_with_actor_tf")
    net.check_all_used()
    predict = {"deterministic_default": True, "deterministic_action": "action", "stochastic_action": stochastic}
    return predict, net.resolved_kwargs()


# -- shared pieces ------------------------------------------------------------------------------------------------
def unscale(builder: GraphBuilder, scaled: str, space: Space, name: str) -> str:
    """SB2's `unscale_action`: `low + (0.5 * (a + 1.0) * (high - low))`, evaluated as NumPy does it.

    `a + 1.0` and `0.5 * ...` stay in a's dtype (Python floats do not promote arrays); `high - low` is computed in
    the space's dtype; the product and the sum promote to the common dtype of a and the space.
    """
    dtype = builder.spec(scaled).dtype
    result = np.result_type(np.dtype(dtype), np.dtype(space.dtype)).name
    one = builder.op("constant", [], {"value": 1.0, "dtype": dtype}, name=name + "/one")
    half = builder.op("constant", [], {"value": 0.5, "dtype": dtype}, name=name + "/half")
    plus_one = builder.op("add", [scaled, one], name=name + "/plus_one")
    halved = builder.op("mul", [half, plus_one], name=name + "/half_of")
    if result != dtype:
        halved = builder.op("cast", [halved], {"to": result}, name=name + "/promoted")
    with np.errstate(over="ignore", invalid="ignore"):
        span = (space.high - space.low).astype(result)
    span = _shared_tensor(builder, "action_span_" + result, span)
    low = _shared_tensor(builder, "action_low_" + result, space.low.astype(result))
    return builder.op("add", [low, builder.op("mul", [halved, span], name=name + "/stretched")], name=name)


def action_noise(builder: GraphBuilder, noise: Dict[str, Any], width: int) -> str:
    """SB2's NormalActionNoise draw `np.random.normal(mean, sigma)` = mean + sigma * z in float64, with z the
    float32 `noise_normal` input [B, k]: k = 1 when mean and sigma are scalars (SB2 then adds one value to every
    action component), else the action width."""
    mean = np.asarray(noise["mean"], dtype=np.float64)
    sigma = np.asarray(noise["sigma"], dtype=np.float64)
    try:
        shape = np.broadcast(mean, sigma).shape
    except ValueError:
        shape = None
    if shape not in ((), (1,), (width,)):
        raise UnsupportedError("NormalActionNoise with mean {} and sigma {} does not fit an action of {} "
                               "components".format(mean.shape, sigma.shape, width))
    k = width if shape == (width,) else 1
    z = builder.add_input(NORMAL_NOISE, "float32", (None, k), "noise", "normal")
    mean = builder.constant_tensor("action_noise_mean", np.broadcast_to(mean, (k,)).copy())
    sigma = builder.constant_tensor("action_noise_sigma", np.broadcast_to(sigma, (k,)).copy())
    wide = builder.op("cast", [z], {"to": "float64"}, name="action_noise/z")
    return builder.op("add", [mean, builder.op("mul", [sigma, wide], name="action_noise/scaled")],
                      name="action_noise")


def running_mean_std(runningsum: np.ndarray, runningsumsq: np.ndarray, count: np.ndarray
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """RunningMeanStd's `mean` and `std` (`common/mpi_running_mean_std.py`), with its dtype steps:
    mean = float32(sum / count) (division in float64); std = sqrt(max(float32(sumsq / count) - mean², 1e-2)) in
    float32. Every step is an IEEE-754 correctly rounded operation in the same dtype as TensorFlow's."""
    runningsum, runningsumsq = np.asarray(runningsum, np.float64), np.asarray(runningsumsq, np.float64)
    count = np.asarray(count, np.float64)
    with np.errstate(all="ignore"):
        mean = (runningsum / count).astype(np.float32)
        variance = (runningsumsq / count).astype(np.float32) - np.square(mean)
        std = np.sqrt(np.maximum(variance, np.float32(RUNNING_VARIANCE_FLOOR)))
    return mean, std


class _Network:
    """Reads towers from the parameters and adds their ops; remembers what it used and what it found."""

    def __init__(self, builder: GraphBuilder, model: ModelDescription, normalize: bool = False):
        self.builder, self.model, self.params = builder, model, model.parameters
        kwargs = model.policy_kwargs
        self.activation = kwargs.get("act_fun", {"name": "relu"})
        self.cnn = has_nature_cnn(self.params, ACTOR_PREFIX)
        if self.cnn:
            check_cnn_kwargs(kwargs)
        self.padding = kwargs.get("pad", "VALID")
        self.layers: Optional[List[int]] = None
        self.layer_norm: Optional[bool] = None
        self._check_action_space(model.action_space)
        x = processed_observation(builder, model.observation_space, scale=self.cnn)
        if normalize:
            x = self._normalize_observation(x)
        self.observation = x
        self._features: Dict[str, str] = {}

    # -- towers -----------------------------------------------------------------------------------------------
    def has_tower(self, prefix: str) -> bool:
        return any(name.startswith(prefix) for name in self.params)

    def features(self, prefix: str) -> str:
        """nature_cnn at `prefix` for CNN policies, else the flattened observation (shared by every tower)."""
        key = prefix if self.cnn else ""
        if key not in self._features:
            self._features[key] = self._cnn(prefix) if self.cnn else flat_features(self.builder, self.observation)
        return self._features[key]

    def _cnn(self, prefix: str) -> str:
        if not has_nature_cnn(self.params, prefix):
            raise ExportError("the actor has a CNN but the tower {} has none: these parameters do not fit SB2's "
                              "policies".format(prefix.rstrip("/")))
        if len(self.builder.spec(self.observation).shape) != 4:
            raise ExportError("nature_cnn needs image observations [H, W, C]; this observation space gives {}".format(
                self.builder.spec(self.observation)))
        return nature_cnn(self.builder, self.observation, self.params, prefix, self.padding)

    def mlp(self, x: str, prefix: str, inject: Optional[str] = None) -> str:
        """`fc{i}` dense layers, each followed by contrib layer norm (if the tower has it) and the activation;
        `inject` is concatenated after the first layer (DDPG's critic takes the action there)."""
        pattern = re.compile(re.escape(prefix + OFF_POLICY_FC_STEM) + r"(\d+)/" + KERNEL_LEAF + ":0$")
        found = sorted(int(m.group(1)) for m in (pattern.match(name) for name in self.params) if m)
        if not found or found != list(range(len(found))):
            raise ExportError("the layers of {} are numbered {}; SB2 numbers them fc0, fc1, ... and has at least "
                              "one".format(prefix.rstrip("/"), found))
        norms = [prefix + numbered_scope(LAYER_NORM_STEM, i) for i in found]
        beta, gamma = LAYER_NORM_LEAVES
        present = [norm + "/" + gamma + ":0" in self.params for norm in norms]
        if any(present) and not all(present):
            raise ExportError("{} has layer norm after some layers only; SB2 normalizes all or none".format(
                prefix.rstrip("/")))
        widths = []
        for i, norm in zip(found, norms):
            scope = off_policy_fc_scope(prefix, i)
            node = off_policy_fc_scope(prefix + "mlp/", i)  # nature_cnn's own fc1 (w, b) may sit in the same scope
            kernel = self.parameter(scope + "/" + KERNEL_LEAF)
            x = self.builder.op("linear", [x, kernel, self.parameter(scope + "/" + BIAS_LEAF)], name=node)
            widths.append(int(self.params[kernel].shape[1]))
            if present[0] and widths[-1] == 1:
                raise UnsupportedError("{} is a layer-normalised layer of width 1: its variance is 0 and TensorFlow's "
                                       "layer norm returns beta plus amplified rounding error, which no other runtime "
                                       "reproduces".format(scope))
            if present[0]:
                x = contrib_layer_norm(self.builder, x, self.parameter(norm + "/" + gamma),
                                       self.parameter(norm + "/" + beta), node + "/layer_norm")
            x = activate(self.builder, x, self.activation, node + "/act")
            if i == 0 and inject is not None:
                x = self.builder.op("concat", [x, inject], {"axis": -1}, name=node + "/with_action")
        if prefix == ACTOR_PREFIX:
            self.layers, self.layer_norm = widths, present[0]
        return x

    def dense(self, x: str, scope: str, width: int, name: str = "") -> str:
        weight = self.parameter(scope + "/" + KERNEL_LEAF)
        if self.params[weight].shape[1] != width:
            raise ExportError("{} has {} outputs, expected {}".format(scope, self.params[weight].shape[1], width))
        return self.builder.op("linear", [x, weight, self.parameter(scope + "/" + BIAS_LEAF)], name=name or scope)

    def parameter(self, short_name: str) -> str:
        name = short_name + ":0"
        if name not in self.params:
            raise ExportError("parameter {} is missing: the file is incomplete or not an SB2 {} policy".format(
                name, self.model.algorithm))
        return name

    def action_width(self) -> int:
        return int(self.model.action_space.shape[0])

    # -- constants and statistics -------------------------------------------------------------------------------
    def running_statistics(self, prefix: str) -> Optional[Tuple[str, str]]:
        """(mean, std) float32 tensors of the RunningMeanStd stored under `prefix`, or None if it has none."""
        names = [prefix + leaf + ":0" for leaf in RUNNING_STATISTICS_LEAVES]
        if not any(name in self.params for name in names):
            return None
        missing = [name for name in names if name not in self.params]
        if missing:
            raise ExportError("running statistics {} are incomplete: {} missing".format(prefix, ", ".join(missing)))
        mean, std = running_mean_std(*(self.params[name] for name in names))
        stem = prefix.strip("/").replace("input/", "")
        return (self.builder.constant_tensor(stem + "_mean", mean), self.builder.constant_tensor(stem + "_std", std))

    def resolved_kwargs(self) -> Dict[str, Any]:
        resolved: Dict[str, Any] = {"layers": self.layers, "layer_norm": self.layer_norm, "act_fun": self.activation,
                                    "feature_extraction": "cnn" if self.cnn else "mlp"}
        if self.cnn:
            resolved["cnn_extractor"] = "nature_cnn"
            if self.padding != "VALID":
                resolved["pad"] = self.padding
        return resolved

    def check_all_used(self) -> None:
        """Every model/ parameter must be part of the graph (training-only ones aside): else we misread it."""
        used = {name for node in self.builder.nodes for name in node["inputs"]}
        unknown = [name for name in self.params
                   if name.startswith(OFF_POLICY_SCOPE) and name not in used and name not in TRAINING_ONLY]
        if unknown:
            raise UnsupportedError("the policy has parameters SBIF does not know how to use: {} (a custom policy "
                                   "architecture?)".format(", ".join(unknown)))

    # -- helpers ----------------------------------------------------------------------------------------------
    def _normalize_observation(self, x: str) -> str:
        """DDPG: clip(normalize(processed_obs, obs_rms), observation_range); the clip applies without obs_rms too."""
        extra = self.model.extra
        statistics = self.running_statistics(DDPG_OBSERVATION_STATISTICS)
        if extra.get("normalize_observations") and statistics is None:
            raise ExportError("the model normalizes observations but has no input/obs_rms statistics")
        if statistics is not None:
            mean, std = statistics
            x = self.builder.op("sub", [x, mean], name="input/obs_rms/centered")
            x = self.builder.op("div", [x, std], name="input/obs_rms/normalized")
        low, high = extra.get("observation_range", DEFAULT_OBSERVATION_RANGE)
        return _clip(self, x, low, high, "float32", "input/clipped")

    @staticmethod
    def _check_action_space(space: Space) -> None:
        if space.kind != "box":
            raise ExportError("SAC, TD3 and DDPG need a Box action space, not {}".format(space.kind))
        if len(space.shape) != 1:
            raise UnsupportedError("action space of shape {}: SB2's off-policy actors output shape[0] values and "
                                   "reshape them to the space, which only works for 1-D Box spaces".format(space.shape))
        if space.dtype not in ("float32", "float64"):
            raise UnsupportedError("a Box action space of dtype {} is not supported (float32 or float64)".format(
                space.dtype))


def _critic(net: _Network, q: str, action: str, what: str) -> None:
    """SAC's and TD3's critic `q` at `action`: mlp(concat(features, action)), then the dense head values_fn/q/q."""
    prefix = CRITICS_PREFIX + q + "/"
    if not net.has_tower(prefix):
        return
    builder = net.builder
    critic_input = CRITICS_PREFIX + "critic_input"
    if critic_input not in builder.specs:
        builder.op("concat", [net.features(CRITICS_PREFIX), action], {"axis": -1}, name=critic_input)
    q_value = net.dense(net.mlp(critic_input, prefix), prefix + q, 1)
    builder.op("squeeze", [q_value], {"axis": 1}, name=q)
    builder.declare_output(q, "critic {0}: Q(s, a) at the deterministic action a = {1} (the [-1, 1]-scaled action "
                              "SB2's critics take), SB2's values_fn/{0}".format(q, what))


def _ddpg_actor(net: _Network, prefix: str, width: int) -> str:
    """DDPG's make_actor under `prefix` (model/pi/ or the perturbed noise/pi/): tanh of the dense head `pi`."""
    hidden = net.mlp(net.features(prefix), prefix)
    return net.builder.op("tanh", [net.dense(hidden, prefix + DDPG_ACTOR_HEAD, width)], name=prefix + "action")


def _clip(net: _Network, x: str, low: float, high: float, dtype: str, name: str) -> str:
    """clip(x, low, high) with the bounds as scalar tensors of `dtype` (TF converts Python bounds to x's dtype)."""
    bounds = [_shared_tensor(net.builder, "{}_{}".format(_float_name(value), dtype), np.asarray(value, dtype=dtype))
              for value in (low, high)]
    return net.builder.op("clip", [x] + bounds, name=name)


def _float_name(value: float) -> str:
    """A tensor-name-safe spelling of a float: 'minus_5', '1e-12', 'inf'."""
    text = repr(float(value)).replace("-", "minus_").replace("+", "")
    return "value_" + text


def _shared_tensor(builder: GraphBuilder, name: str, array: np.ndarray) -> str:
    """An exporter constant under sbif/, created once and reused."""
    full = "sbif/" + name
    if full in builder.specs:
        return full
    return builder.constant_tensor(name, np.asarray(array))
