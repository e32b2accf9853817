"""SB2's conventions in the Python API, and the packaging edges (issue #19, item 6).

`InputError` is a `ValueError` as SB2's refusals are; `Policy()` and `load()` choose a backend alike;
`initial_state` is an attribute as SB2's; spaces are gym-like objects with NumPy bounds (their JSON form stays);
the extras install on Python 3.7 (markers), the package says MIT and ships the license.
"""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import sbif
from conformance.models import EXAMPLES, write_model
from sbif.errors import InputError, UnsupportedError
from sbif.format import SbifFile
from sbif.runtime import Box, Discrete, MultiBinary, MultiDiscrete, Policy
from sbif.runtime import backends

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def family_files(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("conventions"))
    return {family: write_model(EXAMPLES[family], directory) for family in ("mlp", "lstm", "her", "sac")}


# -- errors ----------------------------------------------------------------------------------------------------
def test_a_bad_observation_is_a_value_error_as_in_sb2(family_files):
    """SB2 raises ValueError("Error: Unexpected observation shape ..."); code catching that keeps working."""
    policy = sbif.load(family_files["mlp"])
    with pytest.raises(ValueError, match="unexpected observation shape"):
        policy.predict(np.zeros(5, np.float32))
    assert issubclass(InputError, sbif.SbifError) and issubclass(InputError, ValueError)


def test_inner_input_errors_keep_their_own_message(family_files):
    """`_probability_of` turns NumPy's ValueErrors into InputErrors; its own InputErrors (ValueErrors now) are
    not wrapped a second time."""
    policy = sbif.load(family_files["mlp"])
    obs = np.zeros((2, 4), np.float32)
    with pytest.raises(InputError) as caught:
        policy.action_probability(obs, actions=np.array([0.5, 1.5]))
    assert str(caught.value).startswith("categorical actions are indices"), caught.value
    with pytest.raises(InputError) as caught:
        policy.action_probability(obs, actions=np.array([0, 1, 2]))
    assert str(caught.value).startswith("batch sizes differ"), caught.value


def test_a_dict_observation_for_a_file_without_one_is_refused_by_name(family_files):
    with pytest.raises(InputError, match="only goal-conditioned \\(HER\\) files and dict observation spaces take a "
                                         "dict observation"):
        sbif.load(family_files["mlp"]).predict({"observation": np.zeros(4, np.float32)})


# -- backend ---------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sbif.runtime.numba.backend.CompileNotice")  # a fresh clone builds the kernels here
def test_policy_and_load_choose_the_backend_alike(family_files, monkeypatch):
    """`Policy(model)` defaulted to the NumPy reference while `load(path)` picks numba when it is installed."""
    assert inspect.signature(Policy).parameters["backend"].default == \
        inspect.signature(sbif.load).parameters["backend"].default == "auto"
    path = family_files["mlp"]
    monkeypatch.delenv("SBIF_BACKEND", raising=False)
    assert Policy(SbifFile.read(path)).backend == sbif.load(path).backend == backends.resolve_backend("auto")
    monkeypatch.setenv("SBIF_BACKEND", "numpy")
    assert Policy(SbifFile.read(path)).backend == sbif.load(path).backend == "numpy"


def test_numba_on_an_old_python_names_the_python_it_needs(family_files, monkeypatch):
    """On Python 3.7 the `fast` extra installs without numba (0.59 needs 3.9): the refusal says so instead of
    proposing an install that cannot succeed."""
    monkeypatch.setattr(backends, "numba_installed", lambda: False)
    monkeypatch.setattr(sys, "version_info", (3, 7, 12, "final", 0))
    with pytest.raises(UnsupportedError, match=r"needs Python 3\.9 or later \(this is Python 3\.7\)"):
        sbif.load(family_files["mlp"], backend="numba")


# -- initial_state ---------------------------------------------------------------------------------------------
def test_initial_state_is_an_attribute_as_in_sb2(family_files):
    lstm, mlp = sbif.load(family_files["lstm"]), sbif.load(family_files["mlp"])
    state = lstm.initial_state
    assert isinstance(state, np.ndarray) and state.dtype == np.float32 and state.shape == (1, lstm.state_size)
    assert not state.any()
    state[...] = 1.0  # a fresh array every time: writing into one changes nothing for the next reader
    assert not lstm.initial_state.any()
    assert lstm.initial_state_for(3).shape == (3, lstm.state_size) and not lstm.initial_state_for(3).any()
    assert mlp.initial_state is None and mlp.initial_state_for(3) is None
    obs = np.full((1, 3), 0.5, np.float32)
    actions, after = lstm.predict(obs, lstm.initial_state, [False], deterministic=True)  # SB2's own call
    np.testing.assert_array_equal(actions, lstm.predict(obs, deterministic=True)[0])
    assert after.shape == (1, lstm.state_size)


# -- spaces ----------------------------------------------------------------------------------------------------
def test_box_spaces_are_gym_like_with_numpy_bounds(family_files):
    her, sac = sbif.load(family_files["her"]), sbif.load(family_files["sac"])
    space = her.observation_space  # bounds "-inf"/"inf" in the document
    assert isinstance(space, Box) and space.kind == "box"
    assert space.shape == (7,) and space.dtype == np.float32
    assert space.low.dtype == np.float32 and space.low.shape == (7,) and np.all(np.isneginf(space.low))
    assert np.all(np.isposinf(space.high))
    action = sac.action_space
    np.testing.assert_array_equal(action.low, np.array([-1.0, -2.0], np.float32))
    np.testing.assert_array_equal(action.high, np.array([1.0, 3.0], np.float32))
    with pytest.raises(ValueError):
        action.low[0] = 5.0  # the space's bounds are shared: read-only
    assert action.contains(np.array([0.5, 2.5], np.float32)) and [0.5, 2.5] in action
    assert not action.contains(np.array([0.5, 3.5], np.float32))
    assert not action.contains(np.array([0.5, 2.5], np.float64))  # as gym: float64 does not cast safely
    assert not action.contains(np.zeros(3, np.float32)) and not action.contains("two")
    assert action.contains(action.sample(0)) and action.sample(0).dtype == np.float32
    assert repr(action) == "Box(shape=(2,), dtype=float32)"


def test_box_bounds_of_integer_spaces_and_of_huge_floats():
    from sbif.runtime.spaces import space_from_json

    image = space_from_json({"kind": "box", "shape": [2, 2], "dtype": "uint8", "low": 0, "high": "inf"})
    assert image.low.dtype == np.uint8 and image.high.tolist() == [[255, 255], [255, 255]]
    wide = space_from_json({"kind": "box", "shape": [2], "dtype": "float32", "low": [-1e39, 0.0], "high": 1.0})
    assert wide.low.tolist() == [-np.inf, 0.0]


def test_discrete_spaces_are_gym_like():
    from sbif.runtime.spaces import space_from_json

    discrete = space_from_json({"kind": "discrete", "n": 3})
    assert isinstance(discrete, Discrete) and discrete.n == 3 and discrete.shape == () and discrete.dtype == np.int64
    assert discrete.contains(2) and discrete.contains(np.int64(0)) and not discrete.contains(3)
    assert not discrete.contains(1.0) and not discrete.contains([1])
    multi = space_from_json({"kind": "multi_discrete", "nvec": [2, 5]})
    assert isinstance(multi, MultiDiscrete) and multi.nvec.tolist() == [2, 5] and multi.shape == (2,)
    assert multi.contains([1, 4]) and not multi.contains([2, 0]) and not multi.contains([0.5, 1])
    binary = space_from_json({"kind": "multi_binary", "n": 3})
    assert isinstance(binary, MultiBinary) and binary.n == 3 and binary.shape == (3,) and binary.dtype == np.int8
    assert binary.contains([1, 0, 1]) and not binary.contains([1, 2, 0]) and not binary.contains([1, 0])
    for space in (discrete, multi, binary):
        assert space.contains(space.sample(np.random.default_rng(1))), space


def test_the_json_view_stays(family_files):
    """`to_json()` is the document's form (for --json and anything that wants data); `space["kind"]` still works
    for code written when spaces were those dicts."""
    policy = sbif.load(family_files["her"])
    document_space = policy.document["observation_space"]
    view = policy.observation_space.to_json()
    assert view == document_space and view["low"] == "-inf"
    json.dumps(view)
    view["shape"].append(1)  # a copy: the document is untouched
    assert document_space["shape"] == [7]
    assert policy.observation_space["kind"] == "box" and policy.observation_space["shape"] == [7]
    assert policy.observation_space == Policy(policy.model).observation_space != policy.action_space


# -- packaging -------------------------------------------------------------------------------------------------
def test_the_package_says_mit_and_ships_the_license():
    with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as handle:
        text = handle.read()
    assert text.startswith("MIT License") and "SBIF authors" in text and "Permission is hereby granted" in text
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as handle:
        assert 'license = {text = "MIT"}' in handle.read()


def test_zoo_configs_are_read_by_the_default_install():
    """`--zoo-config` (and a config.yml found beside a model) needs PyYAML, which was in no extra: without it a zoo
    model would lose the normalization it was trained with, so the default install has it."""
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        project = tomllib.load(handle)["project"]
    assert any(requirement.lower().startswith("pyyaml") for requirement in project["dependencies"])


def test_help_says_the_default_export_needs_no_sb2(capsys):
    """`sbif --help` said export runs "(in the SB2 environment)"; only the live loader needs SB2."""
    from sbif.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    lines = capsys.readouterr().out.splitlines()
    [default] = [line for line in lines if "sbif export" in line and "--loader" not in line]
    [live] = [index for index, line in enumerate(lines) if "sbif export" in line and "--loader live" in line]
    assert "SB2 environment" not in default and "no SB2 needed" in default, default
    assert "in the SB2 environment" in " ".join(lines[live:live + 2])


LEGACY_PIP = os.path.join(ROOT, ".venv-sb2", "bin", "pip")


@pytest.mark.slow
@pytest.mark.wheel
@pytest.mark.skipif(sys.version_info < (3, 8) or not os.path.exists(LEGACY_PIP),
                    reason="builds the wheel with a setuptools >= 61 and asks the SB2 environment's pip")
def test_every_extra_installs_on_python_3_7(wheel):
    """pip on Python 3.7 resolves every extra from what the SB2 environment has (no index): an extra whose
    packages need a newer Python is skipped by its marker, where it was "No matching distribution found for
    numba>=0.59" (and SBIF says what is missing when it is used)."""
    extras = "fast,onnx,torch,demo,conformance,test"
    done = subprocess.run([LEGACY_PIP, "install", "--dry-run", "--no-index", "--disable-pip-version-check",
                           "{}[{}]".format(wheel, extras)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Would install sbif" in done.stdout, done.stdout
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [metadata] = [name for name in names if name.endswith(".dist-info/METADATA")]
        requirements = [line for line in archive.read(metadata).decode().splitlines() if line.startswith("Requires-")]
    assert "Requires-Dist: PyYAML>=5.1" in requirements, requirements
    assert any(name.endswith(".dist-info/licenses/LICENSE") or name.endswith(".dist-info/LICENSE") for name in names)
