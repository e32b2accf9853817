"""SB3 and sb3-contrib saves read as data (`sbif.export.sb3`), compared with what SB3 and torch themselves load
from the same files: state dicts bit for bit, spaces' bounds exactly, policy kwargs' classes as ClassRefs.

The models are built (not trained) by SB3 on gymnasium envs with every observation space an SB3 policy takes,
saved by SB3, and read back both ways.
"""
import base64
import io
import json
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gym = pytest.importorskip("gymnasium")
sb3 = pytest.importorskip("stable_baselines3")
sb3_contrib = pytest.importorskip("sb3_contrib")

from gymnasium import spaces  # noqa: E402
from stable_baselines3.common.save_util import load_from_zip_file  # noqa: E402
from torch import nn  # noqa: E402

from sbif.errors import ExportError  # noqa: E402
from sbif.export.safe_pickle import BY_VALUE  # noqa: E402
from sbif.export.sb2_files import describe_source  # noqa: E402
from sbif.export.sb3.save_file import ClassRef, is_sb3_save, read_sb3_save  # noqa: E402
from sbif.export.sb3.torch_storage import TensorBudget, read_pth  # noqa: E402
from sbif.export.sb3.vecnormalize import RunningStats, read_sb3_vecnormalize  # noqa: E402
from tests.attacks.sb2_like import Global, NewObj, dumps, named_class  # noqa: E402


class SpacesEnv(gym.Env):
    """An env with the given spaces whose observations are samples: enough for SB3 to build and save a model."""

    def __init__(self, observation_space, action_space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


BOX = spaces.Box(low=np.array([-1.0, -2.5, 0.0], dtype=np.float32), high=np.array([1.0, 2.5, np.inf], dtype=np.float32))
IMAGE = spaces.Box(0, 255, (3, 40, 40), np.uint8)
ACTIONS = spaces.Box(low=np.array([-2.0, 0.5], dtype=np.float32), high=np.array([2.0, 1.5], dtype=np.float32))
DICT = spaces.Dict({"position": spaces.Box(-1, 1, (2,), np.float32), "image": spaces.Box(0, 255, (1, 36, 36), np.uint8),
                    "mode": spaces.Discrete(3), "flags": spaces.MultiBinary(4)})
SMALL = dict(net_arch=[8])

#: name -> (algorithm class, policy, observation space, action space, policy_kwargs)
CASES = {
    "PPO Mlp Box/Discrete relu": (sb3.PPO, "MlpPolicy", BOX, spaces.Discrete(3),
                                  dict(activation_fn=nn.ReLU, net_arch=dict(pi=[8, 4], vf=[6]))),
    "PPO Mlp Discrete(start)/Box": (sb3.PPO, "MlpPolicy", spaces.Discrete(5, start=2), ACTIONS, SMALL),
    "A2C Mlp MultiDiscrete/MultiBinary": (sb3.A2C, "MlpPolicy", spaces.MultiDiscrete([3, 2, 4]), spaces.MultiBinary(3),
                                          dict(activation_fn=nn.ELU, net_arch=[8])),
    "A2C Mlp MultiBinary(shape)/MultiDiscrete": (sb3.A2C, "MlpPolicy", spaces.MultiBinary([2, 3]),
                                                 spaces.MultiDiscrete([2, 3]), SMALL),
    "PPO Cnn image/Discrete": (sb3.PPO, "CnnPolicy", IMAGE, spaces.Discrete(2), dict(features_extractor_kwargs=dict(
        features_dim=16))),
    "PPO MultiInput Dict/Box": (sb3.PPO, "MultiInputPolicy", DICT, ACTIONS, SMALL),
    "DQN Mlp Box/Discrete": (sb3.DQN, "MlpPolicy", BOX, spaces.Discrete(4), SMALL),
    "SAC Mlp Box/Box": (sb3.SAC, "MlpPolicy", BOX, ACTIONS, SMALL),
    "TD3 Mlp Box/Box": (sb3.TD3, "MlpPolicy", BOX, ACTIONS, dict(net_arch=[8], activation_fn=nn.Tanh)),
    "QRDQN Mlp Box/Discrete": (sb3_contrib.QRDQN, "MlpPolicy", BOX, spaces.Discrete(3),
                               dict(net_arch=[8], n_quantiles=5)),
    "TQC Mlp Box/Box": (sb3_contrib.TQC, "MlpPolicy", BOX, ACTIONS, dict(net_arch=[8], n_quantiles=5)),
    "ARS Linear Box/Discrete": (sb3_contrib.ARS, "LinearPolicy", BOX, spaces.Discrete(3), {}),
    "RecurrentPPO MlpLstm Box/Box": (sb3_contrib.RecurrentPPO, "MlpLstmPolicy", BOX, ACTIONS,
                                     dict(net_arch=[8], lstm_hidden_size=4)),
    "MaskablePPO Mlp Box/Discrete": (sb3_contrib.MaskablePPO, "MlpPolicy", BOX, spaces.Discrete(3), SMALL),
    "CrossQ Mlp Box/Box": (sb3_contrib.CrossQ, "MlpPolicy", BOX, ACTIONS, dict(net_arch=[8])),
}
OFF_POLICY = (sb3.DQN, sb3.SAC, sb3.TD3, sb3_contrib.QRDQN, sb3_contrib.TQC, sb3_contrib.CrossQ)


def save_model(case, directory):
    """SB3's own save of a freshly built model of `case` (weights randomised so that no bias is zero)."""
    algorithm, policy, observation_space, action_space, policy_kwargs = CASES[case]
    options = dict(buffer_size=16, learning_starts=0) if algorithm in OFF_POLICY else {}
    if algorithm in (sb3.PPO, sb3_contrib.RecurrentPPO, sb3_contrib.MaskablePPO):
        options = dict(n_steps=8, batch_size=8)
    model = algorithm(policy, SpacesEnv(observation_space, action_space), policy_kwargs=policy_kwargs, device="cpu",
                      seed=0, **options)
    with torch.no_grad():
        for parameter in model.policy.parameters():
            parameter.normal_()
    path = os.path.join(str(directory), case.split()[0].lower() + ".zip")
    model.save(path)
    return path


def class_ref(value):
    """What the reader gives for a value SB3 unpickles: classes as ClassRefs, tuples as lists, devices as None."""
    if isinstance(value, type):
        return ClassRef(value.__module__, value.__qualname__)
    if isinstance(value, torch.device):
        return None
    if isinstance(value, dict):
        return {key: class_ref(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [class_ref(item) for item in value]
    return value


def assert_space(record, space):
    """A SpaceRecord holds exactly what the gymnasium space SB3 unpickles holds."""
    if isinstance(space, spaces.Dict):
        assert record.kind == "dict" and list(record.spaces) == list(space.spaces)
        for key, inner in space.spaces.items():
            assert_space(record.spaces[key], inner)
        return
    assert record.shape == space.shape and record.dtype == space.dtype.name
    if isinstance(space, spaces.Box):
        assert record.kind == "box"
        for mine, theirs in ((record.low, space.low), (record.high, space.high)):
            assert mine.dtype == theirs.dtype and mine.shape == theirs.shape and mine.tobytes() == theirs.tobytes()
    elif isinstance(space, spaces.Discrete):
        assert (record.kind, record.n, record.start) == ("discrete", int(space.n), int(space.start))
    elif isinstance(space, spaces.MultiDiscrete):
        assert record.kind == "multi_discrete"
        np.testing.assert_array_equal(record.nvec, space.nvec)
        np.testing.assert_array_equal(record.start, space.start)
    else:
        assert record.kind == "multi_binary" and record.n == int(np.prod(space.shape))


def assert_arrays_identical(mine, theirs):
    assert list(mine) == list(theirs)
    for name, tensor in theirs.items():
        expected = tensor.detach().numpy()
        array = mine[name]
        assert array.dtype == expected.dtype and array.shape == expected.shape, name
        assert array.flags.c_contiguous and array.tobytes() == np.ascontiguousarray(expected).tobytes(), name


def torch_load(path, member):
    with zipfile.ZipFile(path) as archive:
        return torch.load(io.BytesIO(archive.read(member)), map_location="cpu", weights_only=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_save_reads_as_sb3_and_torch_load_it(case, tmp_path):
    path = save_model(case, tmp_path)
    save = read_sb3_save(path)
    data, _, _ = load_from_zip_file(path, device="cpu")
    assert is_sb3_save(path)
    assert save.sb3_version == sb3.__version__
    assert save.policy_class == class_ref(data["policy_class"])
    assert save.policy_kwargs == class_ref(data.get("policy_kwargs", {}))
    assert_space(save.observation_space, data["observation_space"])
    assert_space(save.action_space, data["action_space"])
    assert_arrays_identical(save.state_dict, torch_load(path, "policy.pth"))
    assert_arrays_identical(save.pytorch_variables, torch_load(path, "pytorch_variables.pth"))
    assert save.source == describe_source(path)
    assert save.data["policy_class"] == save.policy_class and save.data["action_space"] == save.action_space
    assert all(save.data[key] is getattr(save, key) for key in ("observation_space", "policy_kwargs")
               if key in save.data)
    with zipfile.ZipFile(path) as archive:
        readable = json.loads(archive.read("data"))
    for key in ("learning_rate", "lr_schedule", "n_envs"):  # entries other than the four stay SB3's JSON
        assert save.data[key] == readable[key]


def test_policy_kwargs_classes_become_class_refs(tmp_path):
    save = read_sb3_save(save_model("PPO Mlp Box/Discrete relu", tmp_path))
    assert save.policy_kwargs == {"activation_fn": ClassRef("torch.nn.modules.activation", "ReLU"),
                                  "net_arch": {"pi": [8, 4], "vf": [6]}}
    assert save.policy_class == ClassRef("stable_baselines3.common.policies", "ActorCriticPolicy")
    cnn = read_sb3_save(save_model("PPO Cnn image/Discrete", tmp_path))
    assert cnn.policy_class == ClassRef("stable_baselines3.common.policies", "ActorCriticCnnPolicy")
    assert cnn.policy_kwargs == {"features_extractor_kwargs": {"features_dim": 16}}


def test_a_class_defined_in_the_training_script_is_a_by_value_class_ref(tmp_path):
    class ScriptActivation(nn.Module):
        def forward(self, x):
            return x

    model = sb3.PPO("MlpPolicy", SpacesEnv(BOX, spaces.Discrete(2)), n_steps=8, batch_size=8, device="cpu",
                    policy_kwargs=dict(activation_fn=ScriptActivation, net_arch=[4]))
    path = str(tmp_path / "script.zip")
    model.save(path)
    assert read_sb3_save(path).policy_kwargs["activation_fn"] == ClassRef(BY_VALUE, "ScriptActivation")


def rewrite_member(path, member, content, target):
    """A copy of the archive at `path` with `member` replaced by `content`."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as copy:
        for info in source.infolist():
            copy.writestr(info.filename, content if info.filename == member else source.read(info.filename))
    return target


def test_legacy_torch_serialization(tmp_path):
    """policy.pth in torch's pre-1.6 format (a row of pickles, then the raw storages) reads as torch loads it."""
    path = save_model("SAC Mlp Box/Box", tmp_path)
    state_dict = torch_load(path, "policy.pth")
    buffer = io.BytesIO()
    torch.save(state_dict, buffer, _use_new_zipfile_serialization=False)
    assert buffer.getvalue()[:2] == b"\x80\x02"
    legacy = rewrite_member(path, "policy.pth", buffer.getvalue(), str(tmp_path / "legacy.zip"))
    assert_arrays_identical(read_sb3_save(legacy).state_dict, state_dict)


TENSORS = {
    "float32": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7,
    "float64": torch.tensor([1e-300, -2.5], dtype=torch.float64),
    "float16": torch.tensor([0.1, 65504.0], dtype=torch.float16),
    "int64": torch.tensor([-(2 ** 62), 7]), "int32": torch.tensor([1, -2], dtype=torch.int32),
    "int16": torch.tensor([300], dtype=torch.int16), "int8": torch.tensor([-3], dtype=torch.int8),
    "uint8": torch.tensor([250], dtype=torch.uint8), "bool": torch.tensor([True, False]),
    "scalar": torch.tensor(3.5), "empty": torch.zeros(0, 3),
}


@pytest.mark.parametrize("zip_format", [True, False])
def test_every_dtype_and_views_of_shared_storages(zip_format):
    state = dict(TENSORS)
    state["column"] = TENSORS["float32"][:, 1]  # a strided view of the float32 storage, saved with it
    state["transposed"] = TENSORS["float32"].t()
    buffer = io.BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=zip_format)
    blob = buffer.getvalue()
    assert_arrays_identical(read_pth(blob, "state", len(blob), TensorBudget(len(blob))),
                            torch.load(io.BytesIO(blob), weights_only=True))


def test_a_big_endian_archive_reads_as_torch_reads_it():
    """torch's zip format says its byte order in `byteorder`; a big-endian writer's storages are swapped here."""
    state = {"weight": TENSORS["float32"], "steps": TENSORS["int64"], "half": TENSORS["float16"]}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    swapped = io.BytesIO()
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(swapped, "w") as copy:
        items = {name.split("/data/")[-1]: tensor for name, tensor in zip(
            sorted(n for n in source.namelist() if "/data/" in n), state.values())}
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename.endswith("/byteorder"):
                content = b"big"
            elif "/data/" in info.filename and not info.filename.endswith("serialization_id"):
                tensor = items[info.filename.split("/data/")[-1]]
                content = tensor.numpy().astype(tensor.numpy().dtype.newbyteorder(">")).tobytes()
            copy.writestr(info, content)
    blob = swapped.getvalue()
    assert_arrays_identical(read_pth(blob, "big", len(blob), TensorBudget(len(blob))),
                            torch.load(io.BytesIO(blob), weights_only=True))
    assert_arrays_identical(read_pth(blob, "big", len(blob), TensorBudget(len(blob))), state)


def test_tensors_pth_of_old_saves(tmp_path):
    path = save_model("SAC Mlp Box/Box", tmp_path)
    old = str(tmp_path / "old.zip")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(old, "w") as copy:
        for info in source.infolist():
            if info.filename != "_stable_baselines3_version":
                name = "tensors.pth" if info.filename == "pytorch_variables.pth" else info.filename
                copy.writestr(name, source.read(info.filename))
    save = read_sb3_save(old)
    assert save.sb3_version is None and list(save.pytorch_variables) == ["log_ent_coef"]


def test_is_sb3_save_never_raises(tmp_path):
    for name, content in (("empty", b""), ("text", b"hello"), ("zip head", b"PK\x03\x04" + b"\x00" * 40),
                          ("pickle", pickle.dumps({"a": 1}))):
        path = tmp_path / name
        path.write_bytes(content)
        assert not is_sb3_save(str(path))
    assert not is_sb3_save(str(tmp_path / "missing")) and not is_sb3_save(str(tmp_path))
    sb2 = tmp_path / "sb2.zip"
    with zipfile.ZipFile(str(sb2), "w") as archive:
        for member in ("data", "parameters", "parameter_list"):
            archive.writestr(member, b"{}")
    assert not is_sb3_save(str(sb2))
    with pytest.raises(ExportError, match="no policy.pth member"):
        read_sb3_save(rewrite_member(str(sb2), "data", b"{}", str(tmp_path / "sb2copy.zip")))


def make_vecnormalize(directory, observation_space, **options):
    env = sb3.common.vec_env.VecNormalize(sb3.common.vec_env.DummyVecEnv(
        [lambda: SpacesEnv(observation_space, spaces.Discrete(2))]), **options)
    env.reset()
    for _ in range(3):
        env.step(np.array([0]))
    path = os.path.join(str(directory), "vecnormalize.pkl")
    env.save(path)
    return env, path


def assert_statistics(record, running_mean_std):
    assert isinstance(record, RunningStats)
    assert record.mean.dtype == np.float64 and record.mean.tobytes() == running_mean_std.mean.tobytes()
    assert record.var.tobytes() == running_mean_std.var.tobytes() and record.count == running_mean_std.count


def test_vecnormalize_of_a_box_observation(tmp_path):
    env, path = make_vecnormalize(tmp_path, BOX, clip_obs=5.0, epsilon=1e-6)
    normalization = read_sb3_vecnormalize(path)
    assert normalization.norm_obs and normalization.norm_obs_keys is None
    assert (normalization.clip_obs, normalization.epsilon) == (5.0, 1e-6)
    assert_statistics(normalization.obs_rms, env.obs_rms)


def test_vecnormalize_of_a_dict_observation_with_norm_obs_keys(tmp_path):
    observation_space = spaces.Dict({"b": spaces.Box(-1, 1, (2,)), "a": spaces.Box(-3, 3, (3,))})
    env, path = make_vecnormalize(tmp_path, observation_space, norm_obs_keys=["a"])
    normalization = read_sb3_vecnormalize(path)
    assert normalization.norm_obs_keys == ["a"] and list(normalization.obs_rms) == ["a"]
    assert_statistics(normalization.obs_rms["a"], env.obs_rms["a"])


def test_vecnormalize_of_an_old_pickle_with_obs_keys(tmp_path):
    """Before norm_obs_keys, VecNormalize kept `obs_keys` (a set); every key of obs_rms is normalized."""
    env, _ = make_vecnormalize(tmp_path, spaces.Dict({"b": spaces.Box(-1, 1, (2,)), "a": spaces.Box(-3, 3, (3,))}))
    env.obs_keys = set(env.norm_obs_keys)
    del env.norm_obs_keys
    path = str(tmp_path / "old.pkl")
    env.save(path)
    normalization = read_sb3_vecnormalize(path)
    assert normalization.norm_obs_keys == list(env.obs_rms) == list(normalization.obs_rms)


def test_vecnormalize_statistics_are_validated(tmp_path):
    env, _ = make_vecnormalize(tmp_path, BOX)
    path = str(tmp_path / "bad.pkl")
    for attribute, value, fragment in (("var", -np.ones(3), "negative"), ("mean", np.full(3, np.nan), "non-finite"),
                                       ("mean", np.zeros(2), "differ in shape")):
        original = getattr(env.obs_rms, attribute)
        setattr(env.obs_rms, attribute, value)
        env.save(path)
        setattr(env.obs_rms, attribute, original)
        with pytest.raises(ExportError, match=fragment):
            read_sb3_vecnormalize(path)
    env.clip_obs = float("nan")
    env.save(path)
    with pytest.raises(ExportError, match="clip_obs"):
        read_sb3_vecnormalize(path)


# -- saves of SB3 1.x: gym spaces --------------------------------------------------------------------------------
def old_gym_save(directory, observation_space, action_space):
    """A save whose spaces are old gym's (module gym.spaces, `shape` and `np_random` attributes, an OrderedDict of
    Dict spaces), as SB3 1.x wrote them, and whose policy.pth is a real (empty) torch file."""
    def serialized(value):
        return {":type:": "<class 'object'>", ":serialized:": base64.b64encode(dumps(value, 4)).decode()}

    buffer = io.BytesIO()
    torch.save({}, buffer)
    data = {"policy_class": serialized(Global("stable_baselines3.common.policies", "ActorCriticPolicy")),
            "observation_space": serialized(observation_space), "action_space": serialized(action_space)}
    path = os.path.join(str(directory), "old_gym.zip")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps(data))
        archive.writestr("policy.pth", buffer.getvalue())
    return path


def old_gym_space(name, **attributes):
    attributes["np_random"] = np.random.RandomState(0)  # pickled through numpy.random._pickle's constructors
    return NewObj(named_class("gym.spaces." + name.lower(), name), attributes)


def test_old_gym_spaces(tmp_path):
    box = old_gym_space("Box", dtype=np.dtype(np.float32), shape=(2,), low=np.float32([-1, -2]),
                        high=np.float32([1, 2]))
    observation = old_gym_space("Dict", spaces=OrderedDict([
        ("z", box), ("a", old_gym_space("Discrete", n=3, shape=(), dtype=np.dtype(np.int64))),
        ("bits", old_gym_space("MultiBinary", n=4, shape=(4,), dtype=np.dtype(np.int8)))]))
    action = old_gym_space("MultiDiscrete", nvec=np.array([2, 5]), shape=(2,), dtype=np.dtype(np.int64))
    save = read_sb3_save(old_gym_save(tmp_path, observation, action))
    assert save.sb3_version is None and save.state_dict == {} and save.pytorch_variables == {}
    assert list(save.observation_space.spaces) == ["z", "a", "bits"]
    inner = save.observation_space.spaces
    assert inner["z"].low.tolist() == [-1, -2] and inner["z"].high.dtype == np.float32 and inner["z"].shape == (2,)
    assert (inner["a"].n, inner["a"].start, inner["bits"].n, inner["bits"].shape) == (3, 0, 4, (4,))
    assert save.action_space.nvec.tolist() == [2, 5] and save.action_space.start.tolist() == [0, 0]


def test_a_gymnasium_generator_in_a_space(tmp_path):
    """gymnasium spaces pickle their np_random Generator (PCG64, SeedSequence): read as inert stand-ins."""
    space = spaces.Box(-1, 1, (2,), np.float32)
    space.seed(3)
    space.sample()
    path = old_gym_save(tmp_path, space, spaces.Discrete(2))
    with zipfile.ZipFile(path) as archive:
        assert b"PCG64" in base64.b64decode(json.loads(archive.read("data"))["observation_space"][":serialized:"])
    assert read_sb3_save(path).observation_space.high.tolist() == [1, 1]
