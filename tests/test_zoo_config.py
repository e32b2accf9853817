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
