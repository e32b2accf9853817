"""Names for the unnamed parameter lists of SB2 < 2.6 files, as SB2 2.10 assigns them when it loads one.

`BaseRLModel.load_parameters(list)` gives entry i to the i-th variable of `get_parameter_list()`: the policy's
variables in TensorFlow creation order (plus the algorithm's extras: TRPO's `oldpi`, GAIL's discriminator,
DQN's target network, SAC's entropy coefficient, DDPG's target and running statistics). Each namer below
rebuilds that list, names and shapes, from the file's spaces, policy class and kwargs. Where the shapes do not
fit that network and nothing stated it, the one MLP whose shapes they are is inferred (`name_unnamed_list`);
otherwise the error proposes the --policy-kwargs that fit. Old SAC and DDPG files store their list twice: SB2
takes the first entries (SAC) or the entries `DDPG.load` keeps after removing the duplicate (`list_entries`).
"""
from __future__ import annotations

import json
from itertools import product
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import ExportError, SbifError, UnsupportedError, preview
from .description import Space
from .parameter_layouts import (DEFAULT_LAYERS, Layout, actor_critic_mlp_layout, ddpg_layout, dqn_layout,
                                gail_adversary_layout, sac_layout, td3_layout, trpo_layout)
from .policy_classes import PolicyIdentity
from .safe_pickle import ArrayStub

Names = List[Tuple[str, Tuple[int, ...]]]


class ShapeMismatch(ExportError):
    """An unnamed list that does not fit the network it was named for: `name_unnamed_list` then infers the
    network from the shapes, or proposes the --policy-kwargs that fit them."""


def take_by_position(values: Any, expected: Names, path: str) -> List[Tuple[str, Any]]:
    """SB2's `load_parameters(list)`: entry i is the i-th variable; extra entries are ignored, as SB2 does."""
    if len(values) < len(expected):
        raise ShapeMismatch("{}: the file lists {} unnamed parameters but the network has {}".format(
            path, len(values), len(expected)))
    pairs = []
    for index, (name, shape) in enumerate(expected):
        actual = _shape(values[index])
        if actual != tuple(shape):
            raise ShapeMismatch("{}: unnamed parameter {} has shape {} where the network's {} has {}".format(
                path, index, actual, name, preview(tuple(shape))))
        pairs.append((name, values[index].array if isinstance(values[index], ArrayStub) else values[index]))
    return pairs


def _shape(value: Any) -> Tuple[int, ...]:
    array = value.array if isinstance(value, ArrayStub) else value
    return tuple(getattr(array, "shape", ()))


# -- the network of an unnamed list, from its shapes --------------------------------------------------------------
#: Hidden layers tried when inferring a network from the shapes (the zoo's networks have one to three).
MAX_INFERRED_LAYERS = 8


def name_unnamed_list(algorithm: str, values: List[Any], data: Dict[str, Any], kwargs: Dict[str, Any],
                      identity: PolicyIdentity, observation_space: Space, action_space: Space,
                      path: str) -> Tuple[List[Tuple[str, Any]], Optional[Dict[str, Any]]]:
    """(name, array) pairs for an unnamed list as SB2 names it, and the network kwargs inferred from its shapes
    (None when the kwargs in force fit).

    The list is named for the network the kwargs describe (the file's, the caller's, the class's, else SB2's
    default). When its shapes do not fit, and nothing stated the network, the shapes decide: an MLP's layer
    sizes are its kernels' widths, so exactly one network of up to MAX_INFERRED_LAYERS hidden layers fitting
    every entry is the network (a zoo class such as utils.CustomMlpPolicy sets `layers=[16]` in its __init__,
    which its file does not record). Otherwise the ShapeMismatch proposes the --policy-kwargs that fit, in the
    spelling that policy family takes."""
    namer = PARAMETER_NAMERS[algorithm]
    entries = LIST_ENTRIES.get(algorithm)

    def take(network: Dict[str, Any]) -> List[Tuple[str, Any]]:
        expected = namer(data, network, identity, observation_space, action_space, path)
        return take_by_position(entries(values, expected, path) if entries else values, expected, path)

    try:
        return take(kwargs), None
    except ShapeMismatch as mismatch:
        reason = str(mismatch)
    fits = fitting_networks(algorithm, values, data, identity, observation_space, action_space)
    stated = {key: kwargs[key] for key in NETWORK_KWARGS[algorithm] if kwargs.get(key) is not None}
    if not stated and len(fits) == 1:
        return take(dict(kwargs, **fits[0])), fits[0]
    said = "named for policy_kwargs {}".format(preview(stated)) if stated else \
        "named for the default network of {}".format(preview(identity.name))
    if not fits:
        raise ShapeMismatch("{} ({}); no MLP of up to {} hidden layers fits its shapes: pass --policy and "
                            "--policy-kwargs as the model was built".format(reason, said, MAX_INFERRED_LAYERS))
    proposals = " or ".join("--policy-kwargs '{}'".format(json.dumps(fit)) for fit in fits[:4])
    hint = ""
    if stated.get("net_arch") and any("layers" in fit for fit in fits):
        hint = " (net_arch [N] is a layer the policy and value function share; layers [N] gives each its own)"
    raise ShapeMismatch("{} ({}); the shapes fit {}{}{}".format(
        reason, said, proposals, " (ambiguous: pass the one it was built with)" if len(fits) > 1 else "", hint))


def describe_network(network: Dict[str, Any]) -> str:
    """Inferred network kwargs in words: 'layers [16]', 'net_arch [8, {"pi": [4], "vf": [2]}], dueling false'."""
    return ", ".join("{} {}".format(key, json.dumps(value)) for key, value in network.items())


def fitting_networks(algorithm: str, values: List[Any], data: Dict[str, Any], identity: PolicyIdentity,
                     observation_space: Space, action_space: Space) -> List[Dict[str, Any]]:
    """Every network kwargs (within MAX_INFERRED_LAYERS hidden layers, the class's fixed kwargs kept) whose
    parameter list has exactly the list's shapes, using all of it (or a list stored twice, as SB2 < 2.6 did)."""
    namer = PARAMETER_NAMERS[algorithm]
    entries = LIST_ENTRIES.get(algorithm)
    widths: List[int] = []
    for value in values:  # the first kernels' widths (a hostile list may be long: stop when there are enough)
        shape = _shape(value)
        if len(shape) == 2:
            widths.append(int(shape[1]))
            if len(widths) == MAX_INFERRED_LAYERS:
                break
    fits = []
    for network in _candidate_networks(algorithm, widths, identity):
        try:
            expected = namer(data, network, identity, observation_space, action_space, "")
            used = entries(values, expected, "") if entries else values
        except SbifError:  # a candidate its namer refuses (a width of 0) fits nothing
            continue
        whole = len(used) in (len(expected), 2 * len(expected))
        if whole and all(_shape(value) == tuple(shape) for value, (_, shape) in zip(used, expected)):
            fits.append(network)
    return fits


def _candidate_networks(algorithm: str, widths: List[int], identity: PolicyIdentity) -> Iterator[Dict[str, Any]]:
    """Networks whose hidden layers are the first n kernel widths, n = 0..len(widths). Actor-critic: the first
    `shared` of them shared, the rest split between pi and vf in SB2's creation order (pi_fc0, vf_fc0, pi_fc1,
    ...), spelled `layers` where pi and vf are the same list; DQN and SAC/TD3/DDPG: `layers`, with each flag
    the class does not fix (dueling, layer_norm) either way."""
    fixed = (DQN_CLASS_KWARGS if algorithm == "DQN" else OFF_POLICY_CLASS_KWARGS).get(identity.name, {})
    flags = [flag for flag in NETWORK_KWARGS[algorithm] if flag in FLAG_DEFAULTS and flag not in fixed]
    for count in range(len(widths) + 1):
        hidden = widths[:count]
        if "net_arch" in NETWORK_KWARGS[algorithm]:
            for shared in range(count + 1):
                for pi_count in range(count - shared + 1):
                    yield _actor_critic_network(hidden[:shared], hidden[shared:], pi_count)
            continue
        for values in product((False, True), repeat=len(flags)):
            network: Dict[str, Any] = {"layers": hidden}
            network.update((flag, value) for flag, value in zip(flags, values) if value != FLAG_DEFAULTS[flag])
            yield network


def _actor_critic_network(shared: List[int], split: List[int], pi_count: int) -> Dict[str, Any]:
    """net_arch with `shared` layers, then `split`'s widths dealt to pi and vf in zip_longest order."""
    pi: List[int] = []
    vf: List[int] = []
    widths = iter(split)
    for depth in range(max(pi_count, len(split) - pi_count)):
        if depth < pi_count:
            pi.append(next(widths))
        if depth < len(split) - pi_count:
            vf.append(next(widths))
    if not shared and pi and pi == vf:
        return {"layers": pi}
    return {"net_arch": shared + ([{"pi": pi, "vf": vf}] if pi or vf else [])}


def actor_critic_names(data: Dict[str, Any], kwargs: Dict[str, Any], identity: PolicyIdentity,
                       observation_space: Space, action_space: Space, path: str) -> Names:
    """`model/*` in TF creation order for an MLP FeedForwardPolicy (common/policies.py mlp_extractor)."""
    return _names(_mlp_policy_layout(kwargs, identity, observation_space, action_space, path))


def trpo_names(data: Dict[str, Any], kwargs: Dict[str, Any], identity: PolicyIdentity, observation_space: Space,
               action_space: Space, path: str) -> Names:
    """TRPO saves `model/*` then the same variables under `oldpi/` (`parameter_layouts.trpo_layout`)."""
    return _names(trpo_layout(_mlp_policy_layout(kwargs, identity, observation_space, action_space, path)))


def _mlp_policy_layout(kwargs: Dict[str, Any], identity: PolicyIdentity, observation_space: Space,
                       action_space: Space, path: str) -> Layout:
    not_mlp = identity.base == "LstmPolicy" or "Cnn" in identity.name or "Lstm" in identity.name
    if not_mlp or (not identity.is_stock and kwargs.get("feature_extraction", "mlp") != "mlp"):
        raise UnsupportedError("{}: cannot name the unnamed parameters of a {} policy (only MLP feed-forward "
                               "policies); pass --policy MlpPolicy if it is one".format(path, preview(identity.name)))
    return actor_critic_mlp_layout(observation_space, action_space, _net_arch(kwargs, path))


def gail_names(data: Dict[str, Any], kwargs: Dict[str, Any], identity: PolicyIdentity, observation_space: Space,
               action_space: Space, path: str) -> Names:
    """GAIL adds its discriminator (gail/adversary.py) to TRPO's list."""
    hidden = data.get("hidden_size_adversary", 100)
    if not _is_size(hidden) or observation_space.kind != "box" or len(observation_space.shape) != 1:
        raise UnsupportedError("{}: cannot name the unnamed parameters of this GAIL model".format(path))
    actions = action_space.n if action_space.kind == "discrete" else int(np.prod(action_space.shape))
    adversary = gail_adversary_layout(int(observation_space.shape[0]), int(actions), int(hidden))
    return trpo_names(data, kwargs, identity, observation_space, action_space, path) + _names(adversary)


def dqn_names(data: Dict[str, Any], kwargs: Dict[str, Any], identity: PolicyIdentity, observation_space: Space,
              action_space: Space, path: str) -> Names:
    """`deepq/*` in creation order for an MLP deepq FeedForwardPolicy (deepq/policies.py, build_graph.py):
    eps, the Q network (action_value tower, then state_value if dueling), its param-noise copies, the target."""
    if action_space.kind != "discrete" or "Cnn" in identity.name or kwargs.get("feature_extraction") == "cnn":
        raise UnsupportedError("{}: cannot name the unnamed parameters of a {} DQN policy (only MLP policies "
                               "with Discrete actions)".format(path, preview(identity.name)))
    fixed = DQN_CLASS_KWARGS.get(identity.name, {})
    layers = _layers(fixed.get("layers", kwargs.get("layers")), path)
    layer_norm = bool(fixed.get("layer_norm", kwargs.get("layer_norm", False)))
    dueling = bool(fixed.get("dueling", kwargs.get("dueling", FLAG_DEFAULTS["dueling"])))
    return _names(dqn_layout(observation_space, int(action_space.n), layers, layer_norm, dueling,
                             param_noise=data.get("param_noise") is True))


#: DQN policy classes that fix kwargs in their __init__ (deepq/policies.py; the zoo's utils/utils.py).
DQN_CLASS_KWARGS = {"LnMlpPolicy": {"layer_norm": True, "dueling": True}, "MlpPolicy": {"layer_norm": False},
                    "CustomDQNPolicy": {"layers": [64], "layer_norm": True}}


def _net_arch(kwargs: Dict[str, Any], path: str) -> List[Any]:
    """net_arch as FeedForwardPolicy reads it (from the deprecated `layers`, each for pi and vf, when it is not
    given), checked to hold layer sizes then at most a dict(pi=[...], vf=[...])."""
    net_arch = kwargs.get("net_arch")
    if net_arch is None:
        layers = kwargs.get("layers")
        net_arch = [{"vf": list(DEFAULT_LAYERS) if layers is None else layers,
                     "pi": list(DEFAULT_LAYERS) if layers is None else layers}]
    if not isinstance(net_arch, list):
        raise ExportError("{}: net_arch must be a list".format(path))
    checked: List[Any] = []
    for layer in net_arch:
        if _is_size(layer):
            checked.append(int(layer))
        elif isinstance(layer, dict):
            pi_layers, vf_layers = list(layer.get("pi", [])), list(layer.get("vf", []))
            if not all(_is_size(size) for size in pi_layers + vf_layers):
                raise ExportError("{}: net_arch pi/vf lists must hold layer sizes".format(path))
            checked.append({"pi": [int(s) for s in pi_layers], "vf": [int(s) for s in vf_layers]})
            break
        else:
            raise ExportError("{}: net_arch entries must be layer sizes or a dict(pi=[...], vf=[...])".format(path))
    return checked


def _layers(layers: Any, path: str) -> List[int]:
    """A policy's `layers` kwarg (SB2's default when None), checked to be a list of layer sizes."""
    if layers is None:
        return list(DEFAULT_LAYERS)
    if not isinstance(layers, list) or not all(_is_size(size) for size in layers):
        raise ExportError("{}: policy_kwargs layers must be a list of layer sizes".format(path))
    return [int(size) for size in layers]


def _is_size(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def _names(layout: Layout) -> Names:
    return [(parameter.name, parameter.shape) for parameter in layout]


# -- SAC, TD3, DDPG (sac/policies.py, td3/policies.py, ddpg/policies.py; common/tf_layers.py mlp) ----------------
#: Off-policy classes that fix kwargs in their __init__ (the Ln* classes; the zoo's utils/utils.py).
OFF_POLICY_CLASS_KWARGS = {"LnMlpPolicy": {"layer_norm": True}, "CustomSACPolicy": {"layers": [256, 256]}}


def sac_names(data: Dict[str, Any], kwargs: Dict[str, Any], identity: PolicyIdentity, observation_space: Space,
              action_space: Space, path: str) -> Names:
    """SAC's list (`parameter_layouts.sac_layout`); the learned `log_ent_coef` when ent_coef is "auto..."."""
    layers, layer_norm = _off_policy_layers(kwargs, identity, "SAC", path)
    ent_coef = data.get("ent_coef")
    learned = isinstance(ent_coef, str) and ent_coef.startswith("auto")
    return _names(sac_layout(observation_space, _box_width(action_space, path), layers, layer_norm, learned))


def td3_names(data: Dict[str, Any], kwargs: Dict[str, Any], identity: PolicyIdentity, observation_space: Space,
              action_space: Space, path: str) -> Names:
    """TD3's list (`parameter_layouts.td3_layout`)."""
    layers, layer_norm = _off_policy_layers(kwargs, identity, "TD3", path)
    return _names(td3_layout(observation_space, _box_width(action_space, path), layers, layer_norm))


def ddpg_names(data: Dict[str, Any], kwargs: Dict[str, Any], identity: PolicyIdentity, observation_space: Space,
               action_space: Space, path: str) -> Names:
    """DDPG's list (`parameter_layouts.ddpg_layout`), with the settings saved beside it."""
    layers, layer_norm = _off_policy_layers(kwargs, identity, "DDPG", path)
    return _names(ddpg_layout(observation_space, _box_width(action_space, path), layers, layer_norm,
                              param_noise=data.get("param_noise") is not None,
                              normalize_observations=bool(data.get("normalize_observations")),
                              normalize_returns=bool(data.get("normalize_returns"))))


def ddpg_list_entries(values: List[Any], expected: Names, path: str) -> List[Any]:
    """`DDPG.load`: a list longer than the model's holds params and target params twice (SB2 < 2.6 saved them
    again): keep the first copy, then the running statistics at the end."""
    if len(values) <= len(expected):
        return values
    statistics = sum(1 for name, _ in expected if name.startswith("input/"))
    networks = len(expected) - statistics
    if len(values) != 2 * networks + statistics:
        raise ShapeMismatch("{}: the file lists {} unnamed parameters; a DDPG model with this network has {} (or "
                            "{} in the duplicated lists of SB2 < 2.6)".format(path, len(values), len(expected),
                                                                             2 * networks + statistics))
    return list(values[:networks]) + (list(values[-statistics:]) if statistics else [])


def _off_policy_layers(kwargs: Dict[str, Any], identity: PolicyIdentity, algorithm: str,
                       path: str) -> Tuple[List[int], bool]:
    fixed = OFF_POLICY_CLASS_KWARGS.get(identity.name, {})
    if "Cnn" in identity.name or kwargs.get("feature_extraction", "mlp") != "mlp":
        raise UnsupportedError("{}: cannot name the unnamed parameters of a {} {} policy (only MLP policies); pass "
                               "--policy MlpPolicy if it is one".format(path, preview(identity.name), algorithm))
    layers = _layers(fixed.get("layers", kwargs.get("layers")), path)
    return layers, bool(fixed.get("layer_norm", kwargs.get("layer_norm", False)))


def _box_width(space: Space, path: str) -> int:
    if space.kind != "box":
        raise ExportError("{}: SAC, TD3 and DDPG need a Box action space, the file has {}".format(path, space.kind))
    return int(np.prod(space.shape))


#: Algorithm -> namer of its unnamed parameter lists.
PARAMETER_NAMERS = {"A2C": actor_critic_names, "ACER": actor_critic_names, "ACKTR": actor_critic_names,
                    "PPO1": actor_critic_names, "PPO2": actor_critic_names, "TRPO": trpo_names,
                    "GAIL": gail_names, "DQN": dqn_names, "SAC": sac_names, "TD3": td3_names, "DDPG": ddpg_names}
#: Algorithm -> which entries of a stored list `load` passes on to `load_parameters` (default: all of them).
LIST_ENTRIES = {"DDPG": ddpg_list_entries}

#: The namers of the actor-critic family (net_arch, or the deprecated layers, as FeedForwardPolicy reads them).
ACTOR_CRITIC_NAMERS = (actor_critic_names, trpo_names, gail_names)
#: Algorithm -> the policy kwargs that decide its unnamed list's shapes (sizes first, then flags).
NETWORK_KWARGS = dict({algorithm: ("net_arch", "layers") for algorithm, namer in PARAMETER_NAMERS.items()
                       if namer in ACTOR_CRITIC_NAMERS},
                      DQN=("layers", "dueling", "layer_norm"), SAC=("layers", "layer_norm"),
                      TD3=("layers", "layer_norm"), DDPG=("layers", "layer_norm"))
#: SB2's defaults of the flags (deepq FeedForwardPolicy: dueling=True; every policy: layer_norm=False).
FLAG_DEFAULTS = {"dueling": True, "layer_norm": False}
