"""The `sbif` command line: help, tables, JSON, exit codes and one-line errors."""
import json
import subprocess
import sys

import numpy as np
import pytest

from sbif.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_lists_commands_and_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for word in ("export", "inspect", "validate", "predict", "examples"):
        assert word in out


def test_inspect_table_and_json(capsys, make_file):
    path = make_file("box_inf", "discrete", "mixed")
    code, out, _ = run(capsys, "inspect", path)
    assert code == 0
    assert "PPO2 MlpPolicy" in out and "model/pi_fc0" in out and "categorical" in out
    code, out, _ = run(capsys, "inspect", path, "--json")
    summary = json.loads(out)
    assert summary["action_space"] == {"kind": "discrete", "n": 3}
    assert [layer["name"] for layer in summary["layers"]][0] == "model/shared_fc0"
    assert summary["parameters"]["unused_by_inference"] == ["model/q/b:0", "model/q/w:0"]


def test_validate_reports_each_file_and_fails_on_any_bad_one(capsys, make_file, tmp_path):
    good = make_file()
    bad = str(tmp_path / "bad.sbif")
    with open(bad, "wb") as handle:
        handle.write(b"not a model")
    code, out, err = run(capsys, "validate", good, bad)
    assert code == 1
    assert "valid" in out and "INVALID" in err
    code, out, _ = run(capsys, "validate", good, "--json")
    assert code == 0 and json.loads(out)["valid"] is True


def test_predict_inline_json_and_npy(capsys, make_file, tmp_path):
    path = make_file("box_inf", "discrete")
    code, out, _ = run(capsys, "predict", path, "--obs", "[[0.1, 0.2, 0.3, 0.4], [1, 1, 1, 1]]", "--deterministic")
    assert code == 0 and len(json.loads(out)["actions"]) == 2
    observations = str(tmp_path / "obs.npy")
    np.save(observations, np.zeros((5, 4), np.float32))
    target = str(tmp_path / "actions.npy")
    code, out, _ = run(capsys, "predict", path, "--obs", observations, "--stochastic", "--seed", "3", "-o", target)
    assert code == 0 and np.load(target).shape == (5,)


def test_errors_are_one_line_with_nonzero_exit(capsys, make_file):
    code, _, err = run(capsys, "predict", make_file(), "--obs", "[1, 2]")
    assert code == 1 and err.count("\n") == 1 and "unexpected observation shape" in err
    code, _, err = run(capsys, "inspect", "/nonexistent.sbif")
    assert code == 1 and "cannot open" in err


def test_console_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "sbif", "--version"], stdout=subprocess.PIPE, check=True)
    assert result.stdout.decode().startswith("sbif ")


def test_convert_to_onnx_writes_a_runnable_model(capsys, make_file, tmp_path):
    pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    path = make_file("box_inf", "discrete", "mixed")
    target = str(tmp_path / "policy.onnx")
    code, out, _ = run(capsys, "convert", path, "--to", "onnx", "-o", target, "--json")
    assert code == 0 and json.loads(out)["output"] == target
    session = onnxruntime.InferenceSession(target, providers=["CPUExecutionProvider"])
    assert "obs" in [graph_input.name for graph_input in session.get_inputs()]


def test_convert_errors_are_one_line(capsys, make_file, tmp_path):
    pytest.importorskip("onnx")
    code, _, err = run(capsys, "convert", str(tmp_path / "missing.sbif"), "--to", "onnx")
    assert code == 1 and err.count("\n") == 1 and "missing.sbif" in err
    code, _, err = run(capsys, "convert", make_file(), "--to", "onnx", "-o", str(tmp_path / "no" / "dir.onnx"))
    assert code == 1 and "cannot write" in err


def test_convert_to_torchscript_loads_without_sbif(capsys, make_file, tmp_path):
    torch = pytest.importorskip("torch")
    path = make_file("box_inf", "box", "mixed")
    target = str(tmp_path / "policy.pt")
    code, out, _ = run(capsys, "convert", path, "--to", "torch", "-o", target)
    assert code == 0 and "policy.pt" in out
    module = torch.jit.load(target)  # forward() computes every output; run() the named ones, from what they need
    assert module.run({"obs": torch.zeros(2, 4)}, ["action"])["action"].shape[0] == 2
