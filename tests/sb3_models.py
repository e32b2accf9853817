"""Stable-Baselines3 and sb3-contrib test models: every algorithm x policy x space combination SB3 can build.

SB3 is the oracle of the SB3 exporter (issue #21), so its tests need models SB3 built itself, on every path an
exporter has to get right: each algorithm with each policy class it offers, each observation and action space it
accepts, the `net_arch`, activation, feature-extractor, gSDE, LSTM, quantile and batch-renormalization options. The
weights are random from a seed (`build_model`), at a scale where every layer, bias, log-std and running statistic
changes the outputs, so an exporter with a wrong bias, layout or gate order cannot agree with SB3 by chance.

`SB3_CASES` is the enumeration; `UNBUILDABLE` lists the combinations SB3 refuses, each with SB3's own reason
(tests/test_sb3_models.py holds both to what SB3 does). This module runs SB3, torch and gymnasium: tests import
it, the package never does.
"""
from __future__ import annotations

import copy
import itertools
import os
from collections import Counter
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple, Type, Union

import gymnasium
import numpy as np
import sb3_contrib
import stable_baselines3
import torch
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.torch_layers import BatchRenorm
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.torch_layers import NatureCNN
from stable_baselines3.her.her_replay_buffer import HerReplayBuffer

#: Every algorithm class the enumeration builds, by SB3's class name.
ALGORITHMS: Dict[str, Type[BaseAlgorithm]] = {
    name: getattr(package, name)
    for package, names in ((stable_baselines3, ("A2C", "PPO", "DQN", "SAC", "TD3", "DDPG")),
                           (sb3_contrib, ("ARS", "QRDQN", "TQC", "TRPO", "RecurrentPPO", "MaskablePPO", "CrossQ")))
    for name in names
}

#: Settings that only make building fast and light (rollout and replay buffers SB3 allocates up front); they do not
#: change the policy. A case's own `algorithm_kwargs` are applied over them.
SMALL_BUFFERS: Dict[str, Dict[str, Any]] = {
    "A2C": {"n_steps": 4},
    "PPO": {"n_steps": 8, "batch_size": 8},
    "TRPO": {"n_steps": 8, "batch_size": 8},
    "RecurrentPPO": {"n_steps": 8, "batch_size": 8},
    "MaskablePPO": {"n_steps": 8, "batch_size": 8},
    "ARS": {"n_delta": 2},
    **{name: {"buffer_size": 64, "learning_starts": 8}
       for name in ("DQN", "QRDQN", "SAC", "TD3", "DDPG", "TQC", "CrossQ")},
}

#: Episodes of the test environments end (truncated) after this many steps, so HER sees whole episodes.
EPISODE_LENGTH = 4


def nature_cnn_minimum_side() -> int:
    """The smallest image height (or width) NatureCNN's convolutions accept, read from NatureCNN's own layers: each
    convolution (no padding) needs an input of at least `kernel` and maps `side` to `(side - kernel) // stride + 1`,
    so the minimum is the last layer's 1 pixel walked back through every layer."""
    network = NatureCNN(spaces.Box(0, 255, (1, 128, 128), np.uint8), features_dim=1)
    side = 1
    for layer in reversed([module for module in network.cnn if isinstance(module, torch.nn.Conv2d)]):
        assert layer.padding == (0, 0) and layer.dilation == (1, 1), "NatureCNN changed: recompute the minimum"
        side = (side - 1) * layer.stride[0] + layer.kernel_size[0]
    return side


#: Images are as small as NatureCNN allows (its strides must still fit), and not square, so a runtime that swaps
#: height and width fails.
IMAGE_SIDE = nature_cnn_minimum_side()

#: Observation spaces by the kind name the case ids use. Each is built fresh (spaces carry a random generator).
OBSERVATION_SPACES: Dict[str, Callable[[], spaces.Space]] = {
    # asymmetric finite bounds
    "box": lambda: spaces.Box(np.array([-1.0, -1.5, 0.0, -0.5], np.float32),
                              np.array([1.5, 1.0, 2.0, 0.5], np.float32)),
    # 2-D, float64 (SB3 rounds to float32), one row unbounded
    "box2d": lambda: spaces.Box(np.array([[-1.0, -2.0, 0.0], [-np.inf] * 3]),
                                np.array([[1.0, 0.0, 1.0], [np.inf] * 3]), dtype=np.float64),
    "discrete": lambda: spaces.Discrete(5),
    "multidiscrete": lambda: spaces.MultiDiscrete([3, 2, 4]),
    "multibinary": lambda: spaces.MultiBinary(4),
    # a small uint8 image through MlpPolicy: flattened after SB3's transpose and /255
    "image-mlp": lambda: spaces.Box(0, 255, (6, 5, 2), np.uint8),
    # channel-first uint8 images (4 stacked frames), and channel-last ones SB3 transposes (VecTransposeImage)
    "image": lambda: spaces.Box(0, 255, (4, IMAGE_SIDE + 4, IMAGE_SIDE), np.uint8),
    "image-hwc": lambda: spaces.Box(0, 255, (IMAGE_SIDE, IMAGE_SIDE + 6, 3), np.uint8),
    # an already normalized float image: NatureCNN takes it only with normalize_images=False
    "image-float": lambda: spaces.Box(-1.0, 1.0, (2, IMAGE_SIDE, IMAGE_SIDE + 2), np.float32),
    # keys given out of alphabetical order: gymnasium sorts a Dict's keys, and SB3 concatenates features in that order
    "dict": lambda: spaces.Dict({
        "position": spaces.Box(-1.0, 2.0, (3,), np.float32),
        "camera": spaces.Box(0, 255, (1, IMAGE_SIDE, IMAGE_SIDE + 2), np.uint8),
        "mode": spaces.Discrete(3),
        "flags": spaces.MultiBinary(2),
    }),
    "dict-hwc": lambda: spaces.Dict({
        "camera": spaces.Box(0, 255, (IMAGE_SIDE + 2, IMAGE_SIDE, 3), np.uint8),
        "joints": spaces.Box(-1.0, 1.0, (2, 2), np.float32),
        "gear": spaces.MultiDiscrete([2, 3]),
    }),
    # goal dicts for HER: continuous goals, and bit-flipping goals
    "goal": lambda: spaces.Dict({
        "observation": spaces.Box(-1.0, 1.0, (4,), np.float32),
        "achieved_goal": spaces.Box(-1.0, 1.0, (2,), np.float32),
        "desired_goal": spaces.Box(-1.0, 1.0, (2,), np.float32),
    }),
    "goal-bits": lambda: spaces.Dict({
        "observation": spaces.MultiBinary(4),
        "achieved_goal": spaces.MultiBinary(4),
        "desired_goal": spaces.MultiBinary(4),
    }),
}

#: Action spaces by kind name. Box bounds are asymmetric, so that unscaling and clipping are visible, and contain 0,
#: so that a policy that clips its actions (unsquashed) is not clipped on every observation.
ACTION_SPACES: Dict[str, Callable[[], spaces.Space]] = {
    "box": lambda: spaces.Box(np.array([-1.0, -2.0, -0.25], np.float32), np.array([1.0, 0.5, 3.0], np.float32)),
    "box2d": lambda: spaces.Box(np.array([[-1.0, -0.5], [-3.0, -0.5]], np.float32),
                                np.array([[1.0, 2.0], [0.5, 0.25]], np.float32)),
    "discrete": lambda: spaces.Discrete(4),
    "multidiscrete": lambda: spaces.MultiDiscrete([3, 2]),
    "multibinary": lambda: spaces.MultiBinary(3),
}

#: The torch.nn activations SB3 users pass as `activation_fn` (SB3 instantiates the class with no arguments, so
#: each runs with torch's defaults: LeakyReLU's slope 0.01, ELU's and CELU's alpha 1, Hardtanh's [-1, 1], ...).
ACTIVATIONS: Tuple[Type[torch.nn.Module], ...] = (
    torch.nn.Tanh, torch.nn.ReLU, torch.nn.ELU, torch.nn.LeakyReLU, torch.nn.SELU, torch.nn.GELU, torch.nn.SiLU,
    torch.nn.Mish, torch.nn.Softplus, torch.nn.Sigmoid, torch.nn.Hardtanh, torch.nn.ReLU6, torch.nn.Softsign,
    torch.nn.Hardswish, torch.nn.CELU,
)

#: Small feature extractors where the case does not test their default size.
SMALL_NATURE_CNN = {"features_extractor_kwargs": {"features_dim": 16}}
SMALL_COMBINED = {"features_extractor_kwargs": {"cnn_output_dim": 8}}
SMALL_LSTM = {"lstm_hidden_size": 8}
#: ...which case ids leave out.
SMALL_SETTINGS = {"features_extractor_kwargs": (SMALL_NATURE_CNN["features_extractor_kwargs"],
                                                SMALL_COMBINED["features_extractor_kwargs"]),
                  "lstm_hidden_size": (SMALL_LSTM["lstm_hidden_size"],)}


class Sb3Case(NamedTuple):
    """One model to build: an SB3 algorithm and policy on an environment with these spaces.

    `observation_space` is the environment's (a channel-last image stays channel-last here; SB3 saves it
    transposed). HER cases are off-policy algorithms whose `algorithm_kwargs` name `HerReplayBuffer`."""
    id: str
    algorithm: str
    policy: str
    observation_space: spaces.Space
    action_space: spaces.Space
    policy_kwargs: Dict[str, Any]
    algorithm_kwargs: Dict[str, Any]


class Unbuildable(NamedTuple):
    """A combination SB3 refuses to build, with the words of SB3's error (a substring of its message)."""
    case: Sb3Case
    reason: str


def describe(value: Any) -> str:
    """A short, readable rendering of a keyword's value for a case id."""
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, dict):
        return ",".join("{}={}".format(key, describe(item)) for key, item in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(describe(item) for item in value) + "]"
    return str(value)


def make_case(algorithm: str, policy: str, observation: str, action: str,
              policy_kwargs: Optional[Dict[str, Any]] = None, **algorithm_kwargs: Any) -> Sb3Case:
    """A case on the named spaces; its id names the algorithm, policy, spaces and every keyword that varies."""
    policy_kwargs = dict(policy_kwargs or {})
    shown = {key: value for key, value in dict(policy_kwargs, **algorithm_kwargs).items()
             if value not in SMALL_SETTINGS.get(key, ())}
    if shown.pop("replay_buffer_class", None) is HerReplayBuffer:
        shown.pop("replay_buffer_kwargs", None)
        shown["HER"] = True
    parts = [algorithm, policy, observation, action] + [
        key if value is True else "{}={}".format(key, describe(value)) for key, value in sorted(shown.items())]
    return Sb3Case("-".join(parts), algorithm, policy, OBSERVATION_SPACES[observation](), ACTION_SPACES[action](),
                   policy_kwargs, algorithm_kwargs)


#: net_arch variants per family: the default (None), one list for both networks, separate networks, none at all.
ON_POLICY_ARCHS = ([8, 8], dict(pi=[8], vf=[6, 4]), [], dict(pi=[6, 5], vf=[]), None)
OFF_POLICY_ARCHS = ([8, 8], dict(pi=[8], qf=[6, 4]), [], dict(pi=[], qf=[7]), None)
Q_NETWORK_ARCHS = ([8, 8], [6], [], None)
#: CrossQ's default critic is 2 x 1024 x 1024: the default is covered once, on its own, not in the grid.
CROSSQ_ARCHS = ([8, 8], dict(pi=[8], qf=[6, 4]), [], dict(pi=[], qf=[7]))

MLP_OBSERVATIONS = ("box", "box2d", "discrete", "multidiscrete", "multibinary", "image-mlp")


def _grid(algorithm: str, policy: str, observations: Tuple[str, ...], actions: Tuple[str, ...],
          archs: Tuple[Any, ...], activations: Optional[Iterator[Optional[Type[torch.nn.Module]]]],
          full: bool = False, **policy_kwargs: Any) -> Iterator[Sb3Case]:
    """MlpPolicy-style cases: every observation kind with every action kind (`full`), or each kind of both in turn.
    Each case takes the next net_arch of `archs` (None: the default) and the next of `activations` (None: the
    default; no iterator: a policy without the option), so variants meet in changing combinations."""
    count = max(len(observations), len(actions))
    pairs = (itertools.product(observations, actions) if full else
             ((observations[index % len(observations)], actions[index % len(actions)]) for index in range(count)))
    for index, (observation, action) in enumerate(pairs):
        kwargs = dict(policy_kwargs)
        activation = next(activations) if activations is not None else None
        if activation is not None:
            kwargs["activation_fn"] = activation
        arch = archs[index % len(archs)]
        if arch is not None:
            kwargs["net_arch"] = arch
        yield make_case(algorithm, policy, observation, action, kwargs)


def _her(algorithm: str, observation: str, action: str, **policy_kwargs: Any) -> Sb3Case:
    """An off-policy algorithm with HER's replay buffer on a goal Dict."""
    return make_case(algorithm, "MultiInputPolicy", observation, action, policy_kwargs,
                     replay_buffer_class=HerReplayBuffer,
                     replay_buffer_kwargs={"n_sampled_goal": 2, "goal_selection_strategy": "future"})


def _enumerate() -> List[Sb3Case]:
    """SB3_CASES: each algorithm's policies on its observation and action kinds (grids), then the options each family
    adds, a case each (tiny networks, except where a case covers a default size)."""
    cases: List[Sb3Case] = []
    add = cases.append
    # one rotation through all grids: every activation appears, each with several algorithms
    activations = itertools.cycle((None,) + ACTIVATIONS)
    on_policy_actions = ("box", "discrete", "multidiscrete", "multibinary")
    small_cnn = dict(SMALL_NATURE_CNN, net_arch=[8])

    # --- A2C, PPO, TRPO: ActorCriticPolicy and its CNN and MultiInput variants -----------------------------------
    cases += _grid("PPO", "MlpPolicy", MLP_OBSERVATIONS, on_policy_actions, ON_POLICY_ARCHS, activations, full=True)
    add(make_case("PPO", "MlpPolicy", "box", "box2d", {"net_arch": [8]}))
    for algorithm in ("A2C", "TRPO"):
        cases += _grid(algorithm, "MlpPolicy", MLP_OBSERVATIONS, on_policy_actions, ON_POLICY_ARCHS, activations)
    # gSDE: full or diagonal std, squashed or clipped, expln
    for full_std, squash in itertools.product((True, False), (True, False)):
        add(make_case("PPO", "MlpPolicy", "box", "box",
                      {"net_arch": [8, 8], "full_std": full_std, "squash_output": squash}, use_sde=True))
    add(make_case("A2C", "MlpPolicy", "box2d", "box", {"net_arch": dict(pi=[8], vf=[6]), "use_expln": True},
                  use_sde=True))
    add(make_case("TRPO", "MlpPolicy", "multidiscrete", "box", {"net_arch": [8], "full_std": False},
                  use_sde=True))
    add(make_case("PPO", "CnnPolicy", "image", "discrete", SMALL_NATURE_CNN))
    add(make_case("PPO", "CnnPolicy", "image-hwc", "box", dict(small_cnn, share_features_extractor=False)))
    add(make_case("PPO", "CnnPolicy", "image", "multidiscrete", dict(small_cnn, normalize_images=False)))
    add(make_case("PPO", "CnnPolicy", "image-float", "multibinary", dict(small_cnn, normalize_images=False)))
    add(make_case("A2C", "CnnPolicy", "image-hwc", "discrete", {}))  # NatureCNN's default 512 features
    add(make_case("A2C", "CnnPolicy", "image", "box", dict(small_cnn, share_features_extractor=False)))
    add(make_case("TRPO", "CnnPolicy", "image", "discrete", small_cnn))
    add(make_case("TRPO", "CnnPolicy", "image-hwc", "multibinary",
                  dict(small_cnn, share_features_extractor=False, activation_fn=torch.nn.ReLU)))
    add(make_case("PPO", "MultiInputPolicy", "dict", "box", dict(SMALL_COMBINED, net_arch=[8])))
    add(make_case("PPO", "MultiInputPolicy", "dict-hwc", "discrete",
                  dict(SMALL_COMBINED, net_arch=dict(pi=[8], vf=[6]), share_features_extractor=False)))
    add(make_case("PPO", "MultiInputPolicy", "dict", "multibinary", {}))  # CombinedExtractor's default 256
    add(make_case("A2C", "MultiInputPolicy", "dict", "multidiscrete", dict(SMALL_COMBINED, net_arch=[8])))
    add(make_case("TRPO", "MultiInputPolicy", "dict-hwc", "box",
                  dict(SMALL_COMBINED, net_arch=[8], share_features_extractor=False)))

    # --- MaskablePPO: masks over Discrete, MultiDiscrete and MultiBinary actions ----------------------------------
    masked_actions = ("discrete", "multidiscrete", "multibinary")
    cases += _grid("MaskablePPO", "MlpPolicy", ("box",), masked_actions, ON_POLICY_ARCHS, activations, full=True)
    cases += _grid("MaskablePPO", "MlpPolicy", MLP_OBSERVATIONS[1:], masked_actions, ON_POLICY_ARCHS, activations)
    add(make_case("MaskablePPO", "CnnPolicy", "image", "discrete", small_cnn))
    add(make_case("MaskablePPO", "CnnPolicy", "image-hwc", "multibinary",
                  dict(small_cnn, share_features_extractor=False)))
    add(make_case("MaskablePPO", "MultiInputPolicy", "dict", "multidiscrete", dict(SMALL_COMBINED, net_arch=[8])))

    # --- RecurrentPPO: separate actor and critic LSTMs (default), a shared one, none for the critic, two layers ---
    # (SB3 cannot build an LSTM over MultiDiscrete observations: UNBUILDABLE)
    recurrent_observations = tuple(kind for kind in MLP_OBSERVATIONS if kind != "multidiscrete")
    cases += _grid("RecurrentPPO", "MlpLstmPolicy", recurrent_observations, on_policy_actions, ON_POLICY_ARCHS,
                   activations, **SMALL_LSTM)
    lstm_variants = (
        {"shared_lstm": True, "enable_critic_lstm": False},
        {"enable_critic_lstm": False},
        {"n_lstm_layers": 2},
        {"n_lstm_layers": 2, "shared_lstm": True, "enable_critic_lstm": False},
    )
    for variant, action in zip(lstm_variants, on_policy_actions):
        add(make_case("RecurrentPPO", "MlpLstmPolicy", "box", action, dict(SMALL_LSTM, net_arch=[8], **variant)))
    add(make_case("RecurrentPPO", "MlpLstmPolicy", "box", "box", {}))  # the default 256-unit LSTM and 64x64 heads
    add(make_case("RecurrentPPO", "MlpLstmPolicy", "box", "box", dict(SMALL_LSTM, net_arch=[8], full_std=False,
                                                                       squash_output=True), use_sde=True))
    add(make_case("RecurrentPPO", "CnnLstmPolicy", "image", "discrete", dict(small_cnn, **SMALL_LSTM)))
    add(make_case("RecurrentPPO", "CnnLstmPolicy", "image-hwc", "box",
                  dict(small_cnn, share_features_extractor=False, n_lstm_layers=2, **SMALL_LSTM)))
    add(make_case("RecurrentPPO", "MultiInputLstmPolicy", "dict", "multidiscrete",
                  dict(SMALL_COMBINED, net_arch=[8], shared_lstm=True, enable_critic_lstm=False, **SMALL_LSTM)))

    # --- DQN, QR-DQN: Q-networks (greedy, or epsilon-greedy with the saved exploration rate) ---------------------
    for algorithm in ("DQN", "QRDQN"):
        cases += _grid(algorithm, "MlpPolicy", MLP_OBSERVATIONS, ("discrete",), Q_NETWORK_ARCHS, activations)
        add(make_case(algorithm, "CnnPolicy", "image", "discrete", small_cnn))
        add(make_case(algorithm, "CnnPolicy", "image-hwc", "discrete", dict(small_cnn, normalize_images=False)))
        add(make_case(algorithm, "MultiInputPolicy", "dict-hwc", "discrete", dict(SMALL_COMBINED, net_arch=[8])))
        add(_her(algorithm, "goal-bits", "discrete", net_arch=[8]))
    add(make_case("DQN", "MlpPolicy", "box", "discrete", {"net_arch": [8]},
                  exploration_initial_eps=0.5, exploration_final_eps=0.2, exploration_fraction=0.5))
    for n_quantiles in (1, 7):
        add(make_case("QRDQN", "MlpPolicy", "box", "discrete", {"net_arch": [8], "n_quantiles": n_quantiles}))

    # --- SAC, TQC, CrossQ (squashed Gaussian actors, gSDE), TD3 and DDPG (deterministic actors) ------------------
    for algorithm in ("SAC", "TQC", "TD3", "DDPG"):
        cases += _grid(algorithm, "MlpPolicy", MLP_OBSERVATIONS, ("box",), OFF_POLICY_ARCHS, activations)
        add(make_case(algorithm, "MlpPolicy", "box", "box2d", {"net_arch": [8]}))
        add(make_case(algorithm, "CnnPolicy", "image", "box", small_cnn))
        add(make_case(algorithm, "CnnPolicy", "image-hwc", "box", dict(small_cnn, share_features_extractor=True)))
        add(make_case(algorithm, "MultiInputPolicy", "dict", "box",
                      dict(SMALL_COMBINED, net_arch=dict(pi=[8], qf=[6]), share_features_extractor=True)))
        add(_her(algorithm, "goal", "box", net_arch=[8]))
    for algorithm in ("SAC", "TQC", "TD3"):
        for n_critics in (1, 3):
            add(make_case(algorithm, "MlpPolicy", "box", "box", {"net_arch": [8], "n_critics": n_critics}))
    add(make_case("TQC", "MlpPolicy", "box", "box", {"net_arch": [8], "n_quantiles": 5}))
    add(make_case("SAC", "MultiInputPolicy", "dict-hwc", "box", dict(SMALL_COMBINED, net_arch=[8])))
    cases += _grid("CrossQ", "MlpPolicy", MLP_OBSERVATIONS, ("box",), CROSSQ_ARCHS, activations)
    add(make_case("CrossQ", "MlpPolicy", "box", "box", {}))  # the default 256-wide actor, 1024-wide critics
    add(make_case("CrossQ", "MlpPolicy", "box", "box2d", {"net_arch": [8, 8], "batch_norm": False}))
    add(make_case("CrossQ", "MlpPolicy", "box", "box",
                  {"net_arch": [8, 8], "batch_norm_eps": 0.05, "batch_norm_momentum": 0.1}))
    # gSDE of the squashed actors: Hardtanh(+-clip_mean) on the mean (clip_mean 0: none), expln
    for algorithm, variant in (("SAC", {}), ("SAC", {"clip_mean": 0.0}), ("SAC", {"clip_mean": 0.5, "use_expln": True}),
                               ("TQC", {"clip_mean": 1.0}), ("CrossQ", {})):
        add(make_case(algorithm, "MlpPolicy", "box", "box", dict(variant, net_arch=[8, 8]), use_sde=True))

    # --- ARS: MLP (tanh-squashed on Box) and linear policies, with and without biases ----------------------------
    ars_actions = ("box", "discrete")
    cases += _grid("ARS", "MlpPolicy", MLP_OBSERVATIONS, ars_actions, Q_NETWORK_ARCHS, activations)
    cases += _grid("ARS", "LinearPolicy", ("box", "discrete", "multidiscrete", "box2d"), ars_actions, (None,), None)
    add(make_case("ARS", "MlpPolicy", "box", "box", {"net_arch": [8], "squash_output": False}))
    add(make_case("ARS", "MlpPolicy", "box", "discrete", {"net_arch": [8], "with_bias": False}))
    add(make_case("ARS", "LinearPolicy", "box", "box", {"with_bias": True}))
    add(make_case("ARS", "LinearPolicy", "multibinary", "box", {"squash_output": True}))
    return cases


SB3_CASES: List[Sb3Case] = _enumerate()


#: The action spaces each algorithm refuses (BaseAlgorithm checks the class against the algorithm's list).
REFUSED_ACTIONS = {
    **{name: ("box", "multidiscrete", "multibinary") for name in ("DQN", "QRDQN")},
    **{name: ("discrete", "multidiscrete", "multibinary") for name in ("SAC", "TD3", "DDPG", "TQC", "CrossQ")},
    "MaskablePPO": ("box",),
    "ARS": ("multidiscrete", "multibinary"),
}


def _unbuildable() -> List[Unbuildable]:
    """UNBUILDABLE: the action spaces each algorithm refuses, policies it does not offer, observation spaces a policy
    cannot read, and options SB3 rejects."""
    # BaseAlgorithm: "The algorithm only supports (...) as action spaces but ... was provided"
    refused_actions = [Unbuildable(make_case(algorithm, "MlpPolicy", "box", action), "only supports")
                       for algorithm, actions in REFUSED_ACTIONS.items() for action in actions]
    return refused_actions + [
        Unbuildable(make_case("CrossQ", "CnnPolicy", "image", "box"), "unknown"),
        Unbuildable(make_case("CrossQ", "MultiInputPolicy", "dict", "box"), "unknown"),
        Unbuildable(make_case("ARS", "CnnPolicy", "image", "box"), "unknown"),
        Unbuildable(make_case("PPO", "MlpPolicy", "dict", "box"), "MultiInputPolicy"),
        Unbuildable(make_case("SAC", "MlpPolicy", "goal", "box"), "MultiInputPolicy"),
        Unbuildable(make_case("ARS", "MlpPolicy", "dict", "box"), "MultiInputPolicy"),
        Unbuildable(make_case("PPO", "CnnPolicy", "box", "discrete"), "only with images"),
        Unbuildable(make_case("DQN", "CnnPolicy", "image-float", "discrete"), "only with images"),
        Unbuildable(make_case("PPO", "MultiInputPolicy", "box", "discrete"), "has no attribute 'spaces'"),
        Unbuildable(make_case("PPO", "MlpPolicy", "box", "box", {"squash_output": True}),
                    "squash_output=True is only available when using gSDE"),
        Unbuildable(make_case("RecurrentPPO", "MlpLstmPolicy", "box", "box", dict(SMALL_LSTM, shared_lstm=True)),
                    "choose between shared LSTM"),
        # the features of a MultiDiscrete observation number sum(nvec), a NumPy integer that torch's LSTM refuses
        Unbuildable(make_case("RecurrentPPO", "MlpLstmPolicy", "multidiscrete", "discrete", SMALL_LSTM),
                    "input_size should be of type int"),
        Unbuildable(make_case("RecurrentPPO", "MultiInputLstmPolicy", "dict-hwc", "box", SMALL_LSTM),
                    "input_size should be of type int"),
        Unbuildable(make_case("TD3", "MlpPolicy", "box", "box", use_sde=True), "use_sde"),
        Unbuildable(make_case("PPO", "MlpPolicy", "goal", "box", replay_buffer_class=HerReplayBuffer),
                    "replay_buffer_class"),
    ]


UNBUILDABLE: List[Unbuildable] = _unbuildable()


class SpacesEnv(gymnasium.Env):
    """An environment that only carries its spaces: observations are samples of the observation space, rewards 0,
    and episodes are truncated after EPISODE_LENGTH steps."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, seed: int = 0) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        self.observation_space.seed(seed)
        self.action_space.seed(seed)
        self.steps = 0

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> Tuple[Any, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self.observation_space.seed(seed)
        self.steps = 0
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> Tuple[Any, float, bool, bool, dict]:
        self.steps += 1
        observation = self.observation_space.sample()
        return observation, float(self.reward(observation)), False, self.steps >= EPISODE_LENGTH, {}

    def reward(self, observation: Any) -> float:
        return 0.0


class GoalSpacesEnv(SpacesEnv):
    """A goal-conditioned SpacesEnv: HER relabels stored transitions with other goals and asks `compute_reward`
    for their rewards, so the reward of a step must be `compute_reward` of its achieved and desired goals."""

    #: Goals closer than this (Euclidean) count as reached.
    TOLERANCE = 0.1

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """-1 where the goal is not reached, else 0, for one goal or a batch of them (HER's contract)."""
        distance = np.linalg.norm(np.asarray(achieved_goal, np.float64) - np.asarray(desired_goal, np.float64),
                                  axis=-1)
        return -(distance > self.TOLERANCE).astype(np.float32)

    def reward(self, observation: Any) -> float:
        return float(self.compute_reward(observation["achieved_goal"], observation["desired_goal"], {}))


def is_her(case: Sb3Case) -> bool:
    """Whether the case trains with HER's replay buffer (its model needs a goal environment, even to load)."""
    return case.algorithm_kwargs.get("replay_buffer_class") is HerReplayBuffer


def make_env(case: Sb3Case, seed: int = 0) -> SpacesEnv:
    """The environment of a case (HER cases get a goal environment; loading a HER model needs one too)."""
    env_class = GoalSpacesEnv if is_her(case) else SpacesEnv
    return env_class(copy.deepcopy(case.observation_space), copy.deepcopy(case.action_space), seed)


def build_untrained_model(case: Sb3Case, seed: int = 0) -> BaseAlgorithm:
    """The SB3 model of a case as SB3 initializes it (before `randomize_parameters`)."""
    kwargs = dict(SMALL_BUFFERS[case.algorithm], **case.algorithm_kwargs)
    return ALGORITHMS[case.algorithm](case.policy, make_env(case, seed),
                                      policy_kwargs=copy.deepcopy(case.policy_kwargs), seed=seed, device="cpu",
                                      verbose=0, **kwargs)


def build_model(case: Sb3Case, seed: int = 0) -> BaseAlgorithm:
    """The SB3 model of a case with every parameter and buffer random from `seed` (`randomize_parameters`)."""
    model = build_untrained_model(case, seed)
    randomize_parameters(model, seed)
    return model


#: How many random observations calibrate the layers a prediction runs (`randomize_parameters`).
CALIBRATION_BATCH = 64


def randomize_parameters(model: BaseAlgorithm, seed: int) -> None:
    """Replace every parameter and buffer of the policy (target networks included) with random values from `seed`.

    First every tensor is drawn: weights normal with deviation 1/sqrt(fan-in), biases normal with deviation 0.3,
    log-stds uniform in [-1.5, 0.5], BatchRenorm's running means normal and variances uniform in [0.25, 2], its step
    counter any positive count (tensors SB3 shares, an extractor under several names, once). Then the layers of
    predictions, values and critics are calibrated on random observations (`calibrate_prediction_layers`), so that
    every output depends on the observation. Last, the algorithm's copies follow: ARS's flat weight vector, the gSDE
    exploration matrices drawn from the new log-stds, the DQN exploration rate at a random point of its schedule.
    """
    rng = np.random.RandomState(seed)
    renorm_layers = {name for name, module in model.policy.named_modules() if isinstance(module, BatchRenorm)}
    drawn = set()
    with torch.no_grad():
        for name, tensor in model.policy.state_dict(keep_vars=True).items():
            if tensor.data_ptr() in drawn:
                continue
            drawn.add(tensor.data_ptr())
            tensor.copy_(torch.as_tensor(_random_values(name, tensor, rng, renorm_layers)))
    calibrate_prediction_layers(model, rng)
    if hasattr(model, "weights"):  # ARS searches around (and saves) the flat vector of its policy's parameters
        model.weights = torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach()
    if getattr(model, "use_sde", False):
        model.policy.reset_noise()
    if hasattr(model, "exploration_schedule"):
        model.exploration_rate = model.exploration_schedule(rng.uniform(0.0, 1.0))


def _random_values(name: str, tensor: torch.Tensor, rng: np.random.RandomState, renorm_layers: set) -> np.ndarray:
    """Random values for one entry of the policy's state_dict, by what the entry is (its module and name)."""
    shape = tuple(tensor.shape)
    module, _, leaf = name.rpartition(".")
    if module in renorm_layers:
        if leaf == "steps":
            return np.asarray(rng.randint(1, 10 ** 6), np.int64)  # any count: evaluation reads only ra_*
        if leaf == "ra_var":
            return rng.uniform(0.25, 2.0, shape).astype(np.float32)
        if leaf == "scale":
            return rng.uniform(0.5, 1.5, shape).astype(np.float32)
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)  # ra_mean, bias
    if leaf == "log_std":  # a Parameter (a Linear named log_std has weight and bias leaves)
        return rng.uniform(-1.5, 0.5, shape).astype(np.float32)
    if tensor.dtype.is_floating_point and len(shape) >= 2:  # Linear [out, in], Conv2d [out, in, kh, kw], LSTM
        return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)
    if tensor.dtype.is_floating_point:
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)
    raise AssertionError("no randomization rule for {} ({}, {})".format(name, tensor.dtype, shape))


def evaluation_passes(model: BaseAlgorithm, observations: Any) -> None:
    """Run what an exporter reproduces on a batch of observations (in the saved layout): `model.predict`, and the
    values or critics SB3 exposes (ActorCriticPolicy's `predict_values`, off-policy critics on the actor's actions),
    in evaluation mode (BatchRenorm reads its running statistics and leaves them)."""
    model.predict(observations, deterministic=True)  # which also sets the policy's evaluation mode
    policy = model.policy
    tensors, _ = policy.obs_to_tensor(observations)
    with torch.no_grad():
        if isinstance(policy, RecurrentActorCriticPolicy):
            layers, _, hidden = policy.lstm_hidden_state_shape
            state = torch.zeros(layers, CALIBRATION_BATCH, hidden)
            policy.predict_values(tensors, (state, state), torch.zeros(CALIBRATION_BATCH))
        elif hasattr(policy, "predict_values"):
            policy.predict_values(tensors)
        elif getattr(policy, "critic", None) is not None:
            policy.critic(tensors, policy._predict(tensors, deterministic=True))


def calibrate_prediction_layers(model: BaseAlgorithm, rng: np.random.RandomState) -> None:
    """Rescale each Linear and Conv2d layer that `evaluation_passes` runs, in the order it runs them, so that over a
    batch of random observations each output unit has deviation 1 and a random mean (normal, deviation 0.3).

    Weights drawn by fan-in alone keep pre-activations O(1), but the mean of ReLU-like activations passes on as a
    constant that outweighs what varies with the observation: heads then pick the same discrete action for every
    observation and unsquashed actions sit clipped at a bound, where a wrong layout or bias would go unseen. With
    deviation 1, tanh and sigmoid work in their curved range, unsaturated. Layers without a bias are only rescaled
    (root mean square 1). Raw 0..255 pixels (normalize_images=False) are scaled as any other input is.
    """
    observations = random_observations(model.observation_space, CALIBRATION_BATCH, rng)
    layers: List[torch.nn.Module] = []

    def record(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if module not in layers:
            layers.append(module)

    hooks = [module.register_forward_hook(record) for module in model.policy.modules()
             if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d))]
    evaluation_passes(model, observations)
    for hook in hooks:
        hook.remove()
    for layer in layers:
        outputs: List[torch.Tensor] = []
        hook = layer.register_forward_hook(lambda module, inputs, output: outputs.append(output.detach()))
        evaluation_passes(model, observations)
        hook.remove()
        units = torch.cat([output.movedim(1 if isinstance(layer, torch.nn.Conv2d) else -1, 0).reshape(
            output.shape[1 if isinstance(layer, torch.nn.Conv2d) else -1], -1) for output in outputs], dim=1)
        if layer.bias is not None:
            deviation = units.std(dim=1).clamp(min=1e-6)
        else:  # the mean stays: bring the root mean square to 1 instead
            deviation = units.square().mean(dim=1).sqrt().clamp(min=1e-6)
        unit_shape = (-1,) + (1,) * (layer.weight.dim() - 1)
        with torch.no_grad():
            layer.weight /= deviation.reshape(unit_shape)
            if layer.bias is not None:
                offsets = torch.as_tensor(rng.standard_normal(layer.bias.shape) * 0.3, dtype=layer.bias.dtype)
                layer.bias.copy_((layer.bias - units.mean(dim=1)) / deviation + offsets)


def save_model(case: Sb3Case, directory: Union[str, os.PathLike], seed: int = 0) -> str:
    """Build the case's model (random from `seed`), `model.save` it in `directory`, and return the .zip's path."""
    path = os.path.join(str(directory), "{}-seed{}.zip".format(case.id, seed))
    build_model(case, seed).save(path)
    return path


def load_model(case: Sb3Case, path: str, seed: int = 0) -> BaseAlgorithm:
    """`Algo.load` of a saved case (HER models need their environment to load)."""
    return ALGORITHMS[case.algorithm].load(path, env=make_env(case, seed) if is_her(case) else None, device="cpu")


def random_observations(space: spaces.Space, n: int, rng: np.random.RandomState) -> Any:
    """A batch of `n` observations of `space` (a dict of batches for a Dict), in the environment's layout.

    Images are uint8 over the full 0..255 (0 and 255 included). Box values cover the bounds and a quarter of the
    range beyond them on each side (SB3 does not clip observations), the first two rows are the bounds themselves,
    and unbounded dimensions are normal with deviation 3.
    """
    if isinstance(space, spaces.Dict):
        return {key: random_observations(subspace, n, rng) for key, subspace in space.spaces.items()}
    if isinstance(space, spaces.Discrete):
        return rng.randint(space.start, space.start + space.n, n).astype(np.int64)
    if isinstance(space, spaces.MultiDiscrete):
        return (space.start + (rng.uniform(size=(n,) + space.shape) * space.nvec).astype(np.int64)).astype(np.int64)
    if isinstance(space, spaces.MultiBinary):
        return rng.randint(0, 2, (n,) + space.shape).astype(space.dtype)
    if isinstance(space, spaces.Box) and is_image_space(space):
        # a level per image and channel under pixel noise, clipped: i.i.d. pixels alone would average out in the
        # convolutions and give every image nearly the same features
        channels = (n, space.shape[0], 1, 1) if is_image_space_channels_first(space) else (n, 1, 1, space.shape[-1])
        levels = rng.uniform(0.0, 255.0, channels)
        return np.clip(levels + rng.uniform(-96.0, 96.0, (n,) + space.shape), 0, 255).round().astype(np.uint8)
    if isinstance(space, spaces.Box):
        if np.issubdtype(space.dtype, np.integer):
            return rng.randint(space.low, space.high.astype(np.int64) + 1, (n,) + space.shape).astype(space.dtype)
        low, high = space.low.astype(np.float64), space.high.astype(np.float64)
        finite = np.isfinite(low) & np.isfinite(high)
        width = np.where(finite, high - low, 0.0)
        values = np.where(finite, rng.uniform(np.where(finite, low, 0.0) - width / 4,
                                              np.where(finite, high, 0.0) + width / 4, (n,) + space.shape),
                          rng.standard_normal((n,) + space.shape) * 3.0)
        for row, bound in zip(range(min(n, 2)), (low, high)):
            values[row] = np.where(np.isfinite(bound), bound, values[row])
        return values.astype(space.dtype)
    raise TypeError("no observations for {}".format(space))


def observation_kind(space: spaces.Space) -> str:
    """A space's kind as the support table names it."""
    if isinstance(space, spaces.Dict):
        return "goal Dict" if {"observation", "achieved_goal", "desired_goal"} <= set(space.spaces) else "Dict"
    if isinstance(space, spaces.Box) and is_image_space(space):
        return "image (channel-first)" if is_image_space_channels_first(space) else "image (channel-last)"
    if isinstance(space, spaces.Box):
        return "Box {}-D".format(len(space.shape))
    return type(space).__name__


def enumeration_table() -> List[Tuple[str, str, str, str, int]]:
    """(algorithm, policy, observation kind, action kind, number of cases) for the README's support table; HER
    cases count as "<algorithm> + HER"."""
    counts = Counter(
        (case.algorithm + (" + HER" if is_her(case) else ""), case.policy, observation_kind(case.observation_space),
         type(case.action_space).__name__ + ("" if len(case.action_space.shape) <= 1 else " 2-D"))
        for case in SB3_CASES)
    return [key + (count,) for key, count in sorted(counts.items())]
