"""Train a small Stable-Baselines3 PPO on CartPole-v1 (modern environment, CPU, about a minute) and save it, for the
demo's SB3 half: the saved .zip is exported by `sbif export` like any SB3 model.

    python demo/train_sb3_cartpole.py out/ppo_cartpole_sb3.zip
"""
import argparse
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", help="where to save the model (.zip)")
    parser.add_argument("--timesteps", type=int, default=40000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)  # a small MLP: threads cost more than they give
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = PPO("MlpPolicy", "CartPole-v1", n_steps=1024, batch_size=64, gae_lambda=0.98, gamma=0.99,
                    n_epochs=10, ent_coef=0.0, learning_rate=1e-3, seed=args.seed, device="cpu")
        model.learn(total_timesteps=args.timesteps)
    model.save(args.output)
    print("saved", args.output)


if __name__ == "__main__":
    main()
