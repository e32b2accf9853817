"""Dict observation spaces (format version 2, SPEC sections 3.2 and 5.9) end to end: a file whose observation inputs
are obs/KEY, one per key of the dict space, loads and runs in every runtime (the NumPy reference, numba, C, Node,
ONNX, TorchScript) with each key's input fed by its name, and every one gives what NumPy computes from the file's
tensors; every dict case SB3 builds (tests/sb3_models.py), exported by the safe loader, runs in C and Node as in the
reference within SPEC section 6. The readers' refusals of broken dict files are the reader-refusal corpus's
(conformance/malformed, files 104-113) and the dict cases of tests/runtimes/test_c_runtime.py's VERSION_2; here, the
messages of the refusals the schema does not make are the reference's word for word in C and Node too."""
from __future__ import annotations

import os
import re
import shutil
from typing import Dict

import numpy as np
import pytest

from conformance.data import MALFORMED_FILES, shipped
from conformance.malformed import read_manifest
from conformance.protocol import ProcessRuntime, PythonRuntime
from sbif.export.graph_builder import GraphBuilder
from sbif.format import SB3_FORMAT_VERSION, SbifFile
from sbif.format.validate import DICT_INPUT_PREFIX

from .test_transpose import NODE_RUNTIME, ROOT, dyadic, runtimes

#: the dict space's keys: a Box of BOX_SIZE floats in [-1, 1] and a Discrete of CHOICES values
BOX_SIZE, CHOICES, ACTIONS = 3, 4, 2
DICT_SPACE = {"kind": "dict", "spaces": [
    {"key": "a", "space": {"kind": "box", "shape": [BOX_SIZE], "dtype": "float32", "low": -1.0, "high": 1.0}},
    {"key": "b", "space": {"kind": "discrete", "n": CHOICES}}]}
OUTPUTS = ["logits", "value", "action"]


def dict_observation_model(rng: np.random.Generator) -> SbifFile:
    """obs/a float32 [B, 3] and obs/b int32 [B] (one-hot) concatenated, then a linear policy head (logits, their
    argmax) and a linear value head: SB3's CombinedExtractor over a Box and a Discrete key, without its MLP."""
    builder = GraphBuilder()
    a = builder.add_input(DICT_INPUT_PREFIX + "a", "float32", [None, BOX_SIZE], "observation")
    b = builder.add_input(DICT_INPUT_PREFIX + "b", "int32", [None], "observation")
    one_hot = builder.op("one_hot", [b], {"depth": CHOICES}, name="features/b")
    features = builder.op("concat", [a, one_hot], {"axis": 1}, name="features")
    width = BOX_SIZE + CHOICES
    for head, size in (("action_net", ACTIONS), ("value_net", 1)):
        builder.add_tensor(head + "/w", dyadic(rng, [width, size]), "parameter")
        builder.add_tensor(head + "/b", dyadic(rng, [size]), "parameter")
    builder.op("linear", [features, "action_net/w", "action_net/b"], name="logits")
    builder.op("argmax", ["logits"], name="action")
    builder.op("linear", [features, "value_net/w", "value_net/b"], name="value/column")
    builder.op("squeeze", ["value/column"], {"axis": 1}, name="value")
    for name, description in (("logits", "the action logits"), ("value", "the value"),
                              ("action", "the deterministic action")):
        builder.declare_output(name, description)
    document = {
        "format": "sbif", "format_version": SB3_FORMAT_VERSION,
        "provenance": {"producer": "tests/runtimes/test_dict_observations.py", "exporter": "live",
                       "framework": "sb3", "source": {"file_name": "generated.zip", "sha256": "0" * 64,
                                                      "format": "zip"},
                       "algorithm": "PPO", "policy_class": "MultiInputPolicy"},
        "observation_space": DICT_SPACE, "action_space": {"kind": "discrete", "n": ACTIONS},
        "tensors": builder.tensor_entries, "inputs": builder.inputs, "graph": builder.nodes,
        "outputs": builder.outputs,
        "predict": {"contract": "sb3", "deterministic_default": False, "deterministic_action": "action",
                    "stochastic_action": None},
    }
    return SbifFile(document, builder.tensors)


def numpy_answer(model: SbifFile, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The outputs computed directly from the file's tensors (every product and sum is exact: `dyadic`)."""
    t = model.tensors
    features = np.concatenate([feeds["obs/a"], np.eye(CHOICES, dtype=np.float32)[feeds["obs/b"]]], axis=1)
    logits = features @ t["action_net/w"] + t["action_net/b"]
    return {"logits": logits, "value": (features @ t["value_net/w"] + t["value_net/b"])[:, 0],
            "action": np.argmax(logits, axis=1).astype(np.int64)}


@pytest.fixture(scope="module")
def dict_model(tmp_path_factory):
    """(path, model, feeds of 9 rows, the expected outputs)."""
    rng = np.random.default_rng(2121)
    model = dict_observation_model(rng)
    path = str(tmp_path_factory.mktemp("dict_observations") / "dict_observation.sbif")
    model.write(path)
    feeds = {"obs/a": dyadic(rng, [9, BOX_SIZE]), "obs/b": rng.integers(0, CHOICES, 9).astype(np.int32)}
    return path, model, feeds, numpy_answer(model, feeds)


def test_a_dict_observation_file_runs_in_every_runtime_as_numpy_computes_it(dict_model, c_runtime):
    path, _, feeds, expected = dict_model
    assert len(set(expected["action"].tolist())) == ACTIONS  # both actions occur: the policy head is exercised
    found = runtimes(c_runtime)
    assert {"numpy", "c"} <= set(found)
    for name, runtime in found.items():
        assert runtime.load(path).status == "loaded", name
        answer = runtime.run(path, feeds, OUTPUTS)
        assert answer.ok, (name, answer)
        for output in OUTPUTS:
            np.testing.assert_array_equal(answer.outputs[output], expected[output], err_msg="{} {}".format(
                name, output))


def test_each_key_is_fed_by_its_own_name(dict_model, c_runtime):
    """The runtimes read obs/b itself: another Discrete value changes the answer as the one-hot says, and a feed
    without obs/b is refused naming it (no runtime falls back on an input named obs)."""
    path, model, feeds, _ = dict_model
    shifted = dict(feeds, **{"obs/b": (feeds["obs/b"] + 1) % CHOICES})
    expected = numpy_answer(model, shifted)
    assert not np.array_equal(expected["logits"], numpy_answer(model, feeds)["logits"])
    for name, runtime in runtimes(c_runtime).items():
        answer = runtime.run(path, shifted, ["logits"])
        assert answer.ok, (name, answer)
        np.testing.assert_array_equal(answer.outputs["logits"], expected["logits"], err_msg=name)
        missing = runtime.run(path, {"obs/a": feeds["obs/a"]}, ["logits"])
        assert missing.status == "errored" and "obs/b" in missing.message, (name, missing)


def test_keys_of_different_batch_sizes_are_refused(dict_model, c_runtime):
    """SB3's obs_to_tensor needs every key to give the same number of rows (SPEC section 5.9); at the graph's level
    the observation inputs are batched inputs, all of one batch size: every runtime refuses 2 rows of obs/a with 3 of
    obs/b, and C and Node as the reference words it."""
    path, _, feeds, _ = dict_model
    uneven = {"obs/a": feeds["obs/a"][:2], "obs/b": feeds["obs/b"][:3]}
    words = re.compile(r"input .obs/[ab]. has batch size [23] but another input has [23]")
    node = node_runtime()
    try:
        for name, runtime in dict(runtimes(c_runtime), c=c_runtime, node=node).items():
            answer = runtime.run(path, uneven, ["logits"])
            assert answer.status == "errored", (name, answer)
            if name in ("numpy", "c", "node"):
                assert words.search(answer.message), (name, answer)
    finally:
        node.close()


def sb3_dict_cases():
    """The ids of tests/sb3_models.py's cases whose observations are dicts (MultiInputPolicy, HER's goal dicts)."""
    try:
        from tests.sb3_models import _enumerate
    except ImportError:  # no SB3 here: the test below is skipped
        return []
    return [case.id for case in _enumerate() if "MultiInput" in case.policy]


def every_input(document: dict, rows: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """A feed of `rows` rows for every graph input: each key's observations drawn from its space (sbif.compare's
    sampler) in its input's dtype, noise from its distribution, states N(0, 1), episode starts 0 or 1, action masks
    allowing at least the first action."""
    from sbif.compare import sample_observations

    spaces = {DICT_INPUT_PREFIX + entry["key"]: entry["space"] for entry in document["observation_space"]["spaces"]}
    feeds = {}
    for entry in document["inputs"]:
        shape, dtype = [rows] + entry["shape"][1:], entry["dtype"]
        if entry["kind"] == "observation":
            value = np.asarray(sample_observations(spaces[entry["name"]], rows, rng)).reshape(shape)
        elif entry["kind"] == "noise" and entry["distribution"] == "uniform":
            value = rng.random(shape)
        elif entry["kind"] in ("noise", "state"):
            value = rng.standard_normal(shape)
        elif entry["kind"] == "action_mask":
            value = rng.random(shape) < 0.7
            value[:, 0] = True
        else:
            value = rng.integers(0, 2, shape)
        feeds[entry["name"]] = value.astype(dtype)
    return feeds


@pytest.mark.slow  # a sweep: 20 SB3 models built, saved and exported, about 35 s
@pytest.mark.parametrize("case_id", sb3_dict_cases())
def test_sb3_dict_exports_run_in_c_and_node_as_in_the_reference(case_id, c_runtime, tmp_path):
    """Every dict-observation case SB3 builds (tests/sb3_models.py), exported by the safe loader: C and Node give
    the reference's outputs within SPEC section 6 (integer outputs exactly), each key's observations fed by name;
    Node leaves out the outputs that need an op it lacks."""
    pytest.importorskip("stable_baselines3")
    from conformance.models import ModelInfo
    from sbif.export import export
    from sbif.runtime.error_scales import ErrorScales, result_agreement
    from tests.sb3_models import _enumerate, save_model

    (case,) = [each for each in _enumerate() if each.id == case_id]
    sbif_file = export(save_model(case, str(tmp_path)), loader="safe")[0]
    path = str(tmp_path / "dict.sbif")
    sbif_file.write(path)
    info = ModelInfo(path)
    feeds = every_input(sbif_file.document, 7, np.random.default_rng(2121))
    expected, scales = ErrorScales(sbif_file).run(feeds, list(info.outputs))
    node = node_runtime()
    try:
        for runtime in (c_runtime, node):
            outputs = sorted(name for name in info.outputs if set(info.ops_for([name])) <= set(runtime.ops))
            assert outputs or runtime is node, case_id
            if not outputs:
                continue
            answer = runtime.run(path, feeds, outputs)
            assert answer.ok, (runtime.name, answer)
            for name in outputs:
                if info.rules[name]["rule"] == "float":
                    assert result_agreement(expected[name], answer.outputs[name], scales[name]) <= 1.0, name
                else:
                    np.testing.assert_array_equal(answer.outputs[name], expected[name], err_msg=name)
    finally:
        node.close()


#: the corpus's refusals of dict observation files and of provenance.vecnormalize.keys made after the schema
#: (sbif/format/validate.py's words), by file name
DICT_REFUSALS = [entry["file"] for entry in read_manifest(shipped(MALFORMED_FILES))
                 if entry["error_class"] is not None and ("dict_observation" in entry["file"] or
                                                          "vecnormalize" in entry["file"])]


def test_the_corpus_has_the_dict_refusals():
    assert len(DICT_REFUSALS) == 14, DICT_REFUSALS


def node_runtime():
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the JavaScript example runtime cannot run")
    return ProcessRuntime(NODE_RUNTIME, cwd=ROOT)


@pytest.mark.parametrize("name", DICT_REFUSALS)
def test_c_and_node_refuse_a_broken_dict_file_in_the_reference_s_words(c_runtime, name):
    path = os.path.join(shipped(MALFORMED_FILES), name)
    expected = PythonRuntime().load(path)
    assert expected.error_class == "DocumentError" and "schema violation" not in expected.message, expected
    node = node_runtime()
    try:
        for runtime in (c_runtime, node):
            answer = runtime.load(path)
            assert (answer.error_class, answer.message) == (expected.error_class, expected.message), answer
    finally:
        node.close()
