"""The rl-baselines-zoo's config.yml read as data: `normalize` kwargs, `frame_stack`, and tags refused."""
import numpy as np
import pytest

from sbif.errors import ExportError
from sbif.export.normalization import ObservationNormalization
from sbif.export.zoo_config import frame_stack, normalize_kwargs, read_zoo_config

ZOO_HEADER = "!!python/object/apply:collections.OrderedDict\n- - - n_timesteps\n    - 1000000.0\n"


def write(tmp_path, text):
    path = tmp_path / "config.yml"
    path.write_text(text)
    return str(path)


def test_zoo_ordered_dict_and_its_settings(tmp_path):
    path = write(tmp_path, ZOO_HEADER + "  - - normalize\n    - \"{'norm_obs': True, 'clip_obs': 5.0}\"\n"
                                        "  - - frame_stack\n    - 4\n")
    config = read_zoo_config(path)
    assert normalize_kwargs(config, path) == {"norm_obs": True, "clip_obs": 5.0}
    assert frame_stack(config, path) == 4


@pytest.mark.parametrize("text,expected", [("normalize: true", {}), ("normalize: false", None), ("n_envs: 2", None),
                                           ("normalize: dict(clip_obs=3.0, epsilon=1e-6)",
                                            {"clip_obs": 3.0, "epsilon": 1e-6})])
def test_normalize_forms(tmp_path, text, expected):
    path = write(tmp_path, text + "\n")
    assert normalize_kwargs(read_zoo_config(path), path) == expected


@pytest.mark.parametrize("value,expected", [(None, 1), (0, 1), (1, 1), (4, 4)])
def test_frame_stack_values(value, expected):
    assert frame_stack({} if value is None else {"frame_stack": value}) == expected


@pytest.mark.parametrize("value", [-1, "4", 2.5, True])
def test_bad_frame_stack_is_refused(value):
    with pytest.raises(ExportError, match="frame_stack"):
        frame_stack({"frame_stack": value})


def test_python_tags_other_than_ordered_dict_are_refused(tmp_path):
    path = write(tmp_path, "policy: !!python/object/apply:os.system ['touch canary']\n")
    with pytest.raises(ExportError, match="not a zoo config"):
        read_zoo_config(path)
    assert not (tmp_path / "canary").exists()


def test_stacked_statistics_normalize_each_frame():
    stats = ObservationNormalization(np.array([1.0, -2.0]), np.array([4.0, 0.25]), clip_obs=5.0, epsilon=0.0,
                                     frame_stack=3)
    frames = np.array([[3.0, -2.0], [1.0, 0.0], [100.0, -3.0]])
    expected = np.clip((frames - stats.mean) / np.sqrt(stats.var), -5.0, 5.0).reshape(-1)
    assert np.array_equal(stats.apply(frames.reshape(1, -1))[0], expected)
    assert stats.as_kwargs() == {"clip_obs": 5.0, "epsilon": 0.0, "frame_stack": 3}
    with pytest.raises(ExportError, match="frame_stack"):
        ObservationNormalization(stats.mean, stats.var, frame_stack=0)


# -- hostile configs (issue #18): budgets checked before the work, one-line ExportErrors ------------------------
def billion_laughs(levels=9):
    text = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    previous = "a"
    for name in "bcdefghijklmnop"[:levels - 1]:
        text += "{0}: &{0} [{1}]\n".format(name, ", ".join(["*" + previous] * 9))
        previous = name
    return text + "normalize: [*{}]\n".format(previous)


@pytest.mark.parametrize("text,message", [
    (billion_laughs(), "expands to more than"),
    ("a: " + "[" * 50000 + "]" * 50000 + "\n", "nested more than"),
    ("a: &a [*a]\n", "contains itself"),
    (ZOO_HEADER + "  - - 1\n    - 2\n", "names are strings, got 1"),
    ("!!python/object/apply:collections.OrderedDict\n- - [[a], 3]\n", r"names are strings, got \['a'\]"),
    ("!!python/object/apply:collections.OrderedDict\n- [[a, 1]]\n- [[b, 2]]\n", "list of \\[key, value\\] pairs"),
    ("{[a]: 1}\n", "not a zoo config"),
    ("normalize: \"{'clip_obs': " + "9" * 4000 + "}\"\n", "4014 characters"),
    ("normalize: \"{'clip_obs': " + "9" * 400 + "}\"\n", "clip_obs must be a finite number, got <"),
    ("normalize: \"{'clip_obs': 1e400}\"\n", "clip_obs must be a finite number, got inf"),
    ("normalize: \"{'epsilon': True}\"\n", "epsilon must be a finite number"),
    ("normalize: \"{'norm_obs': 1}\"\n", "norm_obs must be true or false"),
    ("normalize: \"{'os': 1}\"\n", "'os', which is not an argument of VecNormalize"),
    ("normalize: dict(clip_obs)\n", "cannot read normalize"),
    ("normalize: \"[1, 2]\"\n", "is not keyword arguments"),
    ("normalize: \"" + "(" * 900 + "\"\n", "cannot read normalize"),
    ("normalize: {a: " + "x" * 100000 + "}\n", "unexpected normalize value"),
])
def test_hostile_configs_are_refused_in_one_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ExportError, match=message) as refused:
        normalize_kwargs(read_zoo_config(path), path)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 300 + len(path)


def test_budgets_let_real_configs_through(tmp_path):
    """The limits sit far above the zoo's own configs (every one in the shared zoo reads)."""
    laughs = billion_laughs(levels=4)  # 9^4 = 6561 expanded values, under the budget
    assert len(read_zoo_config(write(tmp_path, laughs))["normalize"][0]) == 9
    nested = "a: " + "[" * 30 + "]" * 30 + "\n"
    assert read_zoo_config(write(tmp_path, nested))["a"] is not None


def test_non_utf8_and_oversized_files(tmp_path):
    path = tmp_path / "config.yml"
    path.write_bytes(b"policy: caf\xe9\n")
    with pytest.raises(ExportError, match="not UTF-8 text"):
        read_zoo_config(str(path))
    path.write_bytes(b"#" * (2 * 1024 * 1024))
    with pytest.raises(ExportError, match="larger than"):
        read_zoo_config(str(path))


def test_huge_integer_scalars(tmp_path):
    """5000 digits: Python 3.11 refuses the conversion (a ValueError inside PyYAML); 3.7 builds the int."""
    path = write(tmp_path, "clip_obs: " + "9" * 5000 + "\nframe_stack: " + "9" * 5000 + "\n")
    try:
        config = read_zoo_config(path)
    except ExportError as exc:
        assert "refuses" in str(exc) and len(str(exc)) < 300 + len(path)
    else:
        with pytest.raises(ExportError, match="frame_stack must be an integer from 0 to 1024, got <"):
            frame_stack(config, path)


# -- the zoo's layout and wrappers (issue #19) ----------------------------------------------------------------
def test_zoo_folder_finds_config_and_statistics_beside_the_model(tmp_path):
    from sbif.export.zoo_config import zoo_folder

    (tmp_path / "ENV.pkl").write_bytes(b"")
    assert vars(zoo_folder(str(tmp_path / "ENV.pkl"))) == {"config": None, "statistics": None}
    folder = tmp_path / "ENV"
    folder.mkdir()
    (folder / "obs_rms.pkl").write_bytes(b"")
    (folder / "config.yml").write_text("normalize: true\n")
    assert vars(zoo_folder(str(tmp_path / "ENV.zip"))) == {"config": str(folder / "config.yml"),
                                                           "statistics": str(folder / "obs_rms.pkl")}
    (folder / "vecnormalize.pkl").write_bytes(b"")  # SB2's own save is preferred
    assert zoo_folder(str(tmp_path / "ENV.pkl")).statistics == str(folder / "vecnormalize.pkl")


@pytest.mark.parametrize("value,expected", [
    (None, []), ("utils.wrappers.TimeFeatureWrapper", ["'utils.wrappers.TimeFeatureWrapper'"]),
    (["a.B", {"c.D": {"k": 1}}], ["'a.B'", "'c.D'"]), ("x" * 500, ["'" + "x" * 79 + "..."])])
def test_env_wrappers_are_named_quoted_and_bounded(value, expected):
    from sbif.export.zoo_config import env_wrappers

    assert env_wrappers({} if value is None else {"env_wrapper": value}) == expected


@pytest.mark.parametrize("value", [3, [["a.B"]], {"a.B": 1, "c.D": 2}, True])
def test_env_wrappers_that_name_no_class_are_refused(value):
    from sbif.export.zoo_config import env_wrappers

    with pytest.raises(ExportError, match="env_wrapper must name wrapper classes"):
        env_wrappers({"env_wrapper": value}, "config.yml")
