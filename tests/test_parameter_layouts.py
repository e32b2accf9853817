"""SB2's parameter layouts (`sbif.export.parameter_layouts`): names, shapes and order per family, and that the
builders read exactly the parameters a layout names. tests/live/test_parameter_layouts.py checks the layouts
against SB2's own `get_parameter_list()`."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from sbif.export import ModelDescription, Space, build_sbif
from sbif.export.parameter_layouts import (BIAS, DQN_TARGET, GAIN, KERNEL, LOG_STD, OFF_POLICY_TARGET, SCALAR,
                                           STATISTIC, actor_critic_cnn_layout, actor_critic_mlp_layout, ddpg_layout,
                                           dqn_layout, first_hidden_layer_output, lstm_layout, nature_cnn_layout,
                                           sac_layout, td3_layout)

BOX = Space("box", (3,), "float32", np.full(3, -1.0, "float32"), np.full(3, 1.0, "float32"))
IMAGE = Space("box", (40, 44, 2), "uint8", np.zeros((40, 44, 2), "uint8"), np.full((40, 44, 2), 255, "uint8"))
DISCRETE = Space("discrete", (), "int64", n=4)
ACTIONS = Space("box", (2,), "float32", np.full(2, -1.0, "float32"), np.full(2, 1.0, "float32"))
PROVENANCE = {"exporter": "live", "sb2_version": "2.10.2",
              "source": {"file_name": "model.zip", "sha256": "0" * 64, "format": "zip"}}


def names_and_shapes(layout):
    return [(parameter.name, parameter.shape) for parameter in layout]


def test_nature_cnn_geometry_follows_the_padding():
    """84x84 Atari frames: VALID leaves 7x7x64 = 3136 features for fc1 (the DQN paper's), SAME 11x11x64."""
    layout, width = nature_cnn_layout("model/", (84, 84, 4), "VALID")
    assert width == 512
    assert names_and_shapes(layout) == [
        ("model/c1/w:0", (8, 8, 4, 32)), ("model/c1/b:0", (1, 32, 1, 1)),
        ("model/c2/w:0", (4, 4, 32, 64)), ("model/c2/b:0", (1, 64, 1, 1)),
        ("model/c3/w:0", (3, 3, 64, 64)), ("model/c3/b:0", (1, 64, 1, 1)),
        ("model/fc1/w:0", (3136, 512)), ("model/fc1/b:0", (512,))]
    same, _ = nature_cnn_layout("model/", (84, 84, 4), "SAME")
    assert same[-2].shape == (11 * 11 * 64, 512)
    assert [parameter.reads_input for parameter in layout] == [True] + [False] * 7


def test_actor_critic_mlp_interleaves_the_split_layers_then_the_heads():
    layout = actor_critic_mlp_layout(BOX, ACTIONS, [4, {"pi": [3, 2], "vf": [5]}])
    assert names_and_shapes(layout) == [
        ("model/shared_fc0/w:0", (3, 4)), ("model/shared_fc0/b:0", (4,)),
        ("model/pi_fc0/w:0", (4, 3)), ("model/pi_fc0/b:0", (3,)),
        ("model/vf_fc0/w:0", (4, 5)), ("model/vf_fc0/b:0", (5,)),
        ("model/pi_fc1/w:0", (3, 2)), ("model/pi_fc1/b:0", (2,)),
        ("model/vf/w:0", (5, 1)), ("model/vf/b:0", (1,)),
        ("model/pi/w:0", (2, 2)), ("model/pi/b:0", (2,)), ("model/pi/logstd:0", (1, 2)),
        ("model/q/w:0", (5, 2)), ("model/q/b:0", (2,))]
    assert [p.name for p in layout if p.reads_input] == ["model/shared_fc0/w:0"]
    assert [p.role for p in layout if p.name.endswith("logstd:0")] == [LOG_STD]


def test_heads_read_the_input_when_no_layer_comes_first():
    layout = actor_critic_mlp_layout(DISCRETE, DISCRETE, [])
    assert [p.name for p in layout if p.reads_input] == ["model/vf/w:0", "model/pi/w:0", "model/q/w:0"]
    assert layout[0].shape == (4, 1)  # the one-hot observation


def test_lstm_layouts():
    legacy = lstm_layout(BOX, DISCRETE, 5, True, layers=[6])
    assert [p.name for p in legacy][:2] == ["model/pi_fc0/w:0", "model/pi_fc0/b:0"]
    lstm = OrderedDict(names_and_shapes(legacy))
    assert lstm["model/lstm1/wx:0"] == (6, 20) and lstm["model/lstm1/wh:0"] == (5, 20)
    assert [name.split("/")[-1] for name in lstm if name.startswith("model/lstm1/")] == [
        "wx:0", "wh:0", "b:0", "gx:0", "bx:0", "gh:0", "bh:0", "gc:0", "bc:0"]
    assert lstm["model/lstm1/gc:0"] == (5,) and lstm["model/vf/w:0"] == (5, 1)
    arch = lstm_layout(BOX, DISCRETE, 5, False, net_arch=[7, "lstm", 4, {"pi": [3], "vf": []}])
    assert [p.name for p in arch if p.name.endswith("/w:0") or p.name.endswith("wx:0")] == [
        "model/shared_fc0/w:0", "model/lstm1/wx:0", "model/shared_fc2/w:0", "model/pi_fc0/w:0", "model/vf/w:0",
        "model/pi/w:0", "model/q/w:0"]
    split = lstm_layout(BOX, DISCRETE, 5, False, net_arch=["lstm", {"pi": [3, 2], "vf": [4]}])
    assert [p.name for p in split if "_fc" in p.name and p.role == KERNEL] == [  # pi first, unlike mlp_extractor
        "model/pi_fc0/w:0", "model/pi_fc1/w:0", "model/vf_fc0/w:0"]
    cnn = lstm_layout(IMAGE, DISCRETE, 5, False, cnn_padding="VALID")
    assert cnn[0].name == "model/c1/w:0" and OrderedDict(names_and_shapes(cnn))["model/lstm1/wx:0"] == (512, 20)


def test_dqn_layout_copies_the_q_network():
    layout = dqn_layout(BOX, 4, [6], True, True, param_noise=True)
    names = [p.name for p in layout]
    network = [name for name in names if name.startswith("deepq/model/")]
    assert names[0] == "deepq/eps:0" and layout[0].role == SCALAR
    assert network == [
        "deepq/model/action_value/fully_connected/weights:0", "deepq/model/action_value/fully_connected/biases:0",
        "deepq/model/action_value/LayerNorm/beta:0", "deepq/model/action_value/LayerNorm/gamma:0",
        "deepq/model/action_value/fully_connected_1/weights:0", "deepq/model/action_value/fully_connected_1/biases:0",
        "deepq/model/state_value/fully_connected/weights:0", "deepq/model/state_value/fully_connected/biases:0",
        "deepq/model/state_value/LayerNorm/beta:0", "deepq/model/state_value/LayerNorm/gamma:0",
        "deepq/model/state_value/fully_connected_1/weights:0", "deepq/model/state_value/fully_connected_1/biases:0"]
    for copy in ("deepq/perturbed_model/", "deepq/adaptive_model/", "deepq/target_q_func/"):
        assert [name for name in names if name.startswith(copy)] == [
            copy + name[len("deepq/"):] for name in network]
    assert len(names) == 1 + 4 * len(network)
    assert [p.role for p in layout[1:5]] == [KERNEL, BIAS, BIAS, GAIN]


def test_off_policy_layouts():
    sac = names_and_shapes(sac_layout(BOX, 2, [4], True, learned_entropy=True))
    assert sac[:6] == [("model/pi/fc0/kernel:0", (3, 4)), ("model/pi/fc0/bias:0", (4,)),
                       ("model/pi/LayerNorm/beta:0", (4,)), ("model/pi/LayerNorm/gamma:0", (4,)),
                       ("model/pi/dense/kernel:0", (4, 2)), ("model/pi/dense/bias:0", (2,))]
    assert OrderedDict(sac)["model/values_fn/qf1/fc0/kernel:0"] == (5, 4)
    assert [name for name, _ in sac if name.startswith("target/")][0] == "target/values_fn/vf/fc0/kernel:0"
    assert ("model/log_ent_coef:0", ()) in sac
    td3 = [p.name for p in td3_layout(BOX, 2, [4], False)]
    assert [name for name in td3 if name.startswith("target/")] == ["target/" + name[len("model/"):]
                                                                    for name in td3 if name.startswith("model/")]
    ddpg = ddpg_layout(BOX, 2, [4, 3], False, param_noise=True, normalize_observations=True,
                       normalize_returns=True)
    shapes = OrderedDict(names_and_shapes(ddpg))
    assert shapes["model/qf/fc1/kernel:0"] == (4 + 2, 3) and shapes["model/qf/qf_output/kernel:0"] == (3, 1)
    assert [name for name in shapes if name.startswith("noise_adapt/")][0] == "noise_adapt/pi/fc0/kernel:0"
    assert list(shapes)[-6:] == ["input/obs_rms/runningsum:0", "input/obs_rms/runningsumsq:0", "input/obs_rms/count:0",
                                 "input/ret_rms/runningsum:0", "input/ret_rms/runningsumsq:0", "input/ret_rms/count:0"]
    assert {p.role for p in ddpg[-6:]} == {STATISTIC} and shapes["input/obs_rms/runningsum:0"] == (3,)


def random_parameters(layout):
    rng = np.random.RandomState(0)
    return OrderedDict((p.name, (rng.standard_normal(p.shape) * (0.3 if p.role in (KERNEL, BIAS) else 1.0) +
                                 (1.0 if p.role in (GAIN, STATISTIC) else 0.0)).astype(
                                     np.float64 if p.role == STATISTIC else np.float32)) for p in layout)


CASES = {
    "mlp": ("PPO2", "MlpPolicy", BOX, ACTIONS, {"net_arch": [4, {"pi": [3, 2], "vf": [5]}]},
            actor_critic_mlp_layout(BOX, ACTIONS, [4, {"pi": [3, 2], "vf": [5]}])),
    "cnn": ("A2C", "CnnPolicy", IMAGE, DISCRETE, {}, actor_critic_cnn_layout(IMAGE, DISCRETE)),
    "lstm": ("PPO2", "MlpLnLstmPolicy", BOX, DISCRETE, {"n_lstm": 5, "net_arch": [7, "lstm", {"pi": [3], "vf": [2]}]},
             lstm_layout(BOX, DISCRETE, 5, True, net_arch=[7, "lstm", {"pi": [3], "vf": [2]}])),
    "cnn_lstm": ("PPO2", "CnnLstmPolicy", IMAGE, ACTIONS, {"n_lstm": 3},
                 lstm_layout(IMAGE, ACTIONS, 3, False, cnn_padding="VALID")),
    "dqn": ("DQN", "LnMlpPolicy", BOX, DISCRETE, {}, dqn_layout(BOX, 4, [5, 3], True, True, param_noise=True)),
    "dqn_cnn": ("DQN", "CnnPolicy", IMAGE, DISCRETE, {}, dqn_layout(IMAGE, 4, [5], False, True, cnn_padding="VALID")),
    "sac_cnn": ("SAC", "LnCnnPolicy", IMAGE, ACTIONS, {}, sac_layout(IMAGE, 2, [4], True, True, cnn_padding="VALID")),
    "td3_cnn": ("TD3", "CnnPolicy", IMAGE, ACTIONS, {}, td3_layout(IMAGE, 2, [4, 3], False, cnn_padding="VALID")),
    "ddpg": ("DDPG", "MlpPolicy", BOX, ACTIONS, {}, ddpg_layout(BOX, 2, [4, 3], False, True, True, True)),
    "ddpg_cnn": ("DDPG", "LnCnnPolicy", IMAGE, ACTIONS, {"pad": "SAME"}, ddpg_layout(IMAGE, 2, [4], True, cnn_padding="SAME")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_builders_read_every_parameter_a_layout_names(case):
    """A file whose parameters are a layout builds, and its graph reads every inference parameter: the builders and
    the layouts spell the same names (a misspelt one is refused as missing or as unknown)."""
    algorithm, policy, observation, action, kwargs, layout = CASES[case]
    sbif_file = build_sbif(ModelDescription(algorithm, policy, kwargs, observation, action, random_parameters(layout),
                                            dict(PROVENANCE)))
    read = {name for node in sbif_file.document["graph"] for name in node["inputs"]}
    unread = [p.name for p in layout if p.name not in read]
    # training-only variables, and DDPG's observation statistics, which the builder folds into constants
    training = (DQN_TARGET, OFF_POLICY_TARGET, "deepq/eps:0", "deepq/perturbed_model/", "deepq/adaptive_model/",
                "noise/", "noise_adapt/", "input/", "model/log_ent_coef:0", "model/q/")
    assert [name for name in unread if not name.startswith(training)] == []


def test_first_hidden_layer_output():
    assert first_hidden_layer_output(OrderedDict(names_and_shapes(actor_critic_mlp_layout(BOX, DISCRETE, [4])))) == \
        "model/shared_fc0/add:0"
    assert first_hidden_layer_output(OrderedDict(names_and_shapes(actor_critic_cnn_layout(IMAGE, DISCRETE)))) is None
    dqn = OrderedDict(names_and_shapes(dqn_layout(BOX, 4, [5, 3], True, False)))
    assert first_hidden_layer_output(dqn) == "deepq/model/action_value/LayerNorm/batchnorm/add_1:0"
    plain = OrderedDict(names_and_shapes(dqn_layout(BOX, 4, [5], False, False)))
    assert first_hidden_layer_output(plain) == "deepq/model/action_value/fully_connected/BiasAdd:0"
    assert first_hidden_layer_output(OrderedDict(names_and_shapes(dqn_layout(BOX, 4, [], False, False)))) is None
