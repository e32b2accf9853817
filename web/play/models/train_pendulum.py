"""Train the Pendulum agent the play page runs: Stable-Baselines 2 TD3 on gym 0.17.3's Pendulum-v0.

Runs in the SB2 environment (Python 3.7, TensorFlow 1.15, stable-baselines 2.10, gym 0.17) and saves SB2's .zip;
`sbif export` turns it into the .sbif the page loads:

    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 TF_CPP_MIN_LOG_LEVEL=3 \\
        .venv-sb2/bin/python web/play/models/train_pendulum.py --out out/pendulum_td3.zip
    .venv-sb2/bin/sbif export out/pendulum_td3.zip --loader live -o web/play/models/pendulum_td3.sbif

The policy is small (two hidden layers of 64: the actor is 4,481 of the file's 27,142 parameters, the rest SB2's
critics and target networks, which the export keeps). Hyperparameters start from rl-baselines-zoo's TD3 Pendulum-v0 entry (Gaussian action noise 0.1, learning
from step 1,000), with one gradient step per environment step, gamma 0.98 and learning rate 1e-3, and a fifth of its
100,000 steps: 20,000 swing the pendulum up in under two minutes of one CPU (97 s here). After training,
SB2's own `model.predict(obs, deterministic=True)` runs 10 episodes; the script exits non-zero if their mean
return is below --min-return (-400: a policy that swings up and holds from every start scores about -150).
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
from stable_baselines import TD3  # noqa: E402
from stable_baselines.common import set_global_seeds  # noqa: E402
from stable_baselines.common.noise import NormalActionNoise  # noqa: E402

# demo/train_cartpole.py, the CartPole agent's trainer, saves and evaluates both of the page's agents.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "demo"))
from train_cartpole import save_and_evaluate  # noqa: E402

ENV_ID = "Pendulum-v0"
N_EVAL_EPISODES = 10


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/pendulum_td3.zip", help="the SB2 .zip to write")
    parser.add_argument("--timesteps", type=int, default=20000, help="environment steps of training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-return", type=float, default=-400.0,
                        help="fail if the deterministic mean return over %d episodes is below this" % N_EVAL_EPISODES)
    args = parser.parse_args(argv)

    set_global_seeds(args.seed)
    env = gym.make(ENV_ID)
    env.seed(args.seed)
    n_actions = env.action_space.shape[0]
    model = TD3(
        "MlpPolicy",
        env,
        gamma=0.98,
        learning_rate=1e-3,
        buffer_size=200000,
        learning_starts=1000,
        train_freq=1,
        gradient_steps=1,
        batch_size=100,
        action_noise=NormalActionNoise(mean=np.zeros(n_actions), sigma=0.1 * np.ones(n_actions)),
        policy_kwargs=dict(layers=[64, 64]),
        seed=args.seed,
        n_cpu_tf_sess=1,
    )
    start = time.time()
    model.learn(total_timesteps=args.timesteps)
    print("trained %d timesteps in %.1f s (seed %d)" % (args.timesteps, time.time() - start, args.seed))

    return save_and_evaluate(model, args.out, args.seed, ENV_ID, N_EVAL_EPISODES, args.min_return)


if __name__ == "__main__":
    sys.exit(main())
