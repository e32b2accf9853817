"""Models for the suite: what the harness needs to know about a file (`ModelInfo`), and SBIF files with random
weights built without TensorFlow from a JSON-able `spec` (`build_model`), for every family SB2 can build.

A spec is a plain dict, so a Hypothesis draw, a case file and a report can all carry it:

    {"family": "mlp", "algorithm": "PPO2", "observation": SPACE, "action": SPACE, "net_arch": [8, {"pi": [4]}],
     "activation": "tanh", "seed": 3, "scale": 1.0, "spread": 0.5, "log_std": -1.0}

`scale` multiplies every weight's fan-in scale; `spread` draws each weight tensor's own factor from a
log-normal of that width (trained nets' layers differ in scale by up to e^±2); `log_std` is the mean of a Gaussian
policy's log-std (trained ones sit anywhere from -3 to 1).

Families and their extra keys: `mlp` (`net_arch`, `activation`), `cnn` (`padding`), `lstm` (`n_lstm`,
`layer_norm`, `layers` for SB2's legacy layout or `net_arch` containing "lstm"), `cnn_lstm` (`n_lstm`,
`layer_norm`), `dqn` (`layers`, `layer_norm`, `dueling`, `cnn`), `sac`/`td3`/`ddpg` (`layers`, `layer_norm`),
and `vecnormalize` (an `mlp` with `mean`, `var`, `clip_obs`, `epsilon`). Parameter names, shapes and order are
SB2's (`sbif.export.parameter_layouts`, which the generator fills with random values), so a family builds as soon as
SBIF's exporter supports it; `family_status` says which ones do.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from sbif.compare import sample_observations
from sbif.format.validate import DICT_INPUT_PREFIX
from sbif.export.parameter_layouts import (ACTOR_CRITIC_SCOPE, BIAS, DQN_EPSILON, DQN_TARGET, GAIN, KERNEL, LOG_STD,
                                           LSTM, OFF_POLICY_TARGET, POLICY_HEAD, Q_HEAD, RUNNING_STATISTICS_LEAVES,
                                           STATISTIC, VALUE_HEAD, Layout, actor_critic_cnn_layout,
                                           actor_critic_mlp_layout, dqn_layout, ddpg_layout, flat_width, lstm_layout,
                                           sac_layout, td3_layout)
from sbif.format.document import decode_bound
from sbif.format.subgraph import inputs_of_outputs, required_subgraph

FAMILIES = ("mlp", "cnn", "lstm", "cnn_lstm", "dqn", "sac", "td3", "ddpg", "vecnormalize", "her")
#: HER's dict observation keys, in SB2's KEY_ORDER (the flat observation is their concatenation)
HER_KEYS = ("observation", "achieved_goal", "desired_goal")
PROVENANCE = {"exporter": "live", "sb2_version": "2.10.2",
              "source": {"file_name": "generated.zip", "sha256": "0" * 64, "format": "zip"}}


# -- what the harness knows about a file ----------------------------------------------------------------------------
class ModelInfo:
    """A file's document read for planning checks (no graph validation, so files with ops the reference runtime
    lacks can still be planned): spaces, inputs, outputs and their comparison rules, noise, recurrence."""

    def __init__(self, path: str):
        from sbif.format.container import read_container
        from sbif.format.document import decode_document

        from .rules import output_rules

        self.path = os.path.abspath(path)
        self.name = os.path.basename(path)
        with open(self.path, "rb") as handle:
            self.sha256 = hashlib.sha256(handle.read()).hexdigest()
        metadata, self.tensors = read_container(self.path)
        self.document = decode_document(metadata, self.path)
        document = self.document
        self.provenance = document["provenance"]
        self.observation_space = document["observation_space"]
        self.action_space = document["action_space"]
        self.predict = document["predict"]
        self.distribution = self.predict.get("distribution")
        self.inputs = {entry["name"]: entry for entry in document["inputs"]}
        self.noise_inputs = [entry for entry in document["inputs"] if entry["kind"] == "noise"]
        self.recurrent = self.predict.get("recurrent")
        self.state_size = self.inputs[self.recurrent["state_input"]]["shape"][1] if self.recurrent else 0
        self.outputs = {entry["name"]: entry for entry in document["outputs"]}
        #: HER files: the dict keys and each key's space (`predict` also takes the dict)
        self.observation_dict = document.get("observation_dict")
        self.rules = output_rules(document)
        self.ops = sorted({node["op"] for node in document["graph"]})
        reads = inputs_of_outputs(document)
        noise_names = {entry["name"] for entry in self.noise_inputs}
        #: outputs computed without noise (everything a deterministic request can ask for)
        self.plain_outputs = [name for name in self.outputs if not noise_names.intersection(reads[name])]
        #: outputs that need noise (the sampled actions)
        self.sample_outputs = [name for name in self.outputs if noise_names.intersection(reads[name])]

    def ops_for(self, outputs: Sequence[str]) -> List[str]:
        """The ops a runtime must run to compute `outputs` (runtimes may skip the rest of the graph)."""
        return sorted({node["op"] for node in required_subgraph(self.document, outputs).nodes})

    @property
    def label(self) -> str:
        return "{} {}".format(self.provenance["algorithm"], self.provenance["policy_class"])

    def features(self) -> List[str]:
        """Runtime features a full check of this model exercises."""
        features = ["run"]
        if self.recurrent:
            features.append("recurrent")
        if self.noise_inputs:
            features.append("sampling")
        return features

    def observations(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` observations as SB2's feed gets them (the `obs` input dtype): uniform within finite Box
        bounds, N(0, 10) where unbounded, valid indices and bits; with VecNormalize statistics, half the rows are
        drawn around the statistics' mean (where the normalization matters)."""
        obs = sample_space(self.observation_space, count, rng)
        dtype = self.inputs["obs"]["dtype"]
        mean, std = self.tensors.get("sbif/vecnormalize/mean"), self.tensors.get("sbif/vecnormalize/std")
        if mean is not None and std is not None and count:
            near = np.asarray(mean) + np.asarray(std) * rng.standard_normal((count,) + np.shape(mean)) * 2.0
            rows = rng.random(count) < 0.5
            obs = np.where(rows.reshape((-1,) + (1,) * np.ndim(mean)), near, obs.astype(np.float64))
        return np.asarray(obs).astype(dtype)

    def observation_inputs(self, count: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
        """The observation inputs of `count` rows: `obs` (`observations`), or for a dict observation space one
        `obs/KEY` per key, sampled from its space in its input's dtype."""
        if self.observation_space["kind"] != "dict":
            return {"obs": self.observations(count, rng)}
        return {DICT_INPUT_PREFIX + entry["key"]: np.asarray(sample_space(entry["space"], count, rng)).astype(
            self.inputs[DICT_INPUT_PREFIX + entry["key"]]["dtype"]) for entry in self.observation_space["spaces"]}

    def noise(self, count: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
        feeds = {}
        for entry in self.noise_inputs:
            shape = (count,) + tuple(entry["shape"][1:])
            if entry["distribution"] == "uniform":
                feeds[entry["name"]] = rng.random(shape, dtype=np.float32)
            else:
                feeds[entry["name"]] = rng.standard_normal(shape, dtype=np.float32)
        return feeds

    def initial_inputs(self, count: int) -> Dict[str, np.ndarray]:
        """The state and mask inputs of a first step (zeros), for recurrent files; else nothing."""
        if not self.recurrent:
            return {}
        return {self.recurrent["state_input"]: np.zeros((count, self.state_size), np.float32),
                self.recurrent["mask_input"]: np.zeros(count, np.float32)}

    def space_bounds(self, space: Optional[Mapping[str, Any]] = None
                     ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """A Box space's bounds (default: the observation space's) as float64 arrays; (None, None) for other kinds."""
        space = self.observation_space if space is None else space
        if space["kind"] != "box":
            return None, None
        shape = tuple(space["shape"])
        return decode_bound(space["low"], shape, "float64"), decode_bound(space["high"], shape, "float64")


#: finite Box bounds further apart than this are sampled like infinite ones. Observations stay O(10): float32 sums
#: of terms around 1e3 already carry rounding noise (which depends on the summation order, left free by the spec)
#: of the size of the 1e-5 tolerance, in SB2 and in any other runtime alike
HUGE_SPAN = 100.0


def sample_space(space: Mapping[str, Any], count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` observations of a document space, in the space's dtype: uniform within finite Box bounds,
    N(0, 10²) clipped to the bounds where a bound is infinite or the span exceeds `HUGE_SPAN` (realistic magnitudes:
    single huge values are the edge check's business), valid indices
    for Discrete/MultiDiscrete and bits for MultiBinary."""
    kind = space["kind"]
    if kind != "box":
        return sample_observations(space, count, rng)
    shape = tuple(space["shape"])
    low = decode_bound(space["low"], shape, "float64")
    high = decode_bound(space["high"], shape, "float64")
    with np.errstate(over="ignore", invalid="ignore"):
        bounded = np.isfinite(low) & np.isfinite(high) & ((high - low) <= HUGE_SPAN)
    uniform = low + rng.random((count,) + shape) * np.where(bounded, high - low, 0.0)
    values = np.where(bounded, uniform, np.clip(10.0 * rng.standard_normal((count,) + shape), low, high))
    if np.dtype(space["dtype"]).kind in "iub":
        values = np.floor(values + np.where(bounded, rng.random((count,) + shape), 0.0))
        values = np.clip(values, low, high)
    return values.astype(space["dtype"])


# -- spaces ------------------------------------------------------------------------------------------------------
def make_space(spec: Mapping[str, Any]):
    """A `sbif.export.Space` from a JSON space: box (shape, dtype, low, high as a number or a flat list; "inf"
    strings allowed), discrete (n), multi_discrete (nvec), multi_binary (n)."""
    from sbif.export import Space

    kind = spec["kind"]
    if kind == "box":
        shape = tuple(spec["shape"])
        dtype = spec.get("dtype", "float32")

        def bound(value: Any) -> np.ndarray:
            values = np.array([float(v) for v in value] if isinstance(value, list) else float(value), np.float64)
            with np.errstate(over="ignore"):
                return np.broadcast_to(values.reshape(shape) if values.ndim else values, shape).astype(dtype)

        return Space("box", shape, dtype, bound(spec["low"]), bound(spec["high"]))
    if kind == "discrete":
        return Space("discrete", (), "int64", n=int(spec["n"]))
    if kind == "multi_discrete":
        return Space("multi_discrete", (len(spec["nvec"]),), "int64", nvec=[int(v) for v in spec["nvec"]])
    if kind == "multi_binary":
        return Space("multi_binary", (int(spec["n"]),), "int8", n=int(spec["n"]))
    raise ValueError("unknown space kind {!r}".format(kind))


# -- parameters ----------------------------------------------------------------------------------------------------
#: the actor-critic scopes a generator leaves at the plain scale even where they read the observation directly (no
#: hidden layer before them): it divides only hidden layers and convolutions by the input range, so that a seed keeps
#: drawing the same model
_UNSCALED_ACTOR_CRITIC = tuple(ACTOR_CRITIC_SCOPE + scope + "/" for scope in (VALUE_HEAD, POLICY_HEAD, Q_HEAD, LSTM))
#: the count behind a generated DDPG model's observation statistics
_STATISTICS_COUNT = 100.0
#: the exploration epsilon of a generated DQN model (inference does not read it)
_DQN_EPSILON_VALUE = 0.1


class _Params:
    """Random values for an SB2 parameter layout, at a scale that keeps activations O(1)."""

    def __init__(self, seed: int, scale: float, input_range: float = 1.0, spread: float = 0.0,
                 log_std: float = 0.0):
        self.rng = np.random.RandomState(seed)
        self.scale, self.spread, self.log_std = scale, spread, log_std
        self.input_range = input_range
        self.values: "OrderedDict[str, np.ndarray]" = OrderedDict()

    def fill(self, layout: Layout, actor_critic: bool = False) -> "OrderedDict[str, np.ndarray]":
        """Values for every parameter of `layout`, drawn in its order; kernels that read the input are divided by
        the input range (not an actor-critic head's or LSTM's, see `_UNSCALED_ACTOR_CRITIC`)."""
        mean = np.zeros(())  # the running statistics' mean: the sum of squares is drawn around it
        for parameter in layout:
            name, shape, role = parameter.name, parameter.shape, parameter.role
            if role == KERNEL:
                first = parameter.reads_input and not (actor_critic and name.startswith(_UNSCALED_ACTOR_CRITIC))
                self.weight(name, shape, first)
            elif role == BIAS:
                self.bias(name, shape)
            elif role == GAIN:
                self.gain(name, shape)
            elif role == LOG_STD:
                self.values[name] = (self.log_std + self.rng.standard_normal(shape) * 0.3).astype(np.float32)
            elif name == DQN_EPSILON:
                self.values[name] = np.float32(_DQN_EPSILON_VALUE).reshape(())
            elif role == STATISTIC and name.endswith(RUNNING_STATISTICS_LEAVES[0] + ":0"):
                mean = self.rng.standard_normal(shape)
                self.values[name] = (mean * _STATISTICS_COUNT).astype(np.float64)
            elif role == STATISTIC and name.endswith(RUNNING_STATISTICS_LEAVES[1] + ":0"):
                self.values[name] = ((mean ** 2 + self.rng.random(shape)) * _STATISTICS_COUNT).astype(np.float64)
            elif role == STATISTIC:
                self.values[name] = np.float64(_STATISTICS_COUNT).reshape(())
            else:
                raise ValueError("the generator has no value for {} ({})".format(name, role))
        return self.values

    def weight(self, name: str, shape: Tuple[int, ...], first: bool = False) -> None:
        fan_in = int(np.prod(shape[:-1])) or 1
        factor = float(np.exp(self.spread * self.rng.standard_normal())) if self.spread else 1.0
        scale = self.scale * factor * 1.5 / np.sqrt(fan_in) / (self.input_range if first else 1.0)
        self.values[name] = (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def bias(self, name: str, shape: Tuple[int, ...]) -> None:
        self.values[name] = (self.rng.standard_normal(shape) * 0.5).astype(np.float32)

    def gain(self, name: str, shape: Tuple[int, ...]) -> None:
        self.values[name] = (1.0 + self.rng.standard_normal(shape) * 0.2).astype(np.float32)


def _image_shape(space: Mapping[str, Any]) -> Tuple[int, int, int]:
    shape = space["shape"]
    if space["kind"] != "box" or len(shape) != 3:
        raise ValueError("CNN families need a Box observation of shape (H, W, C)")
    return int(shape[0]), int(shape[1]), int(shape[2])


def _input_range(space: Mapping[str, Any]) -> float:
    """Inputs an MLP reads unscaled (uint8 images) get proportionally smaller first-layer weights."""
    return 255.0 if space["kind"] == "box" and space.get("dtype") == "uint8" else 1.0


#: the generator's network when a spec gives none
DEFAULT_NET_ARCH = [8, {"pi": [6], "vf": [6]}]
DEFAULT_LAYERS = [8, 6]
DEFAULT_LSTM_LAYERS = [6]


def model_parameters(spec: Mapping[str, Any]) -> Tuple["OrderedDict[str, np.ndarray]", Dict[str, Any], str, str]:
    """(parameters, policy kwargs, algorithm, policy class) for a spec."""
    family = spec["family"]
    obs, act = spec["observation"], spec["action"]
    observation_space, action_space = make_space(obs), make_space(act)
    p = _Params(int(spec.get("seed", 0)), float(spec.get("scale", 1.0)), _input_range(obs),
                float(spec.get("spread", 0.0)), float(spec.get("log_std", 0.0)))
    activation = spec.get("activation")
    kwargs: Dict[str, Any] = {} if activation is None else {"act_fun": dict(
        {"name": activation}, **({"alpha": 0.2} if activation == "leaky_relu" else {}))}
    algorithm = spec.get("algorithm", "PPO2")
    if family in ("mlp", "vecnormalize"):
        layout = actor_critic_mlp_layout(observation_space, action_space, spec.get("net_arch", DEFAULT_NET_ARCH))
        return p.fill(layout, actor_critic=True), kwargs, algorithm, "MlpPolicy"
    if family == "cnn":
        padding = spec.get("padding", "VALID")
        _image_shape(obs)
        layout = actor_critic_cnn_layout(observation_space, action_space, padding)
        kwargs = {"pad": padding} if padding != "VALID" else {}
        return p.fill(layout, actor_critic=True), kwargs, algorithm, "CnnPolicy"
    if family in ("lstm", "cnn_lstm"):
        n = int(spec.get("n_lstm", 4))
        layer_norm = bool(spec.get("layer_norm", False))
        if family == "cnn_lstm":
            _image_shape(obs)
            layout = lstm_layout(observation_space, action_space, n, layer_norm, cnn_padding="VALID")
            kwargs = {"n_lstm": n}
            return p.fill(layout, actor_critic=True), kwargs, algorithm, \
                "CnnLnLstmPolicy" if layer_norm else "CnnLstmPolicy"
        kwargs["n_lstm"] = n
        net_arch = spec.get("net_arch")
        if net_arch is None:  # legacy layout: pi_fc layers feed the LSTM, the heads read its output
            kwargs["layers"] = list(spec.get("layers", DEFAULT_LSTM_LAYERS))
            layout = lstm_layout(observation_space, action_space, n, layer_norm, layers=kwargs["layers"])
        else:
            kwargs["net_arch"] = net_arch
            layout = lstm_layout(observation_space, action_space, n, layer_norm, net_arch=net_arch)
        return p.fill(layout, actor_critic=True), kwargs, algorithm, \
            "MlpLnLstmPolicy" if layer_norm else "MlpLstmPolicy"
    if family == "dqn":
        return _dqn(p, spec, observation_space, action_space, kwargs)
    if family in ("sac", "td3", "ddpg"):
        return _off_policy(p, spec, observation_space, action_space, kwargs)
    raise ValueError("unknown family {!r} (known: {})".format(family, ", ".join(FAMILIES)))


def _dqn(p: _Params, spec: Mapping[str, Any], observation_space: Any, action_space: Any, kwargs: Dict[str, Any]):
    """DQN's epsilon and Q network (its target network left out: inference does not read it)."""
    layers = [int(w) for w in spec.get("layers", DEFAULT_LAYERS)]
    layer_norm = bool(spec.get("layer_norm", False))
    dueling = bool(spec.get("dueling", True))
    cnn = bool(spec.get("cnn", False))
    if cnn:
        _image_shape(spec["observation"])
    layout = dqn_layout(observation_space, int(action_space.n), layers, layer_norm, dueling,
                        cnn_padding="VALID" if cnn else None)
    p.fill([parameter for parameter in layout if not parameter.name.startswith(DQN_TARGET)])
    policy = ("LnCnnPolicy" if layer_norm else "CnnPolicy") if cnn else ("LnMlpPolicy" if layer_norm else "MlpPolicy")
    kwargs = dict(kwargs, layers=layers, dueling=dueling, layer_norm=layer_norm)
    return p.values, kwargs, "DQN", policy


def _off_policy(p: _Params, spec: Mapping[str, Any], observation_space: Any, action_space: Any,
                kwargs: Dict[str, Any]):
    """SAC's, TD3's or DDPG's networks (their target networks left out: inference does not read them), and
    DDPG's observation statistics with `normalize_observations`."""
    family = spec["family"]
    layers = [int(w) for w in spec.get("layers", DEFAULT_LAYERS)]
    layer_norm = bool(spec.get("layer_norm", False))
    actions = flat_width(action_space)
    if family == "sac":
        layout = sac_layout(observation_space, actions, layers, layer_norm)
    elif family == "td3":
        layout = td3_layout(observation_space, actions, layers, layer_norm)
    else:
        layout = ddpg_layout(observation_space, actions, layers, layer_norm,
                             normalize_observations=bool(spec.get("normalize_observations")))
    p.fill([parameter for parameter in layout if not parameter.name.startswith(OFF_POLICY_TARGET)])
    kwargs = dict(kwargs, layers=layers, layer_norm=layer_norm)
    return p.values, kwargs, family.upper(), "LnMlpPolicy" if layer_norm else "MlpPolicy"


def her_observation_dict(spec: Mapping[str, Any]) -> Dict[str, Any]:
    """The document's `observation_dict` of a HER spec: the flat Box observation split into `observation`
    (the first n - 2 * goal_size elements) and two goals of `goal_size` elements, sharing its scalar bounds."""
    flat = spec["observation"]
    goal = int(spec["goal_size"])
    sizes = {"observation": int(flat["shape"][0]) - 2 * goal, "achieved_goal": goal, "desired_goal": goal}
    spaces = {}
    for key in HER_KEYS:
        space = make_space(dict(flat, shape=[sizes[key]]))
        spaces[key] = {"kind": "box", "shape": [sizes[key]], "dtype": space.dtype,
                       "low": _bound_document(space.low), "high": _bound_document(space.high)}
    return {"keys": list(HER_KEYS), "spaces": spaces}


def _bound_document(values: np.ndarray) -> List[Any]:
    return [v if np.isfinite(v) else ("inf" if v > 0 else "-inf") for v in values.astype(np.float64).tolist()]


def build_model(spec: Mapping[str, Any]):
    """The validated `SbifFile` for a spec (raises `sbif.SbifError` when SBIF cannot build that family yet)."""
    from sbif.export import ModelDescription, build_sbif

    extra: Dict[str, Any] = {}
    if spec["family"] == "her":  # the inner model's graph; HER adds the dict observation
        parameters, kwargs, inner, policy_class = model_parameters(dict(spec, family=spec["inner"]))
        algorithm = "HER"
        extra = {"model_class": inner, "observation_dict": her_observation_dict(spec)}
    else:
        parameters, kwargs, algorithm, policy_class = model_parameters(spec)
    base = "LstmPolicy" if spec["family"] in ("lstm", "cnn_lstm") else "FeedForwardPolicy"
    description = ModelDescription(algorithm, policy_class, kwargs, make_space(spec["observation"]),
                                   make_space(spec["action"]), parameters, json.loads(json.dumps(PROVENANCE)),
                                   policy_base=base, extra=extra)
    normalization = None
    if spec["family"] == "vecnormalize":
        from sbif.export.normalization import ObservationNormalization

        shape = tuple(spec["observation"]["shape"])
        normalization = ObservationNormalization(np.asarray(spec["mean"], np.float64).reshape(shape),
                                                 np.asarray(spec["var"], np.float64).reshape(shape),
                                                 float(spec.get("clip_obs", 10.0)), float(spec.get("epsilon", 1e-8)))
    return build_sbif(description, normalization)


def write_model(spec: Mapping[str, Any], directory: str) -> str:
    """Build and write a spec to `directory/<digest>.sbif` (once: the name is the spec's digest)."""
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()[:20]
    path = os.path.join(directory, "{}-{}.sbif".format(spec["family"], key))
    if not os.path.exists(path):
        build_model(spec).write(path)
    return path


#: one representative spec per family (used to probe which families SBIF builds, and by the mutant tests)
EXAMPLES: Dict[str, Dict[str, Any]] = {
    "mlp": {"family": "mlp", "algorithm": "PPO2", "net_arch": [8, {"pi": [6], "vf": [5]}], "activation": "tanh",
            "observation": {"kind": "box", "shape": [4], "dtype": "float32", "low": -2.0, "high": 2.0},
            "action": {"kind": "discrete", "n": 3}, "seed": 1},
    "cnn": {"family": "cnn", "algorithm": "PPO2",
            "observation": {"kind": "box", "shape": [44, 44, 1], "dtype": "uint8", "low": 0, "high": 255},
            "action": {"kind": "discrete", "n": 3}, "seed": 2},
    "lstm": {"family": "lstm", "algorithm": "PPO2", "n_lstm": 4, "layers": [6], "layer_norm": False,
             "observation": {"kind": "box", "shape": [3], "dtype": "float32", "low": -1.0, "high": 1.0},
             "action": {"kind": "discrete", "n": 3}, "seed": 3},
    "cnn_lstm": {"family": "cnn_lstm", "algorithm": "PPO2", "n_lstm": 4, "layer_norm": True,
                 "observation": {"kind": "box", "shape": [36, 36, 1], "dtype": "uint8", "low": 0, "high": 255},
                 "action": {"kind": "discrete", "n": 2}, "seed": 4},
    "dqn": {"family": "dqn", "layers": [8, 6], "layer_norm": True, "dueling": True, "activation": "relu",
            "observation": {"kind": "box", "shape": [4], "dtype": "float32", "low": -2.0, "high": 2.0},
            "action": {"kind": "discrete", "n": 3}, "seed": 5},
    "sac": {"family": "sac", "layers": [8, 6], "layer_norm": True, "activation": "relu",
            "observation": {"kind": "box", "shape": [3], "dtype": "float32", "low": -1.0, "high": 1.0},
            "action": {"kind": "box", "shape": [2], "dtype": "float32", "low": [-1.0, -2.0], "high": [1.0, 3.0]},
            "seed": 6},
    "td3": {"family": "td3", "layers": [8, 6], "activation": "relu",
            "observation": {"kind": "box", "shape": [3], "dtype": "float32", "low": -1.0, "high": 1.0},
            "action": {"kind": "box", "shape": [2], "dtype": "float32", "low": [-1.0, -2.0], "high": [1.0, 3.0]},
            "seed": 7},
    "ddpg": {"family": "ddpg", "layers": [8, 6], "layer_norm": True, "activation": "relu",
             "observation": {"kind": "box", "shape": [3], "dtype": "float32", "low": -1.0, "high": 1.0},
             "action": {"kind": "box", "shape": [2], "dtype": "float32", "low": [-1.0, -2.0], "high": [1.0, 3.0]},
             "seed": 8},
    "her": {"family": "her", "inner": "sac", "goal_size": 2, "layers": [8], "activation": "relu",
            "observation": {"kind": "box", "shape": [7], "dtype": "float32", "low": "-inf", "high": "inf"},
            "action": {"kind": "box", "shape": [2], "dtype": "float32", "low": -1.0, "high": 1.0}, "seed": 10},
    "vecnormalize": {"family": "vecnormalize", "algorithm": "PPO2", "net_arch": [8], "activation": "tanh",
                     "observation": {"kind": "box", "shape": [3], "dtype": "float32", "low": "-inf", "high": "inf"},
                     "action": {"kind": "box", "shape": [2], "dtype": "float32", "low": -1.0, "high": 1.0},
                     "mean": [25000.0, -3.0, 120.5], "var": [0.01, 4.0, 0.25], "seed": 9},
}


def family_status() -> Dict[str, Optional[str]]:
    """Family -> None if SBIF builds it, else the reason it cannot (yet)."""
    from sbif.errors import SbifError

    status: Dict[str, Optional[str]] = {}
    for family, spec in EXAMPLES.items():
        try:
            build_model(spec)
            status[family] = None
        except SbifError as exc:
            status[family] = "{}: {}".format(type(exc).__name__, exc)
    return status
