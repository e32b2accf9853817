"""Build SB2 DQN models with random weights for differential tests (needs the SB2 environment).

Besides SB2's four registered DQN policies, custom `FeedForwardPolicy` subclasses cover what those cannot
express: layer norm without dueling, and an activation fixed in the class (not in policy_kwargs). The zoo's
`utils.CustomDQNPolicy` is not recreated: the live loader stands in for it while SB2 loads a file naming it.
"""
from .sb2_models import IMAGE_SPACES, OBSERVATION_SPACES, SpacesEnv, gym, quiet, randomize, sb2, tf

FeedForwardPolicy = sb2.deepq.policies.FeedForwardPolicy
ACTIVATIONS = {"relu": tf.nn.relu, "tanh": tf.tanh, "elu": tf.nn.elu, "leaky_relu": tf.nn.leaky_relu,
               "swish": tf.nn.swish, "sigmoid": tf.sigmoid, "softplus": tf.nn.softplus, "relu6": tf.nn.relu6,
               "selu": tf.nn.selu, "softsign": tf.nn.softsign}


class LnMlpNoDuelingPolicy(FeedForwardPolicy):
    """Layer-normalised MLP whose `dueling` kwarg is honoured (SB2's LnMlpPolicy forces dueling=True)."""

    def __init__(self, *args, **kwargs):
        super(LnMlpNoDuelingPolicy, self).__init__(*args, layer_norm=True, feature_extraction="mlp", **kwargs)


class TanhMlpPolicy(FeedForwardPolicy):
    """An activation set by the class, invisible in policy_kwargs: the exporter must read it off the graph."""

    def __init__(self, *args, **kwargs):
        super(TanhMlpPolicy, self).__init__(*args, layers=[12, 8], act_fun=tf.tanh, feature_extraction="mlp",
                                            **kwargs)


CUSTOM_POLICIES = {"LnMlpNoDuelingPolicy": LnMlpNoDuelingPolicy, "TanhMlpPolicy": TanhMlpPolicy}


def make_dqn(policy, obs_kind, seed=0, policy_kwargs=None, n_actions=4, **extra):
    """An untrained SB2 DQN model with random (non-degenerate) weights."""
    spaces = dict(OBSERVATION_SPACES, **IMAGE_SPACES)
    env = SpacesEnv(spaces[obs_kind](), gym.spaces.Discrete(n_actions))
    policy = CUSTOM_POLICIES.get(policy, policy)
    with quiet():
        model = sb2.DQN(policy, env, policy_kwargs=dict(policy_kwargs or {}), seed=seed, learning_starts=10,
                        buffer_size=100, **extra)
        randomize(model, seed, input_range=255.0 if "uint8" in obs_kind else 1.0)
    return model
