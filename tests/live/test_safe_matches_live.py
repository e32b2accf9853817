"""The safe loader (no SB2, nothing from the file runs) against the live loader (SB2 itself), on the same files.

For generated SB2 models saved as `.zip`, as legacy `.pkl` (named parameters, `save(cloudpickle=True)`) and
as the oldest `.pkl` layout (an unnamed parameter list, also stored twice as SB2 < 2.6 did), and for every
model of `../shared/zoo`: both loaders build byte-identical documents once `provenance.exporter` and
`provenance.sb2_version` (which name the loader) are removed, and bit-identical tensors. The zoo's files that
name what SB2 2.10.2 lacks (the zoo's `utils.CustomDQNPolicy`, the deleted `stable_baselines.ddpg.memory`) are
loaded by the live loader's own stand-ins, none from the tests.
"""
import copy
import itertools
import os

import cloudpickle
import numpy as np
import pytest

from sbif.errors import UnsupportedError
from sbif.export import build_sbif
from sbif.export.live import describe_live_model, load_sb2_model, quiet
from sbif.export.safe import describe_safe_file
from sbif.format.document import encode_document
from tests.zoo import ZOO, require_zoo, zoo_models

from .sb2_models import ACTION_SPACES, ALGORITHMS, OBSERVATION_SPACES, buildable, make_model, save

FORMATS = ("zip", "pkl", "pkl_list")


def mlp_cases():
    """Every observation x action space pair, algorithms and net_arch/activation variants rotating."""
    cases = []
    for index, (obs_kind, action_kind) in enumerate(itertools.product(OBSERVATION_SPACES, ACTION_SPACES)):
        algorithm = next(a for a in (ALGORITHMS * 2)[index % len(ALGORITHMS):] if buildable(a, action_kind))
        cases.append((algorithm, obs_kind, action_kind, index))
    return cases


MLP_CASES = mlp_cases()
#: CNN and recurrent policies (named parameters only: SB2 2.10 writes names), with their structural kwargs
OTHER_CASES = [("PPO2", "CnnPolicy", "image_36_uint8", "discrete", {}, 1),
               ("A2C", "CnnLnLstmPolicy", "image_36_float", "box", {"n_lstm": 16}, 2),
               ("ACKTR", "MlpLnLstmPolicy", "box", "multi_discrete", {"n_lstm": 8}, 2),
               ("PPO2", "MlpLstmPolicy", "discrete", "box",
                {"n_lstm": 8, "net_arch": [12, "lstm", dict(pi=[6], vf=[5])]}, 2)]


def saved_files(model, directory):
    """The model as .zip, as a legacy .pkl with named parameters, and as one with an unnamed list."""
    zip_path = save(model, directory, "model")
    pkl_path = os.path.join(str(directory), "model.pkl")
    with quiet():
        model.save(pkl_path, cloudpickle=True)
    with open(pkl_path, "rb") as handle:
        data, params = cloudpickle.load(handle)
    list_path = os.path.join(str(directory), "model_list.pkl")
    with open(list_path, "wb") as handle:
        cloudpickle.dump((data, list(params.values())), handle)
    return {"zip": zip_path, "pkl": pkl_path, "pkl_list": list_path}


def assert_same_export(path, **safe_options):
    """Live and safe descriptions of `path` build the same document and tensors."""
    model, algorithm = load_sb2_model(path)
    live = build_sbif(describe_live_model(model, algorithm, path))
    safe = build_sbif(describe_safe_file(path, **safe_options))
    assert live.document["provenance"]["exporter"] == "live"
    assert safe.document["provenance"]["exporter"] == "safe"
    assert safe.document["provenance"]["sb2_version"] is None
    assert comparable(safe.document) == comparable(live.document)
    assert list(safe.tensors) == list(live.tensors)
    for name, expected in live.tensors.items():
        actual = safe.tensors[name]
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, name
        assert actual.tobytes() == expected.tobytes(), name


def comparable(document):
    """The document as bytes, without the fields that name the loader."""
    document = copy.deepcopy(document)
    del document["provenance"]["exporter"], document["provenance"]["sb2_version"]
    return encode_document(document)


@pytest.mark.parametrize("algorithm,obs_kind,action_kind,index", MLP_CASES,
                         ids=["-".join(case[:3]) for case in MLP_CASES])
def test_mlp_models(algorithm, obs_kind, action_kind, index, tmp_path):
    files = saved_files(make_model(algorithm, obs_kind, action_kind, index, seed=index), tmp_path)
    for file_format in FORMATS:
        assert_same_export(files[file_format])


@pytest.mark.parametrize("algorithm,policy,obs_kind,action_kind,kwargs,n_envs", OTHER_CASES,
                         ids=["-".join(case[:4]) for case in OTHER_CASES])
def test_cnn_and_recurrent_models(algorithm, policy, obs_kind, action_kind, kwargs, n_envs, tmp_path):
    model = make_model(algorithm, obs_kind, action_kind, 0, seed=3, policy=policy, n_envs=n_envs,
                       policy_kwargs=dict(kwargs))
    files = saved_files(model, tmp_path)
    for file_format in ("zip", "pkl"):
        assert_same_export(files[file_format])


DQN_CASES = [("MlpPolicy", "box", {}, {}), ("LnMlpPolicy", "discrete", {"layers": [8]}, {}),
             ("MlpPolicy", "multi_binary", {"dueling": False, "layers": [5, 6]}, {"param_noise": True}),
             ("MlpPolicy", "image_uint8", {"act_fun": "elu"}, {}), ("LnMlpNoDuelingPolicy", "box_mixed_bounds",
                                                                   {"layers": [7], "dueling": False}, {})]


@pytest.mark.parametrize("policy,obs_kind,kwargs,extra", DQN_CASES, ids=["-".join(c[:2]) for c in DQN_CASES])
def test_dqn_models(policy, obs_kind, kwargs, extra, tmp_path):
    """DQN, whose builder exists: named parameters, and the unnamed lists of SB2 < 2.6 (eps, Q network, its
    param-noise copies, target network) for the stock classes, whose kwargs the file tells."""
    from .dqn_models import ACTIVATIONS, make_dqn

    kwargs = dict(kwargs)
    if "act_fun" in kwargs:
        kwargs["act_fun"] = ACTIVATIONS[kwargs["act_fun"]]
    files = saved_files(make_dqn(policy, obs_kind, seed=4, policy_kwargs=kwargs, **extra), tmp_path)
    for file_format in FORMATS if policy in ("MlpPolicy", "LnMlpPolicy") else ("zip", "pkl"):
        if policy == "LnMlpNoDuelingPolicy":  # a test class: its layer norm is set in code
            assert_same_export(files[file_format], policy_kwargs={"act_fun": "relu"})
        else:
            assert_same_export(files[file_format])


@pytest.mark.parametrize("action_kind", ["discrete", "box"])
def test_gail_models(action_kind, tmp_path):
    """GAIL (its discriminator's `adversary/*` after TRPO's `model/*` and `oldpi/*`), in every layout."""
    from .sb2_models import SpacesEnv, gym, randomize, sb2

    env = SpacesEnv(gym.spaces.Box(-2.0, 2.0, (5,), np.float32), ACTION_SPACES[action_kind]())
    with quiet():
        model = sb2.GAIL("MlpPolicy", env, expert_dataset=None, timesteps_per_batch=8, seed=0,
                         hidden_size_adversary=7, policy_kwargs={"net_arch": [dict(pi=[6], vf=[5])]})
        randomize(model, 0)
    files = saved_files(model, tmp_path)
    for file_format in FORMATS:
        assert_same_export(files[file_format])


def off_policy_cases():
    """SAC, TD3, DDPG with each policy class, kwargs and the settings that reach `extra` (ranges,
    normalization, parameter and action noise of every kind)."""
    from .off_policy_models import sb2

    noise = sb2.common.noise
    return [
        ("SAC", "MlpPolicy", "box", "box3", {}, {}),
        ("SAC", "LnMlpPolicy", "discrete", "box1", {"layers": [16], "act_fun": "tanh"}, {"ent_coef": 0.1}),
        ("SAC", "CnnPolicy", "image_36_uint8", "box2_float64", {}, {}),
        ("TD3", "MlpPolicy", "multi_discrete", "box2_float64", {"layers": [12, 8]},
         {"action_noise": noise.NormalActionNoise(np.array([-0.1, 0.2]), np.array([0.2, 0.4]))}),
        ("TD3", "LnCnnPolicy", "image_36_float", "box1", {}, {"action_noise": noise.NormalActionNoise(0.05, 0.3)}),
        ("DDPG", "MlpPolicy", "box_mixed_bounds", "box3", {"layers": [12, 8], "act_fun": "elu"},
         {"normalize_observations": True, "normalize_returns": True, "return_range": (-1.5, 2.0),
          "observation_range": (-2.5, 3.0)}),
        ("DDPG", "LnMlpPolicy", "multi_binary", "box1", {},
         {"param_noise": noise.AdaptiveParamNoiseSpec(0.2, 0.2),
          "action_noise": noise.OrnsteinUhlenbeckActionNoise(np.zeros(1), 0.2 * np.ones(1))}),
        ("DDPG", "CnnPolicy", "image_36_uint8", "box3", {},
         {"action_noise": noise.NormalActionNoise(np.float32(0.05), np.float32(0.2))}),
    ]


OFF_POLICY_CASES = off_policy_cases()


@pytest.mark.parametrize("algorithm,policy,obs_kind,action_kind,kwargs,settings", OFF_POLICY_CASES,
                         ids=["-".join(case[:3]) for case in OFF_POLICY_CASES])
def test_off_policy_models(algorithm, policy, obs_kind, action_kind, kwargs, settings, tmp_path):
    """SAC/TD3/DDPG (named parameters): activation held by the policy, CNN extractor, DDPG's ranges,
    normalization and parameter noise, TD3/DDPG's action noise all reach the same document."""
    from .off_policy_models import ACTIVATIONS, make_model as make_off_policy

    kwargs = dict(kwargs)
    if "act_fun" in kwargs:
        kwargs["act_fun"] = ACTIVATIONS[kwargs["act_fun"]]
    model = make_off_policy(algorithm, policy, obs_kind, action_kind, seed=6, policy_kwargs=kwargs, **settings)
    files = saved_files(model, tmp_path)
    for file_format in ("zip", "pkl"):
        assert_same_export(files[file_format])
    if "Cnn" in policy:  # SB2 >= 2.6 names its lists; older versions had no off-policy CNN policies
        with pytest.raises(UnsupportedError, match="only MLP policies"):
            describe_safe_file(files["pkl_list"])
    else:
        assert_same_export(files["pkl_list"])


UNNAMED_LIST_CASES = [("SAC", "MlpPolicy", "box", "box3", {"layers": [9, 7, 5]}, {"ent_coef": "auto_0.2"}),
                      ("SAC", "LnMlpPolicy", "multi_discrete", "box1", {"layers": [6, 4]}, {}),
                      ("TD3", "LnMlpPolicy", "box_mixed_bounds", "box2_float64", {"layers": [8, 5, 3]}, {}),
                      ("DDPG", "MlpPolicy", "image_uint8", "box1", {"layers": [7], "layer_norm": True},
                       {"normalize_returns": True}),
                      ("DDPG", "LnMlpPolicy", "box", "box3", {"layers": [8, 6, 4]},
                       {"normalize_observations": True, "param_noise": "adaptive"})]


@pytest.mark.parametrize("algorithm,policy,obs_kind,action_kind,kwargs,settings", UNNAMED_LIST_CASES,
                         ids=["-".join(case[:3]) for case in UNNAMED_LIST_CASES])
def test_off_policy_unnamed_lists(algorithm, policy, obs_kind, action_kind, kwargs, settings, tmp_path):
    """The names the safe loader gives an unnamed SAC/TD3/DDPG list are SB2's `get_parameter_list()`, in order
    and shape; lists stored twice (SB2 < 2.6) are read as `load` reads them (SAC: the first copy; DDPG: the
    first copy of the networks, then the running statistics)."""
    from sbif.export.policy_classes import policy_identity
    from sbif.export.safe import read_space, read_source
    from sbif.export.unnamed_lists import PARAMETER_NAMERS

    from .off_policy_models import make_model as make_off_policy, sb2

    settings = dict(settings)
    if settings.get("param_noise") == "adaptive":
        settings["param_noise"] = sb2.common.noise.AdaptiveParamNoiseSpec()
    model = make_off_policy(algorithm, policy, obs_kind, action_kind, seed=7, policy_kwargs=dict(kwargs), **settings)
    files = saved_files(model, tmp_path)
    source = read_source(files["pkl_list"])
    names = PARAMETER_NAMERS[algorithm](
        source.data, dict(kwargs), policy_identity(source.data.get("policy"), None, algorithm, files["zip"]),
        read_space(source, "observation_space", ""), read_space(source, "action_space", ""), "")
    assert names == [(v.name, tuple(v.shape.as_list())) for v in model.get_parameter_list()]
    assert_same_export(files["pkl_list"])

    with open(files["pkl_list"], "rb") as handle:
        data, params = cloudpickle.load(handle)
    if algorithm == "DDPG":
        statistics = len(model.obs_rms_params) + len(model.ret_rms_params)
        networks = params[:len(params) - statistics]
        stored = networks + [np.zeros_like(p) for p in networks] + params[len(networks):]
    else:
        stored = params + [np.zeros_like(p) for p in params]
    doubled = str(tmp_path / "doubled.pkl")
    with open(doubled, "wb") as handle:
        cloudpickle.dump((data, stored), handle)
    assert_same_export(doubled)


@pytest.mark.parametrize("inner,kind", [("SAC", "box"), ("TD3", "box"), ("DDPG", "box"), ("DQN", "multi_binary")])
def test_her_models(inner, kind, tmp_path):
    """HER: the inner model's description, plus its class and the dict observation layout."""
    from .test_her import GoalEnv
    from .sb2_models import gym, randomize, sb2

    action_space = gym.spaces.Discrete(3) if inner == "DQN" else gym.spaces.Box(-2.0, 1.0, (2,), np.float32)
    with quiet():
        model = sb2.HER("MlpPolicy", GoalEnv(action_space, kind), getattr(sb2, inner), seed=0)
        randomize(model.model, 0)
    path = str(tmp_path / "her.zip")
    with quiet():
        model.save(path)
    assert_same_export(path)


def test_unnamed_list_with_extra_entries(tmp_path):
    """SB2 assigns the first len(get_parameter_list()) entries of a list and ignores the rest: so do we."""
    files = saved_files(make_model("TRPO", "box", "box", 1, seed=5), tmp_path)
    with open(files["pkl_list"], "rb") as handle:
        data, params = cloudpickle.load(handle)
    padded = str(tmp_path / "padded.pkl")
    with open(padded, "wb") as handle:
        cloudpickle.dump((data, params + params[:3]), handle)
    assert_same_export(padded)


def test_custom_policy_class_needs_its_activation(tmp_path):
    """A policy class that sets its activation in code: the file cannot tell, so the safe loader asks for it,
    and with the answer it matches SB2."""
    from .dqn_models import make_dqn

    path = save(make_dqn("TanhMlpPolicy", "box", seed=2), tmp_path, "dqn")
    with pytest.raises(UnsupportedError, match="act_fun"):
        describe_safe_file(path)
    assert_same_export(path, policy_kwargs='{"act_fun": "tanh"}')


#: Every zoo model, DQN's (an unnamed list naming `utils.CustomDQNPolicy`) and the old DDPG pickle included.
ZOO_MODELS = zoo_models()


def test_zoo_is_present():
    require_zoo(ZOO_MODELS)


@pytest.mark.parametrize("relative", ZOO_MODELS)
def test_zoo_model(relative):
    assert_same_export(os.path.join(ZOO, relative))
