"""Batch inference on files under the SB3 contract (SPEC 5.9), built by SB3 itself (tests/sb3_models.py): a dict
observation space read from one column per key (a channel-last image key, MultiDiscrete indices checked by row),
MaskablePPO's action masks from a column, and DQN's shared ε-greedy noise drawn per row."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")
#: SB3 builds the models (torch's import and a CNN feature extractor: 7 s on 2 cores); the core stays in test_batch.py
pytestmark = pytest.mark.slow

from sbif.batch import BatchPredictor, BatchSpec  # noqa: E402
from sbif.batch.noise import uniform_noise  # noqa: E402
from sbif.errors import InputError  # noqa: E402
from sbif.export import export  # noqa: E402
from sbif.runtime import Policy  # noqa: E402
from tests.sb3_models import SB3_CASES, random_observations, save_model  # noqa: E402

CASES = {case.id: case for case in SB3_CASES}
DICT_CASE = "PPO-MultiInputPolicy-dict-hwc-discrete-net_arch=pi=[8],vf=[6]-share_features_extractor=False"
MASKED_CASE = "MaskablePPO-MlpPolicy-box-discrete-activation_fn=LeakyReLU-net_arch=[8,8]"
DQN_CASE = "DQN-MlpPolicy-box-discrete-activation_fn=Tanh-net_arch=[8,8]"


def exported(case_id, directory):
    """The case's SB3 model exported by the safe loader, and its observation space."""
    case = CASES[case_id]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = export(save_model(case, directory, seed=3), loader="safe").file
    return Policy(model, "numpy"), case.observation_space


def test_a_dict_space_takes_a_column_per_key(tmp_path):
    policy, space = exported(DICT_CASE, tmp_path)
    observations = random_observations(space, 12, np.random.RandomState(0))
    expected, _ = policy.predict(observations, deterministic=True)
    predictor = BatchPredictor(policy, BatchSpec(outputs=("action", "value")))
    result = predictor.compute({"obs/" + key: value for key, value in observations.items()})
    assert np.array_equal(result["action"], expected)
    assert np.array_equal(result["value"], policy.value(observations))
    gears = dict(observations, gear=observations["gear"].copy())
    gears["gear"][5, 1] = 3  # MultiDiscrete([2, 3]): index 3 is out of bounds
    with pytest.raises(InputError, match=r"column 'obs/gear' holds an index outside its space at row 105"):
        predictor.compute({"obs/" + key: value for key, value in gears.items()}, first_row=100)


def test_maskable_ppo_reads_its_masks_from_a_column(tmp_path):
    policy, space = exported(MASKED_CASE, tmp_path)
    obs = random_observations(space, 20, np.random.RandomState(1))
    width = policy.executor.inputs[policy.document["predict"]["action_mask"]]["shape"][1]
    masks = np.zeros((20, width), bool)
    masks[np.arange(20), np.arange(20) % width] = True  # one allowed action per row
    predictor = BatchPredictor(policy, BatchSpec(outputs=("action",)))
    assert np.array_equal(predictor.compute({"obs": obs, "action_mask": masks})["action"], np.arange(20) % width)
    assert np.array_equal(predictor.compute({"obs": obs})["action"], policy.predict(obs, deterministic=True)[0])


def test_dqn_shared_noise_is_drawn_per_row(tmp_path):
    """SB3's DQN draws its ε-greedy coin once per request; over a dataset every row is its own request."""
    policy, space = exported(DQN_CASE, tmp_path)
    obs = random_observations(space, 30, np.random.RandomState(2))
    predictor = BatchPredictor(policy, BatchSpec(outputs=("action_sample",), seed=8))
    result = predictor.compute({"obs": obs}, first_row=0)["action_sample"]
    for row in range(30):
        noise = {entry["name"]: uniform_noise(8, index, [row], entry["shape"][1:])
                 for index, entry in predictor.noise_inputs}
        action, _ = policy.predict(obs[row:row + 1], deterministic=False, noise=noise)
        assert action[0] == result[row], row
