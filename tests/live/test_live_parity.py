"""The live loader loads what the safe loader reads (issue #19, item 5).

SB2 itself cannot unpickle two kinds of file the safe loader exports: rl-baselines-zoo models whose policy class
lives in the zoo's `utils` module (not installable), and DDPG pickles of SB2 < 2.6 that refer to the deleted
`stable_baselines.ddpg.memory` module. The live loader installs, only while SB2 unpickles, the stand-ins the
safe loader infers, so those files are verified against SB2 too. Here such files are made from scratch (the
class in a `utils` module that is then removed from `sys.modules` and `sys.path`; the memory reference pickled
with a module registered under that name), then exported live, checked against SB2 (the exporter's own
verification) and against the safe loader's document, and `sys.modules` is checked for leftovers. Also: `--algo`
in any case, and the progress the live loader reports.
"""
import os
import sys
import types
from contextlib import contextmanager

import cloudpickle
import numpy as np
import pytest

from sbif.cli import main
from sbif.errors import ExportError, SbifError
from sbif.export import exporter, live
from sbif.export.exporter import export
from sbif.export.live import load_sb2_model, quiet
from sbif.export.safe import describe_safe_file
from tests.zoo import ZOO, require_zoo, zoo_models

from . import dqn_models, off_policy_models, sb2_models
from .agreement import assert_report_agrees

pytestmark = [pytest.mark.filterwarnings("ignore:.*action probabilit.*:UserWarning")]

#: The zoo's custom policies (rl-baselines-zoo utils/utils.py), plus ones the safe loader's tables do not know,
#: whose layers it reads off the parameters and whose activation off the file's policy_kwargs (one recurrent).
UTILS_SOURCE = '''
from stable_baselines.common.policies import FeedForwardPolicy as BasePolicy, LstmPolicy
from stable_baselines.deepq.policies import FeedForwardPolicy
from stable_baselines.sac.policies import FeedForwardPolicy as SACPolicy
from stable_baselines.td3.policies import FeedForwardPolicy as TD3Policy


class CustomDQNPolicy(FeedForwardPolicy):
    def __init__(self, *args, **kwargs):
        super(CustomDQNPolicy, self).__init__(*args, **kwargs, layers=[64], layer_norm=True, feature_extraction="mlp")


class CustomMlpPolicy(BasePolicy):
    def __init__(self, *args, **kwargs):
        super(CustomMlpPolicy, self).__init__(*args, **kwargs, layers=[16], feature_extraction="mlp")


class CustomSACPolicy(SACPolicy):
    def __init__(self, *args, **kwargs):
        super(CustomSACPolicy, self).__init__(*args, **kwargs, layers=[256, 256], feature_extraction="mlp")


class NarrowTD3Policy(TD3Policy):
    def __init__(self, *args, **kwargs):
        super(NarrowTD3Policy, self).__init__(*args, **kwargs, layers=[32, 16], feature_extraction="mlp")


class RecurrentPolicy(LstmPolicy):
    def __init__(self, *args, **kwargs):
        super(RecurrentPolicy, self).__init__(*args, **kwargs, n_lstm=8, layers=[8],
                                              feature_extraction="mlp")


class UnknownActivationPolicy(SACPolicy):
    def __init__(self, *args, **kwargs):
        super(UnknownActivationPolicy, self).__init__(*args, **kwargs, layers=[8], feature_extraction="mlp")
'''
#: Modules a stand-in may create: none may outlive a load.
STAND_IN_MODULES = ("utils", "utils.utils", "stable_baselines.ddpg.memory")


def module_state():
    """The entries of STAND_IN_MODULES in sys.modules, by identity."""
    return {name: id(sys.modules[name]) for name in STAND_IN_MODULES if name in sys.modules}


@contextmanager
def importable_utils(directory, layout):
    """The zoo's `utils` importable from `directory` while the block runs: a module `utils.py` ('module'), or a
    package `utils/` whose classes live in `utils/utils.py` ('package'). Removed from sys.modules and sys.path
    afterwards, so the saved files name a module this interpreter no longer has."""
    if layout == "module":
        (directory / "utils.py").write_text(UTILS_SOURCE)
    else:
        (directory / "utils").mkdir()
        (directory / "utils" / "__init__.py").write_text("from .utils import *  # noqa\n")
        (directory / "utils" / "utils.py").write_text(UTILS_SOURCE)
    sys.path.insert(0, str(directory))
    try:
        import utils

        yield utils
    finally:
        sys.path.remove(str(directory))
        for name in ("utils", "utils.utils"):
            sys.modules.pop(name, None)


def make_model(algorithm, policy_class):
    """An untrained model of `algorithm` with random weights and the given (zoo) policy class."""
    if algorithm == "DQN":
        return dqn_models.make_dqn(policy_class, "box", seed=3)
    if algorithm in ("SAC", "TD3"):
        kwargs = {"act_fun": off_policy_models.ACTIVATIONS["elu"]} if policy_class.__name__ == "NarrowTD3Policy" \
            else {}
        return off_policy_models.make_model(algorithm, policy_class, "box", "box3", seed=4, policy_kwargs=kwargs)
    kwargs = {"act_fun": sb2_models.ACTIVATIONS["relu"]} if policy_class.__name__ == "RecurrentPolicy" else {}
    return sb2_models.make_model(algorithm, "box", "discrete", 0, seed=5, policy=policy_class, policy_kwargs=kwargs)


def save_both(model, directory):
    """The model as SB2's .zip and as the legacy cloudpickle .pkl the zoo ships."""
    zip_path = sb2_models.save(model, directory, "model")
    pkl_path = os.path.join(str(directory), "model.pkl")
    with quiet():
        model.save(pkl_path, cloudpickle=True)
    return {"zip": zip_path, "pkl": pkl_path}


def assert_sb2_alone_fails(path, missing):
    """SB2 without the stand-ins cannot unpickle `path` (what the live loader did before): the test is real."""
    with quiet(), pytest.raises(ImportError, match=missing):
        live.import_sb2().common.base_class.BaseRLModel._load_from_file(path)


def assert_live_matches_safe(path, algorithm=None, **options):
    """Live export (verified against SB2 by the exporter) and safe export build the same document."""
    before = module_state()
    live_file, report = export(path, algorithm=algorithm, loader="live", **options)
    assert module_state() == before, "a stand-in module outlived the load"
    assert_report_agrees(report)
    safe_file, _ = export(path, algorithm=algorithm, loader="safe", **options)
    strip = {"exporter": None, "sb2_version": None}
    assert dict(live_file.document, provenance=dict(live_file.document["provenance"], **strip)) == \
        dict(safe_file.document, provenance=dict(safe_file.document["provenance"], **strip))
    for name in safe_file.tensors:
        np.testing.assert_array_equal(live_file.tensors[name], safe_file.tensors[name])
    return live_file


@pytest.mark.parametrize("algorithm,class_name,layout", [
    ("DQN", "CustomDQNPolicy", "module"),
    ("SAC", "CustomSACPolicy", "package"),
    ("PPO2", "CustomMlpPolicy", "module"),
    ("A2C", "CustomMlpPolicy", "package"),
    ("TD3", "NarrowTD3Policy", "module"),
    ("A2C", "RecurrentPolicy", "module"),
])
def test_policy_class_from_the_zoos_absent_utils_module(algorithm, class_name, layout, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    with importable_utils(code, layout) as utils:
        files = save_both(make_model(algorithm, getattr(utils, class_name)), tmp_path)
    for path in files.values():
        assert_sb2_alone_fails(path, "utils")
        document = assert_live_matches_safe(path).document
        assert document["provenance"]["policy_class"] == class_name
    model, _ = load_sb2_model(files["pkl"])
    assert model.policy.__name__ == class_name and model.policy.__module__ == (
        "utils" if layout == "module" else "utils.utils")


def test_her_over_sac_with_a_utils_policy_class(tmp_path):
    """HER: the stand-in derives from the policy base of the algorithm HER wraps (SAC's FeedForwardPolicy)."""
    from .test_her import GoalEnv

    code = tmp_path / "code"
    code.mkdir()
    with importable_utils(code, "module") as utils:
        with quiet():
            model = sb2_models.sb2.HER(utils.CustomSACPolicy, GoalEnv(sb2_models.gym.spaces.Box(
                -2.0, 1.0, (2,), np.float32)), sb2_models.sb2.SAC, seed=0)
            sb2_models.randomize(model.model, 0)
        path = sb2_models.save(model, tmp_path, "her")
    assert_sb2_alone_fails(path, "utils")
    document = assert_live_matches_safe(path).document
    assert document["provenance"]["policy_class"] == "CustomSACPolicy"
    assert document["provenance"]["policy_kwargs"]["layers"] == [256, 256]


def test_a_real_utils_module_without_the_class_gets_it_only_while_loading(tmp_path):
    """A user's own `utils` module on the path (a common name) is not the zoo's: the stand-in class is set on it
    while SB2 loads, and removed afterwards."""
    code = tmp_path / "code"
    code.mkdir()
    with importable_utils(code, "module") as utils:
        path = save_both(make_model("SAC", utils.CustomSACPolicy), tmp_path)["pkl"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "utils.py").write_text("HELPER = 1\n")
    sys.path.insert(0, str(other))
    try:
        import utils

        assert_live_matches_safe(path)
        assert sys.modules["utils"] is utils and not hasattr(utils, "CustomSACPolicy")
    finally:
        sys.path.remove(str(other))
        sys.modules.pop("utils", None)


def test_a_utils_class_the_safe_loader_cannot_infer_is_a_clear_error(tmp_path):
    """A `utils` class whose activation neither the file nor the safe loader's tables tell: one line saying so."""
    code = tmp_path / "code"
    code.mkdir()
    with importable_utils(code, "module") as utils:
        path = save_both(make_model("SAC", utils.UnknownActivationPolicy), tmp_path)["zip"]
    before = module_state()
    with pytest.raises(ExportError, match=r"'utils\.UnknownActivationPolicy' cannot be imported here, and the safe "
                                          r"loader cannot infer a stand-in for it: the policy class "
                                          r"'UnknownActivationPolicy' is not a Stable-Baselines class, so the file "
                                          r"does not tell its activation. Put the module") as caught:
        load_sb2_model(path)
    assert "\n" not in str(caught.value)
    assert module_state() == before


@contextmanager
def without_module(name):
    """`name` absent from sys.modules while the block runs, restored afterwards: the test is about a module that
    does not exist, so a stand-in leaked by an earlier load must not hide what it checks."""
    previous = sys.modules.pop(name, None)
    try:
        yield
    finally:
        if previous is not None:
            sys.modules[name] = previous


def old_ddpg_pickle(tmp_path):
    """A DDPG .pkl as SB2 < 2.6 wrote it: its data refers to `stable_baselines.ddpg.memory.Memory`
    (`memory_policy`), pickled by reference while a module of that name exists, which is then removed."""
    model = off_policy_models.make_model("DDPG", "MlpPolicy", "box", "box3", seed=6, normalize_observations=True)
    path = str(tmp_path / "ddpg.pkl")
    with quiet():
        model.save(path, cloudpickle=True)
    with open(path, "rb") as handle:
        data, params = cloudpickle.load(handle)
    memory = types.ModuleType("stable_baselines.ddpg.memory")
    memory.Memory = type("Memory", (object,), {"__module__": "stable_baselines.ddpg.memory"})
    sys.modules["stable_baselines.ddpg.memory"] = memory
    try:
        data["memory_policy"] = memory.Memory
        with open(path, "wb") as handle:
            cloudpickle.dump((data, params), handle)
    finally:
        del sys.modules["stable_baselines.ddpg.memory"]
    return path


def test_old_ddpg_pickle_naming_the_deleted_memory_module(tmp_path):
    with without_module("stable_baselines.ddpg.memory"):
        path = old_ddpg_pickle(tmp_path)
        assert_sb2_alone_fails(path, "stable_baselines.ddpg.memory")
        assert_live_matches_safe(path)
        model, algorithm = load_sb2_model(path)
        assert algorithm == "DDPG" and model.memory_policy.__name__ == "Memory"
        assert "stable_baselines.ddpg.memory" not in sys.modules


# -- --algo in any case ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["ppo2", "Ppo2", "PPO2"])
def test_algo_in_any_case(spelling, tmp_path):
    path = sb2_models.save(sb2_models.make_model("PPO2", "box", "discrete", 1, seed=1), tmp_path, "ppo2")
    assert load_sb2_model(path, spelling)[1] == "PPO2"
    assert_live_matches_safe(path, algorithm=spelling)
    assert main(["export", path, "--algo", spelling, "--loader", "live", "-o", str(tmp_path / "cli.sbif")]) == 0


def test_unknown_algo_is_one_line_naming_the_choices(tmp_path, capsys):
    path = sb2_models.save(sb2_models.make_model("PPO2", "box", "discrete", 1, seed=1), tmp_path, "ppo2")
    for loader in ("live", "safe"):
        with pytest.raises(ExportError, match=r"unknown algorithm 'pp0'; SB2 has A2C, .*PPO2"):
            export(path, algorithm="pp0", loader=loader)
    assert main(["export", path, "--algo", "pp0", "--loader", "live", "-o", str(tmp_path / "x.sbif")]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# -- progress -------------------------------------------------------------------------------------------------
class RecordedProgress(object):
    """Stands in for sbif.progress.Progress in the live loader: records what it is told."""

    tasks = []

    def __init__(self, what, total=None, unit=""):
        self.what, self.total, self.unit, self.done, self.details = what, total, unit, 0, []
        RecordedProgress.tasks.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def advance(self, count=1, detail=None):
        self.done += count

    def doing(self, detail):
        self.details.append(detail)


def test_live_export_reports_its_progress(tmp_path, monkeypatch):
    """Loading (importing TensorFlow, reading, building the graph) and the verification, observations counted."""
    monkeypatch.setattr(live, "Progress", RecordedProgress)
    RecordedProgress.tasks = []
    path = sb2_models.save(sb2_models.make_model("A2C", "box", "box", 2, seed=2), tmp_path, "a2c")
    export(path, loader="live")
    loading, verifying = RecordedProgress.tasks
    assert loading.what == "loading with Stable-Baselines"
    assert loading.details == ["importing TensorFlow and Stable-Baselines", "reading a2c.zip",
                               "building the A2C model's TensorFlow graph"]
    assert (verifying.what, verifying.unit) == ("verifying against SB2", "observations")
    assert verifying.done == verifying.total == exporter.VERIFY_OBSERVATIONS


def test_recurrent_verification_counts_every_mismatch(monkeypatch):
    """A recurrent policy is compared n_envs rows at a time: mismatched actions add up over the chunks (the
    worst chunk alone undercounted them), and the progress counts the rows compared."""
    monkeypatch.setattr(live, "Progress", RecordedProgress)
    RecordedProgress.tasks = []
    monkeypatch.setattr(live, "compare_with_sb2", lambda *args: {"action_mismatches": 1, "value": 0.5})
    model = types.SimpleNamespace(n_envs=4)
    policy = types.SimpleNamespace(observation_space={"kind": "discrete", "n": 3}, recurrent=True)
    with pytest.raises(ExportError, match="action_mismatches on 4 of 16 observations"):
        live.verify_export(model, policy, count=16)
    assert RecordedProgress.tasks[0].done == RecordedProgress.tasks[0].total == 16


# -- the real zoo ---------------------------------------------------------------------------------------------
ZOO_MODELS = zoo_models()


def test_zoo_is_present():
    require_zoo(ZOO_MODELS)


@pytest.mark.parametrize("relative", ZOO_MODELS)
def test_every_zoo_model_the_safe_loader_exports_loads_and_verifies_live(relative):
    """No stand-ins from the test: the live loader brings its own (dqn: utils.CustomDQNPolicy; ddpg/Pendulum-v0:
    stable_baselines.ddpg.memory), and the folder's algorithm name is accepted as --algo."""
    path = os.path.join(ZOO, relative)
    describe_safe_file(path)  # the safe loader reads it ...
    with without_module("stable_baselines.ddpg.memory"):
        assert_live_matches_safe(path, algorithm=relative.split(os.sep)[0])  # ... so SB2 loads it


def test_a_file_the_safe_reader_refuses_is_left_to_sb2(tmp_path):
    """No stand-ins without the safe reader's reading: SB2's own error speaks, in one line."""
    path = str(tmp_path / "not_a_model.pkl")
    with open(path, "wb") as handle:
        handle.write(b"\x80\x02cos\nsystem\nq\x00.")
    with pytest.raises(SbifError, match="Stable-Baselines cannot read") as caught:
        load_sb2_model(path)
    assert "\n" not in str(caught.value)
