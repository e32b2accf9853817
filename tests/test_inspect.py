"""`sbif inspect` as a reader sees it (issue #19, items 4 and 6): bounds as numbers of the space's dtype (uniform ones
once, long ones elided between elements), float32 values by their shortest float32 repr, the activation that
follows a layer normalization, the inputs each output needs, and how to deploy the action alone; `--json` keeps the
JSON view."""
import json
import re

import numpy as np
import pytest

from conformance.models import EXAMPLES, write_model
from sbif.cli import main
from sbif.cli.inspect import bound_text, scalar_text
from sbif.export import ModelDescription, Space, build_sbif
from tests.factories import PROVENANCE, make_parameters, rewrite_document


def inspect(capsys, *argv):
    code = main(["inspect"] + list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def line_of(text, label):
    return next(line for line in text.splitlines() if line.startswith(label))


@pytest.fixture
def example(tmp_path):
    def write(family):
        return write_model(EXAMPLES[family], str(tmp_path))

    return write


def box_model(path, low, high):
    """A PPO2 MlpPolicy file over a float32 Box of len(low) elements with the given bounds, Discrete(2) actions."""
    shape = (len(low),)
    observation = Space("box", shape, "float32", np.array(low, np.float32), np.array(high, np.float32))
    action = Space("discrete", (), "int64", n=2)
    build_sbif(ModelDescription("PPO2", "MlpPolicy", {}, observation, action,
                                make_parameters(observation, action, [4]), dict(PROVENANCE))).write(path)
    return path


def test_infinite_uniform_bounds_print_as_numbers(capsys, make_file):
    """They printed as the JSON view's strings: low="-inf" high="inf"."""
    out = inspect(capsys, make_file("box_inf", "discrete"))
    assert line_of(out, "observation").endswith("low=-inf high=inf")


def test_integer_bounds_print_as_integers(capsys, make_file):
    assert line_of(inspect(capsys, make_file("box_image", "discrete")), "observation").endswith("low=0 high=255")


def test_float32_bounds_print_by_their_shortest_float32_repr(capsys, tmp_path):
    """-1.2 in float32 is the double -1.2000000476837158, which is what printed."""
    path = box_model(str(tmp_path / "m.sbif"), [-1.2, -3.4028234663852886e38, 0.1], [1.2, 3.4028234663852886e38, 0.7])
    line = line_of(inspect(capsys, path), "observation")
    assert line.endswith("low=[-1.2, -3.4028235e+38, 0.1] high=[1.2, 3.4028235e+38, 0.7]"), line
    assert "0000" not in line


def test_long_bounds_are_elided_between_elements(capsys, tmp_path):
    """They were cut mid-token: low=["-inf",... "i...; now whole numbers, then '...'."""
    low = [-1.2 - i for i in range(40)]
    path = box_model(str(tmp_path / "m.sbif"), low, [-x for x in low])
    line = line_of(inspect(capsys, path), "observation")
    shown = re.search(r"low=\[(.*?)\] high=\[(.*?)\]$", line)
    assert shown, line
    for bound, sign in zip(shown.groups(), (1, -1)):
        elements = bound.split(", ")
        assert elements[-1] == "..." and 3 < len(elements) < 40, bound
        assert [np.float32(e) for e in elements[:-1]] == [np.float32(sign * x) for x in low[:len(elements) - 1]]
        assert elements[0] == ("-1.2" if sign == 1 else "1.2")


def test_bound_and_scalar_text():
    assert bound_text(["-inf", "-inf"], "float32") == "-inf"  # equal elements: one value
    assert bound_text([0, 1], "uint8") == "[0, 1]"
    assert bound_text(["nan", "nan"], "float64") == "nan"
    assert scalar_text(-1.2000000476837158, "float32") == "-1.2"
    assert scalar_text(0.1, "float64") == "0.1"
    assert scalar_text(2 ** 62 + 1, "int64") == str(2 ** 62 + 1)  # exact, beyond a double
    assert scalar_text(True, "bool") == "True"


def test_float32_constants_print_by_their_shortest_float32_repr(capsys, example, tmp_path):
    def change_constant(document):
        node = next(n for n in document["graph"] if n["op"] == "constant" and n["attrs"]["dtype"] == "float32")
        node["attrs"]["value"] = float(np.float32(1.2))

    path = rewrite_document(example("lstm"), str(tmp_path / "edited.sbif"), change_constant)
    out = inspect(capsys, path, "--graph")
    assert "constant(; value=1.2, dtype=float32) -> lstm1/one" in out and "1.2000000476837158" not in out


def test_activation_after_layer_norm(capsys, example):
    """LnMlpPolicy layers (linear, layer_norm, relu) showed '-' as their activation."""
    path = example("dqn")
    out = inspect(capsys, path)
    row = line_of(out, "  deepq/model/action_value/fully_connected ")
    assert row.split()[-2:] == ["layer_norm,", "relu"], row
    layers = json.loads(inspect(capsys, path, "--json"))["layers"]
    assert layers[0]["activation"] == "relu" and layers[0]["normalization"] == "layer_norm"
    assert "normalization" not in layers[2] and layers[2]["activation"] is None  # the output layer


def test_input_clipping_is_not_listed_as_postprocessing(capsys, example):
    """DDPG's observation clip is preprocessing; it was listed under postprocessing too."""
    summary = json.loads(inspect(capsys, example("ddpg"), "--json"))
    assert any("input/clipped" in step for step in summary["preprocessing"])
    assert not any("input/clipped" in step for step in summary["postprocessing"])
    assert any("clipped_action" in step for step in summary["postprocessing"])


def test_each_output_lists_the_inputs_it_needs(capsys, example):
    path = example("lstm")
    out = inspect(capsys, path)
    assert re.search(r"\n  action +int64 +\(B,\) +obs, state, mask +deterministic", out), out
    assert re.search(r"\n  action_sample +int64 +\(B,\) +obs, state, mask, noise_uniform ", out), out
    outputs = {o["name"]: o for o in json.loads(inspect(capsys, path, "--json"))["outputs"]}
    assert outputs["action"]["needs"] == ["obs", "state", "mask"]
    assert outputs["action_sample"]["needs"] == ["obs", "state", "mask", "noise_uniform"]


def test_deploy_lines_show_the_call_with_dtypes(capsys, example):
    """A VecNormalize file's obs is float64 (SB2 normalizes in float64): the deploy lines and a line of their own
    say so."""
    path = example("vecnormalize")
    out = inspect(capsys, path)
    assert "sbif convert {} --to onnx --outputs action   session.run(['action'], {{'obs': float64 [B, 3]}})".format(
        path) in out
    assert "--to torch --outputs action  module({'obs': float64 [B, 3]}) -> action" in out
    assert "obs takes raw observations, as float64" in line_of(out, "normalization")
    lstm = inspect(capsys, example("lstm"))
    assert ("session.run(['action', 'state_out'], {'obs': float32 [B, 3], 'state': float32 [B, 8], "
            "'mask': float32 [B]})") in lstm


def test_json_keeps_the_json_view(capsys, make_file):
    summary = json.loads(inspect(capsys, make_file("box_inf", "discrete"), "--json"))
    assert summary["observation_space"]["low"] == "-inf" and summary["observation_space"]["high"] == "inf"
