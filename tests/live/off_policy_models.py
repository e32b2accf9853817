"""Build SAC, TD3 and DDPG models with random weights for differential tests (needs the SB2 environment)."""
from collections import OrderedDict

import numpy as np

from sbif.export.live import import_sb2, quiet

from .sb2_models import IMAGE_SPACES, OBSERVATION_SPACES, SpacesEnv

sb2 = import_sb2()
with quiet():
    import gym
    import tensorflow as tf

OFF_POLICY_ALGORITHMS = ("SAC", "TD3", "DDPG")
POLICIES = ("MlpPolicy", "LnMlpPolicy", "CnnPolicy", "LnCnnPolicy")
#: Box action spaces with asymmetric bounds (so unscaling matters), one in float64 (SB2 then returns float64)
ACTION_SPACES = {
    "box3": lambda: gym.spaces.Box(np.array([-1.0, -2.0, 0.5], np.float32), np.array([2.0, 0.5, 3.0], np.float32)),
    "box1": lambda: gym.spaces.Box(np.array([-2.0], np.float32), np.array([1.5], np.float32)),
    "box2_float64": lambda: gym.spaces.Box(np.array([-3.0, 0.0]), np.array([1.0, 0.25]), dtype=np.float64),
}
ALL_OBSERVATION_SPACES = dict(OBSERVATION_SPACES, **IMAGE_SPACES)
ACTIVATIONS = {"relu": tf.nn.relu, "tanh": tf.tanh, "elu": tf.nn.elu, "leaky_relu": tf.nn.leaky_relu,
               "softplus": tf.nn.softplus, "sigmoid": tf.sigmoid}


def make_model(algorithm, policy, obs_kind, action_kind, seed=0, policy_kwargs=None, **algorithm_kwargs):
    """An untrained SB2 model with random (non-degenerate) weights and, for DDPG, random running statistics."""
    env = SpacesEnv(ALL_OBSERVATION_SPACES[obs_kind](), ACTION_SPACES[action_kind]())
    extra = dict({"buffer_size": 100}, **algorithm_kwargs)
    with quiet():
        model = getattr(sb2, algorithm)(policy, env, policy_kwargs=dict(policy_kwargs or {}), seed=seed, **extra)
        randomize(model, seed, input_range=255.0 if obs_kind.startswith("image") and "uint8" in obs_kind else 1.0)
    return model


def randomize(model, seed, input_range=1.0):
    """Random values for every parameter, at scales that make every layer (and the LN gains, the log-std head,
    the clip of the log-std) matter; running statistics get a positive count and a spread of variances, some
    below DDPG's floor of 1e-2. Weights that read the raw observation are divided by `input_range`."""
    rng = np.random.RandomState(seed)
    params = OrderedDict()
    obs_width = _processed_width(model.observation_space)
    stats = {}
    for name, value in model.get_parameters().items():
        if "_rms/" in name:
            stats[name] = value
            continue
        is_weight = value.ndim >= 2
        scale = 1.5 / np.sqrt(np.prod(value.shape[:-1])) if is_weight else 0.5
        if value.ndim == 2 and value.shape[0] in (obs_width, obs_width + model.action_space.shape[0]) \
                and name.endswith("fc0/kernel:0"):
            scale /= input_range
        if "dense_1/" in name:
            scale *= 4.0  # SAC's log-std head: reach beyond the upper bound of clip(-20, 2)
        params[name] = (rng.standard_normal(value.shape) * scale).astype(value.dtype)
        if name.endswith("pi/dense_1/bias:0") and value.shape[0] > 1:
            params[name][0] -= 23.0  # ... and around the lower bound, for the first action component
    for prefix in sorted({name.rsplit("/", 1)[0] for name in stats}):
        count = float(rng.uniform(5.0, 500.0))
        shape = stats[prefix + "/runningsum:0"].shape
        mean = rng.standard_normal(shape) * (50.0 if input_range > 1 and "obs_rms" in prefix else 1.0)
        variance = np.exp(rng.uniform(np.log(1e-3), np.log(4.0), size=shape)) * (input_range ** 2 / 16.0
                                                                                   if "obs_rms" in prefix else 1.0)
        params[prefix + "/runningsum:0"] = np.asarray(mean * count, np.float64)
        params[prefix + "/runningsumsq:0"] = np.asarray((variance + mean ** 2) * count, np.float64)
        params[prefix + "/count:0"] = np.asarray(count, np.float64)
    params = OrderedDict((name, params[name]) for name in model.get_parameters())
    model.load_parameters(params)


def _processed_width(space):
    if isinstance(space, gym.spaces.Discrete):
        return space.n
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    return int(np.prod(space.shape))


def custom_cnn(scaled_images, **kwargs):
    """A cnn_extractor that is not SB2's nature_cnn by identity (SBIF refuses custom extractors)."""
    return sb2.common.policies.nature_cnn(scaled_images, **kwargs)


class TanhTD3Policy(sb2.td3.policies.FeedForwardPolicy):
    """A custom subclass fixing layers and the activation in its class, not in policy_kwargs."""

    def __init__(self, *args, **kwargs):
        super(TanhTD3Policy, self).__init__(*args, **kwargs, layers=[24, 12], act_fun=tf.tanh,
                                            feature_extraction="mlp")


class FixedNoise(sb2.common.noise.ActionNoise):
    """An action noise returning given values, so SB2's noisy predict can be fed the noise SBIF is fed."""

    def __init__(self, values=None):
        super().__init__()
        self.values = values

    def __call__(self):
        return self.values
