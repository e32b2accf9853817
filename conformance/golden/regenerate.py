"""Re-record the golden packs shipped in this directory (run in the SB2 environment, from the repository root):

    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 TF_CPP_MIN_LOG_LEVEL=3 \\
        .venv-sb2/bin/python conformance/golden/regenerate.py

Each preset builds an SB2 model with random weights (the builders of `tests/live/`, so the packs cover what the
live differential tests cover) or takes the shipped demo model, exports it with the live loader, and records
SB2's answers to the suite's probes next to it (`NAME.sbif` + `NAME.golden`). The SB2 files themselves are not
kept: a pack needs only the `.sbif` file it was recorded for.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)


def presets():
    """name -> function building the SB2 file in a directory (returns its path)."""
    from tests.live import dqn_models, off_policy_models, sb2_models

    def ac(algorithm, obs, action, arch, policy="MlpPolicy", n_envs=1, policy_kwargs=None, seed=0):
        def build(directory, name):
            model = sb2_models.make_model(algorithm, obs, action, arch, seed=seed, policy=policy, n_envs=n_envs,
                                          policy_kwargs=policy_kwargs)
            return sb2_models.save(model, directory, name)
        return build

    small = {"layers": [16, 8]}

    def dqn(policy, obs, seed=0):
        def build(directory, name):
            return sb2_models.save(dqn_models.make_dqn(policy, obs, seed=seed, policy_kwargs=small), directory, name)
        return build

    def off_policy(algorithm, policy, obs, action, seed=0, **kwargs):
        def build(directory, name):
            model = off_policy_models.make_model(algorithm, policy, obs, action, seed=seed, policy_kwargs=small,
                                                 **kwargs)
            return sb2_models.save(model, directory, name)
        return build

    def demo(directory, name):
        return shutil.copy(os.path.join(ROOT, "demo", "ppo2_cartpole.zip"), os.path.join(directory, name + ".zip"))

    return {
        "demo_ppo2_cartpole": demo,
        "ppo2_mlp_box_discrete": ac("PPO2", "box", "discrete", 0, seed=1),
        "a2c_mlp_multidiscrete": ac("A2C", "multi_discrete", "multi_discrete", 1, seed=2),
        "acktr_mlp_multibinary": ac("ACKTR", "multi_binary", "multi_binary", 2, seed=3),
        "trpo_mlp_mixedbounds_box": ac("TRPO", "box_mixed_bounds", "box", 3, seed=4),
        "ppo1_mlp_discreteobs_box": ac("PPO1", "discrete", "box", 4, seed=5),
        "acer_mlp_image_discrete": ac("ACER", "image_uint8", "discrete", 5, seed=6),
        "ppo2_lstm_box_discrete": ac("PPO2", "box", "discrete", 0, policy="MlpLstmPolicy", n_envs=3,
                                     policy_kwargs={"n_lstm": 4}, seed=7),
        "a2c_lnlstm_netarch_box": ac("A2C", "multi_discrete", "box", 0, policy="MlpLnLstmPolicy", n_envs=2,
                                     policy_kwargs={"n_lstm": 3, "net_arch": [6, "lstm", dict(pi=[4], vf=[5])]},
                                     seed=8),
        "dqn_lnmlp_box": dqn("LnMlpPolicy", "box", seed=9),
        "sac_lnmlp_box": off_policy("SAC", "LnMlpPolicy", "box", "box3", seed=10),
        "td3_mlp_box": off_policy("TD3", "MlpPolicy", "box", "box1", seed=11),
        "ddpg_lnmlp_normalized": off_policy("DDPG", "LnMlpPolicy", "box", "box3", seed=12,
                                           normalize_observations=True),
    }


def main(argv=None) -> int:
    from conformance.adapters.sb2_live import Sb2Runtime
    from conformance.record import export_live, record

    wanted = list(argv if argv is not None else sys.argv[1:])
    table = presets()
    oracle = Sb2Runtime()
    scratch = tempfile.mkdtemp(prefix="sbif-golden-")
    try:
        for name, build in table.items():
            if wanted and name not in wanted:
                continue
            source = build(scratch, name)
            target = os.path.join(HERE, name + ".sbif")
            export_live(source, target)
            oracle.mapping[os.path.abspath(target)] = os.path.abspath(source)
            pack, skipped = record(target, oracle, os.path.join(HERE, name + ".golden"))
            print("{}: {}".format(pack, "; ".join("{} not recorded ({})".format(k, v) for k, v in skipped.items())
                                  or "every check recorded"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
