"""`sbif.export.parameter_layouts` against SB2 itself: every family's layout is SB2's `get_parameter_list()`, names,
shapes and order (needs the SB2 environment)."""
import pytest

from sbif.export import Space
from sbif.export.parameter_layouts import (DEFAULT_LAYERS, actor_critic_cnn_layout, actor_critic_mlp_layout,
                                           ddpg_layout, dqn_layout, flat_width, lstm_layout, sac_layout, td3_layout,
                                           trpo_layout)

from .dqn_models import make_dqn
from .off_policy_models import make_model as make_off_policy
from .sb2_models import make_model, sb2

DEFAULT = list(DEFAULT_LAYERS)


def sb2_list(model):
    return [(variable.name, tuple(variable.shape.as_list())) for variable in model.get_parameter_list()]


def layout_list(layout):
    return [(parameter.name, parameter.shape) for parameter in layout]


def spaces(model):
    return Space.from_gym(model.observation_space), Space.from_gym(model.action_space)


ACTOR_CRITIC_CASES = [
    # (algorithm, policy, observation, action, policy_kwargs, layout(observation space, action space))
    ("PPO2", "MlpPolicy", "box", "box", {"net_arch": [16, dict(pi=[8], vf=[6, 4])]},
     lambda o, a: actor_critic_mlp_layout(o, a, [16, dict(pi=[8], vf=[6, 4])])),
    ("A2C", "MlpPolicy", "multi_discrete", "multi_binary", {},
     lambda o, a: actor_critic_mlp_layout(o, a, [dict(pi=DEFAULT, vf=DEFAULT)])),
    ("TRPO", "MlpPolicy", "discrete", "discrete", {"net_arch": [dict(pi=[7, 5], vf=[9])]},
     lambda o, a: trpo_layout(actor_critic_mlp_layout(o, a, [dict(pi=[7, 5], vf=[9])]))),
    ("PPO2", "CnnPolicy", "image_36_uint8", "discrete", {}, lambda o, a: actor_critic_cnn_layout(o, a)),
    ("A2C", "CnnPolicy", "image_36_float", "box", {"pad": "SAME"}, lambda o, a: actor_critic_cnn_layout(o, a, "SAME")),
    ("PPO2", "MlpLstmPolicy", "box", "box", {"n_lstm": 5}, lambda o, a: lstm_layout(o, a, 5, False)),
    ("A2C", "MlpLnLstmPolicy", "box_unbounded_2d", "multi_discrete",
     {"n_lstm": 5, "net_arch": [8, "lstm", 6, dict(pi=[3, 2], vf=[4])]},
     lambda o, a: lstm_layout(o, a, 5, True, net_arch=[8, "lstm", 6, dict(pi=[3, 2], vf=[4])])),
    ("A2C", "CnnLnLstmPolicy", "image_36_uint8", "discrete", {"n_lstm": 4},
     lambda o, a: lstm_layout(o, a, 4, True, cnn_padding="VALID")),
]


@pytest.mark.parametrize("algorithm,policy,obs_kind,action_kind,kwargs,layout", ACTOR_CRITIC_CASES,
                         ids=["-".join(case[:3]) for case in ACTOR_CRITIC_CASES])
def test_actor_critic_layouts(algorithm, policy, obs_kind, action_kind, kwargs, layout):
    # the class itself: make_model gives the name "MlpPolicy" its own architecture variants
    policy_class = getattr(sb2.common.policies, policy)
    model = make_model(algorithm, obs_kind, action_kind, 0, policy=policy_class, policy_kwargs=dict(kwargs))
    assert layout_list(layout(*spaces(model))) == sb2_list(model)


DQN_CASES = [
    ("LnMlpPolicy", "box", {"layers": [6, 4]}, {"param_noise": True},
     lambda o, n: dqn_layout(o, n, [6, 4], True, True, param_noise=True)),
    ("MlpPolicy", "discrete", {"dueling": False}, {}, lambda o, n: dqn_layout(o, n, DEFAULT, False, False)),
    ("CnnPolicy", "image_36_uint8", {"layers": [5]}, {},
     lambda o, n: dqn_layout(o, n, [5], False, True, cnn_padding="VALID")),
    ("LnCnnPolicy", "image_36_float", {}, {}, lambda o, n: dqn_layout(o, n, DEFAULT, True, True, cnn_padding="VALID")),
]


@pytest.mark.parametrize("policy,obs_kind,kwargs,extra,layout", DQN_CASES, ids=[case[0] for case in DQN_CASES])
def test_dqn_layouts(policy, obs_kind, kwargs, extra, layout):
    model = make_dqn(policy, obs_kind, policy_kwargs=dict(kwargs), **extra)
    observation, actions = spaces(model)
    assert layout_list(layout(observation, actions.n)) == sb2_list(model)


OFF_POLICY_CASES = [
    ("SAC", "LnMlpPolicy", "box", {"layers": [8, 6]}, {"ent_coef": 0.1},
     lambda o, d: sac_layout(o, d, [8, 6], True)),
    ("SAC", "CnnPolicy", "image_36_uint8", {}, {}, lambda o, d: sac_layout(o, d, DEFAULT, False, True, "VALID")),
    ("TD3", "LnCnnPolicy", "image_36_float", {"layers": [5]}, {},
     lambda o, d: td3_layout(o, d, [5], True, cnn_padding="VALID")),
    ("DDPG", "LnMlpPolicy", "box_unbounded_2d", {"layers": [7, 5]},
     {"param_noise": "adaptive", "normalize_observations": True, "normalize_returns": True},
     lambda o, d: ddpg_layout(o, d, [7, 5], True, True, True, True)),
    ("DDPG", "CnnPolicy", "image_36_uint8", {}, {}, lambda o, d: ddpg_layout(o, d, DEFAULT, False,
                                                                                cnn_padding="VALID")),
]


@pytest.mark.parametrize("algorithm,policy,obs_kind,kwargs,settings,layout", OFF_POLICY_CASES,
                         ids=["-".join(case[:3]) for case in OFF_POLICY_CASES])
def test_off_policy_layouts(algorithm, policy, obs_kind, kwargs, settings, layout):
    settings = dict(settings)
    if settings.get("param_noise") == "adaptive":
        settings["param_noise"] = sb2.common.noise.AdaptiveParamNoiseSpec()
    model = make_off_policy(algorithm, policy, obs_kind, "box3", policy_kwargs=dict(kwargs), **settings)
    observation, actions = spaces(model)
    assert layout_list(layout(observation, flat_width(actions))) == sb2_list(model)
