"""Run an exported CartPole policy with the SBIF NumPy runtime in gymnasium (no SB2, no TensorFlow).

    python demo/run_cartpole.py out/ppo2_cartpole.sbif --episodes 20 --record out/cartpole_obs.npy

Prints the mean return of deterministic actions and exits non-zero if it is below --min-return.
"""
import argparse
import sys

import numpy as np

import sbif


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policy", help="the .sbif file")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--min-return", type=float, default=475.0)
    parser.add_argument("--record", help="save every observation seen to this .npy file")
    parser.add_argument("--backend", choices=("numpy", "numba", "auto"), default="numpy",
                        help="the runtime's executor (numba compiles its kernels once per machine on first use)")
    args = parser.parse_args()

    import gymnasium

    policy = sbif.load(args.policy, backend=args.backend)
    env = gymnasium.make("CartPole-v1")
    returns, seen = [], []
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=episode)
        total, done = 0.0, False
        while not done:
            seen.append(obs)
            action, _ = policy.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += reward
            done = terminated or truncated
        returns.append(total)
    if args.record:
        np.save(args.record, np.asarray(seen, dtype=np.float32))
    mean = float(np.mean(returns))
    print("SBIF NumPy runtime, gymnasium CartPole-v1, {} episodes: mean return {:.1f} (min {:.0f}, max {:.0f}), "
          "{} observations".format(args.episodes, mean, min(returns), max(returns), len(seen)))
    if mean < args.min_return:
        print("FAIL: mean return {:.1f} is below {:.1f}".format(mean, args.min_return), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
