"""The numba backend against the NumPy reference: same results within SPEC section 6 on every family, the golden
packs and the zoo; its kernels on TensorFlow's op vectors; the batch (BLAS, chunked) path; the disk cache; no
growth of memory per call; backend selection and its errors. Skipped where numba cannot be imported."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import sbif  # noqa: E402
from conformance.checks import CHECKS, Config  # noqa: E402
from conformance.golden import GoldenSource  # noqa: E402
from conformance.models import EXAMPLES, ModelInfo, family_status, write_model  # noqa: E402
from conformance.protocol import PythonRuntime  # noqa: E402
from conformance.rules import compare, output_rules  # noqa: E402
from conformance.runner import KnownFailures, OracleSource, run_suite  # noqa: E402
from sbif.compare import sample_observations  # noqa: E402
from sbif.errors import InputError, SbifError, UnsupportedError  # noqa: E402
from sbif.format.document import decode_bound  # noqa: E402
from sbif.ops import get_op, resolve_attrs  # noqa: E402
from sbif.runtime.numba import aot, backend, encoding, kernels, program  # noqa: E402
from sbif.runtime.error_scales import ErrorScales, predict_scales, result_agreement  # noqa: E402
from tests.test_numba_encoding import one_node_model, vector_cases  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "conformance", "golden")
KNOWN_FAILURES = os.path.join(ROOT, "conformance", "known-failures.txt")
ZOO = os.path.join(ROOT, "..", "shared", "zoo")
MODEL_CHECKS = ["deterministic", "sampling", "edge_observations", "recurrent_sequence", "predict_api"]


def numpy_runtime():
    return PythonRuntime(load=lambda path: sbif.load(path, backend="numpy"))


def numba_runtime():
    return PythonRuntime(load=lambda path: sbif.load(path, backend="numba"), name="sbif-numba")


def assert_no_fallback_warnings(caught):
    messages = [str(w.message) for w in caught if "numba backend" in str(w.message)]
    assert not messages, messages


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """One file per family SBIF builds (conformance.models.EXAMPLES)."""
    directory = str(tmp_path_factory.mktemp("numba-models"))
    status = family_status()
    return {family: write_model(spec, directory) for family, spec in EXAMPLES.items() if status[family] is None}


@pytest.fixture(scope="module")
def pair(models):
    """family -> (NumPy policy, numba policy)."""
    return {family: (sbif.load(path, backend="numpy"), sbif.load(path, backend="numba"))
            for family, path in models.items()}


# -- agreement ------------------------------------------------------------------------------------------------------
def test_every_family_agrees_with_the_reference(models):
    """All outputs, deterministic and noise-fed, batches of 1 and 257, recurrent sequences over 3 envs with resets,
    edge observations and SB2's predict interface: the suite's SPEC section 6 rules, the NumPy runtime as oracle."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = run_suite([OracleSource(sorted(models.values()), numpy_runtime())], numba_runtime(),
                           checks=MODEL_CHECKS, config=Config(batches=[1, 257], envs=[3], steps=6))
    assert report.ok, report.render()
    assert_no_fallback_warnings(caught)
    passed = {(r.model.split("-")[0], r.check) for r in report.results if r.status == "pass"}
    assert {("lstm", "recurrent_sequence"), ("cnn_lstm", "recurrent_sequence"), ("dqn", "sampling"),
            ("cnn", "deterministic"), ("vecnormalize", "predict_api")} <= passed


@pytest.mark.parametrize("chunk_rows", [1, 4])
def test_batch_path_agrees_in_chunks(models, monkeypatch, chunk_rows):
    """Every request through the batch path: BLAS products between interpreter calls split between three
    threads, chunks of one row or of four, each interpreter call between them on one row of its chunk at a time.
    The CNN's convolutions (no padding) stay in the interpreter, reading their patches where they are: no patch
    columns are made for them."""
    monkeypatch.setattr(backend, "COLUMN_BLOCK_BYTES", 1 if chunk_rows == 4 else 1 << 20)
    monkeypatch.setattr(backend, "BLAS_MIN_MACS", 0)
    monkeypatch.setattr(backend, "BLAS_MIN_WEIGHTS", 0)
    monkeypatch.setattr(backend, "MIN_CHUNK_ROWS", chunk_rows)
    monkeypatch.setattr(backend, "CHUNK_BYTES", 1)
    monkeypatch.setattr(backend, "LANES", 3)
    monkeypatch.setattr(backend, "PARALLEL_MIN_WORK", 1)
    monkeypatch.setattr(backend, "CACHED_CHUNK_BYTES", 1)
    report = run_suite([OracleSource(sorted(models.values()), numpy_runtime())], numba_runtime(),
                       checks=["deterministic", "sampling", "recurrent_sequence"],
                       config=Config(batches=[1, 5], envs=[3], steps=3))
    assert report.ok, report.render()
    policy = sbif.load(models["cnn"], backend="numba")
    policy.predict(np.zeros((5,) + policy.observation_space.shape, np.uint8))
    runner = policy.executor._runner((policy.document["predict"]["deterministic_action"],))
    assert runner.stage_rows == 1 and runner.gemms and all(gemm.conv is None for _, gemm in runner.gemms)
    assert not any(name.startswith("columns") for buffers in policy.executor._kept.values() for name in buffers)


def test_interpreter_chunks_change_no_bit(models, monkeypatch):
    """A request without BLAS products, split into chunks of two rows (cache-sized chunks, CACHED_CHUNK_BYTES)
    between three threads, gives every output bit for bit as one call on the whole batch: the kernels compute
    each row on its own."""
    rng = np.random.default_rng(5)
    monkeypatch.setattr(backend, "BLAS_MIN_MACS", 1 << 62)
    for family, path in models.items():
        info = ModelInfo(path)
        feeds = dict(info.noise(11, rng), obs=info.observations(11, rng))
        policy = sbif.load(path, backend="numba")
        if policy.recurrent:
            continue
        whole = policy.run(feeds)
        with monkeypatch.context() as patch:
            patch.setattr(backend, "CACHED_CHUNK_BYTES", 1)
            patch.setattr(backend, "CACHED_CHUNK_MIN_ROWS", 2)
            patch.setattr(backend, "LANES", 3)
            patch.setattr(backend, "PARALLEL_MIN_WORK", 1)
            chunked = sbif.load(path, backend="numba")
            runner = chunked.executor._runner(tuple(chunked.output_names))
            assert runner is not None and runner.cached_chunk_rows == 2, family
            pieces = chunked.run(feeds)
        for name, expected in whole.items():
            np.testing.assert_array_equal(pieces[name], expected, err_msg="{} {}".format(family, name))


def test_a_lane_held_back_leaves_its_chunks_to_the_other(models, monkeypatch):
    """A staged request (BLAS products between interpreter calls: Python tasks on the lanes): the caller's lane is
    held on its first chunk until the other lane finds no chunk left: that lane must then have run every other
    chunk (with a fixed split it would stop at its half, and the caller's lane wait in vain). The outputs are the
    bits of an undisturbed run: the chunks' bounds do not depend on which lane runs them, with BLAS products too.
    (An interpreter request's lanes: tests/test_numba_lanes.py.)"""
    rng = np.random.default_rng(7)
    family = "cnn"
    info = ModelInfo(models[family])
    feeds = dict(info.noise(11, rng), obs=info.observations(11, rng))
    monkeypatch.setattr(backend, "LANES", 2)
    monkeypatch.setattr(backend, "PARALLEL_MIN_WORK", 1)
    monkeypatch.setattr(backend, "CACHED_CHUNK_BYTES", 1)
    monkeypatch.setattr(backend, "CACHED_CHUNK_MIN_ROWS", 2)
    monkeypatch.setattr(backend, "CHUNK_BYTES", 1)
    monkeypatch.setattr(backend, "MIN_CHUNK_ROWS", 2)
    monkeypatch.setattr(backend, "BLAS_MIN_MACS", 0)
    monkeypatch.setattr(backend, "BLAS_MIN_WEIGHTS", 0)
    policy = sbif.load(models[family], backend="numba")
    undisturbed = policy.run(feeds)
    caller = threading.get_ident()
    starts = {"caller": [], "pool": []}
    pool_done = threading.Event()
    run_chunks, run_chunk = backend._Runner.run_chunks, backend._Runner.run_chunk

    def lane(self, *arguments):
        run_chunks(self, *arguments)
        if threading.get_ident() != caller:
            pool_done.set()

    def chunk(self, arrays, outputs, rows, start, count, chunk_staged, buffers):
        assert chunk_staged
        mine = threading.get_ident() == caller
        if mine and not starts["caller"]:
            pool_done.wait(timeout=30)
        starts["caller" if mine else "pool"].append(start)
        run_chunk(self, arrays, outputs, rows, start, count, chunk_staged, buffers)

    monkeypatch.setattr(backend._Runner, "run_chunks", lane)
    monkeypatch.setattr(backend._Runner, "run_chunk", chunk)
    held = policy.run(feeds)
    assert len(starts["caller"]) == 1 and len(starts["pool"]) >= 2, starts
    assert sorted(starts["caller"] + starts["pool"]) == list(range(0, 11, 2)), starts
    for name, expected in undisturbed.items():
        np.testing.assert_array_equal(held[name], expected, err_msg=name)


def test_public_methods_agree(models, pair):
    """predict (deterministic and noise-fed, single and batched, with state and resets), action_probability and
    value through SB2's interface."""
    for family, (reference, fast) in pair.items():
        info = ModelInfo(models[family])
        rng = np.random.default_rng(3)
        for count in (1, 7):
            obs = info.observations(count, rng)
            state = (rng.standard_normal((count, reference.state_size)).astype(np.float32)
                     if reference.recurrent else None)
            mask = rng.random(count) < 0.5 if reference.recurrent else None
            for deterministic in (True, False):
                if reference.document["predict"]["stochastic_action"] is None and not deterministic:
                    continue
                noise = info.noise(count, rng)
                _assert_agree(reference, fast, family, "predict", obs, state, mask, deterministic=deterministic,
                              noise=noise)
            if not reference.recurrent:
                _assert_agree(reference, fast, family, "predict", obs[0], deterministic=True)
            _assert_agree(reference, fast, family, "action_probability", obs, state, mask)
            if "value" in reference.output_names:
                _assert_agree(reference, fast, family, "value", obs, state, mask)


def test_dict_observations_agree(pair):
    """A goal-conditioned (HER) file fed the dict observation SB2's HERGoalEnvWrapper flattens."""
    if "her" not in pair:
        pytest.skip("SBIF does not build HER files yet")
    reference, fast = pair["her"]
    rng = np.random.default_rng(4)
    spaces = reference.document["observation_dict"]["spaces"]
    observation = {key: rng.standard_normal((5,) + tuple(space["shape"])).astype(np.float32)
                   for key, space in spaces.items()}
    _assert_agree(reference, fast, "her", "predict", observation, deterministic=True)
    single = {key: value[0] for key, value in observation.items()}
    _assert_agree(reference, fast, "her", "predict", single, deterministic=True)


def _assert_agree(reference, fast, family, method, observation, state=None, mask=None, **kwargs):
    """The numba backend's answer to one SB2-interface call agrees with the reference's under the reference's
    error scales (SPEC section 6); integer results are identical."""
    if method == "predict":
        expected = reference.predict(observation, state, mask, **kwargs)
        actual = fast.predict(observation, state, mask, **kwargs)
    else:
        expected = getattr(reference, method)(observation, state, mask)
        actual = getattr(fast, method)(observation, state, mask)
    scales = predict_scales(reference, ErrorScales(reference.model), method, observation, state, mask,
                            kwargs.get("deterministic"), kwargs.get("noise"))
    pairs = {"predict": lambda: zip(expected, actual, (scales["action"], scales["state"])),
             "value": lambda: [(expected, actual, scales["value"])],
             "action_probability": lambda: [(expected, actual, scales["probability"])]}[method]()
    for want, got, scale in pairs:
        _assert_close(want, got, scale, family)


def _assert_close(expected, actual, scale, family):
    if isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)) and len(actual) == len(expected), family
        for e, a, s in zip(expected, actual, scale):
            _assert_close(e, a, s, family)
        return
    if expected is None:
        assert actual is None, family
        return
    expected, actual = np.asarray(expected), np.asarray(actual)
    assert expected.dtype == actual.dtype and expected.shape == actual.shape, family
    if expected.dtype.kind == "f":
        assert result_agreement(expected, actual, scale) <= 1.0, (family, expected, actual, scale)
    else:
        assert np.array_equal(expected, actual), (family, expected, actual)


def test_golden_packs_pass():
    """SB2's recorded answers, as for the NumPy runtime (with its known failures, if any)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = run_suite([GoldenSource([GOLDEN])], numba_runtime(), checks=[c for c in CHECKS if c != "op_vectors"],
                           known=KnownFailures.read(KNOWN_FAILURES))
    assert report.ok, report.render()
    counts = report.counts()
    assert counts["pass"] >= 45 and counts["fail"] == 0 and counts["fixed"] == 0
    assert_no_fallback_warnings(caught)


def zoo_files(directory):
    """The zoo models the safe exporter builds, written to `directory`."""
    from sbif.export import build_sbif
    from sbif.export.safe import describe_safe_file

    paths = []
    for algorithm in sorted(os.listdir(ZOO)):
        folder = os.path.join(ZOO, algorithm)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if not name.endswith((".zip", ".pkl")):
                continue
            try:
                sbif_file = build_sbif(describe_safe_file(os.path.join(folder, name)))
            except SbifError:
                continue  # what the safe exporter refuses (tests/test_safe_loader.py checks that part)
            paths.append(os.path.join(directory, "{}-{}.sbif".format(algorithm, os.path.splitext(name)[0])))
            sbif_file.write(paths[-1])
    return paths


def realistic_observations(space, count, rng):
    """Observations of plausible size: uniform within Box bounds at most 100 apart, N(0, 1) elsewhere. (The
    suite's N(0, 10) makes some trained networks so ill-conditioned that two float32 evaluations with different,
    equally valid summation orders, even two BLAS calls, differ by more than 1e-5.)"""
    if space["kind"] != "box":
        return sample_observations(space, count, rng)
    shape = tuple(space["shape"])
    low, high = (decode_bound(space[key], shape, "float64") for key in ("low", "high"))
    with np.errstate(invalid="ignore", over="ignore"):
        bounded = np.isfinite(low) & np.isfinite(high) & (high - low <= 100)
        values = np.where(bounded, low + rng.random((count,) + shape) * np.where(bounded, high - low, 0),
                          np.clip(rng.standard_normal((count,) + shape), low, high))
    return values.astype(space["dtype"])


def test_zoo_models_agree(tmp_path):
    """Every output of every zoo model the safe exporter builds, deterministic and noise-fed, batches of 1 and
    64: SPEC section 6 (the reference's error scales), the near-tie rule for discrete actions."""
    if not os.path.isdir(ZOO):
        if os.environ.get("CI") == "true":
            pytest.fail("../shared/zoo is missing: CI must have it")
        pytest.skip("../shared/zoo is not present on this machine")
    paths = zoo_files(str(tmp_path))
    assert len(paths) >= 6
    rng = np.random.default_rng(0)
    for path in paths:
        reference, fast = sbif.load(path, backend="numpy"), sbif.load(path, backend="numba")
        info, rules = ModelInfo(path), output_rules(reference.document)
        for count in (1, 64):
            feeds = dict(info.noise(count, rng), obs=realistic_observations(info.observation_space, count, rng))
            feeds.update(info.initial_inputs(count))
            expected, scales = ErrorScales(reference.model).run(feeds, list(rules))
            actual = fast.run(feeds)
            for name, rule in rules.items():
                result = compare(rule, expected[name], actual[name], expected, feeds, scales[name], scales)
                assert result.ok, (os.path.basename(path), name, count, result.where, result.detail)
        assert not fast.executor.fallbacks, fast.executor.fallbacks


# -- the kernels on TensorFlow's op vectors ---------------------------------------------------------------------------
VECTOR_CASES = vector_cases()


@pytest.mark.parametrize("op,case", VECTOR_CASES, ids=["{}/{}".format(op, c["name"]) for op, c in VECTOR_CASES])
def test_kernels_on_the_op_vectors(op, case):
    """Each case as a one-node graph through the lowering and the interpreter (`one_node_model`: an input whose
    first dimension is the output's is a graph input, any other a weight). Cases without a batch dimension, or of a
    dtype the interpreter has no kernel for, are skipped with the reason."""
    built = one_node_model(op, case)
    if isinstance(built, str):
        pytest.skip(built)
    model, inputs, expected, batched, outs = built
    batch = expected[0].shape[0]
    outputs = [entry["name"] for entry in model.document["outputs"]]
    lowered = program.Lowered(model)
    if lowered.unsupported:
        pytest.skip(next(iter(lowered.unsupported.values())))
    row_bytes, layout = lowered.output_layout(outputs)
    code = lowered.program(range(len(lowered.steps)), copy_out=layout)
    fed = [backend._bytes(np.ascontiguousarray(x)) for x, b in zip(inputs, batched) if b]
    fed += [backend._EMPTY] * (backend.MAX_INPUTS - len(fed))
    scratch = np.zeros(batch * lowered.scratch_bytes + 8, np.uint8)
    buffer = np.zeros(batch * row_bytes + 8, np.uint8)
    backend.compiled_kernels().execute(code, batch, 0, batch, 0, batch, lowered.weights, scratch, buffer, *fed)
    tolerance = dict(case["tolerance"], rule="ulp")
    for name, dtype, offset, size in layout:
        shape = (batch,) + tuple(outs[outputs.index(name)].shape[1:])
        actual = buffer[offset * batch:].view(dtype)[:size * batch].reshape(shape)
        result = compare(tolerance, expected[outputs.index(name)], actual, inputs={"arrays": inputs})
        assert result.ok, (name, result.where, result.detail)


@pytest.mark.parametrize("case", [case for op, case in VECTOR_CASES if op == "conv2d"],
                         ids=[case["name"] for op, case in VECTOR_CASES if op == "conv2d"])
def test_im2col_and_one_product_on_the_conv2d_vectors(case):
    """The batch path's convolution (patches as columns, one BLAS product, then the bias) on TensorFlow's
    vectors: strides, SAME padding at every edge, non-finite values."""
    from tests.test_op_vectors import decode

    x, w, b = (decode(tensor) for tensor in case["inputs"])
    expected = decode(case["outputs"][0])
    attrs = resolve_attrs(get_op("conv2d"), case.get("attrs", {}), "conv2d")
    ins = [program.Value("float32", (None,) + x.shape[1:], "input"),
           program.Value("float32", w.shape, "weight"), program.Value("float32", b.shape, "weight")]
    _, _, gemm = program.lower_conv2d(ins, [program.Value("float32", (None,) + expected.shape[1:], "slot")],
                                            attrs)
    columns = np.empty(expected.shape[:3] + (int(np.prod(w.shape[:3])),), np.float32)
    conv = gemm.conv
    kernels.im2col(np.ascontiguousarray(x), columns, conv["kernel_h"], conv["kernel_w"], conv["stride_h"],
                         conv["stride_w"], conv["pad_top"], conv["pad_left"])
    with np.errstate(all="ignore"):
        product = columns.reshape(-1, columns.shape[-1]) @ w.reshape(-1, w.shape[-1])
        actual = (product + b).reshape(expected.shape)
    result = compare(dict(case["tolerance"], rule="ulp"), expected, actual, inputs={"arrays": [x, w, b]})
    assert result.ok, (result.where, result.detail)


def check_dense_kernel(product, x, w, b):
    """A dense-product kernel, `product(x, y)` writing y = x @ w + b, against float64 within linear's bound; each
    row bit for bit the same alone as in any batch; nothing written past y; inf and NaN as IEEE says."""
    (rows, depth), width = x.shape, w.shape[1]
    buffer = np.full(rows * width + 64, 7.0, np.float32)
    y = buffer[:rows * width].reshape(rows, width)
    with np.errstate(all="ignore"):
        product(x, y)
        expected = x.astype(np.float64) @ w.astype(np.float64) + b
        scale = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)) + np.abs(b)
    assert (buffer[rows * width:] == 7.0).all()
    assert np.array_equal(np.isnan(y), np.isnan(expected))
    finite = np.isfinite(expected)
    assert np.array_equal(y[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)])
    bound = (2 * depth + 2) * 2.0 ** -24 * scale
    assert (np.abs(y[finite] - expected[finite]) <= bound[finite]).all()
    for start, count in ((0, 1), (3, 1), (2, 5), (5, 6)):
        part = np.empty((count, width), np.float32)
        with np.errstate(all="ignore"):
            product(x[start:start + count], part)
        assert np.array_equal(part, y[start:start + count], equal_nan=True)


@pytest.mark.parametrize("depth,width", [(1, 16), (4, 64), (17, 256), (64, 17), (5, 31), (64, 70), (400, 300),
                                         (0, 20)])
def test_dense_products_on_panels(depth, width):
    """The panel kernel: 4-row tiles, single rows, a partial last panel (`check_dense_kernel`)."""
    rng = np.random.default_rng(depth * 1000 + width)
    x = rng.standard_normal((11, depth)).astype(np.float32)  # two 4-row tiles and three single rows
    w = rng.standard_normal((depth, width)).astype(np.float32)
    b = rng.standard_normal((1, width)).astype(np.float32)
    if depth:
        x[9, 0], x[10, 0], w[0, 0] = np.inf, np.nan, 0.0  # inf meeting a zero weight: NaN in column 0 of row 9
    packed = program.panels(w)
    assert packed.shape == (-(-width // encoding.PANEL) * depth, encoding.PANEL)
    check_dense_kernel(lambda rows, y: kernels.dense_panels(rows, packed, b, y), x, w, b)


@pytest.mark.parametrize("depth,width", [(64, 2), (64, 1), (256, 6), (17, 3), (7, 5), (300, 15), (0, 3)])
def test_narrow_products_as_dot_products(depth, width):
    """The dot-product kernel: groups of 4 rows, single rows, depths with and without a tail of terms past the
    last whole vector (`check_dense_kernel`)."""
    rng = np.random.default_rng(depth * 1000 + width)
    x = rng.standard_normal((11, depth)).astype(np.float32)  # two 4-row groups and three single rows
    w = rng.standard_normal((depth, width)).astype(np.float32)
    if depth:
        x[9, 0], x[10, depth - 1], w[0, 0] = np.inf, np.nan, 0.0  # inf meeting a zero weight: NaN in column 0
    transposed = np.ascontiguousarray(w.T)
    check_dense_kernel(lambda rows, y: kernels.dense_dots(rows, transposed, y), x, w,
                       np.zeros((1, width), np.float32))


# -- batch path, buffers, memory --------------------------------------------------------------------------------------
def test_results_are_fresh_arrays(pair):
    _, fast = pair["mlp"]
    obs = np.zeros((3, 4), np.float32)
    first = fast.run({"obs": obs}, ["logits", "action"])
    kept = {name: value.copy() for name, value in first.items()}
    second = fast.run({"obs": obs + 1}, ["logits", "action"])
    for name in first:
        assert not np.shares_memory(first[name], second[name])
        np.testing.assert_array_equal(first[name], kept[name])


def test_steady_state_keeps_memory_flat(pair):
    """Repeated calls on one shape allocate nothing that stays: traced Python memory does not grow."""
    _, fast = pair["lstm"]
    obs = np.zeros((1, 3), np.float32)
    state = fast.initial_state
    for _ in range(50):
        fast.predict(obs, state=state)
    tracemalloc.start()
    try:
        for _ in range(200):
            fast.predict(obs, state=state)
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            fast.predict(obs, state=state)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 2048, after - before
    assert len(fast.executor._kept) <= backend.KEPT_BATCH_SIZES


def test_batch_sizes_keep_a_bounded_set_of_buffers(pair):
    _, fast = pair["dqn"]
    for rows in range(1, 3 * backend.KEPT_BATCH_SIZES):
        fast.predict(np.zeros((rows, 4), np.float32))
    assert len(fast.executor._kept) == backend.KEPT_BATCH_SIZES


# -- the single-observation path ------------------------------------------------------------------------------------
def test_single_observations_take_the_fast_path_bit_for_bit(pair):
    """Every feed-forward family answers one observation through `SingleRow` with exactly what the batch path gives
    for a batch of one (the same program), in SB2's shapes and types: a NumPy scalar for Discrete, a fresh row
    otherwise; observations of another dtype are converted as `astype` converts them."""
    fast_families = []
    for family, (_, fast) in sorted(pair.items()):
        if fast.recurrent:
            assert fast._single is None
            continue
        if fast._single is None:
            continue
        fast_families.append(family)
        space = fast.observation_space
        observations = sample_observations(space.to_json(), 6, np.random.default_rng(1))
        for obs in map(np.asarray, observations):  # (Discrete: 0-d arrays)
            single, state = fast.predict(obs, deterministic=True)
            batched = fast.predict(obs[None], deterministic=True)[0]
            assert state is None
            assert type(single) is type(batched[0]) and np.shape(single) == batched.shape[1:], family
            np.testing.assert_array_equal(single, batched[0], err_msg=family)
            if isinstance(single, np.ndarray):
                again = fast.predict(obs, deterministic=True)[0]
                assert not np.shares_memory(single, again)
            if space.kind == "box" and obs.dtype == np.float32:
                wide = obs.astype(np.float64)
                np.testing.assert_array_equal(fast.predict(wide, deterministic=True)[0],
                                              fast.predict(wide[None], deterministic=True)[0][0])
    assert {"mlp", "dqn", "sac", "td3", "ddpg"} <= set(fast_families), fast_families


def test_single_observation_errors_are_the_references(pair):
    reference, fast = pair["mlp"]
    assert fast._single is not None
    for policy in (reference, fast):
        with pytest.raises(InputError, match="observation cannot be converted to float32"):
            policy.predict(np.array(["a", "b", "c", "d"]), deterministic=True)
        with pytest.raises(InputError, match=r"unexpected observation shape \(5,\)"):
            policy.predict(np.zeros(5, np.float32), deterministic=True)


def test_threads_get_correct_results(pair):
    reference, fast = pair["sac"]
    rng = np.random.default_rng(0)
    batches = [rng.uniform(-1, 1, (rows, 3)).astype(np.float32) for rows in (1, 3, 9, 1, 40)]
    batches += [obs[0] for obs in batches[:2]]  # single observations: one arena per thread
    expected = [reference.predict(obs, deterministic=True)[0] for obs in batches]
    scales = [predict_scales(reference, ErrorScales(reference.model), "predict", obs, deterministic=True)["action"]
              for obs in batches]
    failures = []

    def work():
        for _ in range(100):
            for obs, want, scale in zip(batches, expected, scales):
                got = fast.predict(obs, deterministic=True)[0]
                if result_agreement(want, got, scale) > 1.0:
                    failures.append(got)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


# -- the compiled kernels: an extension module built once; numba's JIT where it cannot be built ----------------
def run_script(script, *arguments, environment=None):
    """The JSON that a Python child running `script` prints last."""
    output = subprocess.run([sys.executable, "-c", script] + list(arguments), capture_output=True, text=True,
                            cwd=ROOT, check=True, timeout=600, env=environment).stdout
    return json.loads(output.strip().splitlines()[-1])


WHERE_THE_KERNELS_CAME_FROM = (
    "import json, sys, warnings, numpy as np, sbif\n"
    "from sbif.runtime.numba import backend\n"
    "warnings.simplefilter('ignore')\n"
    "action, _ = sbif.load(sys.argv[1], backend='numba').predict(np.full(4, 0.5, np.float32), deterministic=True)\n"
    "found = {'origin': backend.compiled_kernels().origin, 'numba': 'numba' in sys.modules,\n"
    "         'action': action.tolist()}\n"
    "if found['origin'] == 'numba JIT':\n"
    "    from sbif.runtime.numba import kernels\n"
    "    stats = kernels.execute.stats\n"
    "    found.update(hits=sum(stats.cache_hits.values()), misses=sum(stats.cache_misses.values()))\n"
    "print(json.dumps(found))\n")


def test_a_second_process_imports_the_built_kernels_without_numba(models, pair):
    """This process built (or found) this machine's module; a new process imports it and never imports numba."""
    action, _ = pair["mlp"][1].predict(np.full(4, 0.5, np.float32), deterministic=True)
    assert backend.compiled_kernels().origin == aot.module_path()
    found = run_script(WHERE_THE_KERNELS_CAME_FROM, models["mlp"])
    assert found == {"origin": aot.module_path(), "numba": False, "action": action.tolist()}


def test_where_the_module_cannot_be_built_numba_jit_runs_the_same_kernels(models, pair, monkeypatch, tmp_path):
    """An unwritable cache (here, a path through a file): a warning says why, numba's JIT compiles the kernels,
    with the module's results bit for bit, and a second process loads them from numba's disk cache."""
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    monkeypatch.setattr(backend, "_kernels", [])
    with pytest.warns(RuntimeWarning, match=r"cannot create the kernel cache directory .* set SBIF_CACHE_DIR .*"
                                            r"numba's JIT runs the kernels instead"):
        jit = sbif.load(models["sac"], backend="numba")
    assert backend.compiled_kernels().origin == "numba JIT"
    module = pair["sac"][1]
    rng = np.random.default_rng(5)
    for rows in (1, 257):
        obs = rng.uniform(-2, 2, (rows, 3)).astype(np.float32)
        for outputs in (["action"], ["action_sample", "qf1"]):
            feeds = {"obs": obs, "noise_normal": rng.standard_normal((rows, 2)).astype(np.float32)}
            expected, got = module.run(feeds, outputs), jit.run(feeds, outputs)
            for name in outputs:
                np.testing.assert_array_equal(got[name], expected[name])
    np.testing.assert_array_equal(jit.predict(obs[0], deterministic=True)[0],
                                  module.predict(obs[0], deterministic=True)[0])
    found = run_script(WHERE_THE_KERNELS_CAME_FROM, models["mlp"], environment=dict(os.environ))
    assert found["origin"] == "numba JIT" and found["numba"], found
    assert found["hits"] >= 1 and found["misses"] == 0, found


def test_a_long_first_call_says_it_is_compiling(monkeypatch):
    """A compilation (a first call slower than COMPILE_NOTICE_SECONDS) is announced while it runs; a load from the
    cache is not."""
    monkeypatch.setattr(backend, "COMPILE_NOTICE_SECONDS", 0.05)

    def compiling(*arguments):
        time.sleep(0.5)

    def loading(*arguments):
        pass

    with pytest.warns(backend.CompileNotice, match="compiling the numba kernels of compiling for this machine"):
        assert backend._compiled(compiling, ()) is compiling
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backend._compiled(loading, ())
        time.sleep(0.1)  # past the notice's delay: it was cancelled


# -- backend selection --------------------------------------------------------------------------------------------
def test_backend_selection(models, monkeypatch):
    path = models["mlp"]
    monkeypatch.delenv("SBIF_BACKEND", raising=False)
    assert sbif.load(path).backend == "numba"
    assert sbif.load(path, backend="numpy").backend == "numpy"
    assert sbif.Policy(sbif.load(path).model).backend == "numba"  # the constructor chooses as load does
    monkeypatch.setenv("SBIF_BACKEND", "numpy")
    assert sbif.load(path).backend == "numpy"
    assert sbif.load(path, backend="numba").backend == "numba"  # an explicit backend wins
    monkeypatch.setenv("SBIF_BACKEND", "fortran")
    with pytest.raises(UnsupportedError, match="SBIF_BACKEND='fortran' names no backend"):
        sbif.load(path)
    with pytest.raises(UnsupportedError, match="unknown backend 'jax'"):
        sbif.load(path, backend="jax")


def test_without_numba(models, monkeypatch):
    """numba missing: 'auto' quietly means NumPy, 'numba' is refused with the fix."""
    monkeypatch.delenv("SBIF_BACKEND", raising=False)
    monkeypatch.setitem(sys.modules, "numba", None)
    for name in ("sbif.runtime.numba.backend", "sbif.runtime.numba.kernels", "sbif.runtime.numba.program"):
        monkeypatch.delitem(sys.modules, name)
    assert sbif.load(models["mlp"]).backend == "numpy"
    with pytest.raises(UnsupportedError, match=r"needs numba.*pip install"):
        sbif.load(models["mlp"], backend="numba")
    monkeypatch.setenv("SBIF_BACKEND", "numba")
    with pytest.raises(UnsupportedError, match="needs numba"):
        sbif.load(models["mlp"])


def test_the_numpy_path_never_imports_numba(models):
    script = ("import sys, numpy as np, sbif\n"
              "sbif.load(sys.argv[1], backend='numpy').predict(np.zeros(4, np.float32))\n"
              "assert 'numba' not in sys.modules, 'numba imported'\n")
    subprocess.run([sys.executable, "-c", script, models["mlp"]], cwd=ROOT, check=True, timeout=120)


def test_a_missing_kernel_falls_back_to_numpy_by_name(models, monkeypatch):
    monkeypatch.delitem(program.LOWERINGS, "tanh")
    reference = sbif.load(models["mlp"], backend="numpy")
    with pytest.warns(RuntimeWarning, match=r"no numba kernel for op 'tanh'.*computed by the NumPy executor"):
        fast = sbif.load(models["mlp"], backend="numba")  # at load: the single-observation path is prepared
    obs = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    action, _ = fast.predict(obs, deterministic=True)
    np.testing.assert_array_equal(action, reference.predict(obs, deterministic=True)[0])
    assert "tanh" in fast.executor.fallbacks[("action",)]


def test_errors_are_the_references(pair):
    reference, fast = pair["mlp"]
    for policy in (reference, fast):
        with pytest.raises(InputError, match=r"unexpected observation shape \(5,\)"):
            policy.predict(np.zeros(5, np.float32))
        with pytest.raises(InputError, match="missing input"):
            policy.run({}, ["action"])
        with pytest.raises(InputError, match="input 'obs' must be float32, got float64"):
            policy.run({"obs": np.zeros((2, 4))}, ["action"])
        with pytest.raises(InputError, match="unknown output"):
            policy.run({"obs": np.zeros((2, 4), np.float32)}, ["nothing"])
