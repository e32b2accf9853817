"""Record gym 0.17.3's CartPole-v1 and Pendulum-v0 trajectories for the JavaScript ports' test (envs.test.mjs).

Runs in the SB2 environment, whose gym the ports copy:

    .venv-sb2/bin/python tests/web/make_env_fixtures.py      # writes tests/web/fixtures/gym_trajectories.json

(`--out PATH` writes elsewhere: test_play.py checks, in the SB2 environment, that gym still records the same file.)

Each episode starts from a fixed state (set on the unwrapped env after reset) and records every action, observation,
reward and done flag, through gym.make's TimeLimit. The C library's sin, cos and pow(x, 2) round a few arguments in a
thousand differently from the ports' correctly rounded ones, so the file also records every value gym's dynamics
took from them: sin and cos by wrapping the module (math, numpy) gym's env calls them through (each argument once),
and pow(x, 2) of the quantities gym squares wherever it differs from x·x, the correctly rounded square. The test
feeds those values to the ports to prove the dynamics bit-exact, and counts where the C library is not correctly
rounded.

JSON holds every float as Python's repr, which reads back to the same double.
"""
import argparse
import json
import math
import os
import sys

import gym
import gym.envs.classic_control.cartpole as cartpole_module
import gym.envs.classic_control.pendulum as pendulum_module
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "gym_trajectories.json")


class Recorder:
    """Stands in for the module (math or numpy) an env calls sin and cos through, and records each call."""

    def __init__(self, module, calls):
        self._module = module
        self._calls = calls

    def __getattr__(self, name):
        return getattr(self._module, name)

    def sin(self, x):
        result = self._module.sin(x)
        self._calls["sin"][float(x)] = float(result)
        return result

    def cos(self, x):
        result = self._module.cos(x)
        self._calls["cos"][float(x)] = float(result)
        return result


def square(x, calls):
    """Record pow(x, 2) as gym computes `x ** 2` (CPython's float and numpy's float64 both call the C library's
    pow) where it is not x·x."""
    value = float(x) ** 2
    if value != float(x) * float(x):
        calls["square"][float(x)] = value


def run_episode(env, initial_state, choose_action, calls, squared_quantities):
    """Step `env` from `initial_state` until done; `choose_action(observation, step)` picks each action."""
    env.reset()
    env.unwrapped.state = np.array(initial_state, dtype=np.float64)
    observation = np.array(initial_state, dtype=np.float64) if env.unwrapped.spec.id.startswith("CartPole") \
        else env.unwrapped._get_obs()
    steps, done = [], False
    while not done:
        action = choose_action(observation, len(steps))
        for value in squared_quantities(env.unwrapped, action):
            square(value, calls)
        observation, reward, done, _ = env.step(action)
        steps.append({"action": action.tolist() if isinstance(action, np.ndarray) else int(action),
                      "observation": [float(v) for v in observation], "reward": float(reward), "done": bool(done)})
    return {"initial_state": [float(v) for v in initial_state], "steps": steps}


def cartpole_squares(env, action):
    """The quantities CartPoleEnv.step squares: θ̇ and cos θ."""
    return [env.state[3], math.cos(env.state[2])]


def pendulum_squares(env, action):
    """The quantities PendulumEnv.step squares: the normalised angle, θ̇ and the clipped float32 torque."""
    torque = np.clip(action, -env.max_torque, env.max_torque)[0]
    return [pendulum_module.angle_normalize(env.state[0]), env.state[1], torque]


def balancing(observation, step):
    """A linear controller that keeps the pole up for the whole 500 steps."""
    x, x_dot, theta, theta_dot = observation
    return int(theta + 0.5 * theta_dot + 0.01 * x + 0.05 * x_dot > 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=OUT, help="the JSON file to write (default: %(default)s)")
    out = parser.parse_args().out
    calls = {"sin": {}, "cos": {}, "square": {}}
    cartpole_module.math = Recorder(math, calls)
    pendulum_module.np = Recorder(np, calls)
    rng = np.random.RandomState(2026)

    cartpole = gym.make("CartPole-v1")
    cartpole.seed(0)  # the reset before each episode's state is set calls sin and cos too: the same ones every run
    cartpole_episodes = []
    for index in range(3):
        start = rng.uniform(-0.05, 0.05, size=4)
        if index == 0:
            policy = balancing
        else:
            actions = rng.randint(0, 2, size=500)
            policy = lambda observation, step, actions=actions: int(actions[step])  # noqa: E731
        cartpole_episodes.append(run_episode(cartpole, start, policy, calls, cartpole_squares))

    pendulum = gym.make("Pendulum-v0")
    pendulum.seed(0)
    pendulum_episodes = []
    for index in range(3):
        start = rng.uniform([-np.pi, -1.0], [np.pi, 1.0])
        if index == 0:  # torques beyond the bounds, to exercise the clipping
            torques = rng.uniform(-3.0, 3.0, size=(200, 1)).astype(np.float32)
            policy = lambda observation, step, torques=torques: torques[step]  # noqa: E731
        else:  # pumping energy in: the pendulum spins at the speed limit and θ winds far beyond ±π
            sign = 1.0 if index == 1 else -1.0
            policy = lambda observation, step, sign=sign: np.array(  # noqa: E731
                [sign * 2.0 if observation[2] * sign >= 0 else -sign * 0.5], dtype=np.float32)
        pendulum_episodes.append(run_episode(pendulum, start, policy, calls, pendulum_squares))

    document = {
        "generator": "tests/web/make_env_fixtures.py",
        "gym": gym.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "CartPole-v1": cartpole_episodes,
        "Pendulum-v0": pendulum_episodes,
        "libm": {name: sorted(values.items()) for name, values in calls.items()},
    }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as stream:
        json.dump(document, stream, separators=(",", ":"))
    lengths = [len(episode["steps"]) for episode in cartpole_episodes + pendulum_episodes]
    print("wrote {}: episode lengths {}, {} sin, {} cos values, {} squares that are not x*x".format(
        out, lengths, len(calls["sin"]), len(calls["cos"]), len(calls["square"])))


if __name__ == "__main__":
    main()
