"""The user's export path (issue #19, items 1 and 2): observation normalization found where the zoos keep it and
never dropped without a word; conflicting options refused naming both; wrappers the file cannot express
warned about; a verification status on every write; the network of an old unnamed parameter list inferred
from its shapes, or the --policy-kwargs that fit proposed in the spelling that works.

Models are written by the tests (tests/attacks/sb2_like.py: SB2's pickles without SB2), in the zoo's layout:
`ALGO/ENV.pkl` beside `ALGO/ENV/{config.yml, obs_rms.pkl}`.
"""
import json
import os
import warnings

import numpy as np
import pytest

import sbif
from sbif.cli import main as sbif_main
from sbif.errors import ExportError
from sbif.export import Space, export
from sbif.export.exporter import VERIFY_OBSERVATIONS, ExportWarning, safe_loader_status
from sbif.export.normalization import DEFAULT_CLIP_OBS
from sbif.export.policy_classes import PolicyIdentity
from sbif.export.unnamed_lists import actor_critic_names, dqn_names
from sbif.format import SbifFile

from tests.attacks.sb2_like import (Global, dumps, gym_box, gym_discrete, model_data, model_parameters,
                                    running_mean_std, write_pkl)
from tests.zoo import ROOT

OBSERVATION_SHAPE = (4,)
#: the status of a safe export where SB2 is not installed (the modern environment)
NOT_VERIFIED_SAFE = ("not verified: safe loader (no SB2 here) — run with --loader live in the SB2 environment to "
                     "verify")
ZOO_CONFIG_HEADER = "!!python/object/apply:collections.OrderedDict\n- - [n_envs, 8]\n  - [policy, MlpPolicy]\n"


def zoo_model(tmp_path, config=None, statistics=True, name="MountainCar-v0", frames=1):
    """`tmp_path/a2c/NAME.pkl` with, in `a2c/NAME/`, `config.yml` holding `config` (zoo rows such as
    "[normalize, true]"; None: no config) and the observation statistics as the zoo pickles them (of one frame:
    the model sees `frames` of them stacked)."""
    folder = tmp_path / "a2c" / name
    folder.mkdir(parents=True)
    stacked = (OBSERVATION_SHAPE[0] * frames,)
    data = model_data(observation=gym_box(-50.0, 50.0, stacked), action=gym_discrete(3))
    model = write_pkl(str(tmp_path / "a2c" / (name + ".pkl")), data, model_parameters(data, seed=3))
    if config is not None:
        (folder / "config.yml").write_text(ZOO_CONFIG_HEADER + "".join("  - {}\n".format(row) for row in config))
    if statistics:
        (folder / "obs_rms.pkl").write_bytes(dumps(running_mean_std(OBSERVATION_SHAPE)))
    return model, folder


def raw_observations():
    return np.random.default_rng(0).normal(0.0, 6.0, (32,) + OBSERVATION_SHAPE).astype(np.float32)


def normalized_like_the_zoo(observations, clip_obs=DEFAULT_CLIP_OBS):
    """VecNormalize.normalize_obs with the statistics `running_mean_std` pickles (mean linspace(-1, 1), var 4)."""
    mean = np.linspace(-1.0, 1.0, OBSERVATION_SHAPE[0])
    return np.clip((observations - mean) / np.sqrt(4.0 + 1e-8), -clip_obs, clip_obs)


def export_cli(capsys, *args):
    """(exit status, stdout, stderr) of `sbif export ARGS`."""
    code = sbif_main(["export"] + [str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- normalization found beside the model ---------------------------------------------------------------------
def test_zoo_model_exports_with_its_normalization_and_says_so(tmp_path, capsys):
    """The issue's first trap: `sbif export a2c/MountainCar-v0.pkl` wrote a file without the obs_rms.pkl beside
    it. Now the graph normalizes raw observations as the zoo's VecNormalize did, and the wrote line says what
    was folded, why, and that nothing verified it."""
    model, folder = zoo_model(tmp_path, config=["[normalize, true]"])
    output = tmp_path / "car.sbif"
    code, out, err = export_cli(capsys, model, "-o", output)
    assert code == 0 and err == ""
    statistics = os.path.join(str(folder), "obs_rms.pkl")
    assert out == "wrote {} (PPO2 MlpPolicy, {:,} parameters, {})\n  folded observation normalization from {} ({} " \
                  "says normalize: true)\n  {}\n".format(output, SbifFile.read(str(output)).parameter_count(),
                                                       _size(output), statistics, folder / "config.yml",
                                                       safe_loader_status())
    policy = sbif.load(str(output))
    assert "vecnormalize/clipped" in {name for node in policy.document["graph"] for name in node["outputs"]}
    with pytest.warns(ExportWarning, match="not folded in"):
        plain, _ = export(model, normalize=False)
    observations = raw_observations()
    unnormalized = sbif.Policy(plain)
    normalized = normalized_like_the_zoo(observations).astype(np.float32)
    assert np.array_equal(policy.predict(observations, deterministic=True)[0],
                          unnormalized.predict(normalized, deterministic=True)[0])
    np.testing.assert_allclose(policy.value(observations), unnormalized.value(normalized), rtol=1e-5, atol=1e-6)


def _size(path):
    from sbif.cli.common import size_text

    return size_text(os.path.getsize(str(path)))


def test_statistics_without_a_config_are_applied_as_the_zoo_does(tmp_path):
    """No config.yml: the zoo's enjoy.py applies obs_rms.pkl when it is there (utils.get_saved_hyperparams)."""
    model, folder = zoo_model(tmp_path, config=None)
    result = export(model)
    assert result.file.document["provenance"]["vecnormalize"] == {"clip_obs": 10.0, "epsilon": 1e-8}
    assert result.notes == ["folded observation normalization from {} (no config.yml beside it; the zoo applies "
                            "the statistics it finds there)".format(os.path.join(str(folder), "obs_rms.pkl"))]


def test_config_without_normalize_leaves_the_statistics_out_and_says_so(tmp_path):
    """trpo/Pendulum-v0 in the shared zoo: obs_rms.pkl beside a config without `normalize`. The zoo runs it on raw
    observations, so do we, and the note says why the statistics there are not used."""
    model, folder = zoo_model(tmp_path, config=["[gamma, 0.99]"])
    result = export(model)
    assert "vecnormalize" not in result.file.document["provenance"]
    assert result.notes == ["no observation normalization: {} does not set normalize, so {} is not applied (as in "
                            "the zoo)".format(folder / "config.yml", os.path.join(str(folder), "obs_rms.pkl"))]


def test_normalize_kwargs_and_vecnormalize_save_beside_the_model(tmp_path):
    """`normalize: "{'clip_obs': 5.0}"` sets the clip; a VecNormalize save beside the model is preferred to
    obs_rms.pkl (it is SB2's own format, and newer zoos write it)."""
    model, folder = zoo_model(tmp_path, config=["[normalize, \"{'clip_obs': 5.0}\"]"])
    vec_normalize = _vec_normalize_save(folder / "vecnormalize.pkl", mean=np.full(OBSERVATION_SHAPE, 3.0))
    result = export(model)
    assert result.file.document["provenance"]["vecnormalize"] == {"clip_obs": 5.0, "epsilon": 1e-8}
    assert result.file.tensors["sbif/vecnormalize/mean"].tolist() == [3.0] * OBSERVATION_SHAPE[0]
    assert result.notes[0].startswith("folded observation normalization from {} (".format(vec_normalize))


def _vec_normalize_save(path, mean):
    """An SB2 VecNormalize pickle (its __dict__ with the RunningMeanStd), as `VecNormalize.save` writes it."""
    from tests.attacks.sb2_like import NewObj, named_class

    vec_normalize = named_class("stable_baselines.common.vec_env.vec_normalize", "VecNormalize")
    rms = running_mean_std(OBSERVATION_SHAPE, mean=mean)
    path.write_bytes(dumps(NewObj(vec_normalize, {"obs_rms": rms, "clip_obs": 10.0, "epsilon": 1e-8,
                                                  "norm_obs": True})))
    return str(path)


def test_stacked_frames_are_normalized_each_and_said(tmp_path):
    model, folder = zoo_model(tmp_path, config=["[normalize, true]", "[frame_stack, 3]"], frames=3)
    result = export(model)
    assert result.file.document["provenance"]["vecnormalize"] == {"clip_obs": 10.0, "epsilon": 1e-8, "frame_stack": 3}
    assert result.notes == ["folded observation normalization from {} ({} says normalize: true, per frame of 3 "
                            "stacked frames)".format(os.path.join(str(folder), "obs_rms.pkl"), folder / "config.yml")]


def test_config_that_enables_normalize_without_statistics_is_refused(tmp_path, capsys):
    model, folder = zoo_model(tmp_path, config=["[normalize, true]"], statistics=False)
    code, out, err = export_cli(capsys, model, "-o", tmp_path / "x.sbif")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "config.yml enables normalize but neither vecnormalize.pkl nor obs_rms.pkl is beside it" in err
    assert "--no-normalize" in err
    assert export_cli(capsys, model, "-o", tmp_path / "x.sbif", "--no-normalize")[0] == 0


# -- --no-normalize, explicit options, conflicts ----------------------------------------------------------------
def test_no_normalize_opts_out_loudly(tmp_path, capsys):
    model, folder = zoo_model(tmp_path, config=["[normalize, true]"])
    output = tmp_path / "raw.sbif"
    code, out, err = export_cli(capsys, model, "-o", output, "--no-normalize")
    statistics = os.path.join(str(folder), "obs_rms.pkl")
    assert code == 0 and err == (
        "sbif export: warning: --no-normalize: the observation statistics in {} are not folded in ({} says normalize: "
        "true); predict then expects observations already normalized as the zoo's VecNormalize did\n".format(
            statistics, folder / "config.yml"))
    assert "\n  no observation normalization (--no-normalize)\n  " in out
    assert "vecnormalize" not in sbif.load(str(output)).document["provenance"]
    with pytest.warns(ExportWarning, match="not folded in"):
        result = export(model, normalize=False)
    assert result.warnings == [err[len("sbif export: warning: "):-1]]


@pytest.mark.parametrize("option", ["--vecnormalize", "--zoo-config"])
def test_no_normalize_with_a_normalization_option_names_both(option, tmp_path, capsys):
    model, folder = zoo_model(tmp_path, config=["[normalize, true]"])
    value = folder / ("obs_rms.pkl" if option == "--vecnormalize" else "config.yml")
    code, out, err = export_cli(capsys, model, "-o", tmp_path / "x.sbif", "--no-normalize", option, value)
    assert code == 1 and out == "" and err == "sbif export: error: {} {} conflicts with --no-normalize (both decide " \
                                              "the observation normalization); pass one of them\n".format(option, value)


def test_vecnormalize_with_a_zoo_config_that_does_not_normalize_names_both(tmp_path, capsys):
    """Dropped without a word before (output byte-identical to no option). The config says the zoo ran the model
    on raw observations, the option says normalize them: refused, as either guess can break the agent."""
    model, folder = zoo_model(tmp_path, config=["[gamma, 0.99]"])
    statistics, config = folder / "obs_rms.pkl", folder / "config.yml"
    code, out, err = export_cli(capsys, model, "-o", tmp_path / "x.sbif", "--vecnormalize", statistics,
                                "--zoo-config", config)
    assert code == 1 and out == ""
    assert err == "sbif export: error: --vecnormalize {} conflicts with --zoo-config {}, which does not set " \
                  "normalize (the zoo ran the model on raw observations); pass only the one that is " \
                  "right\n".format(statistics, config)


def test_explicit_vecnormalize_overrides_the_config_found_beside_the_model(tmp_path):
    """Explicit beats found: --vecnormalize alone folds its statistics even where the config beside the model
    does not enable normalize, and the note says it overrode it."""
    model, folder = zoo_model(tmp_path, config=["[gamma, 0.99]"])
    statistics = str(folder / "obs_rms.pkl")
    result = export(model, vecnormalize=statistics)
    assert "vecnormalize" in result.file.document["provenance"]
    assert result.notes == ["folded observation normalization from {} (--vecnormalize, overriding {}, which does not "
                            "set normalize)".format(statistics, folder / "config.yml")]


def test_explicit_zoo_config_elsewhere(tmp_path):
    """--zoo-config where the config is not beside the model: it decides, with the statistics beside it."""
    model, folder = zoo_model(tmp_path, config=None, statistics=False)
    elsewhere = tmp_path / "hyperparams"
    elsewhere.mkdir()
    (elsewhere / "config.yml").write_text("normalize: \"dict(clip_obs=3.0)\"\nframe_stack: 1\n")
    (elsewhere / "obs_rms.pkl").write_bytes(dumps(running_mean_std(OBSERVATION_SHAPE)))
    result = export(model, zoo_config=str(elsewhere / "config.yml"))
    assert result.file.document["provenance"]["vecnormalize"]["clip_obs"] == 3.0
    assert result.notes == ["folded observation normalization from {} (--zoo-config {} says normalize: "
                            "'dict(clip_obs=3.0)')".format(elsewhere / "obs_rms.pkl", elsewhere / "config.yml")]


def test_models_outside_a_zoo_layout_are_unchanged(tmp_path):
    data = model_data()
    model = write_pkl(str(tmp_path / "model.pkl"), data, model_parameters(data))
    result = export(model)
    assert result.notes == [] and result.warnings == [] and "vecnormalize" not in result.file.document["provenance"]


# -- what the file cannot express -------------------------------------------------------------------------------
def test_env_wrapper_is_a_warning_that_says_what_to_do(tmp_path, capsys):
    model, folder = zoo_model(tmp_path, config=["[env_wrapper, utils.wrappers.TimeFeatureWrapper]",
                                                "[normalize, true]"])
    code, out, err = export_cli(capsys, model, "-o", tmp_path / "x.sbif")
    assert code == 0 and "folded observation normalization" in out
    assert err == "sbif export: warning: {}: the zoo wrapped the environment in 'utils.wrappers.TimeFeatureWrapper', " \
                  "which the .sbif file cannot express: wrap your environment the same way before calling " \
                  "predict\n".format(folder / "config.yml")
    with pytest.warns(ExportWarning, match="TimeFeatureWrapper"):
        export(model)
    code, out, _ = export_cli(capsys, model, "-o", tmp_path / "x.sbif", "--json")
    assert code == 0 and "TimeFeatureWrapper" in json.loads(out)["warnings"][0]


def test_env_wrapper_names_are_checked(tmp_path):
    model, _ = zoo_model(tmp_path, config=["[env_wrapper, 3]"])
    with pytest.raises(ExportError, match="env_wrapper must name wrapper classes"):
        export(model)


# -- verification status --------------------------------------------------------------------------------------
def test_every_write_says_whether_it_was_verified(tmp_path, capsys):
    data = model_data()
    model = write_pkl(str(tmp_path / "model.pkl"), data, model_parameters(data))
    output = tmp_path / "m.sbif"
    code, out, _ = export_cli(capsys, model, "-o", output, "--json")
    summary = json.loads(out)
    assert code == 0 and summary["verified"] is False and summary["verification"] is None
    assert summary["verification_status"] == safe_loader_status()
    code, out, _ = export_cli(capsys, model, "-o", output, "--policy-kwargs", '{"act_fun": "relu"}')
    assert code == 0 and out.endswith("\n  not verified: overrides given (--policy-kwargs {'act_fun': 'relu'}) — "
                                      "nothing has checked them against SB2; make sure they are how the model was "
                                      "trained\n")
    code, out, _ = export_cli(capsys, model, "-o", output, "--policy", "MlpPolicy")
    assert code == 0 and "not verified: overrides given (--policy 'MlpPolicy')" in out


def test_safe_loader_status_says_where_to_verify(monkeypatch):
    import importlib.util

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "stable_baselines" else found(name))
    assert safe_loader_status() == NOT_VERIFIED_SAFE
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert safe_loader_status() == "not verified: safe loader (it reads the file as data and never runs SB2) — run " \
                                   "with --loader live to verify"


def test_export_is_still_the_pair_of_file_and_report(tmp_path):
    """Callers unpack or index what `export` returns (conformance/record.py, benchmarks, tests)."""
    data = model_data()
    result = export(write_pkl(str(tmp_path / "model.pkl"), data, model_parameters(data)))
    sbif_file, report = result
    assert report == {} and sbif_file is result[0] is result.file and result.report is result[1]
    assert sbif_file.document["provenance"]["exporter"] == "safe" and len(result) == 2


def test_live_export_is_verified_or_says_no_verify(tmp_path):
    """In the SB2 environment: the live loader's status, with the number of observations compared."""
    pytest.importorskip("stable_baselines")
    demo = os.path.join(ROOT, "demo", "ppo2_cartpole.zip")
    result = export(demo, loader="live")
    assert result.verified and result.verification.startswith(
        "verified against SB2 on {} observations: action_mismatches 0, probabilities ".format(VERIFY_OBSERVATIONS))
    assert export(demo, loader="live", verify=False).verification == "not verified: --no-verify"


# -- the network of an unnamed parameter list ---------------------------------------------------------------------
ZOO_MLP = Global("utils", "CustomMlpPolicy")  # the zoo's class: FeedForwardPolicy with layers=[16] in its __init__


def custom_mlp_list(tmp_path):
    """An SB2 < 2.6 file (unnamed list, no policy_kwargs) of the zoo's utils.CustomMlpPolicy: separate pi and
    vf layers of 16. Returns its path and the names SB2 gives the list."""
    data = model_data(policy=ZOO_MLP)
    del data["policy_kwargs"]
    identity = PolicyIdentity("CustomMlpPolicy", "utils", "FeedForwardPolicy", "tanh")
    names = actor_critic_names(data, {"layers": [16]}, identity, *_spaces(data), path="model")
    return write_pkl(str(tmp_path / "custom.pkl"), data, _random_arrays(names)), [name for name, _ in names]


def _spaces(data):
    """The description spaces of `model_data`'s gym stand-ins (a Box observation, Discrete actions)."""
    box = data["observation_space"].__dict__
    return (Space("box", box["shape"], box["dtype"].name, box["low"], box["high"]),
            Space("discrete", (), "int64", n=data["action_space"].__dict__["n"]))


def _random_arrays(names, seed=1):
    rng = np.random.RandomState(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _, shape in names]


def test_layers_of_an_unnamed_list_are_inferred_and_said(tmp_path, capsys):
    path, names = custom_mlp_list(tmp_path)
    code, out, err = export_cli(capsys, path, "-o", tmp_path / "custom.sbif")
    assert code == 0 and err == ""
    assert "(PPO2 CustomMlpPolicy, " in out and "\n  inferred layers [16] from the parameter shapes\n  " + \
        safe_loader_status() in out
    assert list(SbifFile.read(str(tmp_path / "custom.sbif")).tensors)[:len(names)] == names


def test_net_arch_that_does_not_fit_proposes_the_spelling_that_does(tmp_path, capsys):
    """`{"net_arch": [16]}` is one layer shared by pi and vf; the file has one each: the error says so and
    proposes `{"layers": [16]}`, which then works."""
    path, _ = custom_mlp_list(tmp_path)
    code, out, err = export_cli(capsys, path, "-o", tmp_path / "x.sbif", "--policy-kwargs", '{"net_arch": [16]}')
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "the shapes fit --policy-kwargs '{\"layers\": [16]}'" in err and "net_arch [N] is a layer the policy " \
                                                                              "and value function share" in err
    assert "named for policy_kwargs {'net_arch': [16]}" in err
    code, out, _ = export_cli(capsys, path, "-o", tmp_path / "x.sbif", "--policy-kwargs", '{"layers": [16]}')
    assert code == 0 and "inferred" not in out and "not verified: overrides given" in out


def test_shapes_no_network_fits_say_so(tmp_path):
    data = model_data()
    params = list(model_parameters(data).values())
    params[2] = np.zeros((3, 3), np.float32)  # a kernel that chains to nothing
    with pytest.raises(ExportError, match="no MLP of up to 8 hidden layers fits its shapes: pass --policy and "
                                          "--policy-kwargs as the model was built"):
        export(write_pkl(str(tmp_path / "m.pkl"), data, params))


def dqn_list(tmp_path, layers):
    """An old DQN file (unnamed list) of the stock MlpPolicy built with `layers`, saved without policy_kwargs."""
    data = model_data(policy=Global("stable_baselines.deepq.policies", "MlpPolicy"), exploration_fraction=0.1)
    del data["cliprange"], data["policy_kwargs"]
    identity = PolicyIdentity("MlpPolicy", "stable_baselines.deepq.policies", "FeedForwardPolicy", "relu")
    names = dqn_names(data, {"layers": layers}, identity, *_spaces(data), path="model")
    return write_pkl(str(tmp_path / "dqn.pkl"), data, _random_arrays(names))


def test_dqn_layers_inferred_and_net_arch_read_as_layers(tmp_path):
    """DQN policies have `layers` and no `net_arch`: a flat net_arch (Stable-Baselines3's spelling, and the
    actor-critic one) is read as layers, with a note, where before it was ignored and the error asked for it."""
    path = dqn_list(tmp_path, [16, 8])
    assert export(path).notes == ["inferred layers [16, 8] from the parameter shapes"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = export(path, policy_kwargs={"net_arch": [16, 8]})
    assert result.notes == ["read --policy-kwargs net_arch [16, 8] as layers, the name DQN policies give it"]
    with pytest.raises(ExportError, match="gives both net_arch and layers"):
        export(path, policy_kwargs={"net_arch": [16], "layers": [16]})
    with pytest.raises(ExportError, match="DQN policies take layers, a list of layer sizes"):
        export(path, policy_kwargs={"net_arch": [{"pi": [16]}]})
