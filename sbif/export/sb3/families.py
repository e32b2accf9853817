"""One builder per SB3 policy family (`policy_classes.PolicyClass.family`): the graph from the observation to SB3's
`predict`, over the policy's own tensors. Each returns the `predict` entries it decides and the parameter prefixes
it leaves out on purpose (target networks and critics, which `predict` never runs).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

from ...errors import ExportError, UnsupportedError
from ...format.validate import DICT_INPUT_PREFIX
from ..normalization import KeyedNormalization, normalized_observation
from .description import ClassName, Sb3Description
from .heads import (ACTION_MASK, bernoulli, box_action, categorical, diag_gaussian, epsilon_greedy, masked_logits,
                    multi_categorical, squashed_gaussian, torch_argmax)
from .policy_classes import CROSSQ_BATCH_NORM_EPS, EXTRACTOR_MODULE, EXTRACTORS, default_extractor
from .torch_layers import (LINEAR_WEIGHT_PERM, TorchGraph, activation_op, features, observation_input,
                           preprocessed_observation)

#: The recurrent policies' inputs and state output (SPEC section 5.6; SB3's episode_start is the mask).
STATE, EPISODE_START, STATE_OUTPUT = "state", "episode_start", "state_out"

#: SAC's default `clip_mean` (the Hardtanh SAC puts after the gSDE mean): `sac/policies.py` Actor.
SAC_CLIP_MEAN = 2.0

FamilyResult = Tuple[Dict[str, Any], List[str]]
FamilyBuilder = Callable[[TorchGraph, Sb3Description], FamilyResult]


def extractor_name(model: Sb3Description) -> str:
    """The feature extractor's class: `features_extractor_class` if given (only SB3's own are expressible), else
    the policy class's default."""
    given = model.policy_kwargs.get("features_extractor_class")
    if given is None:
        return default_extractor(model.policy.name)
    if not isinstance(given, ClassName) or given.module != EXTRACTOR_MODULE or given.name not in EXTRACTORS:
        raise UnsupportedError("features_extractor_class {} is custom code: SBIF expresses SB3's {}".format(
            given, ", ".join(EXTRACTORS)))
    return given.name


def preprocessed(graph: TorchGraph, model: Sb3Description) -> Any:
    """The observation input(s), preprocessed as SB3's `preprocess_obs` does: one value, or for a dict space a
    mapping from each key to its input `obs/KEY`, preprocessed."""
    space = model.observation_space
    normalize = model.policy_kwargs.get("normalize_images", True) is not False
    if space.kind != "dict":
        return preprocessed_observation(graph, space, observation_input(graph, space), normalize)
    statistics = graph.builder.observation_normalization
    if statistics is not None and not isinstance(statistics, KeyedNormalization):
        raise ExportError("VecNormalize statistics of one array cannot normalize a dict observation space")
    processed = OrderedDict()
    for key, sub in space.spaces.items():
        name = DICT_INPUT_PREFIX + key
        if statistics is not None and key in statistics.statistics:
            if sub.kind != "box":
                raise ExportError("VecNormalize normalizes the dict key {}, which is not a Box".format(key))
            raw = graph.builder.add_input(name, "float64", (None,) + sub.shape, "observation")
            obs = normalized_observation(graph.builder, raw, sub, statistics.statistics[key], "float32",
                                         "vecnormalize/" + key)
        else:
            obs = observation_input(graph, sub, name, normalized=False)
        processed[key] = preprocessed_observation(graph, sub, obs, normalize)
    return processed


def extracted(graph: TorchGraph, model: Sb3Description, processed: Any, prefix: str) -> str:
    """The preprocessed observation through the model's extractor whose parameters are under `prefix`."""
    kwargs = model.policy_kwargs.get("features_extractor_kwargs") or {}
    return features(graph, processed, extractor_name(model), prefix, model.observation_space,
                    kwargs.get("normalized_image", False) is True)


def observation_features(graph: TorchGraph, model: Sb3Description, prefix: str) -> str:
    """The preprocessed observation through the extractor whose parameters are under `prefix`."""
    return extracted(graph, model, preprocessed(graph, model), prefix)


def activation(model: Sb3Description) -> Dict[str, Any]:
    return activation_op(model.policy_kwargs.get("activation_fn"), model.policy_class.activation)


def actor_critic(graph: TorchGraph, model: Sb3Description) -> FamilyResult:
    """ActorCriticPolicy (A2C, PPO, TRPO): extractor(s), `mlp_extractor`'s policy and value nets, `action_net`
    into the action distribution, `value_net` into the value."""
    flat, ignored = actor_critic_trunk(graph, model)
    decided, _ = _distribution(graph, model, flat)
    return decided, ignored


def _distribution(graph: TorchGraph, model: Sb3Description, flat: str) -> FamilyResult:
    """The actor-critic policies' action distribution on the `action_net` output `flat`."""
    builder, space = graph.builder, model.action_space
    if space.kind == "discrete":
        return categorical(builder, flat), []
    if space.kind == "multi_discrete":
        return multi_categorical(builder, flat, space.nvec), []
    if space.kind == "multi_binary":
        return bernoulli(builder, flat), []
    if model.use_sde:
        graph.tensor("log_std")  # the exploration's scale: only a stochastic gSDE action would read it
        squash = model.policy_kwargs.get("squash_output", False) is True
        mean = builder.op("tanh", [flat], name="squashed") if squash else flat
        box_action(builder, mean, space, squash, "action")
        builder.declare_output("action", "deterministic action: the gSDE mean{}, {} to the action space bounds"
                               .format(" squashed by tanh" if squash else "", "unscaled" if squash else "clipped"))
        return {"stochastic_action": None}, []
    return diag_gaussian(builder, flat, graph.tensor("log_std"), space), []


def maskable_actor_critic(graph: TorchGraph, model: Sb3Description) -> FamilyResult:
    """MaskablePPO: the actor-critic trunk, then the logits masked as MaskableCategorical does (a masked action's
    logit becomes -1e8) from the `action_mask` input; MultiBinary actions are a categorical over two logits per
    bit (MaskableBernoulli), returned as int64."""
    flat, ignored = actor_critic_trunk(graph, model)
    builder, space = graph.builder, model.action_space
    width = builder.spec(flat).shape[-1]
    mask = builder.add_input(ACTION_MASK, "bool", [None, width], "action_mask")
    masked = masked_logits(builder, flat, mask)
    if space.kind == "discrete":
        decided = categorical(builder, masked)
    elif space.kind in ("multi_discrete", "multi_binary"):
        nvec = space.nvec if space.kind == "multi_discrete" else [2] * space.n
        decided = multi_categorical(builder, masked, nvec)
    else:
        raise UnsupportedError("MaskablePPO takes Discrete, MultiDiscrete and MultiBinary actions, not {}".format(
            space.kind))
    decided["action_mask"] = mask
    return decided, ignored


def recurrent_actor_critic(graph: TorchGraph, model: Sb3Description) -> FamilyResult:
    """RecurrentPPO: the extractor(s), then the actor's LSTM (`lstm_actor`, torch's gate order, both biases), whose
    top layer's h goes through `mlp_extractor.policy_net` and `action_net` into the distribution; the critic has its
    own LSTM (`lstm_critic`), shares the actor's (`shared_lstm`), or is a Linear layer (`critic`). The state rows
    hold the actor's h and c of every layer, then the critic LSTM's (SPEC section 5.9); episode starts reset a row
    before the step."""
    builder, act = graph.builder, activation(model)
    pi_prefix, vf_prefix, ignored = _actor_critic_extractors(graph)
    processed = preprocessed(graph, model)
    pi_features = extracted(graph, model, processed, pi_prefix)
    vf_features = pi_features if vf_prefix == pi_prefix else extracted(graph, model, processed, vf_prefix)
    layers, hidden = lstm_shape(graph, "lstm_actor")
    critic_lstm = graph.has("lstm_critic.weight_ih_l0")
    size = (4 if critic_lstm else 2) * layers * hidden
    state = builder.add_input(STATE, "float32", [None, size], "state")
    starts = builder.add_input(EPISODE_START, "float32", [None], "mask")
    one = builder.op("constant", [], {"value": 1.0, "dtype": "float32"}, name="episode_start/one")
    keep = builder.op("expand_dims", [builder.op("sub", [one, starts], name="episode_start/keep")], {"axis": -1},
                      name="episode_start/keep_rows")
    kept = builder.op("mul", [state, keep], name="state/kept")
    parts = builder.op("split", [kept], {"sizes": [hidden] * (size // hidden), "axis": -1}, name="state/parts",
                       n_outputs=size // hidden)
    actor_h, actor_c = lstm_steps(graph, pi_features, "lstm_actor", parts[:layers], parts[layers:2 * layers])
    outputs = actor_h + actor_c
    if critic_lstm:
        critic_h, critic_c = lstm_steps(graph, vf_features, "lstm_critic", parts[2 * layers:3 * layers],
                                        parts[3 * layers:])
        outputs += critic_h + critic_c
        latent_vf = critic_h[-1]
    elif graph.has("critic.weight"):
        latent_vf = graph.linear(vf_features, "critic")
    else:  # shared_lstm: the critic reads the actor's LSTM
        latent_vf = actor_h[-1]
    builder.op("concat", outputs, {"axis": -1}, name=STATE_OUTPUT)
    builder.declare_output(STATE_OUTPUT, "the next state: the actor LSTM's h and c per layer{}".format(
        ", then the critic LSTM's" if critic_lstm else ""))
    latent_pi = graph.mlp(actor_h[-1], "mlp_extractor.policy_net", act, output_layer=False)
    latent_vf = graph.mlp(latent_vf, "mlp_extractor.value_net", act, output_layer=False)
    builder.op("squeeze", [graph.linear(latent_vf, "value_net")], {"axis": -1}, name="value")
    builder.declare_output("value", "the state value V(s), SB3's predict_values")
    decided, _ = _distribution(graph, model, graph.linear(latent_pi, "action_net"))
    decided["recurrent"] = {"state_input": STATE, "mask_input": EPISODE_START, "state_output": STATE_OUTPUT,
                            "state_layout": {"kind": "lstm", "layers": layers, "hidden": hidden}}
    return decided, ignored


def lstm_shape(graph: TorchGraph, prefix: str) -> Tuple[int, int]:
    """(layers, hidden size) of the torch LSTM `prefix`, read from its parameters (weight_hh_l{k}: [4H, H])."""
    layers = 0
    while graph.has("{}.weight_ih_l{}".format(prefix, layers)):
        layers += 1
    if layers == 0:
        raise ExportError("the recurrent policy has no {}.weight_ih_l0".format(prefix))
    recurrent = graph.parameters["{}.weight_hh_l0".format(prefix)] if graph.has(prefix + ".weight_hh_l0") else None
    if recurrent is None or len(recurrent.shape) != 2 or recurrent.shape[0] != 4 * recurrent.shape[1]:
        raise ExportError("{}.weight_hh_l0 must be [4H, H]".format(prefix))
    return layers, int(recurrent.shape[1])


def lstm_steps(graph: TorchGraph, x: str, prefix: str, hs: List[str], cs: List[str]) -> Tuple[List[str], List[str]]:
    """One step of torch's nn.LSTM `prefix` from the states `hs`, `cs` (one per layer): per layer
    z = (x·W_ihᵀ + b_ih) + (h·W_hhᵀ + b_hh), gates i, f, g, o in that order, c' = f·c + i·g, h' = o·tanh(c'),
    each layer's h' the next one's input. Returns the new (h per layer, c per layer)."""
    builder = graph.builder
    new_h, new_c = [], []
    for layer, (h, c) in enumerate(zip(hs, cs)):
        name = "{}.l{}".format(prefix, layer)
        from_input = _lstm_product(graph, x, prefix, "ih", layer)
        from_state = _lstm_product(graph, h, prefix, "hh", layer)
        z = builder.op("add", [from_input, from_state], name=name + "/gates")
        width = builder.spec(z).shape[-1] // 4
        i, f, g, o = builder.op("split", [z], {"sizes": [width] * 4, "axis": -1}, name=name + "/ifgo", n_outputs=4)
        i = builder.op("sigmoid", [i], name=name + "/input_gate")
        f = builder.op("sigmoid", [f], name=name + "/forget_gate")
        g = builder.op("tanh", [g], name=name + "/candidate")
        o = builder.op("sigmoid", [o], name=name + "/output_gate")
        c = builder.op("add", [builder.op("mul", [f, c], name=name + "/kept_cell"),
                               builder.op("mul", [i, g], name=name + "/new_cell")], name=name + "/cell")
        x = builder.op("mul", [o, builder.op("tanh", [c], name=name + "/cell_tanh")], name=name + "/hidden")
        new_h.append(x)
        new_c.append(c)
    return new_h, new_c


def _lstm_product(graph: TorchGraph, x: str, prefix: str, kind: str, layer: int) -> str:
    """x·W_{kind}ᵀ (+ b_{kind} when the LSTM has biases) for one layer."""
    weight = graph.laid_out("{}.weight_{}_l{}".format(prefix, kind, layer), LINEAR_WEIGHT_PERM)
    bias = "{}.bias_{}_l{}".format(prefix, kind, layer)
    name = "{}.l{}/{}".format(prefix, layer, kind)
    if graph.has(bias):
        return graph.builder.op("linear", [x, weight, graph.tensor(bias)], name=name)
    return graph.builder.op("matmul", [x, weight], name=name)


def actor_critic_trunk(graph: TorchGraph, model: Sb3Description) -> Tuple[str, List[str]]:
    """The actor-critic families' shared part: the value output, and the flat `action_net` output."""
    builder, act = graph.builder, activation(model)
    pi_prefix, vf_prefix, ignored = _actor_critic_extractors(graph)
    processed = preprocessed(graph, model)
    pi_features = extracted(graph, model, processed, pi_prefix)
    vf_features = pi_features if vf_prefix == pi_prefix else extracted(graph, model, processed, vf_prefix)
    latent_pi = graph.mlp(pi_features, "mlp_extractor.policy_net", act, output_layer=False)
    latent_vf = graph.mlp(vf_features, "mlp_extractor.value_net", act, output_layer=False)
    value = graph.linear(latent_vf, "value_net")
    builder.op("squeeze", [value], {"axis": -1}, name="value")
    builder.declare_output("value", "the state value V(s), SB3's predict_values")
    return graph.linear(latent_pi, "action_net"), ignored


def _actor_critic_extractors(graph: TorchGraph) -> Tuple[str, str, List[str]]:
    """Where the actor's and the critic's extractors are, and the copies to leave out. SB3 keeps a shared extractor
    under three names (`features_extractor`, `pi_…`, `vf_…`: one module, saved three times) and separate ones under
    `pi_…` (also `features_extractor`) and `vf_…`; SB3 < 1.7 saved only `features_extractor`."""
    def tensors(prefix: str) -> Dict[str, np.ndarray]:
        return {name[len(prefix):]: array for name, array in graph.parameters.items() if name.startswith(prefix + ".")}

    pi, vf, base = tensors("pi_features_extractor"), tensors("vf_features_extractor"), tensors("features_extractor")
    if not pi:
        return "features_extractor", "features_extractor", []
    if base and not _same(base, pi):
        raise ExportError("features_extractor and pi_features_extractor differ: SB3 saves them as one module")
    ignored = ["features_extractor."]
    if _same(pi, vf):
        return "pi_features_extractor", "pi_features_extractor", ignored + ["vf_features_extractor."]
    return "pi_features_extractor", "vf_features_extractor", ignored


def _same(left: Dict[str, np.ndarray], right: Dict[str, np.ndarray]) -> bool:
    return left.keys() == right.keys() and all(
        left[key].dtype == right[key].dtype and left[key].shape == right[key].shape
        and left[key].tobytes() == right[key].tobytes() for key in left)


def dqn(graph: TorchGraph, model: Sb3Description) -> FamilyResult:
    """DQN's QNetwork: extractor, `q_net` (create_mlp with the actions as outputs); the greedy action is the argmax
    of the Q-values, `predict(deterministic=False)` ε-greedy with the saved exploration rate."""
    builder = graph.builder
    x = observation_features(graph, model, "q_net.features_extractor")
    q_values = graph.mlp(x, "q_net.q_net", activation(model), output_layer=True, output_name="q_values")
    torch_argmax(builder, q_values, "action")
    return _greedy(graph, model, q_values), ["q_net_target."]


def qrdqn(graph: TorchGraph, model: Sb3Description) -> FamilyResult:
    """QR-DQN's QuantileNetwork: the network's outputs are n_quantiles x n_actions, quantile-major; the Q-values are
    the mean over the quantiles, the greedy action their argmax."""
    builder, space = graph.builder, model.action_space
    x = observation_features(graph, model, "quantile_net.features_extractor")
    flat = graph.mlp(x, "quantile_net.quantile_net", activation(model), output_layer=True)
    width = builder.spec(flat).shape[-1]
    if space.kind != "discrete" or width % space.n:
        raise ExportError("QR-DQN's network gives {} outputs, not a multiple of the {} actions".format(width, space.n))
    quantiles = width // space.n
    rows = builder.op("split", [flat], {"sizes": [space.n] * quantiles, "axis": -1}, name="quantiles",
                      n_outputs=quantiles) if quantiles > 1 else [flat]
    stacked = builder.op("stack", rows, {"axis": -1}, name="quantiles_by_action")
    mean = builder.op("reduce_mean", [stacked], name="q_values/kept")
    q_values = builder.op("squeeze", [mean], {"axis": -1}, name="q_values")
    torch_argmax(builder, q_values, "action")
    return _greedy(graph, model, q_values), ["quantile_net_target."]


def _greedy(graph: TorchGraph, model: Sb3Description, q_values: str) -> Dict[str, Any]:
    builder = graph.builder
    builder.declare_output("action", "greedy action: the argmax of the Q-values")
    builder.declare_output(q_values, "Q-values")
    if model.exploration_rate is None:
        return {"stochastic_action": None}
    return epsilon_greedy(builder, "action", model.action_space.n, model.exploration_rate)


def sac(graph: TorchGraph, model: Sb3Description) -> FamilyResult:
    """SAC's and TQC's Actor: extractor, `latent_pi`, `mu` (with gSDE: Hardtanh(±clip_mean) after it when the file
    has `mu.0`), tanh, unscaled to the bounds; a sample from `log_std` unless gSDE (its exploration matrix is not
    saved)."""
    return squashed_actor(graph, model, 0.0), ["critic_target."]


def crossq(graph: TorchGraph, model: Sb3Description) -> FamilyResult:
    """CrossQ's Actor: SAC's, with BatchRenorm layers in `latent_pi` evaluated on their running statistics (SB3's
    predict runs the policy in evaluation mode); CrossQ keeps no target critic."""
    eps = float(model.policy_kwargs.get("batch_norm_eps", CROSSQ_BATCH_NORM_EPS))
    return squashed_actor(graph, model, eps), []


def squashed_actor(graph: TorchGraph, model: Sb3Description, batch_norm_eps: float) -> Dict[str, Any]:
    """The squashed-Gaussian actor SAC, TQC and CrossQ share."""
    builder = graph.builder
    processed = preprocessed(graph, model)
    x = extracted(graph, model, processed, "actor.features_extractor")
    latent = graph.mlp(x, "actor.latent_pi", activation(model), output_layer=False, batch_norm_eps=batch_norm_eps)
    if model.use_sde:
        graph.tensor("actor.log_std")
        if graph.has("actor.mu.0.weight"):
            mean = graph.linear(latent, "actor.mu.0")
            bound = float(model.policy_kwargs.get("clip_mean", SAC_CLIP_MEAN))
            low = builder.op("constant", [], {"value": -bound, "dtype": "float32"}, name="clip_mean/low")
            high = builder.op("constant", [], {"value": bound, "dtype": "float32"}, name="clip_mean/high")
            mean = builder.op("clip", [mean, low, high], name="actor.mu.1")
        else:
            mean = graph.linear(latent, "actor.mu")
        result = squashed_gaussian(builder, mean, None, model.action_space)
        result["stochastic_action"] = None
    else:
        mean = graph.linear(latent, "actor.mu")
        log_std = graph.linear(latent, "actor.log_std")
        result = squashed_gaussian(builder, mean, log_std, model.action_space)
    critics(graph, model, processed, "squashed", batch_norm_eps)
    return result


def critics(graph: TorchGraph, model: Sb3Description, processed: Any, scaled_action: str,
            batch_norm_eps: float = 0.0) -> None:
    """The critics at the deterministic action, as SB3's `ContinuousCritic` (TQC's and CrossQ's alike) computes
    them: the critic's extractor on the observation, concatenated with the action in [-1, 1] (before unscaling:
    what the critics were trained on), through each `critic.qf{i}`; outputs `qf1`, `qf2`, ... ([B], or TQC's
    [B, n_quantiles])."""
    builder = graph.builder
    if not any(name.startswith("critic.qf0.") for name in graph.parameters):
        return
    x = extracted(graph, model, processed, "critic.features_extractor")
    joined = builder.op("concat", [x, scaled_action], {"axis": -1}, name="critic/input")
    index = 0
    while any(name.startswith("critic.qf{}.".format(index)) for name in graph.parameters):
        prefix, name = "critic.qf{}".format(index), "qf{}".format(index + 1)
        last = [i for i, kind in graph.sequential_modules(prefix) if kind == "linear"][-1]
        quantiles = graph.parameters["{}.{}.weight".format(prefix, last)].shape[0] > 1
        q = graph.mlp(joined, prefix, activation(model), output_layer=True,
                      output_name=name if quantiles else prefix + "/out", batch_norm_eps=batch_norm_eps)
        if not quantiles:
            q = builder.op("squeeze", [q], {"axis": -1}, name=name)
        builder.declare_output(q, "critic {}{} at the deterministic action".format(
            index, "'s quantiles" if quantiles else ""))
        index += 1


def td3(graph: TorchGraph, model: Sb3Description) -> FamilyResult:
    """TD3's and DDPG's Actor: extractor, `mu` (create_mlp ending in the action layer and Tanh), unscaled. SB3
    samples nothing at predict time (action noise is for training), so both actions are the same."""
    builder = graph.builder
    processed = preprocessed(graph, model)
    x = extracted(graph, model, processed, "actor.features_extractor")
    raw = graph.mlp(x, "actor.mu", activation(model), output_layer=True)
    box_action(builder, builder.op("tanh", [raw], name="squashed"), model.action_space, True, "action")
    builder.declare_output("action", "the actor's action, unscaled to the action space bounds")
    critics(graph, model, processed, "squashed")
    return {"stochastic_action": "action"}, ["actor_target.", "critic_target."]


def ars(graph: TorchGraph, model: Sb3Description) -> FamilyResult:
    """ARS's policies: `action_net` (create_mlp, with or without biases); Box actions through Tanh and unscaled when
    the policy squashes, else clipped; Discrete actions the argmax of the outputs. Deterministic either way."""
    builder, space = graph.builder, model.action_space
    x = observation_features(graph, model, "features_extractor")
    out = graph.mlp(x, "action_net", activation(model), output_layer=True)
    if space.kind == "discrete":
        torch_argmax(builder, out, "action")
        builder.declare_output("action", "the argmax of the policy's outputs")
        return {"stochastic_action": "action"}, []
    squash = model.flag("squash_output") is True
    box_action(builder, builder.op("tanh", [out], name="squashed") if squash else out, space, squash, "action")
    builder.declare_output("action", "the policy's action, {} to the action space bounds".format(
        "squashed and unscaled" if squash else "clipped"))
    return {"stochastic_action": "action"}, []


FAMILIES: Dict[str, FamilyBuilder] = {
    "actor_critic": actor_critic, "maskable_actor_critic": maskable_actor_critic,
    "recurrent_actor_critic": recurrent_actor_critic, "dqn": dqn, "qrdqn": qrdqn,
    "sac": sac, "crossq": crossq, "td3": td3, "ars": ars,
}
