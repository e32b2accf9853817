"""The NumPy runtime without SB2: an independent forward pass, SB2's shape rules, sampling, and bad input."""
import json

import numpy as np
import pytest

import sbif
from sbif.errors import InputError
from sbif.format import SbifFile
from sbif.runtime.error_scales import predict_agreement
from tests.factories import NET_ARCHS, make_model, split_net_arch

ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0)}


def plain_forward(model, obs, activation="tanh"):
    """The actor-critic MLP written out by hand: (flat policy output, value)."""
    p = model.parameters
    space = model.observation_space
    if space.kind == "discrete":
        x = np.eye(space.n, dtype=np.float32)[obs]
    elif space.kind == "multi_discrete":
        x = np.concatenate([np.eye(n, dtype=np.float32)[obs[:, i]] for i, n in enumerate(space.nvec)], axis=1)
    else:
        x = obs.reshape(len(obs), -1).astype(np.float32)
    act = ACTIVATIONS[activation]
    shared, pi, vf = split_net_arch(model.policy_kwargs.get("net_arch", NET_ARCHS["mixed"]))
    for i in range(len(shared)):
        x = act(x @ p["model/shared_fc%d/w:0" % i] + p["model/shared_fc%d/b:0" % i])
    h_pi, h_vf = x, x
    for i in range(len(pi)):
        h_pi = act(h_pi @ p["model/pi_fc%d/w:0" % i] + p["model/pi_fc%d/b:0" % i])
    for i in range(len(vf)):
        h_vf = act(h_vf @ p["model/vf_fc%d/w:0" % i] + p["model/vf_fc%d/b:0" % i])
    return h_pi @ p["model/pi/w:0"] + p["model/pi/b:0"], (h_vf @ p["model/vf/w:0"] + p["model/vf/b:0"])[:, 0]


def observations(policy, count=16, seed=0):
    from sbif.compare import sample_observations
    return sample_observations(policy.observation_space.to_json(), count, np.random.default_rng(seed))


@pytest.mark.parametrize("obs_kind", ["box_inf", "box_finite", "box_image", "discrete", "multi_discrete",
                                      "multi_binary"])
@pytest.mark.parametrize("action_kind", ["discrete", "box", "multi_discrete", "multi_binary"])
def test_forward_matches_hand_written_numpy(obs_kind, action_kind, tmp_path):
    model = make_model(obs_kind, action_kind, "mixed", seed=1)
    model.policy_kwargs = {"net_arch": NET_ARCHS["mixed"]}
    path = str(tmp_path / "m.sbif")
    from sbif.export import build_sbif
    build_sbif(make_model(obs_kind, action_kind, "mixed", seed=1)).write(path)
    policy = sbif.load(path)
    obs = observations(policy)
    flat, value = plain_forward(model, policy.observation_batch(obs)[0])
    assert predict_agreement(policy, value, "value", obs, "value") <= 1.0  # within SPEC section 6's error scales
    action, state = policy.predict(obs, deterministic=True)
    assert state is None
    if action_kind == "discrete":
        np.testing.assert_array_equal(action, np.argmax(flat, axis=1))
        np.testing.assert_allclose(policy.action_probability(obs).sum(axis=1), 1.0, rtol=1e-6)
    elif action_kind == "box":
        expected = np.clip(flat, [-1.0, -2.0], [1.0, 0.5])
        assert predict_agreement(policy, expected, "predict", obs, "action", deterministic=True) <= 1.0
    elif action_kind == "multi_discrete":
        np.testing.assert_array_equal(action, np.stack([np.argmax(flat[:, :2], 1), np.argmax(flat[:, 2:], 1)], 1))
    else:
        np.testing.assert_array_equal(action, np.round(1 / (1 + np.exp(-flat))))


@pytest.mark.parametrize("action_kind,dtype,shape", [("discrete", np.int64, ()), ("box", np.float32, (2,)),
                                                     ("multi_discrete", np.int64, (2,)),
                                                     ("multi_binary", np.float32, (4,))])
def test_single_and_batched_shapes_follow_sb2(make_file, action_kind, dtype, shape):
    policy = sbif.load(make_file("box_inf", action_kind))
    single, _ = policy.predict(np.zeros(4), deterministic=True)
    batch, _ = policy.predict(np.zeros((3, 4)), deterministic=True)
    assert np.shape(single) == shape and np.asarray(single).dtype == dtype
    assert batch.shape == (3,) + shape and batch.dtype == dtype
    assert np.shape(policy.value(np.zeros(4))) == ()


def test_deterministic_default_is_sb2s(make_file):
    policy = sbif.load(make_file("box_inf", "box"))
    assert policy.document["predict"]["deterministic_default"] is False
    obs = np.zeros((2000, 4))
    mean_action, _ = policy.predict(obs, deterministic=True)
    sampled, _ = policy.predict(obs, rng=0)
    assert not np.allclose(sampled, mean_action)


def test_sampling_is_reproducible_and_follows_the_noise(make_file):
    policy = sbif.load(make_file("box_inf", "discrete"))
    obs = observations(policy, 32)
    first, _ = policy.predict(obs, deterministic=False, rng=5)
    again, _ = policy.predict(obs, deterministic=False, rng=5)
    np.testing.assert_array_equal(first, again)
    u = np.random.default_rng(1).random((32, 3), dtype=np.float32)
    logits = policy.run({"obs": policy.observation_batch(obs)[0]}, ["logits"])["logits"]
    sampled, _ = policy.predict(obs, deterministic=False, noise={"noise_uniform": u})
    np.testing.assert_array_equal(sampled, np.argmax(logits - np.log(-np.log(u)), axis=1))


@pytest.mark.parametrize("action_kind", ["discrete", "multi_discrete", "multi_binary"])
def test_sample_frequencies_match_probabilities(make_file, action_kind):
    policy = sbif.load(make_file("box_inf", action_kind, seed=3))
    obs = np.repeat(observations(policy, 1), 20000, axis=0)
    samples, _ = policy.predict(obs, deterministic=False, rng=0)
    probabilities = policy.action_probability(obs[:1])
    if action_kind == "discrete":
        frequencies = np.bincount(samples, minlength=3) / len(samples)
        np.testing.assert_allclose(frequencies, probabilities[0], atol=0.015)
    elif action_kind == "multi_discrete":
        for j, p in enumerate(probabilities):
            frequencies = np.bincount(samples[:, j], minlength=p.shape[1]) / len(samples)
            np.testing.assert_allclose(frequencies, p[0], atol=0.015)
    else:
        np.testing.assert_allclose(samples.mean(axis=0), probabilities[0], atol=0.015)


def test_gaussian_sample_with_zero_noise_is_the_clipped_mean(make_file):
    policy = sbif.load(make_file("box_inf", "box"))
    obs = observations(policy, 8)
    zero = {"noise_normal": np.zeros((8, 2), np.float32)}
    np.testing.assert_array_equal(policy.predict(obs, deterministic=False, noise=zero)[0],
                                  policy.predict(obs, deterministic=True)[0])
    mean, std = policy.action_probability(obs)
    assert mean.shape == std.shape == (8, 2) and np.all(std > 0)


def test_action_probability_of_given_actions(make_file):
    policy = sbif.load(make_file("box_inf", "discrete"))
    obs = observations(policy, 5)
    probabilities = policy.action_probability(obs)
    actions = np.array([0, 1, 2, 1, 0])
    np.testing.assert_allclose(policy.action_probability(obs, actions=actions)[:, 0],
                               probabilities[np.arange(5), actions])
    np.testing.assert_allclose(policy.action_probability(obs, actions=actions, logp=True)[:, 0],
                               np.log(probabilities[np.arange(5), actions]), rtol=1e-6)
    with pytest.raises(InputError, match="batch sizes differ"):
        policy.action_probability(obs, actions=[0, 1])


@pytest.mark.parametrize("action_kind, actions, message", [
    # as long as a row (n = 3), NumPy would take it for a mask and pick column 0 of every row
    ("discrete", [True, False, False], "categorical actions are indices: they must be integers, got bool"),
    ("discrete", [1.0, 0.0, 2.0], "categorical actions are indices: they must be integers, got float64"),
    ("multi_discrete", [[True, False], [False, True], [True, True]],
     "multi_categorical actions are indices: they must be integers, got bool"),
    ("multi_discrete", np.array([[1, 0], [0, 1], [1, 2]], np.float32),
     "multi_categorical actions are indices: they must be integers, got float32"),
], ids=["bool", "float", "multi-bool", "multi-float"])
def test_categorical_actions_must_be_integers(make_file, action_kind, actions, message):
    """SPEC section 5.4: the categorical kinds index with the actions, so bool and float actions are refused."""
    policy = sbif.load(make_file("box_inf", action_kind))
    with pytest.raises(InputError, match=message):
        policy.action_probability(observations(policy, 3), actions=actions)


def test_categorical_actions_index_as_numpy_does(make_file):
    """An integer index in [-n, n) of any integer dtype, a negative one counting from the end of the row; any other
    index, and actions that do not make an array, are refused."""
    policy = sbif.load(make_file("box_inf", "discrete"))
    obs = observations(policy, 3)
    probabilities = policy.action_probability(obs)
    np.testing.assert_array_equal(policy.action_probability(obs, actions=np.array([-1, -3, 2], np.int16))[:, 0],
                                  probabilities[np.arange(3), [2, 0, 2]])
    for actions in ([0, 3, 1], [0, -4, 1], [[0, 1], [2]]):
        with pytest.raises(InputError, match="categorical"):
            policy.action_probability(obs, actions=actions)


def test_gaussian_log_probability(make_file):
    policy = sbif.load(make_file("box_inf", "box"))
    obs = observations(policy, 4)
    mean, std = policy.action_probability(obs)
    actions = mean + 0.5 * std
    expected = (-np.sum(0.125 + np.log(std.astype(np.float64)), axis=1) - np.log(2 * np.pi))[:, None]
    assert predict_agreement(policy, expected, "action_probability", obs, "probability", actions=actions,
                             logp=True) <= 1.0


@pytest.mark.parametrize("obs_kind,bad", [("box_inf", np.zeros(3)), ("box_inf", np.zeros((2, 5))),
                                          ("discrete", np.zeros((2, 2))), ("multi_discrete", np.zeros(2)),
                                          ("multi_binary", np.zeros((2, 6, 1))), ("box_inf", ["a", "b", "c", "d"])])
def test_bad_observations_are_refused_clearly(make_file, obs_kind, bad):
    policy = sbif.load(make_file(obs_kind, "discrete"))
    with pytest.raises(InputError):
        policy.predict(bad)


def test_run_checks_inputs_and_names(make_file):
    policy = sbif.load(make_file("box_inf", "discrete"))
    everything = policy.run({"obs": np.zeros((2, 4), np.float32), "noise_uniform": np.full((2, 3), 0.5, np.float32)})
    assert set(everything) == set(policy.output_names)
    with pytest.raises(InputError, match="unknown output"):
        policy.run({"obs": np.zeros((2, 4), np.float32)}, ["nope"])
    with pytest.raises(InputError, match="missing input"):
        policy.run({"obs": np.zeros((2, 4), np.float32)}, ["action_sample"])
    with pytest.raises(InputError, match="must be float32"):
        policy.run({"obs": np.zeros((2, 4))}, ["action"])
    with pytest.raises(InputError, match="batch size"):
        policy.run({"obs": np.zeros((2, 4), np.float32), "noise_uniform": np.zeros((3, 3), np.float32)},
                   ["action_sample"])


def test_extreme_observations_stay_finite_for_saturating_nets(make_file):
    policy = sbif.load(make_file("box_inf", "box"))
    obs = np.array([[3.4e38, -3.4e38, 0.0, 1e30], [1e30, 1e30, 1e30, 1e30]], np.float32)
    action, _ = policy.predict(obs, deterministic=True)
    assert np.all(np.isfinite(action))


# -- run-time sizes and exact integers (issue #18) ------------------------------------------------------------------
BACKENDS = ["numpy"] + (["numba"] if __import__("importlib").util.find_spec("numba") else [])


def wide_output_file(tmp_path):
    """The default model plus a declared output `wide`: one_hot of argmax(obs), float32 [B, 2^25], 2^27 bytes a row
    (half the static limit), so 32 rows make exactly 2^32 bytes."""
    from tests.factories import make_sbif

    model = make_sbif()
    document = json.loads(json.dumps(model.document))
    document["graph"] += [{"op": "argmax", "inputs": ["obs"], "outputs": ["obs/argmax"]},
                          {"op": "one_hot", "inputs": ["obs/argmax"], "outputs": ["wide"], "attrs": {"depth": 2 ** 25}}]
    document["outputs"].append({"name": "wide", "dtype": "float32", "shape": [None, 2 ** 25], "description": ""})
    path = str(tmp_path / "wide.sbif")
    SbifFile(document, model.tensors).write(path)
    return path


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batch_over_the_run_time_limit_is_refused_before_allocating(tmp_path, backend):
    import tracemalloc

    policy = sbif.load(wide_output_file(tmp_path), backend=backend)
    obs = np.zeros((33, 4), np.float32)
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as caught:
            policy.run({"obs": obs}, ["wide"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert "a batch of 33 rows would make 'wide' (float32[B,33554432]) take 4429185024 bytes" in message
    assert "use batches of at most 32 rows" in message
    assert peak < 16 * 1024 * 1024
    assert policy.run({"obs": obs[:0]}, ["wide"])["wide"].shape == (0, 2 ** 25)  # within the limit: computed


@pytest.mark.parametrize("request_kind", ["predict", "action_probability", "value"])
def test_predict_checks_the_batch_before_drawing_noise(tmp_path, monkeypatch, request_kind):
    """The SB2 interface refuses an oversized batch before it allocates anything of its own (noise, state):
    with the limit lowered to two rows of the widest value, three rows never reach the noise draw."""
    import sbif.runtime.executor as executor
    from tests.factories import write_sbif

    policy = sbif.load(write_sbif(str(tmp_path / "gaussian.sbif"), "box_inf", "box"), backend="numpy")
    obs = np.zeros((3,) + policy.observation_space.shape, np.float32)
    widest = max(spec.nominal_bytes(batch=1) for spec in policy.executor.model.specs.values()
                 if spec.shape[:1] == (None,))
    monkeypatch.setattr(executor, "MAX_BATCH_VALUE_BYTES", 2 * widest)

    def no_noise(*args, **kwargs):
        raise AssertionError("noise drawn before the batch was checked")

    monkeypatch.setattr(policy, "noise_feeds", no_noise)
    call = {"predict": lambda: policy.predict(obs, deterministic=False),
            "action_probability": lambda: policy.action_probability(obs),
            "value": lambda: policy.value(obs)}[request_kind]
    with pytest.raises(InputError, match="a batch of 3 rows .* use batches of at most"):
        call()
    policy.value(obs[:2])  # two rows fit


def test_the_run_time_limit_is_exact_at_its_boundary(tmp_path):
    """32 rows of 2^27 bytes are 2^32 exactly: accepted by the check (not computed here: 4 GiB)."""
    from sbif.runtime.executor import GraphExecutor, MAX_BATCH_VALUE_BYTES

    executor = GraphExecutor(SbifFile.read(wide_output_file(tmp_path)))
    executor.check_batch(["wide"], MAX_BATCH_VALUE_BYTES // 2 ** 27)
    with pytest.raises(InputError):
        executor.check_batch(["wide"], MAX_BATCH_VALUE_BYTES // 2 ** 27 + 1)
    executor.check_batch(["action"], 10 ** 6)  # the outputs asked for decide, not the widest value of the file


@pytest.mark.parametrize("strides, padding", [([2 ** 62, 1], "VALID"), ([2 ** 62, 2], "SAME"),
                                              ([2 ** 63 - 1, 2 ** 63 - 1], "SAME")])
def test_conv2d_strides_up_to_int64s_maximum(strides, padding):
    """A stride only matters between windows: with one window along an axis, 2^62 gives what the axis's own size
    does (NumPy's byte strides overflowed: "internal error")."""
    from sbif.ops.layers import Conv2d

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 2)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    small = [stride if stride < 2 ** 32 else size for stride, size in zip(strides, x.shape[1:3])]
    expected = Conv2d.compute(x, w, b, small, padding)
    assert np.array_equal(Conv2d.compute(x, w, b, strides, padding), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_file_with_a_stride_of_2_62_runs(tmp_path, backend):
    """Issue #18 item 4: a conv2d stride of 2^62 passed validation, then `predict` crashed (exit 2). The golden CNN's
    last conv reads [B, 3, 4, 64] with a 3x3 kernel: one window down, so any stride there gives the same result."""
    import os

    golden = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conformance", "golden",
                          "ppo2_cnn_uint8_discrete.sbif")
    model = SbifFile.read(golden)
    obs = np.random.default_rng(0).integers(0, 255, (3, 36, 44, 2), dtype=np.uint8)
    document = json.loads(json.dumps(model.document))
    (last,) = [node for node in document["graph"] if node["outputs"] == ["model/c3"]]
    path = str(tmp_path / "stride.sbif")

    def logits(strides, padding):
        last["attrs"] = {"strides": strides, "padding": padding}
        SbifFile(document, model.tensors).write(path)
        return sbif.load(path, backend=backend).run({"obs": obs}, ["logits"])["logits"]

    assert np.array_equal(logits([2 ** 62, 1], "VALID"), logits([1, 1], "VALID"))
    assert np.array_equal(logits([2 ** 63 - 1, 2], "SAME"), logits([3, 2], "SAME"))


def test_cast_of_nan_inf_and_out_of_range_floats():
    """spec/ops.md cast: through int32 (int64 for int64), the lowest value where the truncation does not fit, then
    wrapped: what TF and NumPy give on x86, written out so that every CPU gives it."""
    from sbif.ops.shape import Cast

    x = np.array([np.nan, np.inf, -np.inf, 1e10, 3e9, 300.7, -1.9, -2147483648.9, 2.0 ** 63], np.float64)
    assert Cast.compute(x, "int32").tolist() == [-2 ** 31] * 5 + [300, -1, -2 ** 31, -2 ** 31]
    assert Cast.compute(x, "int64").tolist() == [-2 ** 63] * 3 + [10 ** 10, 3 * 10 ** 9, 300, -1, -2147483648, -2 ** 63]
    assert Cast.compute(x, "uint8").tolist() == [0] * 5 + [44, 255, 0, 0]
    assert Cast.compute(x.astype(np.float32), "int16").tolist() == [0] * 5 + [300, -1, 0, 0]


def test_empty_batches_and_empty_rows():
    """Flatten of an empty batch (NumPy cannot infer -1 there) and softmax of rows without elements."""
    from sbif.ops.nn import Softmax
    from sbif.ops.shape import Flatten

    assert Flatten.compute(np.zeros((0, 3, 4), np.float32)).shape == (0, 12)
    assert Softmax.compute(np.zeros((2, 0), np.float32)).shape == (2, 0)
