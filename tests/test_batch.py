"""Batch inference over datasets (issue #24, sbif.batch): the predictor against `Policy.predict`, sampled actions that
do not depend on how the dataset is cut, recurrent policies over episodes, bad columns named by their first bad row,
and dataset files written whole or not at all."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

import sbif
from conformance.models import EXAMPLES, write_model
from sbif.batch import BatchPredictor, BatchSpec, dataset_shards, run_local
from sbif.batch.local import check_episodes_together
from sbif.batch.noise import GOLDEN_GAMMA, MASK64, mix64, normal_noise, uniform_noise
from sbif.errors import InputError, SbifError
from sbif.runtime.backends import numba_installed

needs_numba = pytest.mark.skipif(not numba_installed(), reason="numba is not installed")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("batch-models"))
    return {family: write_model(EXAMPLES[family], directory) for family in ("mlp", "lstm", "her", "sac")}


def observations(rows, width, seed=0):
    return np.random.default_rng(seed).standard_normal((rows, width)).astype(np.float32)


# -- the noise generator (spec/batch-inference.md section 3) ------------------------------------------------------
def reference_word(seed, noise_index, row_id, counter):
    """The spec's definition in Python integers, one word at a time."""
    def mix(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    key = mix(mix((seed + (noise_index + 1) * GOLDEN_GAMMA) & MASK64) ^ (row_id & MASK64))
    return mix((key + (counter + 1) * GOLDEN_GAMMA) & MASK64)


def test_uniforms_follow_the_spec_word_for_word():
    ids = [0, 1, 2 ** 40 + 7, -1, -(2 ** 63)]
    uniforms = uniform_noise(12345, 2, np.array(ids, np.int64), (2, 3))
    assert uniforms.dtype == np.float32 and uniforms.shape == (5, 2, 3)
    for row, row_id in enumerate(ids):
        expected = [np.float32(reference_word(12345, 2, row_id, j) >> 40) / np.float32(2 ** 24) for j in range(6)]
        assert uniforms[row].reshape(-1).tolist() == expected


def test_normals_follow_the_spec_word_for_word():
    normals = normal_noise(7, 0, np.array([3, 99], np.uint64), (4,))
    for row, row_id in enumerate([3, 99]):
        for j in range(4):
            u1 = ((reference_word(7, 0, row_id, 2 * j) >> 11) + 1) * 2.0 ** -53
            u2 = (reference_word(7, 0, row_id, 2 * j + 1) >> 11) * 2.0 ** -53
            assert normals[row, j] == np.float32(np.sqrt(-2.0 * np.log(u1)) * np.cos(6.283185307179586 * u2))


def test_the_spec_test_vectors():
    """The vectors spec/batch-inference.md lists, for other runtimes to check against."""
    assert mix64(np.array([GOLDEN_GAMMA], np.uint64))[0] == 0xE220A8397B1DCDAF  # splitmix64(0)'s first output
    assert [[reference_word(0, 0, row, j) for j in range(2)] for row in range(3)] == [
        [0x568A9B0B1A2C05EC, 0x44E5B8B147EF718B], [0x85C61A300EC70FA1, 0x4952C2A6E1EF0B78],
        [0x5B79F476DF1FFA2A, 0xD73D367AB3442021]]
    assert [str(value) for value in uniform_noise(0, 0, [0, 1, 2], (2,)).reshape(-1)] == [
        "0.33805245", "0.26913023", "0.52255404", "0.28641903", "0.3573296", "0.84077775"]
    assert [[reference_word(42, 1, row, j) for j in range(4)] for row in (10, -3)] == [
        [0x4455D76A289E1237, 0x0719F4BDE7BCD427, 0x6D942E9CBC8EE843, 0x99F329A37A94837F],
        [0xBDF4E6508ABF0348, 0xEA0C3A70C2244FBE, 0x64DDA0E8B59D1714, 0x5CF82249D1B2BA79]]
    assert [str(value) for value in normal_noise(42, 1, [10, -3], (2,)).reshape(-1)] == [
        "1.6006454", "-1.0473049", "0.66306436", "-0.8906934"]


def test_noise_is_a_function_of_the_row_alone():
    ids = np.arange(1000, dtype=np.int64) * 7919
    whole = uniform_noise(5, 0, ids, (3,))
    parts = np.concatenate([uniform_noise(5, 0, ids[a:b], (3,)) for a, b in ((0, 1), (1, 333), (333, 1000))])
    assert np.array_equal(whole, parts)
    assert not np.array_equal(whole, uniform_noise(6, 0, ids, (3,)))  # another seed
    assert not np.array_equal(whole, uniform_noise(5, 1, ids, (3,)))  # another noise input
    many = uniform_noise(1, 0, np.arange(200000), (1,)).reshape(-1)
    assert 0.0 <= many.min() and many.max() < 1.0 and abs(many.mean() - 0.5) < 0.003
    normals = normal_noise(1, 0, np.arange(200000), (1,)).reshape(-1)
    assert abs(normals.mean()) < 0.01 and abs(normals.std() - 1.0) < 0.01


# -- the predictor on the three batch formats ---------------------------------------------------------------------
def test_an_mlp_batch_gives_what_predict_gives(files):
    policy = sbif.load(files["mlp"])
    obs = observations(50, 4)
    predictor = BatchPredictor(files["mlp"], BatchSpec(outputs=("action", "value", "probabilities"),
                                                       backend="numpy"))
    result = predictor.predict({"obs": obs, "reward": np.arange(50)}, first_row=0)
    assert sorted(result) == ["action", "obs", "probabilities", "reward", "value"]
    assert np.array_equal(result["action"], policy.predict(obs, deterministic=True)[0])
    assert np.array_equal(result["value"], policy.value(obs))
    assert np.array_equal(result["probabilities"], policy.action_probability(obs))
    assert predictor.output_types() == {"action": (np.dtype("int64"), ()), "value": (np.dtype("float32"), ()),
                                        "probabilities": (np.dtype("float32"), (3,))}


def test_arrow_and_pandas_batches_come_back_in_their_format(files):
    pa = pytest.importorskip("pyarrow")
    pd = pytest.importorskip("pandas")
    from sbif.batch.tables import to_arrow

    obs = observations(20, 4)
    predictor = BatchPredictor(files["mlp"], BatchSpec(outputs=("action", "probabilities"), backend="numpy"))
    expected = predictor.compute({"obs": obs})
    table = predictor.predict(pa.table({"obs": to_arrow(obs)}))
    record_batch = predictor.predict(pa.record_batch([to_arrow(obs)], names=["obs"]))
    frame = predictor.predict(pd.DataFrame({"obs": list(obs)}))
    assert isinstance(table, pa.Table) and isinstance(record_batch, pa.RecordBatch)
    assert isinstance(frame, pd.DataFrame)
    for result in (table, record_batch):
        assert result.schema.field("probabilities").type == pa.list_(pa.float32(), 3)
        assert np.array_equal(result.column("action").to_numpy(), expected["action"])
    assert np.array_equal(np.stack(frame["probabilities"]), expected["probabilities"])
    variable = pa.table({"obs": pa.array(obs.tolist())})  # list<double>: lists of equal lengths are accepted
    assert np.array_equal(predictor.compute(variable)["action"], expected["action"])


def test_a_model_given_as_bytes_and_a_spec_that_travels(files):
    """What an engine ships to its workers: the file's bytes and a pickled spec."""
    spec = BatchSpec(outputs=("action", "value"), seed=3, key_columns={"a": "b"}, backend="numpy")
    assert pickle.loads(pickle.dumps(spec)) == spec
    with open(files["mlp"], "rb") as handle:
        predictor = BatchPredictor(handle.read(), BatchSpec(backend="numpy"))
    obs = observations(5, 4)
    assert np.array_equal(predictor.compute({"obs": obs})["action"],
                          sbif.load(files["mlp"]).predict(obs, deterministic=True)[0])


def test_a_her_file_takes_a_column_per_key_or_the_flat_observation(files):
    policy = sbif.load(files["her"])
    rng = np.random.default_rng(2)
    keys = {"observation": rng.standard_normal((30, 3)), "achieved_goal": rng.standard_normal((30, 2)),
            "desired_goal": rng.standard_normal((30, 2))}
    expected, _ = policy.predict(keys, deterministic=True)
    predictor = BatchPredictor(files["her"], BatchSpec(backend="numpy"))
    assert np.array_equal(predictor.compute({"obs/" + key: value for key, value in keys.items()})["action"],
                          expected)
    flat = np.concatenate([keys["observation"], keys["achieved_goal"], keys["desired_goal"]], axis=1)
    assert np.array_equal(predictor.compute({"obs": flat})["action"], expected)
    renamed = BatchPredictor(files["her"], BatchSpec(key_columns={"desired_goal": "goal"}, backend="numpy"))
    columns = {"obs/observation": keys["observation"], "obs/achieved_goal": keys["achieved_goal"],
               "goal": keys["desired_goal"]}
    assert np.array_equal(renamed.compute(columns)["action"], expected)
    with pytest.raises(InputError, match=r"no column 'obs/desired_goal' \(the observations\)"):
        predictor.compute({"obs/observation": keys["observation"], "obs/achieved_goal": keys["achieved_goal"]})


# -- sampled actions ------------------------------------------------------------------------------------------------
def test_sampled_actions_are_predict_with_the_rows_noise(files):
    """The sampled action of row r is Policy.predict's with the noise the spec derives from (seed, r)."""
    for family, width in (("mlp", 4), ("sac", 3)):
        policy = sbif.load(files[family])
        obs = observations(40, width)
        predictor = BatchPredictor(files[family], BatchSpec(outputs=("action_sample",), seed=9, backend="numpy"))
        ids = np.arange(100, 140)
        [(index, entry)] = predictor.noise_inputs
        draw = uniform_noise if entry["distribution"] == "uniform" else normal_noise
        noise = {entry["name"]: draw(9, index, ids, entry["shape"][1:])}
        expected, _ = policy.predict(obs, deterministic=False, noise=noise)
        assert np.array_equal(predictor.compute({"obs": obs}, first_row=100)["action_sample"], expected)
        assert np.array_equal(predictor.compute({"obs": obs, "id": ids})["action_sample"], expected)


@needs_numba
def test_outputs_do_not_depend_on_how_the_dataset_is_cut(files):
    """With the numba backend every output, sampled or not, is bit for bit the same whatever the batches."""
    obs = observations(300, 3, seed=4)
    predictor = BatchPredictor(files["sac"], BatchSpec(outputs=("action", "action_sample", "qf1"), seed=3,
                                                       backend="numba"))
    whole = predictor.compute({"obs": obs}, first_row=0)
    for cuts in ((0, 1, 2, 300), (0, 7, 150, 151, 300), (0, 299, 300)):
        parts = [predictor.compute({"obs": obs[a:b]}, first_row=a) for a, b in zip(cuts, cuts[1:])]
        for name in whole:
            assert np.array_equal(np.concatenate([part[name] for part in parts]), whole[name]), (name, cuts)


@needs_numba
def test_a_batch_runs_in_executor_calls_of_bounded_size(files):
    """A batch larger than `call_rows` (the rows whose graph values fit CALL_BYTES) is run in several calls: the
    same outputs, and a batch of any size within memory (SPEC 5.8 would refuse one call of 4 GiB values)."""
    obs = observations(100, 3, seed=5)
    spec = BatchSpec(outputs=("action", "action_sample", "qf1"), seed=3, backend="numba")
    whole = BatchPredictor(files["sac"], spec).compute({"obs": obs}, first_row=0)
    split = BatchPredictor(files["sac"], spec)
    split.call_rows = 7
    for name, values in split.compute({"obs": obs}, first_row=0).items():
        assert np.array_equal(values, whole[name]), name


def test_rows_regrouped_keep_their_dataset_indices(files):
    """A batch of rows taken out of order (as Ray's batches of whole episodes are) given each row's index computes
    what the rows compute in dataset order, and names a bad row by its index, as the local engine does."""
    pa = pytest.importorskip("pyarrow")
    obs = observations(60, 4, seed=8)
    predictor = BatchPredictor(files["mlp"], BatchSpec(outputs=("action", "action_sample"), seed=5,
                                                       backend="numpy"))
    in_order = predictor.compute({"obs": obs}, first_row=1000)
    chosen = np.random.default_rng(1).permutation(60)[:25]
    regrouped = predictor.compute({"obs": obs[chosen]}, row_indices=chosen + 1000)
    for name, values in in_order.items():
        assert np.array_equal(regrouped[name], values[chosen]), name
    rows = obs[chosen].tolist()
    rows[3] = rows[3][:2]
    with pytest.raises(InputError, match=r"row {} holds 2 values".format(chosen[3] + 1000)):
        predictor.compute(pa.table({"obs": pa.array(rows)}), row_indices=chosen + 1000)
    with pytest.raises(InputError, match="first row or each row's index, not both"):
        predictor.compute({"obs": obs}, first_row=0, row_indices=np.arange(60))
    with pytest.raises(InputError, match=r"one index per row: \(3,\) for a batch of 60 rows"):
        predictor.compute({"obs": obs}, row_indices=np.arange(3))


def test_sampling_needs_a_seed_and_row_ids(files):
    with pytest.raises(InputError, match="action_sample sample: give a seed"):
        BatchPredictor(files["mlp"], BatchSpec(outputs=("action_sample",)))
    predictor = BatchPredictor(files["mlp"], BatchSpec(outputs=("action_sample",), seed=1, backend="numpy"))
    with pytest.raises(InputError, match="need each row's id"):
        predictor.compute({"obs": observations(3, 4)})


# -- recurrent policies over episodes -----------------------------------------------------------------------------
def episode_data(episodes=12, seed=5):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 25, episodes)
    episode = np.repeat(rng.permutation(1000)[:episodes], lengths)
    step = np.concatenate([rng.permutation(length) * 3 for length in lengths])  # shuffled, with gaps
    return {"obs": observations(len(episode), 3, seed), "episode": episode, "step": step}


def step_by_step(policy, data, deterministic=True, noise_of=None):
    """Policy.predict over each episode, one step at a time from the initial state: the actions per row."""
    actions = np.zeros(len(data["episode"]), np.int64)
    for episode in np.unique(data["episode"]):
        rows = np.flatnonzero(data["episode"] == episode)
        rows = rows[np.argsort(data["step"][rows])]
        state = None
        for t, row in enumerate(rows):
            noise = None if noise_of is None else noise_of(row)
            action, state = policy.predict(data["obs"][row:row + 1], state, np.array([t == 0]),
                                           deterministic=deterministic, noise=noise)
            actions[row] = action[0]
    return actions


def test_an_lstm_over_episodes_is_predict_step_by_step(files):
    policy = sbif.load(files["lstm"])
    data = episode_data()
    predictor = BatchPredictor(files["lstm"], BatchSpec(outputs=("action", "action_sample"), seed=11,
                                                        backend="numpy"))
    result = predictor.compute(data, first_row=0)
    assert np.array_equal(result["action"], step_by_step(policy, data))
    [(index, entry)] = predictor.noise_inputs

    def noise_of(row):
        return {entry["name"]: uniform_noise(11, index, [row], entry["shape"][1:])}

    assert np.array_equal(result["action_sample"], step_by_step(policy, data, False, noise_of))


def test_episodes_must_be_ordered_by_distinct_steps(files):
    data = episode_data(episodes=3)
    longest = np.bincount(data["episode"]).argmax()
    rows = np.flatnonzero(data["episode"] == longest)
    data["step"][rows[-1]] = data["step"][rows[0]]
    predictor = BatchPredictor(files["lstm"], BatchSpec(backend="numpy"))
    with pytest.raises(InputError, match=r"has step \d+ twice \(row {}\)".format(rows[-1])):
        predictor.compute(data, first_row=0)
    regrouped = np.random.default_rng(2).permutation(len(data["episode"]))  # rows out of order, named by index
    with pytest.raises(InputError, match=r"has step \d+ twice \(row {}\)".format(rows[-1] + 500)):
        predictor.compute({name: values[regrouped] for name, values in data.items()},
                          row_indices=regrouped + 500)
    with pytest.raises(InputError, match="no column 'episode' .a recurrent policy's episodes and steps."):
        predictor.compute({"obs": data["obs"], "step": data["step"]})


# -- bad columns ----------------------------------------------------------------------------------------------------
def test_a_bad_column_names_its_first_bad_row(files):
    pa = pytest.importorskip("pyarrow")
    predictor = BatchPredictor(files["mlp"], BatchSpec(backend="numpy"))
    rows = [[0.0, 1.0, 2.0, 3.0]] * 5
    ragged = pa.table({"obs": pa.array(rows[:3] + [[1.0, 2.0]] + rows[:1]), "id": pa.array([10, 11, 12, 13, 14])})
    with pytest.raises(InputError, match=r"column 'obs' has rows of different lengths: row 1003 \(id 13\) holds 2"):
        predictor.compute(ragged, first_row=1000)
    missing = pa.table({"obs": pa.array(rows[:2] + [None] + rows[:2])})
    with pytest.raises(InputError, match=r"column 'obs' has a missing value \(null\) at row 2$"):
        predictor.compute(missing, first_row=0)
    inner_null = pa.table({"obs": pa.array(rows[:4] + [[0.0, None, 1.0, 2.0]])})
    with pytest.raises(InputError, match=r"missing value \(null\) at row 4"):
        predictor.compute(inner_null, first_row=0)
    her = BatchPredictor(files["her"], BatchSpec(backend="numpy"))  # a ragged inner list, in a sliced column
    pairs = pa.array([[[1.0, 2.0], [3.0, 4.0]]] * 3 + [[[1.0, 2.0], [3.0]]] + [[[1.0, 2.0], [3.0, 4.0]]]).slice(1)
    with pytest.raises(InputError, match=r"column 'obs/achieved_goal' has rows of different lengths: row 12 holds 1 "
                                         r"value where the first row holds 2"):
        her.compute(pa.table({"obs/observation": pa.array([[0.0] * 3] * 4), "obs/achieved_goal": pairs,
                              "obs/desired_goal": pa.array([[0.0] * 2] * 4)}), first_row=10)
    strings = pa.table({"obs": pa.array([["a", "b", "c", "d"]] * 2)})
    with pytest.raises(InputError, match=r"column 'obs' holds string values, not numbers \(row 0\)"):
        predictor.compute(strings, first_row=0)
    with pytest.raises(InputError, match=r"column 'obs': row 7 has shape \(3,\); the box observation space needs "
                                         r"\(4,\)"):
        predictor.compute({"obs": np.zeros((2, 3), np.float32)}, first_row=7)
    objects = {"obs": np.array([np.zeros(4), np.zeros(4), np.zeros(5)], dtype=object)}
    with pytest.raises(InputError, match=r"shape \(5,\) at row 2 where earlier rows have \(4,\)"):
        predictor.compute(objects, first_row=0)
    with pytest.raises(InputError, match="already has a column 'action': choose an output prefix"):
        predictor.compute({"obs": np.zeros((2, 4)), "action": np.zeros(2)})
    with pytest.raises(InputError, match="unknown output 'actoin'"):
        BatchPredictor(files["mlp"], BatchSpec(outputs=("actoin",)))


# -- the local engine and dataset files ---------------------------------------------------------------------------
def write_parquet(path, columns, row_group_size=None):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from sbif.batch.tables import to_arrow

    pq.write_table(pa.table({name: to_arrow(np.asarray(values)) for name, values in columns.items()}), str(path),
                   row_group_size=row_group_size)
    return str(path)


def read_parquet(path):
    import pyarrow.parquet as pq

    from sbif.batch.tables import RowLabels, column_array

    table = pq.read_table(str(path))
    return {name: column_array(table, name, RowLabels(0, None)) for name in table.schema.names}


def test_the_local_engine_writes_the_dataset_with_its_outputs(files, tmp_path):
    obs = observations(500, 4)
    data = write_parquet(tmp_path / "data.parquet", {"obs": obs, "reward": np.arange(500.0)}, row_group_size=128)
    spec = BatchSpec(outputs=("action", "value", "action_sample"), seed=2, backend="numpy")
    summary = run_local(files["mlp"], data, str(tmp_path / "out.parquet"), spec, batch_size=100)
    assert (summary.rows, summary.outputs, summary.seed, summary.engine) == (500, ["action", "value", "action_sample"],
                                                                            2, "local")
    written = read_parquet(tmp_path / "out.parquet")
    expected = BatchPredictor(files["mlp"], spec).compute({"obs": obs}, first_row=0)
    assert list(written) == ["obs", "reward", "action", "value", "action_sample"]
    assert np.array_equal(written["obs"], obs) and np.array_equal(written["reward"], np.arange(500.0))
    for name in expected:
        assert np.array_equal(written[name], expected[name]), name
    run_local(files["mlp"], data, str(tmp_path / "only.parquet"), spec, batch_size=64, passthrough=False)
    only = read_parquet(tmp_path / "only.parquet")
    assert list(only) == ["action", "value", "action_sample"] and np.array_equal(only["action_sample"],
                                                                                  expected["action_sample"])


def test_npy_inputs_and_outputs_and_directories_of_shards(files, tmp_path):
    pytest.importorskip("pyarrow")
    obs = observations(250, 4, seed=8)
    np.save(str(tmp_path / "obs.npy"), obs)
    spec = BatchSpec(outputs=("action_sample",), seed=4, backend="numpy")
    run_local(files["mlp"], str(tmp_path / "obs.npy"), str(tmp_path / "actions.npy"), spec, batch_size=64)
    expected = BatchPredictor(files["mlp"], spec).compute({"obs": obs}, first_row=0)["action_sample"]
    assert np.array_equal(np.load(str(tmp_path / "actions.npy")), expected)
    shards = tmp_path / "shards"
    shards.mkdir()
    for index, (a, b) in enumerate(((0, 100), (100, 101), (101, 250))):  # the file names give the order
        write_parquet(shards / "part-{}.parquet".format(index), {"obs": obs[a:b]})
    run_local(files["mlp"], str(shards), str(tmp_path / "out"), spec, batch_size=30)
    assert sorted(os.listdir(str(tmp_path / "out"))) == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    written = np.concatenate([read_parquet(tmp_path / "out" / name)["action_sample"]
                              for name in ("part-0.parquet", "part-1.parquet", "part-2.parquet")])
    assert np.array_equal(written, expected)
    npy_shards = tmp_path / "npy-shards"
    npy_shards.mkdir()
    np.save(str(npy_shards / "a.npy"), obs[:77])
    np.save(str(npy_shards / "b.npy"), obs[77:])
    run_local(files["mlp"], str(npy_shards), str(tmp_path / "from-npy.npy"), spec, batch_size=50)
    assert np.array_equal(np.load(str(tmp_path / "from-npy.npy")), expected)


def test_the_local_engine_carries_episodes_across_batches(files, tmp_path):
    data = episode_data(episodes=15, seed=6)
    order = np.argsort(data["episode"], kind="stable")  # episodes together, steps shuffled within
    data = {name: values[order] for name, values in data.items()}
    path = write_parquet(tmp_path / "episodes.parquet", data, row_group_size=40)
    spec = BatchSpec(outputs=("action", "action_sample"), seed=21, backend="numpy")
    expected = step_by_step(sbif.load(files["lstm"]), data)
    samples = []
    for batch_size in (1, 9, 1000):
        out = str(tmp_path / "out-{}.parquet".format(batch_size))
        run_local(files["lstm"], path, out, spec, batch_size=batch_size, passthrough=False)
        written = read_parquet(out)
        assert np.array_equal(written["action"], expected), batch_size
        samples.append(written["action_sample"])
    assert all(np.array_equal(sample, samples[0]) for sample in samples[1:])
    apart = {name: np.concatenate([values, values[:1]]) for name, values in data.items()}  # episode 0 comes back
    apart_path = write_parquet(tmp_path / "apart.parquet", apart)
    with pytest.raises(InputError, match=r"episode \d+'s rows are not together in the dataset: it appears again "
                                         r"at row {}".format(len(data["episode"]))) as refused:
        run_local(files["lstm"], apart_path, str(tmp_path / "apart-out.parquet"), spec, batch_size=16)
    for batch_size in (1, 7, 1000):  # the Ray engine's check over the episode column alone: the same refusal
        with pytest.raises(InputError) as checked:
            check_episodes_together(dataset_shards(apart_path), "episode", batch_size)
        assert str(checked.value) == str(refused.value)
    check_episodes_together(dataset_shards(path), "episode", 9)


def test_a_failed_run_writes_nothing(files, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = observations(300, 4).tolist()
    rows[250] = rows[250][:3]  # a short row in the third batch of 100
    data = str(tmp_path / "data.parquet")
    pq.write_table(pa.table({"obs": pa.array(rows)}), data)
    spec = BatchSpec(backend="numpy")
    for out in ("out.parquet", "out.npy", "out"):
        with pytest.raises(InputError, match="row 250 holds 3 values"):
            run_local(files["mlp"], data, str(tmp_path / out), spec, batch_size=100)
    assert sorted(os.listdir(str(tmp_path))) == ["data.parquet"]  # no output, no temporary file
    (tmp_path / "out.parquet").write_bytes(b"the previous result")
    with pytest.raises(InputError):
        run_local(files["mlp"], data, str(tmp_path / "out.parquet"), spec, batch_size=100)
    assert (tmp_path / "out.parquet").read_bytes() == b"the previous result"


def unreadable_dataset(directory, case):
    """A path that is not a dataset `run_local` can read, made in `directory`."""
    if case == "missing":
        return str(directory / "missing.parquet")
    if case == "csv":
        (directory / "x.csv").write_text("1")
        return str(directory / "x.csv")
    if case == "strings":
        np.save(str(directory / "s.npy"), np.array(["a"]))
        return str(directory / "s.npy")
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (9, 4), }".ljust(118) + b"\n"
    (directory / "t.npy").write_bytes(np.lib.format.magic(1, 0) + len(header).to_bytes(2, "little") + header)
    return str(directory / "t.npy")  # the header promises 144 bytes that are not there


@pytest.mark.parametrize("case, words", [
    ("missing", "no dataset at"),
    ("csv", "not a dataset: use a .parquet or .npy file"),
    ("strings", r"cannot read .*s\.npy' as \.npy: expected numbers, not strings \(dtype '<U1'\)"),
    ("truncated", r"the \.npy header declares shape \(9, 4\) of float32 \(144 bytes\), but 0 bytes follow it"),
])
def test_datasets_that_cannot_be_read_are_refused(files, tmp_path, case, words):
    with pytest.raises(SbifError, match=words):
        run_local(files["mlp"], unreadable_dataset(tmp_path, case), str(tmp_path / "out.npy"),
                  BatchSpec(backend="numpy"))


MEMORY_CHILD = r"""
import resource, sys
from sbif.batch import BatchSpec, run_local
run_local(sys.argv[1], sys.argv[2], sys.argv[3], BatchSpec(outputs=("action", "value"), backend="numpy"),
          batch_size=2000)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


@pytest.mark.slow
def test_memory_is_bounded_by_the_batch_not_the_dataset(files, tmp_path):
    """Peak memory of a run over 25,000 rows and over 200,000 (45 MB more of float32 observations, passed through to
    the output): the same within a few megabytes, as one batch of 2,000 rows is held at a time (measured: equal
    peaks; one batch of the whole dataset makes the larger run's peak 238 MB higher)."""
    import subprocess
    import sys

    obs = np.random.default_rng(0).standard_normal((200000, 64)).astype(np.float32)
    peaks = []
    for rows in (25000, 200000):
        data = write_parquet(tmp_path / "data-{}.parquet".format(rows), {"obs": obs[:rows]}, row_group_size=2000)
        model = write_model(dict(EXAMPLES["mlp"], observation=dict(EXAMPLES["mlp"]["observation"], shape=[64])),
                            str(tmp_path))
        child = subprocess.run([sys.executable, "-c", MEMORY_CHILD, model, data, str(tmp_path / "out.parquet")],
                               stdout=subprocess.PIPE, check=True, env=dict(os.environ, SBIF_PROGRESS="0"))
        peaks.append(int(child.stdout))
    assert peaks[1] - peaks[0] < 12 * 2 ** 20, peaks  # the 175,000 more rows are 45 MB in, 45 MB out
