"""Build the benchmark's SB2 models, export them to SBIF and record SB2's outputs (run in .venv-sb2).

For every model of `catalog.MODELS`: build it with SB2 2.10.2 on a spaces-only env with a fixed seed, give
it random non-degenerate weights (the test suite's randomizers: SB2's zero biases and 0.01-scaled heads would
make the agreement check blind), save it, export it with the live loader (which verifies the file against
SB2), and record what SB2's `predict` returns on the benchmark observations: `reference.npz` is what every
runtime is checked against. Models whose inputs (this script, the exporter) did not change are kept.

    .venv-sb2/bin/python benchmarks/make_models.py [--models a,b] [--rebuild]
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from catalog import (MODELS, OBSERVATION_ROWS, REFERENCE_ROWS, RESET_STEPS, ROLLOUT_STEPS, ROOT,  # noqa: E402
                     model_dir, model_file, parse_models)
from sbif.compare import sample_observations  # noqa: E402
from sbif.export import export  # noqa: E402
from sbif.export.live import quiet, sb2_policy  # noqa: E402
from tests.live.off_policy_models import randomize as randomize_off_policy  # noqa: E402
from tests.live.sb2_models import SpacesEnv, gym, randomize, sb2  # noqa: E402

SEED = 0


def box(size: int) -> "gym.spaces.Box":
    return gym.spaces.Box(-1.0, 1.0, shape=(size,), dtype=np.float32)


def build(name: str):
    """The untrained SB2 model `name`, with random weights from a fixed seed."""
    if name == "ppo2_mlp":
        model = sb2.PPO2("MlpPolicy", SpacesEnv(box(4), gym.spaces.Discrete(2)), seed=SEED,
                         policy_kwargs={"net_arch": [{"pi": [64, 64], "vf": [64, 64]}]})
    elif name == "sac_256":
        model = sb2.SAC("MlpPolicy", SpacesEnv(box(17), box(6)), seed=SEED, buffer_size=100,
                        policy_kwargs={"layers": [256, 256]})
    elif name == "td3_400_300":
        model = sb2.TD3("MlpPolicy", SpacesEnv(box(17), box(6)), seed=SEED, buffer_size=100,
                        policy_kwargs={"layers": [400, 300]})
    elif name == "dqn_dueling":
        model = sb2.DQN("MlpPolicy", SpacesEnv(box(8), gym.spaces.Discrete(4)), seed=SEED, buffer_size=100,
                        learning_starts=10, policy_kwargs={"dueling": True})
    elif name == "ppo2_cnn":
        image = gym.spaces.Box(0, 255, shape=(84, 84, 4), dtype=np.uint8)
        model = sb2.PPO2("CnnPolicy", SpacesEnv(image, gym.spaces.Discrete(6)), seed=SEED, nminibatches=1)
    elif name == "ppo2_lstm":
        model = sb2.PPO2("MlpLstmPolicy", SpacesEnv(box(4), gym.spaces.Discrete(2)), seed=SEED, nminibatches=1)
    else:
        raise SystemExit("no recipe for model {!r}".format(name))
    if MODELS[name]["algorithm"] in ("SAC", "TD3"):
        randomize_off_policy(model, SEED)
    else:
        randomize(model, SEED)
    return model


def decision_scores(model, algorithm: str, obs: np.ndarray, state=None, mask=None):
    """(output name, SB2's scores the discrete action is the argmax of) or None for continuous actions:
    PPO2's logits, DQN's (dueling) Q-values."""
    policy = sb2_policy(model)
    if algorithm == "DQN":
        return "q_values", policy.sess.run(policy.q_values, {policy.obs_ph: obs})
    if algorithm != "PPO2":
        return None
    feed = {policy.obs_ph: obs}
    if state is not None:
        feed.update({policy.states_ph: state, policy.dones_ph: mask.astype(np.float32)})
    return "logits", policy.sess.run(policy.policy, feed)


def feed_forward_reference(model, algorithm: str, observations: np.ndarray) -> dict:
    """SB2's deterministic actions (and logits / Q-values) on the first REFERENCE_ROWS observations."""
    obs = observations[:REFERENCE_ROWS]
    actions, _ = model.predict(obs, deterministic=True)
    reference = {"obs": obs, "action": actions}
    scores = decision_scores(model, algorithm, obs)
    if scores is not None:
        reference[scores[0]] = scores[1]
    return reference


def rollout_reference(model, algorithm: str, observations: np.ndarray) -> dict:
    """One env stepped ROLLOUT_STEPS times through SB2's predict, with episode resets at RESET_STEPS:
    per step the observation, mask, action, logits and the state SB2 returns."""
    state = model.initial_state
    steps = {"obs": [], "mask": [], "action": [], "logits": [], "state": []}
    for step in range(ROLLOUT_STEPS):
        obs, mask = observations[step:step + 1], np.array([step in RESET_STEPS])
        _, logits = decision_scores(model, algorithm, obs, state, mask)
        action, next_state = model.predict(obs, state, mask, deterministic=True)
        for key, value in zip(steps, (obs[0], mask[0], action[0], logits[0], next_state[0])):
            steps[key].append(value)
        state = next_state
    return {key: np.stack(values) for key, values in steps.items()}


def fingerprint() -> str:
    """A digest of everything a model's files depend on: this script, the catalog, the test suite's model
    helpers and the exporter. A change rebuilds the models."""
    sources = [os.path.abspath(__file__), os.path.join(ROOT, "benchmarks", "catalog.py")]
    sources += sorted(glob.glob(os.path.join(ROOT, "tests", "live", "*_models.py")))
    sources += sorted(glob.glob(os.path.join(ROOT, "sbif", "export", "*.py")))
    digest = hashlib.sha256()
    for path in sources:
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()


def up_to_date(name: str, stamp: str) -> bool:
    stamp_file = model_file(name, "fingerprint")
    outputs = ["sb2.zip", "model.sbif", "observations.npy", "reference.npz"]
    if not all(os.path.exists(model_file(name, f)) for f in outputs + ["fingerprint"]):
        return False
    with open(stamp_file) as handle:
        return handle.read().strip() == stamp


def make(name: str, stamp: str) -> None:
    os.makedirs(model_dir(name), exist_ok=True)
    zip_path = model_file(name, "sb2.zip")
    algorithm = MODELS[name]["algorithm"]
    with quiet():
        build(name).save(zip_path)
        model = getattr(sb2, algorithm).load(zip_path)
    sbif_file, report = export(zip_path, loader="live")
    sbif_file.write(model_file(name, "model.sbif"))
    print("  {}: exported, live verification {}".format(name, report), file=sys.stderr)
    space = sbif_file.document["observation_space"]
    observations = sample_observations(space, OBSERVATION_ROWS, np.random.default_rng(SEED))
    np.save(model_file(name, "observations.npy"), observations)
    with quiet():
        reference = (rollout_reference(model, algorithm, observations) if MODELS[name]["kind"] == "lstm"
                     else feed_forward_reference(model, algorithm, observations))
    np.savez(model_file(name, "reference.npz"), **reference)
    with open(model_file(name, "fingerprint"), "w") as handle:
        handle.write(stamp + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="", help="comma-separated model names (default: all)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild even if the files are up to date")
    args = parser.parse_args()
    stamp = fingerprint()
    for name in parse_models(args.models):
        if not args.rebuild and up_to_date(name, stamp):
            print("  {}: up to date".format(name), file=sys.stderr)
            continue
        started = time.time()
        print("  {}: building with SB2 ...".format(name), file=sys.stderr)
        make(name, stamp)
        print("  {}: done in {:.1f} s".format(name, time.time() - started), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
