"""`sbif predict`: readable output and --json, a recurrent policy's state, masks and sequences of steps, and a
goal-conditioned (HER) file's dict observation (issue #19, item 6)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import sbif
from conformance.models import EXAMPLES, write_model
from sbif.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("predict-cli"))
    return {family: write_model(EXAMPLES[family], directory) for family in ("mlp", "lstm", "her", "sac")}


def run(capsys, *argv):
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def refused(capsys, *argv) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == "" and err.count("\n") == 1, (code, out, err)
    return err


# -- output ----------------------------------------------------------------------------------------------------
def test_json_is_accepted_and_carries_actions_and_state(capsys, files):
    """`sbif predict --json` was "unrecognized arguments"."""
    obs = [[0.1, 0.2, 0.3, 0.4], [1, 1, 1, 1]]
    result = run_json(capsys, "predict", files["mlp"], "--obs", json.dumps(obs), "--deterministic")
    expected, _ = sbif.load(files["mlp"]).predict(np.array(obs), deterministic=True)
    assert result == {"actions": expected.tolist(), "state": None}


def test_default_output_is_for_reading(capsys, files):
    code, out, _ = run(capsys, "predict", files["mlp"], "--obs", "[0.1, 0.2, 0.3, 0.4]", "--deterministic")
    action, _ = sbif.load(files["mlp"]).predict(np.array([0.1, 0.2, 0.3, 0.4]), deterministic=True)
    assert code == 0 and out == "action: {}\n".format(action)
    code, out, _ = run(capsys, "predict", files["mlp"], "--obs", "[[0.1, 0.2, 0.3, 0.4], [1, 1, 1, 1]]",
                       "--deterministic")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["obs", "action"] and [line.split()[0] for line in lines[1:]] == \
        ["0", "1"]
    code, out, _ = run(capsys, "predict", files["mlp"], "--obs", "[0.1, 0.2, 0.3, 0.4]")
    assert code == 0 and out.splitlines()[-1].startswith("sampled, as SB2's predict does for PPO2 by default"), out


def test_continuous_actions_print_as_float32_digits(capsys, files):
    """float32 values print as their shortest float32 digits (0.1), not float64's (0.10000000149011612)."""
    obs = [[0.1, -0.2, 0.3], [0.9, 0.5, -0.7]]
    code, out, _ = run(capsys, "predict", files["sac"], "--obs", json.dumps(obs), "--deterministic")
    actions, _ = sbif.load(files["sac"]).predict(np.array(obs, np.float32), deterministic=True)
    assert code == 0
    for line, row in zip(out.splitlines()[1:], actions):
        printed = line.split(None, 1)[1]
        assert printed == "[{}]".format(", ".join(str(value) for value in row)), printed
        assert np.array_equal(np.array(json.loads(printed), np.float32), row)


def test_output_file_with_json(capsys, files, tmp_path):
    target = str(tmp_path / "actions.npy")
    result = run_json(capsys, "predict", files["mlp"], "--obs", "[[0, 0, 0, 0]]", "-o", target, "--deterministic")
    saved = np.load(target)
    assert result == {"actions_file": target, "dtype": saved.dtype.name, "shape": [1], "state": None}
    code, out, _ = run(capsys, "predict", files["mlp"], "--obs", "[[0, 0, 0, 0]]", "-o", target)
    assert code == 0 and out.startswith("wrote ") and target in out


# -- recurrent policies ----------------------------------------------------------------------------------------
def test_state_and_mask_go_in_and_the_next_state_comes_out(capsys, files, tmp_path):
    """--state and --mask were missing: a recurrent policy could only ever start from zeros."""
    policy = sbif.load(files["lstm"])
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
    state = rng.standard_normal((2, policy.state_size)).astype(np.float32)
    mask = [True, False]
    state_file = str(tmp_path / "state.npy")
    np.save(state_file, state)
    expected_actions, expected_state = policy.predict(obs, state, mask, deterministic=True)
    for state_spec in (state_file, json.dumps(state.tolist())):
        result = run_json(capsys, "predict", files["lstm"], "--obs", json.dumps(obs.tolist()), "--state", state_spec,
                          "--mask", "[true, false]", "--deterministic")
        assert result["actions"] == expected_actions.tolist()
        np.testing.assert_array_equal(np.array(result["state"], np.float32), expected_state)
    code, out, _ = run(capsys, "predict", files["lstm"], "--obs", json.dumps(obs.tolist()), "--deterministic")
    assert code == 0 and "state after the last step: shape (2, {})".format(policy.state_size) in out


def test_steps_carry_the_state_through_a_sequence(capsys, files):
    """--steps: the first axis is time, each step starts from the state the step before left, masks per step;
    the same as calling predict step by step, and as continuing a shorter run from its printed state."""
    policy = sbif.load(files["lstm"])
    rng = np.random.default_rng(1)
    episode = rng.uniform(-1, 1, (4, 2, 3)).astype(np.float32)  # 4 steps of 2 envs
    masks = [[False, False], [False, True], [False, False], [True, False]]
    state, expected = None, []
    for step in range(4):
        actions, state = policy.predict(episode[step], state, masks[step], deterministic=True)
        expected.append(actions.tolist())
    result = run_json(capsys, "predict", files["lstm"], "--obs", json.dumps(episode.tolist()), "--steps",
                      "--mask", json.dumps(masks), "--deterministic")
    assert result["actions"] == expected
    np.testing.assert_array_equal(np.array(result["state"], np.float32), state)
    first = run_json(capsys, "predict", files["lstm"], "--obs", json.dumps(episode[:2].tolist()), "--steps",
                     "--mask", json.dumps(masks[:2]), "--deterministic")
    rest = run_json(capsys, "predict", files["lstm"], "--obs", json.dumps(episode[2:].tolist()), "--steps",
                    "--mask", json.dumps(masks[2:]), "--state", json.dumps(first["state"]), "--deterministic")
    assert first["actions"] + rest["actions"] == expected and rest["state"] == result["state"]
    code, out, _ = run(capsys, "predict", files["lstm"], "--obs", json.dumps(episode.tolist()), "--steps",
                       "--deterministic")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["step", "env", "action"] and len(lines) == 1 + 8 + 1


def test_steps_of_single_observations_and_sampling_with_a_seed(capsys, files):
    """One observation per step (no env axis), sampled: one generator, seeded once, across the steps."""
    policy = sbif.load(files["lstm"])
    episode = np.random.default_rng(2).uniform(-1, 1, (3, 3)).astype(np.float32)
    rng, state, expected = np.random.default_rng(5), None, []
    for step in range(3):
        action, state = policy.predict(episode[step], state, deterministic=False, rng=rng)
        expected.append(action.tolist())
    result = run_json(capsys, "predict", files["lstm"], "--obs", json.dumps(episode.tolist()), "--steps",
                      "--stochastic", "--seed", 5)
    assert result["actions"] == expected and np.shape(result["state"]) == (policy.state_size,)


@pytest.mark.parametrize("extra, words", [
    (["--steps", "--mask", "[false, true]"], ["--mask has one row per step (3)"]),
    (["--mask", "[false, true]"], ["mask must have one entry per observation (3), got 2"]),
    (["--state", "[[0, 0]]"], ["state must have shape (3, 8)"]),
    (["--state", '{"h": 1}'], ["cannot read --state", "JSON object"]),
])
def test_bad_recurrent_inputs_are_one_line_errors(capsys, files, extra, words):
    err = refused(capsys, "predict", files["lstm"], "--obs", json.dumps(np.zeros((3, 3)).tolist()), *extra)
    for word in words:
        assert word in err, err


@pytest.mark.parametrize("obs", ["[]", "0.5", '{"observation": [[1, 2, 3], [1, 2, 3]], "achieved_goal": [[1, 2]], '
                                               '"desired_goal": [[1, 2]]}'])
def test_steps_need_a_time_axis(capsys, files, obs):
    model = files["her"] if obs.startswith("{") else files["lstm"]
    err = refused(capsys, "predict", model, "--obs", obs, "--steps")
    assert "with --steps the observations' first axis is time" in err, err


def test_state_and_mask_on_a_feed_forward_policy_are_refused(capsys, files):
    """SB2 ignores them silently; on the command line that hides a mistake."""
    for option in ("--state", "--mask"):
        err = refused(capsys, "predict", files["mlp"], "--obs", "[[0, 0, 0, 0]]", option, "[0]")
        assert "--state and --mask are for recurrent policies; this PPO2" in err and "feed-forward" in err, err


# -- dict observations (HER) -----------------------------------------------------------------------------------
def test_a_her_dict_observation_as_a_json_object(capsys, files):
    """The file flattens the dict (Policy.observation_batch); the command line could not pass one."""
    policy = sbif.load(files["her"])
    rng = np.random.default_rng(3)
    observation = {"observation": rng.standard_normal((2, 3)), "achieved_goal": rng.standard_normal((2, 2)),
                   "desired_goal": rng.standard_normal((2, 2))}
    text = json.dumps({key: value.tolist() for key, value in observation.items()})
    expected, _ = policy.predict(observation, deterministic=True)
    assert run_json(capsys, "predict", files["her"], "--obs", text, "--deterministic")["actions"] == \
        expected.tolist()
    steps = run_json(capsys, "predict", files["her"], "--obs", text, "--steps", "--deterministic")
    assert steps["actions"] == [row.tolist() for row in expected]  # two steps of one observation each


@pytest.mark.parametrize("model, obs, words", [
    ("her", '{"observation": [1, 2, 3], "achieved_goal": [1, 2], "desired_goals": [1, 2]}',
     ["no key 'desired_goals'", "observation, achieved_goal, desired_goal"]),
    ("her", '{"observation": [1, 2, 3], "achieved_goal": [1, 2]}', ["lacks desired_goal"]),
    ("her", '{"observation": ["a", 2, 3], "achieved_goal": [1, 2], "desired_goal": [1, 2]}', ["strings"]),
    ("mlp", '{"observation": [1, 2, 3, 4]}', ["JSON object", "only goal-conditioned (HER) files"]),
])
def test_bad_dict_observations_are_one_line_errors(capsys, files, model, obs, words):
    err = refused(capsys, "predict", files[model], "--obs", obs)
    for word in words:
        assert word in err, err


# -- datasets (--out, issue #24) ---------------------------------------------------------------------------------
@pytest.fixture
def dataset(tmp_path):
    """A Parquet dataset of 300 CartPole-like observations with ids and a logged action column."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from sbif.batch.tables import to_arrow

    obs = np.random.default_rng(4).standard_normal((300, 4)).astype(np.float32)
    path = str(tmp_path / "logged.parquet")
    pq.write_table(pa.table({"obs": to_arrow(obs), "id": np.arange(300) * 10, "action": np.zeros(300, np.int64)}),
                   path, row_group_size=64)
    return path, obs


def parquet_columns(path):
    import pyarrow.parquet as pq

    return {name: np.asarray(column.to_pylist()) for name, column in zip(pq.read_table(path).schema.names,
                                                                          pq.read_table(path).columns)}


def test_a_dataset_run_writes_outputs_and_summarises(capsys, files, dataset, tmp_path):
    data, obs = dataset
    out = str(tmp_path / "relabelled.parquet")
    summary = run_json(capsys, "predict", files["mlp"], "--obs", data, "--out", out, "--outputs",
                       "action,value,action_sample", "--output-prefix", "teacher_", "--seed", "3", "--batch-size",
                       "50", "--backend", "numpy")
    assert {key: summary[key] for key in ("rows", "outputs", "out", "engine", "batch_size", "seed")} == {
        "rows": 300, "outputs": ["teacher_action", "teacher_value", "teacher_action_sample"], "out": out,
        "engine": "local", "batch_size": 50, "seed": 3}
    written = parquet_columns(out)
    policy = sbif.load(files["mlp"])
    assert list(written) == ["obs", "id", "action", "teacher_action", "teacher_value", "teacher_action_sample"]
    assert np.array_equal(written["teacher_action"], policy.predict(obs, deterministic=True)[0])
    again = str(tmp_path / "again.parquet")  # the same seed, other batches, outputs alone: the same samples
    run_json(capsys, "predict", files["mlp"], "--obs", data, "--out", again, "--outputs", "action_sample",
             "--seed", "3", "--batch-size", "7", "--outputs-only", "--backend", "numpy")
    assert np.array_equal(parquet_columns(again)["action_sample"], written["teacher_action_sample"])
    code, text, _ = run(capsys, "predict", files["mlp"], "--obs", data, "--out", str(tmp_path / "a.npy"),
                        "--stochastic")
    assert code == 0 and text.startswith("wrote 300 rows (action_sample) to ") and "; seed " in text, text


def test_a_recurrent_dataset_run_with_named_columns(capsys, files, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from sbif.batch.tables import to_arrow

    obs = np.random.default_rng(5).standard_normal((9, 3)).astype(np.float32)
    episodes, steps = np.array([4, 4, 4, 9, 9, 2, 2, 2, 2]), np.array([2, 0, 1, 0, 1, 3, 1, 2, 0])
    data = str(tmp_path / "episodes.parquet")
    pq.write_table(pa.table({"o": to_arrow(obs), "run": episodes, "t": steps}), data)
    out = str(tmp_path / "actions.npy")
    run_json(capsys, "predict", files["lstm"], "--obs", data, "--out", out, "--obs-column", "o",
             "--episode-column", "run", "--step-column", "t", "--batch-size", "2", "--backend", "numpy")
    policy = sbif.load(files["lstm"])
    expected = np.zeros(9, np.int64)
    for episode in (4, 9, 2):
        rows = np.flatnonzero(episodes == episode)
        state = None
        for t, row in enumerate(rows[np.argsort(steps[rows])]):
            action, state = policy.predict(obs[row:row + 1], state, [t == 0], deterministic=True)
            expected[row] = action[0]
    assert np.array_equal(np.load(out), expected)


@pytest.mark.parametrize("extra, words", [
    (["--out", "OUT.parquet", "--steps"], ["--steps is for a single request"]),
    (["--out", "OUT.parquet", "--address", "127.0.0.1:6379"], ["--address is the Ray cluster's: add --engine ray"]),
    (["--out", "OUT.parquet", "--actors", "2"], ["--actors sizes Ray's actor pool: add --engine ray"]),
    (["--out", "OUT.parquet", "--actors", "0", "--engine", "ray"], ["--actors must be at least 1, got 0"]),
    (["--out", "OUT.parquet", "--outputs", "value", "--stochastic"], ["name the actions you want"]),
    (["--out", "OUT.parquet", "--outputs", "action,,value"], ["comma-separated list of names"]),
    (["--out", "OUT.parquet", "--obs-column", "a", "--obs-column", "b"], ["names one observation column"]),
    (["--out", "OUT.parquet", "--batch-size", "0"], ["--batch-size must be at least 1"]),
    (["--out", "OUT.parquet", "--outputs", "values"], ["unknown output 'values'"]),
    (["--out", "OUT.parquet"], ["already has a column 'action': choose an output prefix"]),
    (["--out", "OUT.npy", "--outputs", "action,value"], ["a .npy file holds one output"]),
    (["--out", "OUT.npz", "--outputs-only"], ["write a .parquet or .npy file, or a directory"]),
    (["--out", "OUT.parquet", "--obs-column", "id", "--outputs-only"],
     ["column 'id': row 0 (id 0) has shape (); the box observation space needs (4,)"]),
    (["--outputs", "value"], ["--outputs is for datasets: add --out"]),
    (["--engine", "ray"], ["--engine is for datasets: add --out"]),
    (["--actors", "2"], ["--actors is for datasets: add --out"]),
])
def test_dataset_refusals_are_one_line_errors(capsys, files, dataset, tmp_path, extra, words):
    data, _ = dataset
    argv = [arg.replace("OUT", str(tmp_path / "out")) for arg in extra]
    err = refused(capsys, "predict", files["mlp"], "--obs", data, "--backend", "numpy", *argv)
    for word in words:
        assert word in err, err
    assert sorted(os.listdir(str(tmp_path))) == ["logged.parquet"]  # nothing written


def test_the_ray_engine_without_ray_says_what_to_install(capsys, files, dataset, tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "ray" else
                        find_spec(name, *rest))
    data, _ = dataset
    err = refused(capsys, "predict", files["mlp"], "--obs", data, "--out", str(tmp_path / "out.parquet"),
                  "--engine", "ray", "--outputs-only")
    assert "--engine ray needs Ray: pip install 'sbif[ray]'" in err, err


def test_a_her_dataset_with_a_column_per_key(capsys, files, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from sbif.batch.tables import to_arrow

    rng = np.random.default_rng(6)
    keys = {"observation": rng.standard_normal((40, 3)), "achieved_goal": rng.standard_normal((40, 2)),
            "desired_goal": rng.standard_normal((40, 2))}
    data = str(tmp_path / "goals.parquet")
    pq.write_table(pa.table({"obs/observation": to_arrow(keys["observation"]),
                             "obs/achieved_goal": to_arrow(keys["achieved_goal"]),
                             "goal": to_arrow(keys["desired_goal"])}), data)
    out = str(tmp_path / "actions.npy")
    run_json(capsys, "predict", files["her"], "--obs", data, "--out", out, "--obs-column", "desired_goal=goal",
             "--backend", "numpy")
    assert np.array_equal(np.load(out), sbif.load(files["her"]).predict(keys, deterministic=True)[0])
    err = refused(capsys, "predict", files["her"], "--obs", data, "--out", out, "--backend", "numpy")
    assert "no column 'obs/desired_goal' (the observations)" in err, err
