"""A new user's path, scripted (issue #19): the wheel installed with its `onnx` extra in a fresh venv, and a real
rl-baselines-zoo model nobody here wrote, laid out as the zoo keeps it (MODEL.pkl beside its ENV/ folder with
config.yml and obs_rms.pkl), taken through the commands the README shows: `sbif export` with no flags (the zoo's
normalization found and folded, the "wrote" line saying so and that the safe loader did not verify), `sbif inspect`,
`sbif predict`, `sbif convert --to onnx --outputs action` called as a deployer calls it (`session.run(["action"],
{"obs": x})` and nothing else), and `sbif conformance run --models` on the export, with the reference runtime and
with the ONNX one.

Every command runs from the venv's own `bin/` in a directory outside the checkout, so what is tested is what pip
installs: a dependency the wheel does not declare (PyYAML, onnxruntime...) fails here. The predicted and the ONNX
actions must agree with the checkout's NumPy reference within SPEC section 6's bound; the export without
normalization (`--no-normalize`), fed the observations normalized by hand with the statistics the first export
folded, must predict the same actions bit for bit.

`slow` (`make check` leaves it out) and `wheel` (the legacy environment leaves it out), as tests/test_wheel.py.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict

import numpy as np
import pytest

from sbif.format import SbifFile
from sbif.runtime.error_scales import ErrorScales, result_agreement
from tests.wheel_support import Venv, succeeded
from tests.zoo import ZOO, require_zoo, zoo_models

pytestmark = [pytest.mark.slow, pytest.mark.wheel]

#: a zoo model trained with VecNormalize (its config.yml says `normalize: true`, its statistics are obs_rms.pkl)
MODEL = "a2c/BipedalWalker-v2.pkl"
ONNX_RUNTIME = "python -m conformance.adapters.onnx_runtime"
#: what a deployer writes: one session, the action asked for by name, the observation as the only feed; it prints
#: the model's inputs and outputs and saves the action for the test to compare
ONNX_CALL = """
import json, sys
import numpy as np
import onnxruntime

session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
action, = session.run(["action"], {"obs": np.load(sys.argv[2])})
np.save(sys.argv[3], action)
print(json.dumps({"inputs": [[i.name, i.type] for i in session.get_inputs()],
                  "outputs": [o.name for o in session.get_outputs()]}))
"""


def zoo_layout(directory: str) -> str:
    """MODEL and its ENV/ folder copied into `directory`; the model's file name there."""
    source = os.path.join(ZOO, MODEL)
    name = os.path.basename(source)
    shutil.copy(source, directory)
    shutil.copytree(os.path.splitext(source)[0], os.path.join(directory, os.path.splitext(name)[0]))
    return name


def raw_observations(exported: SbifFile, rows: int) -> np.ndarray:
    """Observations as the environment gives them, around the statistics the export folded (so that the normalized
    values the network sees are spread, not all clipped), float64 as the folded model takes them."""
    mean, std = exported.tensors["sbif/vecnormalize/mean"], exported.tensors["sbif/vecnormalize/std"]
    return mean + std * np.random.default_rng(19).standard_normal((rows, mean.size))


def normalized_by_hand(exported: SbifFile, observations: np.ndarray) -> np.ndarray:
    """VecNormalize's normalization, with the statistics the export folded: clip((obs - mean) / std, -c, c)."""
    clip = exported.document["provenance"]["vecnormalize"]["clip_obs"]
    mean, std = exported.tensors["sbif/vecnormalize/mean"], exported.tensors["sbif/vecnormalize/std"]
    return np.clip((observations - mean) / std, -clip, clip)


def agrees_with_the_reference(path: str, observations: np.ndarray, actions: np.ndarray) -> bool:
    """Whether `actions` are the checkout's NumPy reference's deterministic actions for `observations`, within
    SPEC section 6's bound (the venv's NumPy may round its products differently from the checkout's)."""
    values, scales = ErrorScales(SbifFile.read(path)).run({"obs": observations}, ["action"])
    return result_agreement(values["action"], actions, scales["action"]) <= 1.0


def conformance_report(venv: Venv, *options: str) -> Dict[str, Any]:
    report = json.loads(succeeded(venv.run("sbif", "conformance", "run", "--json", *options)).stdout)
    assert report["ok"], report
    return report


def test_a_new_user_exports_inspects_predicts_converts_and_checks_a_zoo_model(wheel, tmp_path):
    require_zoo([model for model in zoo_models() if model == MODEL])
    venv = Venv(str(tmp_path))
    venv.install(wheel + "[onnx]")
    model = zoo_layout(venv.cwd)
    stem = os.path.splitext(model)[0]
    exported_name = stem + ".sbif"
    exported_path = os.path.join(venv.cwd, exported_name)

    # export with no flags: the zoo's normalization is found, folded and named, and the status is honest
    done = succeeded(venv.run("sbif", "export", model))
    assert done.stderr == ""
    wrote, *notes = done.stdout.splitlines()  # the wrote line, then what was folded and the status, one a line
    assert wrote.startswith("wrote {} (A2C MlpPolicy, ".format(exported_name)), done.stdout
    folded = "folded observation normalization from {} ({} says normalize: true)".format(
        os.path.join(stem, "obs_rms.pkl"), os.path.join(stem, "config.yml"))
    assert any(note.strip() == folded for note in notes), done.stdout
    assert notes[-1].strip().startswith("not verified: safe loader"), done.stdout
    exported = SbifFile.read(exported_path)

    # inspect: the model, the float64 observation input the folded normalization takes, and how to deploy it
    text = succeeded(venv.run("sbif", "inspect", exported_name)).stdout
    assert "A2C MlpPolicy" in text and "normalization" in text, text
    assert "sbif convert {} --to onnx --outputs action".format(exported_name) in text, text
    summary = json.loads(succeeded(venv.run("sbif", "inspect", exported_name, "--json")).stdout)
    assert summary["provenance"]["vecnormalize"]["clip_obs"] == 10.0
    [observation_input] = [item for item in summary["inputs"] if item["kind"] == "observation"]
    assert [observation_input[key] for key in ("name", "dtype", "shape")] == ["obs", "float64", [None, 24]]

    # predict: a batch from .npy, and one observation inline, on raw environment observations
    observations = raw_observations(exported, 64)
    np.save(os.path.join(venv.cwd, "obs.npy"), observations)
    succeeded(venv.run("sbif", "predict", exported_name, "--obs", "obs.npy", "--deterministic", "-o", "actions.npy"))
    predicted = np.load(os.path.join(venv.cwd, "actions.npy"))
    assert predicted.shape == (64, 4) and predicted.dtype == np.float32
    assert agrees_with_the_reference(exported_path, observations, predicted)
    succeeded(venv.run("sbif", "predict", exported_name, "--obs", json.dumps(observations[0].tolist()),
                       "--deterministic", "-o", "one.npy"))
    one = np.load(os.path.join(venv.cwd, "one.npy"))
    assert one.shape == (4,) and agrees_with_the_reference(exported_path, observations[:1], one[None])

    # the same model exported without normalization, fed the observations normalized by hand, acts the same
    done = succeeded(venv.run("sbif", "export", model, "--no-normalize", "-o", "unnormalized.sbif"))
    assert "--no-normalize" in done.stderr and "obs_rms.pkl" in done.stderr, done.stderr
    assert "folded" not in done.stdout, done.stdout
    np.save(os.path.join(venv.cwd, "normalized.npy"), normalized_by_hand(exported, observations))
    succeeded(venv.run("sbif", "predict", "unnormalized.sbif", "--obs", "normalized.npy", "--deterministic",
                       "-o", "unnormalized_actions.npy"))
    assert np.array_equal(np.load(os.path.join(venv.cwd, "unnormalized_actions.npy")), predicted)

    # convert for deployment: the action alone, called with the observation alone
    converted = succeeded(venv.run("sbif", "convert", exported_name, "--to", "onnx", "--outputs", "action")).stdout
    assert "session.run(['action'], {'obs': float64 [B, 24]})" in converted, converted
    with open(os.path.join(venv.cwd, "onnx_call.py"), "w", encoding="utf-8") as handle:
        handle.write(ONNX_CALL)
    called = json.loads(succeeded(venv.run("python", "onnx_call.py", stem + ".onnx", "obs.npy",
                                           "onnx_actions.npy")).stdout)
    assert called == {"inputs": [["obs", "tensor(double)"]], "outputs": ["action"]}
    onnx_actions = np.load(os.path.join(venv.cwd, "onnx_actions.npy"))
    assert onnx_actions.dtype == np.float32
    assert agrees_with_the_reference(exported_path, observations, onnx_actions)

    # conformance: everything shipped and the export, on the reference runtime; the export on the ONNX runtime
    report = conformance_report(venv, "--models", exported_name)
    checked = {result["check"]: result["status"] for result in report["results"] if result["model"] == exported_name}
    assert checked["deterministic"] == checked["predict_api"] == "pass", checked
    assert {"reader_refusal", "op_vectors"} <= {result["check"] for result in report["results"]}
    report = conformance_report(venv, "--models", exported_name, "--runtime", ONNX_RUNTIME, "-k", exported_name)
    checked = {result["check"]: result["status"] for result in report["results"]}
    assert checked["deterministic"] == "pass" and set(checked) >= {"deterministic", "sampling"}, checked
