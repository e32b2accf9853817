"""The play page's agents (web/play) against the Python runtime: the observations the JS runtime's policy saw in the
JS environments, fed to `sbif.load(...).predict`, give the same actions (CartPole: equal; Pendulum: within SPEC
section 6's rule), and the CartPole agent balances for the whole 500 steps. Also runs the Node tests of the
environment ports and the agent (tests/web/*.test.mjs), and, in the SB2 environment, checks that gym still records the
episodes those tests hold the ports to.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import sbif
from sbif.runtime.error_scales import predict_agreement

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NODE = shutil.which("node")
EPISODES = 5
#: Pendulum-v0's returns lie in about [-1700, 0]; one that swings up and holds scores about -150 from any start
PENDULUM_MIN_MEAN_RETURN = -400.0

needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: the play page's agents cannot run")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """What `EPISODES` episodes of each agent saw and did, from tests/web/record_episodes.mjs."""
    out = tmp_path_factory.mktemp("play") / "episodes.json"
    subprocess.run([NODE, os.path.join(ROOT, "tests", "web", "record_episodes.mjs"), str(out), str(EPISODES)],
                   check=True, cwd=ROOT, capture_output=True, text=True)
    with open(out) as stream:
        return json.load(stream)


@needs_node
def test_node_tests_of_the_environments_and_the_agent_pass():
    tests = sorted(os.path.join("tests", "web", name) for name in os.listdir(os.path.join(ROOT, "tests", "web"))
                   if name.endswith(".test.mjs"))
    result = subprocess.run([NODE, "--test"] + tests, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@needs_node
def test_cartpole_actions_equal_the_python_runtimes_and_every_episode_reaches_500(recorded):
    cartpole = recorded["CartPole-v1"]
    policy = sbif.load(cartpole["model"], backend="numpy")
    assert len(cartpole["episodes"]) == EPISODES
    for episode in cartpole["episodes"]:
        observations = np.asarray(episode["observations"], dtype=np.float64)
        actions, _ = policy.predict(observations, deterministic=True)
        assert actions.tolist() == episode["actions"], "seed {}".format(episode["seed"])
        assert episode["return"] == 500.0, "seed {}: return {}".format(episode["seed"], episode["return"])
        assert len(observations) == 500


@needs_node
def test_pendulum_actions_agree_with_the_python_runtime_within_spec_section_6(recorded):
    pendulum = recorded["Pendulum-v0"]
    policy = sbif.load(pendulum["model"], backend="numpy")
    returns = []
    for episode in pendulum["episodes"]:
        observations = np.asarray(episode["observations"], dtype=np.float64)
        actions = np.asarray(episode["actions"], dtype=np.float32)
        assert actions.shape == (200, 1)
        ratio = predict_agreement(policy, actions, "predict", observations, "action", deterministic=True)
        assert ratio <= 1.0, "seed {}: worst difference {:.3g} of the bound".format(episode["seed"], ratio)
        returns.append(episode["return"])
    assert np.mean(returns) > PENDULUM_MIN_MEAN_RETURN, returns


def test_gym_records_the_episodes_the_ports_are_held_to(tmp_path):
    gym = pytest.importorskip("gym", reason="gym 0.17.3 is the SB2 environment's")
    if gym.__version__ != "0.17.3":
        pytest.skip("the fixture is gym 0.17.3's; this is gym {}".format(gym.__version__))
    out = tmp_path / "gym_trajectories.json"
    subprocess.run([sys.executable, os.path.join(HERE, "make_env_fixtures.py"), "--out", str(out)], check=True,
                   capture_output=True, text=True)
    with open(out) as fresh, open(os.path.join(HERE, "fixtures", "gym_trajectories.json")) as committed:
        assert json.load(fresh) == json.load(committed)
