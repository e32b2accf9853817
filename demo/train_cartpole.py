"""Train a Stable-Baselines 2 PPO2 MlpPolicy agent on gym's CartPole-v1.

Runs in the SB2 environment (Python 3.7, TensorFlow 1.15, stable-baselines 2.10,
gym 0.17). Hyperparameters follow rl-baselines-zoo's ppo2 CartPole-v1 entry,
with constant (float) learning rate and clip range instead of linear schedules.

After training, the policy is evaluated with SB2's own
``model.predict(obs, deterministic=True)`` for 20 episodes; the script exits
non-zero if the mean return is below 495. The model is saved in SB2's .zip
format.

Usage:
    python demo/train_cartpole.py --out demo/ppo2_cartpole.zip --timesteps 100000 --seed 0
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import tensorflow as tf  # noqa: E402

tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)

import gym  # noqa: E402
import numpy as np  # noqa: E402
from stable_baselines import PPO2  # noqa: E402
from stable_baselines.common import set_global_seeds  # noqa: E402
from stable_baselines.common.vec_env import DummyVecEnv  # noqa: E402

ENV_ID = "CartPole-v1"
N_ENVS = 8
N_EVAL_EPISODES = 20
MIN_MEAN_RETURN = 495.0


def make_env(seed, rank):
    def _init():
        env = gym.make(ENV_ID)
        env.seed(seed + rank)
        env.action_space.seed(seed + rank)
        return env
    return _init


def evaluate(model, seed, env_id=ENV_ID, n_episodes=N_EVAL_EPISODES):
    """Returns of `n_episodes` episodes of SB2's deterministic predict, from starts seeded apart from training's."""
    env = gym.make(env_id)
    env.seed(seed + 1000)
    returns = []
    for _ in range(n_episodes):
        obs, done, total = env.reset(), False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, done, _ = env.step(action)
            total += reward
        returns.append(total)
    env.close()
    return returns


def save_and_evaluate(model, out, seed, env_id, n_episodes, min_return):
    """Save the trained model as SB2's .zip at `out`, evaluate it (see `evaluate`) and print what it scored.

    Also the play page's Pendulum trainer's (web/play/models/train_pendulum.py) last step. Returns the exit status:
    1 if the mean return is below `min_return`, else 0.
    """
    out_dir = os.path.dirname(out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    model.save(out)
    print("saved %s (%d bytes)" % (out, os.path.getsize(out)))

    returns = evaluate(model, seed, env_id, n_episodes)
    mean_return = float(np.mean(returns))
    print("deterministic eval over %d episodes: mean return %.1f (min %.1f, max %.1f)"
          % (len(returns), mean_return, min(returns), max(returns)))
    if mean_return < min_return:
        print("FAIL: mean return %.1f < %.1f" % (mean_return, min_return), file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo/ppo2_cartpole.zip", help="output .zip path")
    parser.add_argument("--timesteps", type=int, default=100000, help="total training timesteps")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--verbose", type=int, default=0, help="SB2 verbosity")
    args = parser.parse_args(argv)

    set_global_seeds(args.seed)
    env = DummyVecEnv([make_env(args.seed, i) for i in range(N_ENVS)])

    model = PPO2(
        "MlpPolicy",
        env,
        n_steps=32,
        nminibatches=1,
        lam=0.8,
        gamma=0.98,
        noptepochs=20,
        ent_coef=0.0,
        learning_rate=0.001,
        cliprange=0.2,
        verbose=args.verbose,
        seed=args.seed,
        n_cpu_tf_sess=1,
    )

    start = time.time()
    model.learn(total_timesteps=args.timesteps)
    train_time = time.time() - start
    print("trained %d timesteps in %.1f s (seed %d)" % (args.timesteps, train_time, args.seed))

    env.close()
    return save_and_evaluate(model, args.out, args.seed, ENV_ID, N_EVAL_EPISODES, MIN_MEAN_RETURN)


if __name__ == "__main__":
    sys.exit(main())
