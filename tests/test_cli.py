"""The `sbif` command line: help, tables, JSON, exit codes and one-line errors."""
import json
import re
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


@pytest.mark.parametrize("argv", [["predict", "x.sbif"], ["predict", "x.sbif", "--obs", "[1]", "--seed", "abc"],
                                  ["bogus"], ["export"], ["conformance", "run", "--checks", "nope"], []])
def test_usage_errors_exit_1_in_one_line(capsys, argv):
    """Status 2 means only an internal error (a bug): a wrong command line is a refusal like any other."""
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert argv == [] or (len(err.strip().splitlines()) == 1 and "error:" in err and "--help" in err)


def test_python_m_conformance_is_sbif_conformance(capsys):
    """`python -m conformance ARGS` runs `sbif conformance ARGS`: the same output, a usage error the same one line
    and exit 1."""
    code, out, _ = run(capsys, "conformance", "checks")
    child = subprocess.run([sys.executable, "-m", "conformance", "checks"], capture_output=True, text=True)
    assert code == child.returncode == 0 and child.stdout == out
    wrong = subprocess.run([sys.executable, "-m", "conformance", "run", "--checks", "nope"], capture_output=True,
                           text=True)
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1 and "sbif conformance" in wrong.stderr


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
    code, out, _ = run(capsys, "predict", path, "--obs", "[[0.1, 0.2, 0.3, 0.4], [1, 1, 1, 1]]", "--deterministic",
                        "--json")
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


def test_convert_outputs_action_says_how_to_call_the_model(capsys, make_file, tmp_path):
    """Issue #19: `--outputs action` writes a model `session.run(["action"], {"obs": x})` runs alone, and the line
    says so, with the dtypes and shapes of the inputs it needs."""
    pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    path = make_file("box_inf", "discrete", "mixed")
    target = str(tmp_path / "actor.onnx")
    code, out, _ = run(capsys, "convert", path, "--to", "onnx", "--outputs", "action", "-o", target)
    assert code == 0
    assert re.fullmatch(r"wrote {} \(onnx, [0-9.]+ KiB\): session\.run\(\['action'\], \{{'obs': float32 \[B, 4\]\}}\)\n"
                        .format(re.escape(target)), out), out
    session = onnxruntime.InferenceSession(target, providers=["CPUExecutionProvider"])
    assert session.run(["action"], {"obs": np.zeros((3, 4), np.float32)})[0].shape == (3,)
    code, out, _ = run(capsys, "convert", path, "--to", "onnx", "--outputs", "stochastic_action,value", "-o", target,
                       "--json")
    summary = json.loads(out)
    assert summary["outputs"] == ["action_sample", "value"]
    assert summary["inputs"] == [{"name": "obs", "dtype": "float32", "shape": [None, 4]},
                                 {"name": "noise_uniform", "dtype": "float32", "shape": [None, 3]}]


@pytest.mark.parametrize("names, words", [("action,bogus", ["unknown output 'bogus'", "this file has the outputs"]),
                                          ("action,", ["comma-separated output names"])])
def test_convert_unknown_outputs_are_one_line_errors(capsys, make_file, tmp_path, names, words):
    code, _, err = run(capsys, "convert", make_file(), "--to", "onnx", "--outputs", names,
                       "-o", str(tmp_path / "x.onnx"))
    assert code == 1 and err.count("\n") == 1, err
    for word in words:
        assert word in err, err
    assert not (tmp_path / "x.onnx").exists()


def test_convert_to_torchscript_outputs_action(capsys, make_file, tmp_path):
    torch = pytest.importorskip("torch")
    path = make_file("box_inf", "box", "mixed")
    target = str(tmp_path / "actor.pt")
    code, out, _ = run(capsys, "convert", path, "--to", "torch", "--outputs", "action", "-o", target)
    assert code == 0 and out.endswith(": module({'obs': float32 [B, 4]}) -> action\n"), out
    module = torch.jit.load(target)
    assert module.input_names == ["obs"] and set(module({"obs": torch.zeros(2, 4)})) == {"action"}


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


# -- --obs read as hostile input (issue #18): refused with one line, nothing allocated from a declared size ------
def npy_with_header(descr, shape, payload):
    """A .npy file with a hand-written version 1.0 header, so it can declare any shape."""
    from tests.attacks.hostile_inputs import npy_bytes

    return npy_bytes(descr, shape, payload)


@pytest.mark.parametrize("content, words", [
    (npy_with_header("<f4", (4000000000, 4), b"\0" * 64), ["(4000000000, 4)", "64000000000 bytes", "64 bytes follow"]),
    (npy_with_header("<f4", (2, 4), b"\0" * 28), ["(2, 4)", "32 bytes", "28 bytes follow"]),
    (npy_with_header("<f4", (1, 4), b"\0" * 20), ["(1, 4)", "16 bytes", "20 bytes follow"]),
    (npy_with_header("<f4", (-1, 4), b"\0" * 16), ["(-1, 4)", "not a shape"]),
    (npy_with_header("<c8", (1, 4), b"\0" * 32), ["complex", "imaginary part"]),
    (npy_with_header("<M8[D]", (1, 4), b"\0" * 32), ["datetime"]),
    (npy_with_header("<m8[s]", (1, 4), b"\0" * 32), ["timedelta"]),
    (npy_with_header("|V16", (1,), b"\0" * 16), ["structured"]),
    (npy_with_header("<U1", (1, 4), b"\0" * 16), ["strings"]),
    (b"\x93NUMPY\x03\x00" + b"\0" * 60, ["version 3.0"]),
])
def test_observation_npy_is_checked_before_it_is_read(capsys, make_file, tmp_path, content, words):
    """The header's declared size must be what the file holds, and its dtype a number: a 192-byte file declaring
    (4e9, 4) made np.load try 60 GiB (an internal error); complex values lost their imaginary part silently."""
    path = str(tmp_path / "obs.npy")
    with open(path, "wb") as handle:
        handle.write(content)
    code, _, err = run(capsys, "predict", make_file("box_inf", "discrete"), "--obs", path)
    assert code == 1 and err.count("\n") == 1 and "cannot read observations" in err, err
    for word in words:
        assert word in err, err


def test_observation_npy_object_array_is_refused_without_unpickling(capsys, make_file, tmp_path):
    path = str(tmp_path / "obs.npy")
    np.save(path, np.array([[0.1, None, "x", 1]], dtype=object), allow_pickle=True)
    code, _, err = run(capsys, "predict", make_file("box_inf", "discrete"), "--obs", path)
    assert code == 1 and "Python objects" in err, err


def test_observation_npy_in_fortran_order_and_big_endian(capsys, make_file, tmp_path):
    path = make_file("box_inf", "discrete")
    observations = np.arange(8, dtype=np.float32).reshape(2, 4) / 10
    code, out, _ = run(capsys, "predict", path, "--obs", json.dumps(observations.tolist()), "--deterministic", "--json")
    expected = json.loads(out)["actions"]
    for name, array in (("fortran", np.asfortranarray(observations)), ("big", observations.astype(">f4"))):
        target = str(tmp_path / (name + ".npy"))
        np.save(target, array)
        code, out, _ = run(capsys, "predict", path, "--obs", target, "--deterministic", "--json")
        assert code == 0 and json.loads(out)["actions"] == expected, name


@pytest.mark.parametrize("text, words", [
    ("[[" + "9" * 4000 + ", 0, 0, 0]]", ["4000 characters", "longer than 100"]),
    ("[" * 100000 + "]" * 100000, ["more than 512 deep"]),
    ("[[NaN, 0, 0, 0]]", ["NaN", "not JSON"]),
    ("[[-Infinity, 0, 0, 0]]", ["-Infinity"]),
    ("[[1e400, 0, 0, 0]]", ["1e400", "beyond the range of a double"]),
    ('[["0.1", "0.2", "0.3", "0.4"]]', ["strings"]),
    ("[[0.1, null, 0.3, 0.4]]", ["None"]),
    ('{"obs": [0.1, 0.2, 0.3, 0.4]}', ["JSON object"]),
    ('{"a": 1, "a": 2}', ["twice"]),
    ("[[0.1, 0.2], [0.3]]", ["cannot read observations"]),
])
def test_observation_json_is_strict(capsys, make_file, tmp_path, text, words):
    """Inline and in a .json file: strict JSON, number literals of at most 100 characters (int() of a 4000-digit
    one was an internal error, and its time is quadratic), depth at most 512 (100k levels was a RecursionError)."""
    model = make_file("box_inf", "discrete")
    path = str(tmp_path / "obs.json")
    with open(path, "w") as handle:
        handle.write(text)
    for spec in (text, path):
        code, _, err = run(capsys, "predict", model, "--obs", spec)
        assert code == 1 and err.count("\n") == 1 and len(err) < 600, err[:600]
        for word in words:
            assert word in err, err


def test_observation_json_file_that_is_not_utf8(capsys, make_file, tmp_path):
    path = str(tmp_path / "obs.json")
    with open(path, "wb") as handle:
        handle.write(b"[[0.5, 0.0, 0.1, \xff\xfe]]")
    code, _, err = run(capsys, "predict", make_file("box_inf", "discrete"), "--obs", path)
    assert code == 1 and "not UTF-8" in err and "byte 17" in err, err


def test_observation_json_integers_beyond_int64_are_numbers(capsys, make_file):
    """A long integer literal within the bound is a JSON number like any other (read as a double)."""
    code, out, _ = run(capsys, "predict", make_file("box_inf", "discrete"), "--obs",
                       "[[" + "9" * 30 + ", 0, 0, 0]]", "--deterministic", "--json")
    assert code == 0 and len(json.loads(out)["actions"]) == 1


@pytest.mark.parametrize("text, words", [
    ("[" * 20000 + "]" * 20000, ["512 deep"]),
    ('{"net_arch": [NaN]}', ["NaN"]),
    ('{"net_arch": [' + "6" * 5000 + "]}", ["5000 characters"]),
    ('{"act_fun": "relu", "act_fun": "tanh"}', ["twice"]),
])
def test_policy_kwargs_are_read_strictly(capsys, tmp_path, text, words):
    """--policy-kwargs is JSON from the command line: read as strictly as any other (20000 levels was a
    RecursionError, an internal error; NaN was taken)."""
    from tests.attacks.sb2_like import model_data, model_parameters, write_pkl

    data = model_data()
    model = write_pkl(str(tmp_path / "model.pkl"), data, model_parameters(data))
    code, _, err = run(capsys, "export", model, "-o", str(tmp_path / "out.sbif"), "--policy-kwargs", text)
    assert code == 1 and err.count("\n") == 1 and "--policy-kwargs is not valid JSON" in err, err[:300]
    for word in words:
        assert word in err, err


def test_unwritable_outputs_and_a_negative_seed_are_errors_not_crashes(capsys, make_file, tmp_path):
    """Exit 1 with one line (these were internal errors: FileNotFoundError, numpy's ValueError)."""
    from tests.attacks.sb2_like import model_data, model_parameters, write_pkl

    data = model_data()
    model = write_pkl(str(tmp_path / "model.pkl"), data, model_parameters(data))
    missing = str(tmp_path / "no" / "such" / "dir")
    code, _, err = run(capsys, "export", model, "-o", missing + "/out.sbif")
    assert code == 1 and "cannot write" in err and err.count("\n") == 1, err
    path = make_file("box_inf", "discrete")
    code, _, err = run(capsys, "predict", path, "--obs", "[[0, 0, 0, 0]]", "-o", missing + "/actions.npy")
    assert code == 1 and "cannot write" in err and err.count("\n") == 1, err
    code, _, err = run(capsys, "predict", path, "--obs", "[[0, 0, 0, 0]]", "--stochastic", "--seed", "-5")
    assert code == 1 and "--seed must be a non-negative integer" in err, err
