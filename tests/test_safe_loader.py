"""The safe loader (SB2 files read as data, in any environment): every `../shared/zoo` model, generated SB2
files in all three save layouts, the readable-text fallback for space bounds, and the overrides
(`--policy`, `--policy-kwargs`) for what a file cannot tell. No SB2 or TensorFlow needed."""
import copy
import json
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import sbif
from sbif.cli import main as sbif_main
from sbif.compare import sample_observations
from sbif.errors import ExportError, SbifError, UnsupportedError
from sbif.export import LOADERS, ModelDescription, build_sbif, export
from sbif.export.safe import describe_safe_file, parse_array_text
from sbif.export.safe_pickle import loads
from sbif.format import SbifFile
from sbif.format.document import encode_document

from tests.attacks.sb2_like import (BOX, MLP_POLICY, Call, Global, NewObj, dumps, gym_box, make_model_files,
                                    model_data, model_parameters, write_pkl, write_zip)
from tests.zoo import ZOO, require_zoo, zoo_models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


ZOO_MODELS = zoo_models()


def test_zoo_is_present():
    require_zoo(ZOO_MODELS)


@pytest.mark.parametrize("relative", ZOO_MODELS)
def test_zoo_model(relative, tmp_path):
    """Every zoo model (every algorithm, .zip and both .pkl layouts, unnamed and duplicated lists, classes
    from the absent zoo `utils` module) exports to a valid, runnable file."""
    path = os.path.join(ZOO, relative)
    algorithm = relative.split(os.sep)[0].upper()
    description = describe_safe_file(path)
    assert isinstance(description, ModelDescription) and description.algorithm == algorithm
    assert description.provenance["exporter"] == "safe" and description.provenance["sb2_version"] is None
    assert description.parameters and all(isinstance(a, np.ndarray) for a in description.parameters.values())
    run_exported(build_sbif(description), tmp_path)


def run_exported(sbif_file, tmp_path):
    target = str(tmp_path / "model.sbif")
    sbif_file.write(target)
    policy = sbif.load(target)
    observations = sample_observations(policy.observation_space, 8, np.random.default_rng(0))
    action, _ = policy.predict(observations, deterministic=True)
    assert len(action) == 8 and np.all(np.isfinite(action))
    if "value" in {output["name"] for output in sbif_file.document["outputs"]}:
        assert np.all(np.isfinite(policy.value(observations)))
    return policy


# -- generated files ------------------------------------------------------------------------------------------
@pytest.fixture
def generated(tmp_path):
    return make_model_files(tmp_path)


def document_without_source(sbif_file):
    document = copy.deepcopy(sbif_file.document)
    del document["provenance"]["source"]
    return encode_document(document)


def test_generated_files_in_every_layout_export_the_same(generated, tmp_path):
    """.zip, .pkl with names and .pkl with an unnamed list: the same document and tensors."""
    files = {kind: build_sbif(describe_safe_file(path)) for kind, path in generated.items()}
    reference = files["zip"]
    assert reference.document["provenance"]["policy_kwargs"]["act_fun"] == {"name": "relu"}
    for kind, sbif_file in files.items():
        assert document_without_source(sbif_file) == document_without_source(reference), kind
        for name, array in reference.tensors.items():
            assert sbif_file.tensors[name].tobytes() == array.tobytes()
    run_exported(reference, tmp_path)


def test_export_default_is_safe_and_does_not_verify(generated):
    assert LOADERS[0] == "safe"
    sbif_file, report = export(generated["pkl"])
    assert report == {} and sbif_file.document["provenance"]["exporter"] == "safe"
    sbif_file, report = export(generated["zip"], loader="safe", verify=True)
    assert report == {}


def test_live_loader_takes_no_overrides(generated):
    with pytest.raises(UnsupportedError, match="safe loader"):
        export(generated["zip"], loader="live", policy="MlpPolicy")


def test_cli_export_uses_the_safe_loader(generated, tmp_path, capsys):
    output = str(tmp_path / "out.sbif")
    assert sbif_main(["export", generated["pkl"], "-o", output]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("wrote") and "not verified: safe loader" in printed and "verified against" not in printed
    assert SbifFile.read(output).document["provenance"]["exporter"] == "safe"
    assert sbif_main(["export", generated["pkl"], "-o", output, "--policy-kwargs", "{not json"]) == 1
    assert "--policy-kwargs is not valid JSON" in capsys.readouterr().err
    assert sbif_main(["export", generated["pkl"], "-o", output, "--policy-kwargs", '{"act_fun": "elu"}',
                      "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verification"] is None
    assert SbifFile.read(output).document["provenance"]["policy_kwargs"]["act_fun"] == {"name": "elu"}


# -- what a file cannot tell ----------------------------------------------------------------------------------
def test_policy_class_override(tmp_path):
    data = model_data()
    params = model_parameters(data)
    path = write_zip(str(tmp_path / "m.zip"), data, params)
    stripped = rewrite_zip_data(path, str(tmp_path / "nopolicy.zip"), drop_serialized=("policy",))
    with pytest.raises(ExportError, match="--policy CLASS"):
        describe_safe_file(stripped)
    description = describe_safe_file(stripped, policy="MlpPolicy")
    assert description.policy_class == "MlpPolicy" and description.policy_base == "FeedForwardPolicy"
    assert description.policy_kwargs == describe_safe_file(path).policy_kwargs


def test_class_pickled_by_value(tmp_path):
    """A policy class defined in the training script: cloudpickle stores it as code; we read only its name."""
    skeleton = Call(Global("cloudpickle.cloudpickle", "_make_skeleton_class"), Global("abc", "ABCMeta"),
                    "CustomPolicy", (MLP_POLICY,), {}, "tracker-id", None)
    data = model_data(policy=skeleton)
    path = write_pkl(str(tmp_path / "m.pkl"), data, model_parameters(data))
    with pytest.raises(UnsupportedError, match="act_fun"):
        describe_safe_file(path)  # its __init__ could set any activation
    description = describe_safe_file(path, policy_kwargs={"act_fun": "tanh"})
    assert (description.policy_class, description.policy_base) == ("CustomPolicy", "FeedForwardPolicy")


def test_instances_of_classes_pickled_by_value(tmp_path):
    """TD3 with an action noise class defined in the training script: its instance is an inert stand-in, and
    the description names its kind (the builder then refuses to sample it, as for any noise it cannot run)."""
    noise_class = Call(Global("cloudpickle.cloudpickle", "_make_skeleton_class"), Global("builtins", "type"),
                       "DecayingNoise", (Global("stable_baselines.common.noise", "ActionNoise"),), {}, "id", None)
    data = model_data(policy_delay=2, action_noise=NewObj(noise_class, {"_sigma": 0.3}))
    del data["cliprange"]
    path = write_pkl(str(tmp_path / "td3.pkl"), data, model_parameters(data))
    description = describe_safe_file(path, policy="MlpPolicy")
    assert description.algorithm == "TD3" and description.extra == {"action_noise": {"kind": "DecayingNoise"}}


def test_unknown_policy_class_needs_its_activation(tmp_path):
    data = model_data(policy=Global("my_project.policies", "WidePolicy"))
    path = write_pkl(str(tmp_path / "m.pkl"), data, model_parameters(data))
    with pytest.raises(UnsupportedError, match="--policy-kwargs"):
        describe_safe_file(path)
    assert describe_safe_file(path, policy_kwargs='{"act_fun": "relu"}').policy_kwargs["act_fun"] == {"name": "relu"}


def test_activation_pickled_by_value(tmp_path):
    function = Call(Global("cloudpickle.cloudpickle", "_fill_function"),
                    Call(Global("cloudpickle.cloudpickle", "_make_skel_func"), b"code", 0, {}), {})
    data = model_data(policy_kwargs={"act_fun": function})
    path = write_pkl(str(tmp_path / "m.pkl"), data, model_parameters(data))
    with pytest.raises(UnsupportedError, match="training script"):
        describe_safe_file(path)
    assert describe_safe_file(path, policy_kwargs={"act_fun": "selu"}).policy_kwargs == {"act_fun": {"name": "selu"}}


def test_policy_kwargs_override_is_checked(generated):
    with pytest.raises(ExportError, match="unknown key"):
        describe_safe_file(generated["pkl"], policy_kwargs={"learning_rate": 1})
    with pytest.raises(SbifError, match="unknown activation"):
        describe_safe_file(generated["pkl"], policy_kwargs={"act_fun": "gelu"})


def test_unnamed_list_with_another_net_arch_is_inferred_or_given(tmp_path):
    """Shared layers of 32 and 16 where SB2's default is separate [64, 64]: the shapes fit one network only,
    which is inferred (and said); passing it gives the same names without a note."""
    data = model_data()
    params = model_parameters(data, net_arch=[32, 16])
    path = write_pkl(str(tmp_path / "m.pkl"), data, list(params.values()))
    description = describe_safe_file(path)
    assert list(description.parameters) == list(params)
    assert description.notes == ["inferred net_arch [32, 16] from the parameter shapes"]
    description = describe_safe_file(path, policy_kwargs={"net_arch": [32, 16]})
    assert list(description.parameters) == list(params) and description.notes == []


def test_unnamed_list_whose_shapes_fit_several_networks_needs_one(tmp_path):
    """Shared [32, 32] has the shapes of shared [32] then a value-only layer of 32 (and of a policy-only one):
    the error lists the three in the spelling --policy-kwargs takes; each one given is taken as stated."""
    data = model_data()
    params = model_parameters(data, net_arch=[32, 32])
    path = write_pkl(str(tmp_path / "m.pkl"), data, list(params.values()))
    with pytest.raises(ExportError) as refused:
        describe_safe_file(path)
    message = str(refused.value)
    for proposal in ('{"net_arch": [32, 32]}', '{"net_arch": [32, {"pi": [], "vf": [32]}]}',
                     '{"net_arch": [32, {"pi": [32], "vf": []}]}'):
        assert "--policy-kwargs '{}'".format(proposal) in message, message
    assert "ambiguous" in message and "\n" not in message
    assert list(describe_safe_file(path, policy_kwargs={"net_arch": [32, 32]}).parameters) == list(params)


def test_old_files_without_policy_kwargs(tmp_path):
    data = model_data()
    del data["policy_kwargs"]
    description = describe_safe_file(write_pkl(str(tmp_path / "m.pkl"), data, model_parameters(data)))
    assert description.policy_kwargs == {"act_fun": {"name": "tanh"}}
    data["policy_kwargs"] = None
    assert describe_safe_file(write_pkl(str(tmp_path / "n.pkl"), data, model_parameters(data))).policy_kwargs == {
        "act_fun": {"name": "tanh"}}


def test_algorithm_override(generated):
    """--algo in any case, read as the live loader reads it (sb2_files.canonical_algorithm: one message for both)."""
    assert describe_safe_file(generated["zip"], algorithm="a2c").algorithm == "A2C"
    with pytest.raises(ExportError, match=r"unknown algorithm 'PPO3'; SB2 has A2C, .* \(in any case\)$"):
        describe_safe_file(generated["zip"], algorithm="PPO3")


# -- space bounds as text -------------------------------------------------------------------------------------
def rewrite_zip_data(source, target, drop_serialized=(), replace=None):
    """Copy an SB2 archive, removing the pickled value of some data entries (keeping their readable text)."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"].decode())
    for key in drop_serialized:
        del data[key][":serialized:"]
    data.update(replace or {})
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return target


def zip_sources(tmp_path):
    sources = [os.path.join(ZOO, "ppo2", "CartPoleContinuousBulletEnv-v0.zip"),
               os.path.join(ZOO, "acktr", "Pendulum-v0.zip")]
    data = model_data(observation=gym_box(-np.inf, np.inf, (2, 3)), action=gym_box(-1.5, 2.25, (2,)))
    data["observation_space"].__dict__["low"][0, 1] = -3.4028235e+38
    data["observation_space"].__dict__["high"][1, 2] = 0.1
    generated = write_zip(str(tmp_path / "g.zip"), data, model_parameters(data))
    return [path for path in sources if os.path.exists(path)] + [generated]


def test_bounds_read_from_text_are_exact(tmp_path):
    """Without the pickled spaces, the str(ndarray) text gives the very same bounds (float32 text has 9
    significant digits or is printed in full)."""
    for index, source in enumerate(zip_sources(tmp_path)):
        target = rewrite_zip_data(source, str(tmp_path / "text{}.zip".format(index)),
                                  drop_serialized=("observation_space", "action_space"))
        pickled, text = describe_safe_file(source), describe_safe_file(target)
        for key in ("observation_space", "action_space"):
            a, b = getattr(pickled, key), getattr(text, key)
            assert (a.kind, a.shape, a.dtype) == (b.kind, b.shape, b.dtype)
            for bound in ("low", "high"):
                assert getattr(a, bound).tobytes() == getattr(b, bound).tobytes(), (source, key, bound)


def test_summarised_text_is_refused(tmp_path):
    data = model_data(observation=gym_box(0.0, 1.0, (2000,)))
    path = write_zip(str(tmp_path / "big.zip"), data, model_parameters(data))
    readable = {":type:": "<class 'gym.spaces.box.Box'>", "dtype": "float32", "shape": [2000],
                "low": str(np.zeros(2000, np.float32)), "high": str(np.ones(2000, np.float32))}
    assert "..." in readable["low"]
    target = rewrite_zip_data(path, str(tmp_path / "text.zip"), replace={"observation_space": readable})
    with pytest.raises(ExportError, match="--loader live"):
        describe_safe_file(target)


def test_parse_array_text():
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    assert parse_array_text("[-1. -1. -8.]", (3,), f32, "x").tolist() == [-1.0, -1.0, -8.0]
    exact = np.array([-8.0000001e-01, -3.4028235e+38, 4.1887903e-01, np.inf], np.float32)
    assert parse_array_text(str(exact), (4,), f32, "x").tobytes() == exact.tobytes()
    grid = np.arange(6, dtype=np.float64).reshape(2, 3) / 4
    assert parse_array_text(str(grid), (2, 3), f64, "x").tobytes() == grid.tobytes()
    assert parse_array_text("[[ True False]]", (1, 2), np.dtype(bool), "x").tolist() == [[True, False]]
    assert parse_array_text("[3 2 4]", (3,), np.dtype(np.int64), "x").tolist() == [3, 2, 4]
    with pytest.raises(ExportError, match="rounded"):
        parse_array_text(str(np.array([0.123456789012])), (1,), f64, "x")
    with pytest.raises(ExportError, match="summarised"):
        parse_array_text(str(np.zeros(5000)), (5000,), f64, "x")
    with pytest.raises(ExportError, match="needs 4"):
        parse_array_text("[1. 2.]", (4,), f32, "x")
    with pytest.raises(ExportError, match="not a number"):
        parse_array_text("[1. os]", (2,), f32, "x")


# -- the restricted unpickler on ordinary data ----------------------------------------------------------------
def test_safe_pickle_rebuilds_numpy_exactly():
    arrays = [np.arange(12, dtype=">f8").reshape(3, 4), np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
              np.array([True, False]), np.zeros((0, 5), np.float32), np.array(3.5, np.float32)]
    for protocol in sorted({2, 4, pickle.HIGHEST_PROTOCOL}):
        for array in arrays:
            rebuilt = loads(pickle.dumps(array, protocol=protocol))
            rebuilt = getattr(rebuilt, "array", rebuilt)
            assert rebuilt.dtype == array.dtype and rebuilt.shape == array.shape
            assert np.array_equal(rebuilt, array) and rebuilt.flags.writeable
        assert loads(pickle.dumps(np.float64(2.5), protocol=protocol)) == 2.5


def test_stubs_record_and_do_nothing():
    stub = loads(dumps(Call(Global("stable_baselines.common.policies", "MlpPolicy"), 1, "two")))
    assert type(stub).reference() == "stable_baselines.common.policies.MlpPolicy" and stub.args == (1, "two")
    space = loads(dumps(gym_box(0.0, 1.0, (2,))))
    assert type(space).reference() == "gym.spaces.box.Box" and space.state["low"].array.tolist() == [0.0, 0.0]
    assert BOX.sb2_reference == ("gym.spaces.box", "Box")
    called = stub("anything")
    assert called.args[0] is stub


def test_zip_parameters_are_the_member_bytes_in_any_layout(tmp_path):
    """The .npy members are parsed by the safe loader itself, from the bytes it checked: Fortran order and
    big-endian members give exactly the arrays np.savez was given (as float32, what SB2 feeds its variables)."""
    data = model_data()
    params = model_parameters(data)
    stored = OrderedDict((name, np.asfortranarray(array).astype(">f4") if array.ndim == 2 else array.astype(">f8"))
                         for name, array in params.items())
    assert any(not array.flags.c_contiguous for array in stored.values())
    description = describe_safe_file(write_zip(str(tmp_path / "layouts.zip"), data, stored))
    assert list(description.parameters) == list(params)
    for name, array in params.items():
        loaded = description.parameters[name]
        assert loaded.dtype == np.float32 and loaded.shape == array.shape and np.array_equal(loaded, array), name


def test_zip_member_base64_must_be_valid(tmp_path):
    data = model_data()
    path = write_zip(str(tmp_path / "m.zip"), data, model_parameters(data))
    readable = {":type:": "<class 'gym.spaces.box.Box'>", ":serialized:": "%%%not base64%%%"}
    target = rewrite_zip_data(path, str(tmp_path / "b64.zip"), replace={"observation_space": readable})
    with pytest.raises(ExportError, match="base64"):
        describe_safe_file(target)


# -- spaces and numbers read from text or pickles (issue #18, items 4 and 6) ---------------------------------
TEXT_BOX = {":type:": "<class 'gym.spaces.box.Box'>", "dtype": "float32", "shape": [4],
            "low": "[-2. -2. -2. -2.]", "high": "[3. 3. 3. 3.]"}
TEXT_DISCRETE = {":type:": "<class 'gym.spaces.discrete.Discrete'>", "n": 4}
TEXT_MULTI_DISCRETE = {":type:": "<class 'gym.spaces.multi_discrete.MultiDiscrete'>", "shape": [2], "nvec": "[3 2]"}
BAD_TEXT_SPACES = {
    "negative dimension": (dict(TEXT_BOX, shape=[-1, 4], low="[-2.]", high="[3.]"), "[-1, 4]"),
    "float dimension": (dict(TEXT_BOX, shape=[4.7]), "[4.7]"),
    "string dimension": (dict(TEXT_BOX, shape=["4"]), "['4']"),
    "boolean dimension": (dict(TEXT_BOX, shape=[True, True, True, True], low="[-2.]", high="[3.]"), "[True"),
    "4000-digit dimension": (dict(TEXT_BOX, shape=[10 ** 4000]), "bit integer>]"),
    "shape not a list": (dict(TEXT_BOX, shape="4"), "'4'"),
    "datetime dtype": (dict(TEXT_BOX, dtype="M8"), "'M8'"),
    "timedelta dtype": (dict(TEXT_BOX, dtype="m8"), "'m8'"),
    "sub-array dtype": (dict(TEXT_BOX, dtype="(4,)f4"), "'(4,)f4'"),
    "object dtype": (dict(TEXT_BOX, dtype="O"), "'O'"),
    "void dtype": (dict(TEXT_BOX, dtype="V8"), "'V8'"),
    "text dtype": (dict(TEXT_BOX, dtype="U4"), "'U4'"),
    "structured dtype": (dict(TEXT_BOX, dtype="[('a', '<f4')]"), "\"[('a', '<f4')]\""),
    "complex dtype": (dict(TEXT_BOX, dtype="complex64"), "'complex64'"),
    "integer bound out of range": (dict(TEXT_BOX, dtype="int64", low="[99999999999999999999 0 0 0]",
                                        high="[1 1 1 1]"), "'99999999999999999999' is out of range for int64"),
    "float bound out of range": (dict(TEXT_BOX, low="[-1e39 0. 0. 0.]"), "'-1e39' is out of range for float32"),
    "float count": (dict(TEXT_DISCRETE, n=4.7), "4.7"),
    "boolean count": (dict(TEXT_DISCRETE, n=True), "True"),
    "string count": (dict(TEXT_DISCRETE, n="4"), "'4'"),
    "negative count": (dict(TEXT_DISCRETE, n=-1), "-1"),
    "boolean MultiDiscrete shape": (dict(TEXT_MULTI_DISCRETE, shape=[True]), "[True]"),
    "matrix MultiDiscrete shape": (dict(TEXT_MULTI_DISCRETE, shape=[1, 2]), "(1, 2)"),
    "MultiDiscrete without choices": (dict(TEXT_MULTI_DISCRETE, nvec="[3 0]"), "[3, 0]"),
}


@pytest.mark.parametrize("case", sorted(BAD_TEXT_SPACES))
def test_textual_spaces_are_exact(case, tmp_path):
    """A space SB2 stored only as text: dimensions and counts are exact non-negative integers (4.7 was read as
    4, a negative or boolean dimension or a dtype such as 'M8' or '(4,)f4' was an internal error), dtypes
    are the numeric ones SB2 spaces use (looked up by name, never parsed by numpy), bounds fit their dtype.
    Refused with an ExportError naming the space and quoting the value."""
    readable, shown = BAD_TEXT_SPACES[case]
    data = model_data()
    path = write_zip(str(tmp_path / "m.zip"), data, model_parameters(data))
    target = rewrite_zip_data(path, str(tmp_path / "text.zip"), replace={"observation_space": readable})
    with pytest.raises(ExportError) as caught:
        describe_safe_file(target)
    message = str(caught.value)
    assert "observation_space" in message and shown in message, message
    assert "\n" not in message and len(message) < 600, message


def test_textual_spaces_that_are_valid_still_read(tmp_path):
    """Every dtype SB2 spaces use, and the other kinds, read from text as before."""
    data = model_data()
    path = write_zip(str(tmp_path / "m.zip"), data, model_parameters(data))
    for dtype, low, high in (("float32", "[-2. -2. -2. -2.]", "[3. 3. 3. 3.]"),
                             ("uint8", "[0 0 0 0]", "[255 255 255 255]"),
                             ("bool", "[False False False False]", "[ True  True  True  True]"),
                             ("float64", "[-inf -inf -inf -inf]", "[inf inf inf inf]")):
        target = rewrite_zip_data(path, str(tmp_path / "text.zip"), replace={
            "observation_space": dict(TEXT_BOX, dtype=dtype, low=low, high=high)})
        space = describe_safe_file(target).observation_space
        assert (space.kind, space.shape, space.dtype) == ("box", (4,), dtype)
    from sbif.export.safe import space_from_text

    assert space_from_text(TEXT_DISCRETE, "x").n == 4
    assert space_from_text(TEXT_MULTI_DISCRETE, "x").nvec == [3, 2]


def test_pickled_box_with_a_datetime_dtype_or_boolean_shape(tmp_path):
    """The pickled-space route applies the same rules (one home: space_dtype, space_shape)."""
    for change, shown in (({"dtype": np.dtype("M8[s]")}, "'M8'"), ({"shape": (True, 4)}, "(True, 4)"),
                          ({"dtype": np.dtype("S4")}, "S4")):
        box = gym_box(0.0, 1.0, (4,))
        box.__dict__.update(change)
        data = model_data(observation=box)
        path = write_pkl(str(tmp_path / "m.pkl"), data, model_parameters(model_data()))
        with pytest.raises(ExportError) as caught:
            describe_safe_file(path)
        assert "observation_space" in str(caught.value) and shown in str(caught.value), str(caught.value)


def test_ddpg_ranges_are_real_numbers():
    """DDPG's observation_range and return_range: a 4000-digit integer made float() raise (an internal error),
    NaN was taken as a bound. Infinite return bounds are SB2's default and stay accepted."""
    from sbif.export.safe import algorithm_settings

    settings = algorithm_settings({"return_range": (-np.inf, np.inf), "observation_range": (-5, 5.0)}, "DDPG", "m")
    assert settings["return_range"] == (-np.inf, np.inf) and settings["observation_range"] == (-5.0, 5.0)
    for value, shown in (((-(10 ** 4000), 5.0), "bit integer>"), ((float("nan"), 1.0), "nan"),
                         ((True, 1.0), "True"), (("1", 2.0), "'1'")):
        with pytest.raises(ExportError) as caught:
            algorithm_settings({"observation_range": value}, "DDPG", "m")
        assert "observation_range" in str(caught.value) and shown in str(caught.value), str(caught.value)


def test_action_noise_is_not_expanded():
    """A NormalActionNoise whose mean is a list of shared references (10^7 leaves) is refused, not handed to
    np.asarray, which would expand it."""
    from sbif.export.safe import describe_action_noise
    from tests.attacks.sb2_like import named_class, shared_nesting

    noise_class = named_class("stable_baselines.common.noise", "NormalActionNoise")
    noise = loads(dumps(NewObj(noise_class, {"_mu": shared_nesting(7, 10), "_sigma": np.ones(2)})))
    with pytest.raises(ExportError, match="no numeric mean and sigma"):
        describe_action_noise(noise, "m")
    noise = loads(dumps(NewObj(noise_class, {"_mu": np.zeros(2), "_sigma": np.full(2, 0.1)})))
    assert describe_action_noise(noise, "m")["sigma"].tolist() == [0.1, 0.1]


@pytest.mark.parametrize("spec", [{"name": []}, {"name": {"a": 1}}, 5, None, "x" * 1000000, {"name": "relu", "x": 1}])
def test_activation_overrides_are_refused_in_one_short_line(spec):
    """--policy-kwargs '{"act_fun": ...}' is user JSON: an unhashable name raised a TypeError (exit 2), and a long one
    was echoed whole."""
    from sbif.errors import UnsupportedError
    from sbif.export.activations import activation_from_name

    with pytest.raises(UnsupportedError) as refused:
        activation_from_name(spec)
    assert len(str(refused.value)) < 300 and "\n" not in str(refused.value)
