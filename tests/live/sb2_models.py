"""Build SB2 models with random weights for differential tests (needs the SB2 environment)."""
import os
from collections import OrderedDict

import numpy as np

from sbif.export.live import import_sb2, quiet

sb2 = import_sb2()
with quiet():
    import gym
    import tensorflow as tf

OBSERVATION_SPACES = {
    "box": lambda: gym.spaces.Box(-2.0, 3.0, shape=(5,), dtype=np.float32),
    "box_unbounded_2d": lambda: gym.spaces.Box(-np.inf, np.inf, shape=(2, 3), dtype=np.float32),
    "box_mixed_bounds": lambda: gym.spaces.Box(np.array([-1.0, -np.inf, 0.0], np.float32),
                                               np.array([1.0, np.inf, 10.0], np.float32)),
    "image_uint8": lambda: gym.spaces.Box(0, 255, shape=(4, 4, 2), dtype=np.uint8),
    "discrete": lambda: gym.spaces.Discrete(5),
    "multi_discrete": lambda: gym.spaces.MultiDiscrete([3, 2, 4]),
    "multi_binary": lambda: gym.spaces.MultiBinary(4),
}
#: observation spaces for CnnPolicy variants (nature_cnn needs at least 36x36)
IMAGE_SPACES = {
    "image_36_uint8": lambda: gym.spaces.Box(0, 255, shape=(36, 36, 2), dtype=np.uint8),
    "image_36_float": lambda: gym.spaces.Box(-1.0, 2.0, shape=(36, 40, 1), dtype=np.float32),
}
ACTION_SPACES = {
    "discrete": lambda: gym.spaces.Discrete(3),
    "box": lambda: gym.spaces.Box(np.array([-1.0, -2.0], np.float32), np.array([1.0, 0.5], np.float32)),
    "multi_discrete": lambda: gym.spaces.MultiDiscrete([2, 3]),
    "multi_binary": lambda: gym.spaces.MultiBinary(3),
}
#: (net_arch, activation) variants; None keeps SB2's default [dict(vf=[64,64], pi=[64,64])] with tanh.
ARCHITECTURES = [
    (None, None),
    ([16, dict(pi=[8], vf=[6, 4])], "relu"),
    ([12, 10], "elu"),
    ([dict(pi=[7, 5], vf=[9])], "sigmoid"),
    ([], "softplus"),
    ([8, dict(vf=[6])], "selu"),
    ([dict(pi=[6])], "leaky_relu"),
    ([10, dict(pi=[4], vf=[4])], "relu6"),
    ([9], "softsign"),
    ([7, dict(pi=[5], vf=[5])], "swish"),
]
ACTIVATIONS = {"relu": tf.nn.relu, "elu": tf.nn.elu, "sigmoid": tf.sigmoid, "softplus": tf.nn.softplus,
               "selu": tf.nn.selu, "leaky_relu": tf.nn.leaky_relu, "relu6": tf.nn.relu6, "softsign": tf.nn.softsign,
               "swish": tf.nn.swish, "tanh": tf.tanh}
ALGORITHMS = ("A2C", "ACER", "ACKTR", "PPO1", "PPO2", "TRPO")


class SpacesEnv(gym.Env):
    """An environment that only carries spaces (SB2 needs one to build a model)."""

    def __init__(self, observation_space, action_space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self):
        return self.observation_space.sample()

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, {}


def buildable(algorithm, action_kind):
    return algorithm != "ACER" or action_kind == "discrete"


def architecture(algorithm, index):
    """The index-th variant, skipping ones SB2 cannot build: ACKTR's K-FAC and TRPO's Fisher-vector
    products need a second-order gradient of softsign, which TF 1.15 does not have."""
    for offset in range(len(ARCHITECTURES)):
        net_arch, activation = ARCHITECTURES[(index + offset) % len(ARCHITECTURES)]
        if not (algorithm in ("ACKTR", "TRPO") and activation == "softsign"):
            return net_arch, activation
    raise AssertionError("no buildable architecture")


def make_model(algorithm, obs_kind, action_kind, arch_index, seed=0, policy="MlpPolicy", n_envs=1,
               policy_kwargs=None):
    """An untrained SB2 model with random (non-degenerate) weights; MlpPolicy gets the arch_index-th
    net_arch/activation variant, other policies `policy_kwargs`."""
    if policy == "MlpPolicy":
        net_arch, activation = architecture(algorithm, arch_index)
        policy_kwargs = {}
        if net_arch is not None:
            policy_kwargs["net_arch"] = net_arch
        if activation is not None:
            policy_kwargs["act_fun"] = ACTIVATIONS[activation]
    spaces = dict(OBSERVATION_SPACES, **IMAGE_SPACES)
    make_env = lambda: SpacesEnv(spaces[obs_kind](), ACTION_SPACES[action_kind]())  # noqa: E731
    env = make_env() if n_envs == 1 else sb2.common.vec_env.DummyVecEnv([make_env] * n_envs)
    extra = {"n_steps": 4} if algorithm in ("A2C", "ACER", "ACKTR", "PPO2") else {}
    if algorithm == "PPO2":
        extra["nminibatches"] = 1
    if algorithm == "PPO1":
        extra["timesteps_per_actorbatch"] = 8
    if algorithm in ("TRPO", "GAIL"):
        extra["timesteps_per_batch"] = 8
    if algorithm == "GAIL":
        extra["expert_dataset"] = None
    with quiet():
        model = getattr(sb2, algorithm)(policy, env, policy_kwargs=policy_kwargs or {}, seed=seed, **extra)
        randomize(model, seed, input_range=255.0 if "uint8" in obs_kind else 1.0)
    return model


def randomize(model, seed, input_range=1.0):
    """Replace every parameter with random values at a scale that makes activations and heads matter.

    Weights that read the raw observation are divided by `input_range`, so pre-activations stay O(1) for
    0..255 pixels (as in a trained net): float32 sums of terms around 1e3 would otherwise lose the digits the
    1e-5 comparison needs, in SB2 and in any other runtime alike.
    """
    rng = np.random.RandomState(seed)
    params = OrderedDict()
    obs_width = int(np.prod(model.observation_space.shape)) if model.observation_space.shape else None
    for name, value in model.get_parameters().items():
        is_weight = value.ndim >= 2 and not name.endswith("/b:0")
        scale = 1.5 / np.sqrt(np.prod(value.shape[:-1])) if is_weight else 0.5
        if value.ndim == 2 and value.shape[0] == obs_width and name.endswith(("/w:0", "/weights:0")):
            scale /= input_range
        params[name] = (rng.standard_normal(value.shape) * scale).astype(value.dtype)
    model.load_parameters(params)


def save(model, directory, name):
    path = os.path.join(str(directory), name + ".zip")
    with quiet():
        model.save(path)
    return path
