"""SB3 and sb3-contrib models exported by both loaders, against SB3 itself (issue #21).

Every combination of `tests/sb3_models.py` (algorithm x policy x spaces x options, random weights that exercise
every layer) is saved by SB3 and exported twice: the live loader verifies the file against SB3's own `predict`,
`predict_values` and Q-values within SPEC section 6 (zero discrete mismatches), and the safe loader, reading the
file as data, must write the same document (but for `provenance.exporter`) and bit-identical tensors. What this SBIF
version does not export yet is refused with an UnsupportedError naming it, and `not_yet` says exactly which
combinations those are, so a regression (a case that stops exporting) or a silent change (one that starts) fails.

`python -m tests.test_sb3_export` prints the coverage table per family (covered / buildable, worst error).
"""
from __future__ import annotations

import collections
import sys
import warnings
from typing import Dict, Optional, Tuple

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from sbif.errors import UnsupportedError  # noqa: E402
from sbif.export import export  # noqa: E402
from sbif.runtime import Policy  # noqa: E402
from tests.sb3_models import SB3_CASES, Sb3Case, build_model, random_observations, save_model  # noqa: E402

#: Activations with no SBIF op: the one thing of the enumeration this SBIF version refuses.
NOT_YET_ACTIVATIONS = ("Hardsigmoid", "LogSigmoid", "PReLU", "Tanhshrink", "Softshrink", "Hardshrink", "RReLU", "GLU",
                       "Threshold")


def not_yet(case: Sb3Case) -> Optional[str]:
    """Why `case` is refused by this SBIF version (a phrase of the UnsupportedError), or None: it must export."""
    activation = case.policy_kwargs.get("activation_fn")
    if activation is not None and activation.__name__ in NOT_YET_ACTIVATIONS:
        return "has no SBIF op"
    return None


def export_both(case: Sb3Case, directory: str) -> Tuple[object, object, object]:
    """(model, live export, safe export) of the case saved under `directory`."""
    model = build_model(case, seed=7)
    path = save_model(case, directory, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        live = export(path, loader="live")
    safe = export(path, loader="safe")
    return model, live, safe


@pytest.mark.parametrize("case", SB3_CASES, ids=[case.id for case in SB3_CASES])
def test_both_loaders_reproduce_sb3(case: Sb3Case, tmp_path) -> None:
    reason = not_yet(case)
    if reason is not None:
        with pytest.raises(UnsupportedError, match=reason):
            export_both(case, str(tmp_path))
        return
    _, live, safe = export_both(case, str(tmp_path))
    assert live.verified, live.verification
    assert all(value <= 1.0 for key, value in live.report.items() if key != "action_mismatches"), live.report
    assert live.report.get("action_mismatches", 0) == 0, live.report
    live_document, safe_document = dict(live.file.document), dict(safe.file.document)
    live_provenance, safe_provenance = live_document.pop("provenance"), safe_document.pop("provenance")
    assert live_document == safe_document
    assert dict(live_provenance, exporter="safe") == safe_provenance
    assert list(live.file.tensors) == list(safe.file.tensors)
    for name, array in live.file.tensors.items():
        other = safe.file.tensors[name]
        assert array.dtype == other.dtype and array.shape == other.shape and array.tobytes() == other.tobytes(), name
    assert live.file.document["format_version"] == 2 and live.file.document["predict"]["contract"] == "sb3"


def coverage() -> Dict[str, Dict[str, float]]:
    """Per algorithm: buildable cases, covered ones and the worst error (fraction of the SPEC section 6 bound)."""
    import tempfile

    table: Dict[str, Dict[str, float]] = collections.defaultdict(lambda: {"buildable": 0, "covered": 0, "worst": 0.0,
                                                                          "mismatches": 0})
    for case in SB3_CASES:
        row = table["{} {}".format(case.algorithm, case.policy)]
        row["buildable"] += 1
        if not_yet(case) is not None:
            continue
        with tempfile.TemporaryDirectory() as directory:
            _, live, _ = export_both(case, directory)
        row["covered"] += 1
        row["mismatches"] += live.report.get("action_mismatches", 0)
        row["worst"] = max([row["worst"]] + [v for k, v in live.report.items() if k != "action_mismatches"])
    return table


def test_predict_follows_the_sb3_contract(tmp_path) -> None:
    """Single observations return arrays shaped as SB3's squeeze(axis=0) (0-d for Discrete), channel-last images
    are transposed as maybe_transpose does, and out-of-range Discrete observations are refused as torch does."""
    image = next(case for case in SB3_CASES if case.policy == "CnnPolicy" and "hwc" in case.id)
    model = build_model(image, seed=3)
    policy = Policy(export(save_model(image, str(tmp_path), seed=3), loader="safe").file, backend="numpy")
    assert policy.document["predict"]["channels_last"] is True
    observations = random_observations(image.observation_space, 4, np.random.RandomState(0))
    assert observations.shape[1:] == image.observation_space.shape  # channel-last, as the environment gives them
    expected, _ = model.predict(observations, deterministic=True)
    actual, state = policy.predict(observations, deterministic=True)
    assert state is None and np.allclose(expected, actual, rtol=0, atol=1e-5)
    single, _ = policy.predict(observations[0], deterministic=True)
    assert isinstance(single, np.ndarray) and single.shape == image.action_space.shape
    stochastic, _ = policy.predict(observations[0], rng=0)
    assert isinstance(stochastic, np.ndarray) and stochastic.shape == image.action_space.shape

    discrete = next(case for case in SB3_CASES if case.algorithm == "DQN"
                    and type(case.observation_space).__name__ == "Discrete" and not_yet(case) is None)
    (tmp_path / "dqn").mkdir()
    policy = Policy(export(save_model(discrete, str(tmp_path / "dqn"), seed=3), loader="safe").file, backend="numpy")
    from sbif.errors import InputError

    with pytest.raises(InputError, match="outside its space"):
        policy.predict(np.array([discrete.observation_space.n]), deterministic=True)
    single, _ = policy.predict(np.array(0), deterministic=True)
    assert isinstance(single, np.ndarray) and single.shape == () and single.dtype == np.int64


if __name__ == "__main__":
    rows = coverage()
    print("| algorithm, policy | covered / buildable | worst error (fraction of bound) | discrete mismatches |")
    print("|---|---|---|---|")
    for key in sorted(rows):
        row = rows[key]
        print("| {} | {} / {} | {:.3f} | {} |".format(key, int(row["covered"]), int(row["buildable"]), row["worst"],
                                                    int(row["mismatches"])))
    sys.exit(0)


def test_rl_zoo3_vecnormalize_is_folded_in(tmp_path) -> None:
    """rl-zoo3's layout (ENV.zip beside ENV/vecnormalize.pkl): both loaders fold SB3's VecNormalize statistics in,
    and the live loader's verification feeds SB3 the normalized observations and SBIF the raw ones."""
    import gymnasium
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    env = VecNormalize(DummyVecEnv([lambda: gymnasium.make("Pendulum-v1")]))
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, seed=0)
    model.learn(128)
    env.obs_rms.mean[:] = [0.5, -0.25, 2.0]  # statistics far from the identity, so leaving them out fails
    env.obs_rms.var[:] = [0.1, 4.0, 9.0]
    model.save(str(tmp_path / "Pendulum-v1.zip"))
    (tmp_path / "Pendulum-v1").mkdir()
    env.save(str(tmp_path / "Pendulum-v1" / "vecnormalize.pkl"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        live = export(str(tmp_path / "Pendulum-v1.zip"), loader="live")
    safe = export(str(tmp_path / "Pendulum-v1.zip"), loader="safe")
    assert live.verified and live.report["action"] <= 1.0
    for result in (live, safe):
        assert result.file.document["provenance"]["vecnormalize"] == {"clip_obs": 10.0, "epsilon": 1e-08}
        assert any("folded observation normalization" in note for note in result.notes)
    raw = np.array([[0.3, -0.8, 5.0]], np.float32)
    expected, _ = model.predict(env.normalize_obs(raw), deterministic=True)
    actual, _ = Policy(safe.file, backend="numpy").predict(raw, deterministic=True)
    assert np.allclose(expected, actual, rtol=0, atol=1e-5)


@pytest.mark.parametrize("lstm", [{}, {"shared_lstm": True, "enable_critic_lstm": False},
                                  {"enable_critic_lstm": False, "n_lstm_layers": 2}],
                         ids=["critic-lstm", "shared-lstm", "two-layers-linear-critic"])
def test_recurrent_state_is_sb3s_pair(lstm, tmp_path) -> None:
    """RecurrentPPO over a sequence with random episode starts: the runtime takes and returns SB3's (h, c) pair
    ([layers, n_envs, hidden] each) and agrees with SB3 at every step, fed back its own state."""
    import torch
    from gymnasium import spaces
    from sb3_contrib import RecurrentPPO

    from tests.sb3_models import SpacesEnv

    model = RecurrentPPO("MlpLstmPolicy", SpacesEnv(spaces.Box(-1, 1, (4,)), spaces.Discrete(3)), seed=0,
                         policy_kwargs=dict({"lstm_hidden_size": 6}, **lstm))
    with torch.no_grad():
        for parameter in model.policy.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.5)
    model.save(str(tmp_path / "recurrent.zip"))
    policy = Policy(export(str(tmp_path / "recurrent.zip"), loader="safe").file, backend="numpy")
    rng = np.random.default_rng(0)
    expected_state = actual_state = None
    for _ in range(6):
        observations = rng.uniform(-1, 1, (5, 4)).astype(np.float32)
        starts = rng.random(5) < 0.3
        expected, expected_state = model.predict(observations, expected_state, starts, deterministic=True)
        actual, actual_state = policy.predict(observations, actual_state, starts, deterministic=True)
        assert np.array_equal(expected, actual)
        assert isinstance(actual_state, tuple) and len(actual_state) == 2
        for ours, theirs in zip(actual_state, expected_state):
            assert ours.shape == theirs.shape and np.allclose(ours, theirs, rtol=0, atol=1e-5)


class _Payload:
    """Unpickled with a real unpickler, this creates the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return os.system, ("touch {}".format(self.marker),)


def _with_data_entry(path: str, key: str, value: object, target: str) -> str:
    """A copy of the SB3 save `path` whose `data` entry `key` is `value` pickled as SB3 pickles entries."""
    import base64
    import json
    import pickle
    import zipfile

    with zipfile.ZipFile(path) as source:
        members = {name: source.read(name) for name in source.namelist()}
    data = json.loads(members["data"])
    data[key] = {":type:": "<class 'object'>", ":serialized:": base64.b64encode(pickle.dumps(value)).decode()}
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return target


def test_the_live_loader_never_unpickles_what_the_safe_reader_refuses(tmp_path) -> None:
    """The live loader reads the file as data first: a payload in an entry the safe reader decodes is refused before
    SB3 unpickles anything; one in an entry predict never reads is never unpickled (SB3 gets a placeholder)."""
    from sbif.errors import ExportError

    case = next(case for case in SB3_CASES if case.algorithm == "PPO" and case.policy == "MlpPolicy")
    path = save_model(case, str(tmp_path), seed=0)
    marker = tmp_path / "ran"
    hostile = _with_data_entry(path, "policy_kwargs", _Payload(str(marker)), str(tmp_path / "kwargs.zip"))
    for loader in ("safe", "live"):
        with pytest.raises(ExportError, match="refusing to load the global"):
            export(hostile, loader=loader)
    assert not marker.exists()
    unread = _with_data_entry(path, "lr_schedule", _Payload(str(marker)), str(tmp_path / "schedule.zip"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert export(unread, loader="live").verified
    assert not marker.exists()


def test_dqn_stochastic_predict_is_sb3s_epsilon_greedy(tmp_path) -> None:
    """One exploration draw per request (shared by the rows): below the saved rate every row takes ⌊u·n⌋ for its
    own u, else the greedy action; a seeded request explores about as often as the rate says."""
    case = next(case for case in SB3_CASES if case.algorithm == "DQN" and case.policy == "MlpPolicy"
                and type(case.action_space).__name__ == "Discrete")
    model = build_model(case, seed=2)
    policy = Policy(export(save_model(case, str(tmp_path), seed=2), loader="safe").file, backend="numpy")
    assert policy.document["predict"]["shared_noise"] == ["noise_exploration"]
    n = case.action_space.n
    observations = random_observations(case.observation_space, 6, np.random.RandomState(0))
    greedy, _ = model.predict(observations, deterministic=True)
    uniform = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 0.99999994], np.float32)
    explored, _ = policy.predict(observations, deterministic=False, noise={
        "noise_exploration": np.zeros(6, np.float32), "noise_random_action": uniform})
    assert np.array_equal(explored, np.floor(uniform.astype(np.float64) * n).astype(np.int64))
    kept, _ = policy.predict(observations, deterministic=False, noise={
        "noise_exploration": np.ones(6, np.float32), "noise_random_action": uniform})
    assert np.array_equal(kept, greedy)
    rate = policy.document["graph"][[node["outputs"][0] for node in policy.document["graph"]].index(
        "exploration_rate")]["attrs"]["value"]
    assert abs(rate - model.exploration_rate) < 1e-6


def test_vecnormalize_of_dict_observations_normalizes_its_keys(tmp_path) -> None:
    """SB3's VecNormalize over a dict space with norm_obs_keys: those keys' inputs take raw float64 observations,
    normalized in the graph; the others pass as they are (SPEC section 5.7)."""
    import gymnasium
    from gymnasium import spaces
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from tests.sb3_models import SpacesEnv

    observation_space = spaces.Dict({"a": spaces.Box(-5, 5, (3,)), "b": spaces.Discrete(4),
                                     "c": spaces.Box(-1, 1, (2,))})
    env = VecNormalize(DummyVecEnv([lambda: SpacesEnv(observation_space, spaces.Box(-1, 1, (2,)))]),
                       norm_obs_keys=["a", "c"])
    model = PPO("MultiInputPolicy", env, n_steps=64, batch_size=64, seed=0)
    model.learn(64)
    env.obs_rms["a"].mean[:] = [1.0, -2.0, 0.5]
    env.obs_rms["a"].var[:] = [4.0, 0.25, 9.0]
    model.save(str(tmp_path / "Dict-v0.zip"))
    (tmp_path / "Dict-v0").mkdir()
    env.save(str(tmp_path / "Dict-v0" / "vecnormalize.pkl"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        live = export(str(tmp_path / "Dict-v0.zip"), loader="live")
    safe = export(str(tmp_path / "Dict-v0.zip"), loader="safe")
    assert live.verified and live.report["action"] <= 1.0
    document = safe.file.document
    assert document["provenance"]["vecnormalize"]["keys"] == ["a", "c"]
    assert {entry["name"]: entry["dtype"] for entry in document["inputs"] if entry["kind"] == "observation"} == {
        "obs/a": "float64", "obs/b": "int32", "obs/c": "float64"}
    raw = {"a": np.array([[3.0, -1.0, 7.0]], np.float32), "b": np.array([2]), "c": np.array([[0.5, -0.5]], np.float32)}
    expected, _ = model.predict(env.normalize_obs(raw), deterministic=True)
    actual, _ = Policy(safe.file, backend="numpy").predict(raw, deterministic=True)
    assert np.allclose(expected, actual, rtol=0, atol=1e-5)


def test_greedy_actions_rank_nan_as_torch_does() -> None:
    """DQN's, QR-DQN's and ARS's argmax is torch's: the first NaN of a row when there is one (SBIF's argmax op never
    picks NaN), else the first largest; the graph reproduces it in every backend without a fallback."""
    import torch

    from sbif.export.graph_builder import GraphBuilder
    from sbif.export.sb3.heads import torch_argmax
    from sbif.format import SbifFile

    builder = GraphBuilder()
    torch_argmax(builder, builder.add_input("obs", "float32", [None, 3], "observation"), "action")
    builder.declare_output("action", "torch's argmax")
    document = builder.document(2, {"producer": "test", "exporter": "safe", "framework": "sb3", "algorithm": "DQN",
                                    "policy_class": "test", "source": {"file_name": "test", "sha256": "0" * 64,
                                                                       "format": "zip"}},
                                {"kind": "box", "shape": [3], "dtype": "float32", "low": "-inf", "high": "inf"},
                                {"kind": "discrete", "n": 3},
                                {"contract": "sb3", "deterministic_default": False, "deterministic_action": "action",
                                 "stochastic_action": "action"})
    rows = np.array([[1, np.nan, 3], [np.inf, 2, np.nan], [np.nan, np.nan, 1], [-np.inf] * 3, [1, 5, 5],
                     [3.4e38, np.inf, 1], [np.nan] * 3, [-3.4e38, -np.inf, -3.4e38]], np.float32)
    expected = torch.tensor(rows).argmax(dim=1).numpy()
    for backend in ("numpy", "numba"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a NumPy fallback of the numba backend would warn
            actual = Policy(SbifFile(document, builder.tensors), backend=backend).run({"obs": rows}, ["action"])
        assert np.array_equal(actual["action"], expected), backend
