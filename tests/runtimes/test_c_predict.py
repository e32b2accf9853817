"""sbif_predict, the C runtime's convenience API (runtimes/c/sbif_predict.c), against the reference's
`predict(obs, deterministic=True)` (SPEC section 5): one observation in, the deterministic action out, through a small
driver (runtimes/c/tests/predict_driver.c) built here with the Makefile's own flags, optimised and under
AddressSanitizer/UndefinedBehaviorSanitizer.

Files of every kind: SB2 families built from random weights (conformance.models: MLP with each action space and
Discrete/MultiDiscrete observations, CNN on uint8 images, VecNormalize's float64 input, LSTM), every golden pack (SB2
and SB3: the zoo's frame stack, HER, recurrent, MaskablePPO, images), an SB3-contract dict file; recurrent sequences
with resets against the reference fed its own state and mask; MaskablePPO with masks; and the refusals: wrong sizes,
masks a file does not take, values an integer input cannot hold, SB3's out-of-range indices. Integer actions must
be the reference's (near-ties of the scores excepted, as sbif.compare decides), float actions within SPEC section 6.
"""
from __future__ import annotations

import glob
import os
import subprocess
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest

from conformance.models import EXAMPLES, ModelInfo, write_model
from sbif.compare import discrete_disagreements
from sbif.format import SbifFile
from sbif.format.validate import DICT_INPUT_PREFIX
from sbif.runtime.error_scales import ErrorScales, decision_scores, predict_scales, result_agreement
from sbif.runtime.policy import Policy

from .conftest import C_DIR, GOLDEN
from .test_c_runtime import sanitizer_env, sanitizer_reports

DRIVER_SOURCE = os.path.join(C_DIR, "tests", "predict_driver.c")
ALLOCATIONS_SOURCE = os.path.join(C_DIR, "tests", "predict_allocations.c")
EXAMPLE_SOURCE = os.path.join(C_DIR, "examples", "cartpole.c")
#: gym's CartPole-v1 reward threshold: an episode this long counts as solved
CARTPOLE_SOLVED = 475
#: the linker's wrapping of the allocator, through which predict_allocations.c counts the library's allocations
WRAP_ALLOCATOR = "-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc"
#: what a deployer links (runtimes/c/Makefile builds both): the library tuned for this host, and the portable one
NATIVE_LIBRARY = "libsbif-native.a"
PORTABLE_LIBRARY = "libsbif.a"
#: observations predicted per file, one call each
STEPS = 6


# -- the drivers ----------------------------------------------------------------------------------------------------
def makefile_variables(*names: str) -> List[str]:
    """Variables of runtimes/c/Makefile as make expands them (the compiler, the host and sanitizer flags, the
    runtime's sources): the drivers are built as the runtime is."""
    result = subprocess.run(["make", "-s", "-C", C_DIR, "--eval", "print-%: ; @echo $($*)"] +
                            ["print-" + name for name in names], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    assert result.returncode == 0, result.stdout
    values = result.stdout.splitlines()
    assert len(values) == len(names), result.stdout
    return values


def compile_driver(source: str, output: str, flags: str, library: Sequence[str]) -> str:
    """Compile a driver with `flags` against `library` (object archives or sources)."""
    compiler, libs = makefile_variables("CC", "LIBS")
    command = [compiler] + flags.split() + ["-I", C_DIR, "-o", output, source] + list(library) + libs.split()
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0, " ".join(command) + "\n" + result.stdout
    return output


@pytest.fixture(scope="module")
def drivers(c_build, tmp_path_factory) -> Dict[str, str]:
    """The predict driver linked as a deployer links it, with the host-tuned library make builds ("release") or the
    portable one ("portable"), and compiled with the runtime's sources under the sanitizers ("asan"); the allocation
    counter ("allocations")."""
    directory = str(tmp_path_factory.mktemp("predict-driver"))
    host_flags, portable_flags, asan_flags, sources = makefile_variables("CFLAGS_HOST", "CFLAGS_PORTABLE",
                                                                         "CFLAGS_ASAN", "RUNTIME")
    native = [os.path.join(c_build, NATIVE_LIBRARY)]
    return {"release": compile_driver(DRIVER_SOURCE, os.path.join(directory, "predict-driver"), host_flags, native),
            "portable": compile_driver(DRIVER_SOURCE, os.path.join(directory, "predict-driver-portable"),
                                       portable_flags, [os.path.join(c_build, PORTABLE_LIBRARY)]),
            "asan": compile_driver(DRIVER_SOURCE, os.path.join(directory, "predict-driver-asan"), asan_flags,
                                   [os.path.join(C_DIR, name) for name in sources.split()]),
            "allocations": compile_driver(ALLOCATIONS_SOURCE, os.path.join(directory, "predict-allocations"),
                                          host_flags + " " + WRAP_ALLOCATOR, native)}


def converse(driver: str, model: str, commands: Sequence[str], log_dir: str) -> Tuple[List[str], int]:
    """Run the driver on `model` with `commands`: its answer lines and exit status. Under the sanitizers, nothing
    may be reported (leaks included)."""
    os.makedirs(log_dir, exist_ok=True)
    result = subprocess.run([driver, model], input="\n".join(commands) + "\n", stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=600,
                            env=dict(os.environ, **sanitizer_env(log_dir)))
    reports = sanitizer_reports(log_dir)
    assert not reports and "Sanitizer" not in result.stderr, reports or result.stderr
    return result.stdout.splitlines(), result.returncode


def words(values: np.ndarray) -> str:
    """Floats as the driver reads them (repr round-trips float32)."""
    return " ".join(repr(float(value)) for value in np.asarray(values, np.float32).reshape(-1))


def predict_command(observation: np.ndarray, mask: Optional[np.ndarray] = None) -> str:
    """The driver's command predicting `observation` (flat), through sbif_predict_masked when a mask is given."""
    flat = np.asarray(observation, np.float32).reshape(-1)
    if mask is None:
        return "predict {} {}".format(flat.size, words(flat))
    return "masked {} {} {} {}".format(mask.size, words(mask), flat.size, words(flat))


def actions_of(answers: Sequence[str]) -> List[np.ndarray]:
    """The actions of the driver's answers, each of which must be one."""
    rows = []
    for answer in answers:
        assert answer.startswith("ok"), answer
        rows.append(np.array([float(word) for word in answer.split()[1:]], np.float32))
    return rows


# -- observations and the reference ---------------------------------------------------------------------------------
def caller_observations(info: ModelInfo, count: int, rng: np.random.Generator) -> List[Any]:
    """`count` observations as a caller holds them: float32, laid out as the observation space (a dict of arrays for a
    dict space). Integer inputs get fractional parts toward zero's far side, which the conversion must truncate."""
    inputs = info.observation_inputs(count, rng)
    caller = {}
    for name, values in inputs.items():
        values = np.asarray(values, np.float64)
        if np.issubdtype(np.dtype(info.inputs[name]["dtype"]), np.integer):
            values = values + np.where(values < 0, -1.0, 1.0) * rng.uniform(0.0, 0.9, values.shape)
        caller[name] = values.astype(np.float32)
    if info.observation_space["kind"] != "dict":
        return list(caller["obs"])
    keys = [entry["key"] for entry in info.observation_space["spaces"]]
    return [{key: caller[DICT_INPUT_PREFIX + key][row] for key in keys} for row in range(count)]


def flat(observation: Any, info: ModelInfo) -> np.ndarray:
    """The observation as sbif_predict takes it: a dict's keys concatenated in the space's key order."""
    if isinstance(observation, dict):
        keys = [entry["key"] for entry in info.observation_space["spaces"]]
        return np.concatenate([np.asarray(observation[key], np.float32).reshape(-1) for key in keys])
    return np.asarray(observation, np.float32).reshape(-1)


class Reference:
    """The NumPy reference's predict and its SPEC section 6 judgement of another runtime's action."""

    def __init__(self, path: str):
        model = SbifFile.read(path)
        self.policy = Policy(model, backend="numpy")
        self.scales = ErrorScales(model)
        self.info = ModelInfo(path)
        predict = self.policy.document["predict"]
        self.distribution = predict.get("distribution")
        self.integer = np.issubdtype(np.dtype(self.info.outputs[predict["deterministic_action"]]["dtype"]),
                                     np.integer)

    def check(self, observation: Any, actual: np.ndarray, state: Any = None, mask: Any = None,
              action_masks: Any = None) -> Any:
        """Assert that `actual` (sbif_predict's flat action) is the reference's for this call; return its state."""
        expected, new_state = self.policy.predict(observation, state, mask, deterministic=True,
                                                  action_masks=action_masks)
        expected = np.asarray(expected).reshape(1, -1)
        actual = np.asarray(actual).reshape(1, -1)
        if self.integer:
            if self.distribution is None:  # greedy Q-values, ARS: no scores the file names a distribution for
                assert np.array_equal(expected, actual), (expected, actual)
            else:
                feeds = self.policy.make_feeds(observation, state, mask, action_masks=action_masks)[0]
                values, found = self.scales.run(feeds, list(self.distribution["parameters"].values()))
                scores, scales = decision_scores(self.distribution, values, found)
                assert discrete_disagreements(expected, actual.astype(np.int64), scores, scales) == 0, (expected,
                                                                                                        actual)
        else:
            scale = predict_scales(self.policy, self.scales, "predict", observation, state, mask,
                                   deterministic=True)["action"]
            assert result_agreement(expected, actual, np.reshape(scale, expected.shape)) <= 1.0, (expected, actual)
        return new_state


# -- the files ------------------------------------------------------------------------------------------------------
#: SB2 files built from random weights: every action space, the index observations, images, VecNormalize, LSTM
SB2_SPECS = {
    "mlp_discrete": EXAMPLES["mlp"],
    "mlp_box": dict(EXAMPLES["mlp"], action={"kind": "box", "shape": [2], "dtype": "float32", "low": [-1.0, 0.0],
                                             "high": [1.0, 0.5]}, seed=11),
    "mlp_multidiscrete": dict(EXAMPLES["mlp"], action={"kind": "multi_discrete", "nvec": [3, 4]}, seed=12),
    "mlp_multibinary": dict(EXAMPLES["mlp"], action={"kind": "multi_binary", "n": 3}, seed=13),
    "mlp_discrete_observations": dict(EXAMPLES["mlp"], observation={"kind": "discrete", "n": 5}, seed=14),
    "mlp_multidiscrete_observations": dict(EXAMPLES["mlp"], observation={"kind": "multi_discrete", "nvec": [3, 5]},
                                           seed=15),
    "cnn_uint8": EXAMPLES["cnn"],
    "vecnormalize": EXAMPLES["vecnormalize"],
    "dqn": EXAMPLES["dqn"],
    "sac": EXAMPLES["sac"],
    "her": EXAMPLES["her"],
    "lstm": EXAMPLES["lstm"],
}
GOLDEN_FILES = sorted(glob.glob(os.path.join(GOLDEN, "*.sbif")))


@pytest.fixture(scope="module")
def sb2_files(tmp_path_factory) -> Dict[str, str]:
    directory = str(tmp_path_factory.mktemp("sb2-models"))
    return {name: write_model(spec, directory) for name, spec in SB2_SPECS.items()}


@pytest.fixture(scope="module")
def dict_file(tmp_path_factory) -> str:
    """An SB3-contract file over a dict space (a Box key and a Discrete key): tests/runtimes/test_dict_observations'."""
    from .test_dict_observations import dict_observation_model

    path = str(tmp_path_factory.mktemp("dict") / "dict.sbif")
    dict_observation_model(np.random.default_rng(22)).write(path)
    return path


def sequence_commands(reference: Reference, observations: Sequence[Any], resets: Sequence[bool]) -> List[str]:
    """One episode-long run of commands: a reset before each step flagged in `resets`, then its prediction."""
    commands = []
    for observation, reset in zip(observations, resets):
        if reset:
            commands.append("reset")
        commands.append(predict_command(flat(observation, reference.info)))
    return commands


def check_file(path: str, driver: str, log_dir: str, seed: int = 0) -> None:
    """Feed-forward files: STEPS single observations; recurrent ones: a sequence of 3 * STEPS steps with resets, the
    reference fed its own state and the reset as its mask (SPEC 5.6)."""
    reference = Reference(path)
    rng = np.random.default_rng(seed)
    if not reference.info.recurrent:
        observations = caller_observations(reference.info, STEPS, rng)
        answers, status = converse(driver, path, [predict_command(flat(o, reference.info)) for o in observations],
                                   log_dir)
        assert status == 0
        for observation, action in zip(observations, actions_of(answers)):
            reference.check(observation, action)
        return
    observations = caller_observations(reference.info, 3 * STEPS, rng)
    resets = [False] + list(rng.random(len(observations) - 1) < 0.25)
    resets[STEPS] = True  # at least one episode boundary in every sequence
    answers, status = converse(driver, path, sequence_commands(reference, observations, resets), log_dir)
    assert status == 0
    actions = actions_of([answer for answer in answers if answer != "reset"])
    assert len(actions) == len(observations)
    state = reference.policy.initial_state_for(1)
    for step, (observation, action) in enumerate(zip(observations, actions)):
        mask = np.array([step == 0 or resets[step]])
        state = reference.check(batch_of_one(observation), action, state, mask)


def batch_of_one(observation: Any) -> Any:
    """A batch of one observation (of each key's, for a dict)."""
    if isinstance(observation, dict):
        return {key: np.asarray(value)[None] for key, value in observation.items()}
    return np.asarray(observation)[None]


# -- agreement with the reference -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SB2_SPECS))
def test_sb2_files_predict_as_the_reference(name, sb2_files, drivers, tmp_path):
    check_file(sb2_files[name], drivers["asan"], str(tmp_path / "logs"))


@pytest.mark.parametrize("library", ["release", "portable"])
@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[os.path.basename(path)[:-5] for path in GOLDEN_FILES])
def test_golden_pack_files_predict_as_the_reference(path, library, drivers, tmp_path):
    check_file(path, drivers[library], str(tmp_path / "logs"), seed=len(path))


def test_dict_observations_are_the_keys_concatenated_in_the_space_order(dict_file, drivers, tmp_path):
    answers, status = converse(drivers["asan"], dict_file, ["info"], str(tmp_path / "logs"))
    assert status == 0 and answers == ["info 4 1 0 2 obs/a 0 3 obs/b 3 1"]
    check_file(dict_file, drivers["asan"], str(tmp_path / "logs"))


#: tests/sb3_models.py's dict-observation cases of each kind: an image key, MaskablePPO, recurrent, HER's goal dicts
SB3_DICT_CASES = ["PPO-MultiInputPolicy-dict-hwc-discrete-net_arch=pi=[8],vf=[6]-share_features_extractor=False",
                  "MaskablePPO-MultiInputPolicy-dict-multidiscrete-net_arch=[8]",
                  "RecurrentPPO-MultiInputLstmPolicy-dict-multidiscrete-enable_critic_lstm=False-net_arch=[8]"
                  "-shared_lstm",
                  "DQN-MultiInputPolicy-goal-bits-discrete-HER-net_arch=[8]",
                  "SAC-MultiInputPolicy-goal-box-HER-net_arch=[8]"]


@pytest.mark.parametrize("case_id", SB3_DICT_CASES, ids=[case.split("-net_arch")[0] for case in SB3_DICT_CASES])
def test_sb3_dict_files_predict_as_the_reference(case_id, drivers, tmp_path):
    """SB3's own models (tests/sb3_models.py), saved and exported by the safe loader."""
    pytest.importorskip("stable_baselines3")
    from sbif.export import export
    from tests.sb3_models import _enumerate, save_model

    (case,) = [each for each in _enumerate() if each.id == case_id]
    path = str(tmp_path / "dict.sbif")
    export(save_model(case, str(tmp_path)), loader="safe")[0].write(path)
    check_file(path, drivers["asan"], str(tmp_path / "logs"))


def test_maskable_ppo_takes_masks_and_allows_every_action_without_one(drivers, tmp_path):
    path = os.path.join(GOLDEN, "sb3_maskableppo_multidiscrete.sbif")
    reference = Reference(path)
    rng = np.random.default_rng(5)
    observations = caller_observations(reference.info, 2 * STEPS, rng)
    masks = rng.random((len(observations), 5)) < 0.5
    masks[:STEPS] = True  # the first half: every action allowed, as without a mask
    masks[STEPS:, 0] = masks[STEPS:, 3] = False  # the rest: each component's first choice forbidden (nvec [3, 2])
    masks[STEPS:, 2] = masks[STEPS:, 4] = True  # and another allowed
    commands = [predict_command(o) for o in observations[:STEPS]]
    commands += [predict_command(o, m.astype(np.float32)) for o, m in zip(observations, masks)]
    answers, status = converse(drivers["asan"], path, commands, str(tmp_path / "logs"))
    assert status == 0
    actions = actions_of(answers)
    for observation, action in zip(observations[:STEPS], actions[:STEPS]):
        reference.check(observation, action)
    for observation, mask, action in zip(observations, masks, actions[STEPS:]):
        reference.check(observation, action, action_masks=mask)
    assert all(action[0] != 0 and action[1] != 0 for action in actions[2 * STEPS:])


def test_a_reset_starts_the_episode_again(sb2_files, drivers, tmp_path):
    """After a reset the same observations give the actions of a fresh start: the state is zeros again, even after a
    NaN observation made it NaN (which SPEC 5.6's mask alone, a multiplication by 0, would keep)."""
    path = sb2_files["lstm"]
    observations = caller_observations(ModelInfo(path), STEPS, np.random.default_rng(9))
    episode = [predict_command(o) for o in observations]
    poison = predict_command(np.full_like(observations[0], np.nan))
    answers, status = converse(drivers["asan"], path, episode + [poison, "reset"] + episode, str(tmp_path / "logs"))
    assert status == 0
    assert answers[:STEPS] == answers[STEPS + 2:] and answers[STEPS + 1] == "reset"


@pytest.mark.parametrize("name", ["demo_ppo2_cartpole", "ppo2_cnn_uint8_discrete", "a2c_mlp_zoo_framestack",
                                  "a2c_cnnlstm_uint8_box", "sb3_recurrentppo_lstm_discrete",
                                  "sb3_maskableppo_multidiscrete"])
def test_calls_allocate_nothing(name, drivers):
    """The policy's buffers and workspace are made with it: 30 calls, with resets and masks, allocate nothing."""
    result = subprocess.run([drivers["allocations"], os.path.join(GOLDEN, name + ".sbif"), "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    assert (result.returncode, result.stdout) == (0, "allocations 0\n")


def test_the_example_balances_the_pole(c_build, tmp_path):
    """runtimes/c/examples/cartpole.c, built as its comment says, drives the demo agent through CartPole-v1."""
    host_flags, = makefile_variables("CFLAGS_HOST")
    example = compile_driver(EXAMPLE_SOURCE, str(tmp_path / "cartpole"), host_flags,
                             [os.path.join(c_build, NATIVE_LIBRARY)])
    result = subprocess.run([example, os.path.join(GOLDEN, "demo_ppo2_cartpole.sbif"), "3"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    assert result.returncode == 0, result.stdout
    returns = [int(line.rsplit(" ", 1)[1]) for line in result.stdout.splitlines()]
    assert len(returns) == 3 and min(returns) >= CARTPOLE_SOLVED, result.stdout
    result = subprocess.run([example, os.path.join(GOLDEN, "ppo2_lstm_box_discrete.sbif")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    assert (result.returncode, result.stdout) == (1, "InputError: the observation has 4 elements; this policy's "
                                                     "observation space takes 5\n")


# -- refusals -------------------------------------------------------------------------------------------------------
def refusal(drivers, path: str, commands: Sequence[str], log_dir: str) -> List[str]:
    answers, status = converse(drivers["asan"], path, commands, log_dir)
    assert status == 0
    return answers


def test_wrong_sizes_are_refused_by_name(drivers, tmp_path):
    path = os.path.join(GOLDEN, "sb3_maskableppo_multidiscrete.sbif")
    answers = refusal(drivers, path, ["predict 3 0 0 0", "predict 5 0 0 0 0 0", "room 1 4 0 0 0 0",
                                      "room 3 4 0 0 0 0", "masked 4 1 1 1 1 4 0 0 0 0",
                                      "predict 4 0 0 0 0"], str(tmp_path / "logs"))
    assert answers[:5] == [
        "error InputError the observation has 3 elements; this policy's observation space takes 4",
        "error InputError the observation has 5 elements; this policy's observation space takes 4",
        "error InputError room for 1 action elements given; this policy's action has 2",
        "error InputError room for 3 action elements given; this policy's action has 2",
        "error InputError the action mask has 4 elements; this policy's has 5"]
    assert answers[5].startswith("ok ")  # a refusal leaves the policy usable


def test_a_mask_for_a_file_without_one_is_refused(drivers, tmp_path):
    answers = refusal(drivers, os.path.join(GOLDEN, "demo_ppo2_cartpole.sbif"), ["masked 2 1 1 4 0 0 0 0"],
                      str(tmp_path / "logs"))
    assert answers == ["error InputError this policy takes no action mask (the file has no predict.action_mask): "
                       "use sbif_predict"]


def test_sb3_refuses_indices_outside_the_space_and_sb2_encodes_them(sb2_files, drivers, tmp_path):
    """SPEC 5.9: under SB3 a Discrete observation outside [0, n) is an input error (after truncation toward zero, as
    SB3's astype(int64) check); under SB2 it is encoded as SB2 encodes it (one_hot's zero row), as the reference."""
    sb3 = os.path.join(GOLDEN, "sb3_trpo_mlp_discreteobs_box.sbif")
    n = ModelInfo(sb3).observation_space["n"]
    answers = refusal(drivers, sb3, ["predict 1 -1", "predict 1 {}".format(n), "predict 1 {}.5".format(n),
                                     "predict 1 -0.5", "predict 1 {}.9".format(n - 1)], str(tmp_path / "logs"))
    assert answers[:3] == ["error InputError observation element 0 (index -1) is outside its space ([0, {}))"
                           .format(n)] + ["error InputError observation element 0 (index {n}) is outside its space "
                                          "([0, {n}))".format(n=n)] * 2
    reference = Reference(sb3)
    reference.check(np.float32(-0.5), actions_of(answers[3:4])[0])
    reference.check(np.float32(n - 0.1), actions_of(answers[4:5])[0])
    sb2 = sb2_files["mlp_discrete_observations"]
    answers = refusal(drivers, sb2, ["predict 1 5", "predict 1 7"], str(tmp_path / "logs2"))
    reference = Reference(sb2)
    for value, action in zip((5, 7), actions_of(answers)):
        reference.check(np.float32(value), action)


def test_values_an_integer_input_cannot_hold_are_refused(sb2_files, drivers, tmp_path):
    """NumPy's astype leaves NaN, infinities and out-of-range values undefined (SPEC 5.1): refused, never UB."""
    path = sb2_files["mlp_multidiscrete_observations"]
    answers = refusal(drivers, path, ["predict 2 nan 0", "predict 2 0 inf", "predict 2 3e9 0", "predict 2 0 -3e9"],
                      str(tmp_path / "logs"))
    assert answers == ["error InputError observation element 0 (nan) does not fit input 'obs' (int32)",
                       "error InputError observation element 1 (inf) does not fit input 'obs' (int32)",
                       "error InputError observation element 0 (3e+09) does not fit input 'obs' (int32)",
                       "error InputError observation element 1 (-3e+09) does not fit input 'obs' (int32)"]
    images = sb2_files["cnn_uint8"]
    size = int(np.prod(ModelInfo(images).observation_space["shape"]))
    answers = refusal(drivers, images, ["predict {} 256 {}".format(size, " ".join(["0"] * (size - 1))),
                                        "predict {} -1 {}".format(size, " ".join(["0"] * (size - 1)))],
                      str(tmp_path / "logs2"))
    assert answers == ["error InputError observation element 0 (256) does not fit input 'obs' (uint8)",
                       "error InputError observation element 0 (-1) does not fit input 'obs' (uint8)"]


def linear_policy(action: str, action_space: dict) -> SbifFile:
    """An SB3-contract file of one linear layer over a Box(2) observation whose deterministic action is
    `argmax(logits)` ("argmax") or `cast(logits, float64)` ("float64")."""
    from sbif.export.graph_builder import GraphBuilder
    from sbif.format import SB3_FORMAT_VERSION

    builder = GraphBuilder()
    obs = builder.add_input("obs", "float32", [None, 2], "observation")
    builder.add_tensor("w", np.ones((2, 3), np.float32), "parameter")
    builder.add_tensor("b", np.zeros(3, np.float32), "parameter")
    builder.op("linear", [obs, "w", "b"], name="logits")
    if action == "argmax":
        builder.op("argmax", ["logits"], name="action")
    else:
        builder.op("cast", ["logits"], {"to": "float64"}, name="action")
    builder.declare_output("action", "the deterministic action")
    document = {
        "format": "sbif", "format_version": SB3_FORMAT_VERSION,
        "provenance": {"producer": "tests/runtimes/test_c_predict.py", "exporter": "live", "framework": "sb3",
                       "source": {"file_name": "generated.zip", "sha256": "0" * 64, "format": "zip"},
                       "algorithm": "PPO", "policy_class": "MlpPolicy"},
        "observation_space": {"kind": "box", "shape": [2], "dtype": "float32", "low": -1.0, "high": 1.0},
        "action_space": action_space, "tensors": builder.tensor_entries, "inputs": builder.inputs,
        "graph": builder.nodes, "outputs": builder.outputs,
        "predict": {"contract": "sb3", "deterministic_default": False, "deterministic_action": "action",
                    "stochastic_action": None}}
    return SbifFile(document, builder.tensors)


def test_actions_a_float_cannot_hold_are_refused_when_the_policy_is_made(drivers, tmp_path):
    """Integer actions convert exactly because a file whose indices could pass 2^24 is refused, as is a float64 one."""
    wide, double = str(tmp_path / "wide.sbif"), str(tmp_path / "double.sbif")
    linear_policy("argmax", {"kind": "discrete", "n": 2 ** 24 + 2}).write(wide)
    linear_policy("float64", {"kind": "box", "shape": [3], "dtype": "float64", "low": -1.0, "high": 1.0}).write(double)
    answers = [converse(drivers["asan"], path, ["info"], str(tmp_path / name)) for name, path in
               (("wide", wide), ("double", double))]
    assert answers == [(["error UnsupportedError sbif_predict returns float32 actions, exact for indices up to 2^24; "
                         "this file's int64 action 'action' may exceed that: use sbif_workspace_run"], 1),
                       (["error UnsupportedError sbif_predict returns float32 actions; this file's action 'action' is "
                         "float64: use sbif_workspace_run"], 1)]
    exact = str(tmp_path / "exact.sbif")
    linear_policy("argmax", {"kind": "discrete", "n": 2 ** 24 + 1}).write(exact)  # indices up to 2^24: exact
    assert converse(drivers["asan"], exact, ["predict 2 0.5 0.25"], str(tmp_path / "exact"))[0] == ["ok 0"]


def test_an_unusable_file_is_one_line(drivers, tmp_path):
    answers, status = converse(drivers["asan"], str(tmp_path / "missing.sbif"), [], str(tmp_path / "logs"))
    assert status == 1 and len(answers) == 1 and answers[0].startswith("error FileFormatError cannot open ")
