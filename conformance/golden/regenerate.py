"""Re-record the golden packs shipped in this directory, from the repository root: the SB2 packs in the SB2
environment, the SB3 ones (`sb3_*`) in the modern one:

    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 TF_CPP_MIN_LOG_LEVEL=3 \\
        .venv-sb2/bin/python conformance/golden/regenerate.py [NAME ...]
    .venv/bin/python conformance/golden/regenerate.py [NAME ...]

With no names every pack whose framework this Python has is recorded again (the SB2 ones in about 3 minutes on 2
cores, the SB3 ones in about 20 seconds); `--list` prints the names and the framework of each. Each SB2 preset
builds an SB2 model with random weights (the builders of `tests/live/`, so the packs cover what the live
differential tests cover), takes the shipped demo model, or takes one trained model per algorithm from
`../shared/zoo` (rl-baselines-zoo, MIT licence: the `.sbif` files embed its weights), exports it with the live
loader — folding in VecNormalize statistics where the model was trained under them, found beside zoo models as
`sbif export` finds them — and records SB2's answers to the suite's probes next to it (`NAME.sbif` + `NAME.golden`),
the oracle feeding SB2 the normalized observations. The SB2 files themselves are not kept: a pack needs only the
`.sbif` file it was recorded for.

Image models use nearly the smallest image nature_cnn accepts (`IMAGE`: 36x44, two uint8 channels, so SB2's /255
scaling is in every answer) and fewer probes. Their files are the CNN's weights, which no setting shrinks: 0.5 MB
per nature_cnn tower (130k parameters), and a file holds every tower SB2 keeps, target networks included. That is
why the SAC/TD3/DDPG image policies have no pack: three or four towers each (1.6-2.1 MB) would double the
directory, for ops and preprocessing the packs here already hold (the same tower and scaling in the actor-critic,
recurrent and DQN image packs; the squashed and tanh heads in sac_lnmlp_box and td3_mlp_box). The live tests
cover them.

Each SB3 preset saves a Stable-Baselines3 or sb3-contrib model with random weights from a seed and tiny networks
(`tests/conformance/sb3_pack_models.py`, over the builders of `tests/sb3_models.py`), exports it with the live
loader (rl-zoo3's `vecnormalize.pkl` found beside the VecNormalize model) and records SB3's answers
(`conformance.adapters.sb3_live`). Its image is channel-last (SB3 saves it transposed), as small as NatureCNN allows,
with 16 features.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, ContextManager, Dict, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from conformance.checks import Config  # noqa: E402
from sbif.errors import SbifError  # noqa: E402

#: (the SB2 file, the normalization options of `export_live`: vecnormalize / zoo_config paths, overriding what
#: `export` finds beside the file)
Built = Tuple[str, Dict[str, str]]
Builder = Callable[[str, str], Built]

#: the hidden layers of the random-weight DQN, SAC, TD3 and DDPG models
SMALL_LAYERS = {"layers": [16, 8]}
#: the image of the CNN presets: nature_cnn needs 36 rows and columns at least; 44 columns make its last feature
#: map 1x2 instead of 1x1, so that the order in which it is flattened (SB2's NHWC) shows: a port flattening NCHW
#: fails. Two uint8 channels: SB2 scales them by 1/255 in its graph.
IMAGE = "image_36x44_uint8"
#: probes of image models: few rows (an observation is 3.2 KB, 25 KB in the float64 truncation probe)
IMAGE_CONFIG = Config(batches=[1, 2], envs=[2, 1], steps=4)


class RegenerateError(SbifError):
    """A preset cannot be recorded as asked (unknown name, the zoo missing)."""


#: the oracle of each framework: (its module, its class, the environment it runs in)
ORACLES = {"sb2": ("conformance.adapters.sb2_live", "Sb2Runtime", ".venv-sb2"),
           "sb3": ("conformance.adapters.sb3_live", "Sb3Runtime", ".venv")}


class Preset:
    """How one pack is made: `build(directory, name)` writes the model file (and any statistics) into an empty
    directory; building, exporting and recording run inside `loading()` (what SB2 needs to build or load the
    model); `config` sizes the probes (None: the suite's); `framework` ("sb2" or "sb3") names the oracle."""

    def __init__(self, build: Builder, config: Optional[Config] = None,
                 loading: Callable[[], ContextManager[Any]] = contextlib.nullcontext, framework: str = "sb2"):
        self.build, self.config, self.loading, self.framework = build, config, loading, framework


def presets() -> Dict[str, Preset]:
    """name -> Preset, in recording order (listing them needs no SB2: the builders import it when they run)."""
    return {
        "demo_ppo2_cartpole": Preset(demo),
        "ppo2_mlp_box_discrete": Preset(actor_critic("PPO2", "box", "discrete", 0, seed=1)),
        "a2c_mlp_multidiscrete": Preset(actor_critic("A2C", "multi_discrete", "multi_discrete", 1, seed=2)),
        "acktr_mlp_multibinary": Preset(actor_critic("ACKTR", "multi_binary", "multi_binary", 2, seed=3)),
        "trpo_mlp_mixedbounds_box": Preset(actor_critic("TRPO", "box_mixed_bounds", "box", 3, seed=4)),
        "ppo1_mlp_discreteobs_box": Preset(actor_critic("PPO1", "discrete", "box", 4, seed=5)),
        "acer_mlp_image_discrete": Preset(actor_critic("ACER", "image_uint8", "discrete", 5, seed=6)),
        "ppo2_lstm_box_discrete": Preset(actor_critic("PPO2", "box", "discrete", 0, policy="MlpLstmPolicy", n_envs=3,
                                                      policy_kwargs={"n_lstm": 4}, seed=7)),
        "a2c_lnlstm_netarch_box": Preset(actor_critic(
            "A2C", "multi_discrete", "box", 0, policy="MlpLnLstmPolicy", n_envs=2,
            policy_kwargs={"n_lstm": 3, "net_arch": [6, "lstm", dict(pi=[4], vf=[5])]}, seed=8)),
        "dqn_lnmlp_box": Preset(dqn("LnMlpPolicy", "box", SMALL_LAYERS, seed=9)),
        "sac_lnmlp_box": Preset(off_policy("SAC", "LnMlpPolicy", "box", "box3", seed=10)),
        "td3_mlp_box": Preset(off_policy("TD3", "MlpPolicy", "box", "box1", seed=11)),
        "ddpg_lnmlp_normalized": Preset(off_policy("DDPG", "LnMlpPolicy", "box", "box3", seed=12,
                                                   normalize_observations=True)),
        # images: nature_cnn on uint8 pixels, which SB2's graph scales by 1/255
        "ppo2_cnn_uint8_discrete": Preset(actor_critic("PPO2", IMAGE, "discrete", 0, policy="CnnPolicy", seed=13),
                                          IMAGE_CONFIG, image_space),
        "a2c_cnnlstm_uint8_box": Preset(actor_critic("A2C", IMAGE, "box", 0, policy="CnnLstmPolicy", n_envs=2,
                                                     policy_kwargs={"n_lstm": 4}, seed=14), IMAGE_CONFIG, image_space),
        "acer_cnnlnlstm_uint8_discrete": Preset(actor_critic("ACER", IMAGE, "discrete", 0, policy="CnnLnLstmPolicy",
                                                             n_envs=2, policy_kwargs={"n_lstm": 4}, seed=15),
                                                IMAGE_CONFIG, image_space),
        "dqn_cnn_dueling_uint8": Preset(dqn("CnnPolicy", IMAGE, {"layers": [16], "dueling": True}, seed=16),
                                        IMAGE_CONFIG, image_space),
        # the off-policy algorithms on MultiDiscrete and MultiBinary observations, GAIL, the wrappers, HER
        "dqn_mlp_multidiscrete_obs": Preset(dqn("MlpPolicy", "multi_discrete", SMALL_LAYERS, seed=18)),
        "td3_mlp_multibinary_obs": Preset(off_policy("TD3", "MlpPolicy", "multi_binary", "box3", seed=19)),
        "gail_mlp_box": Preset(actor_critic("GAIL", "box", "box", 1, seed=20)),
        "ppo2_mlp_vecnormalize": Preset(vecnormalize_saved),
        "a2c_mlp_zoo_framestack": Preset(frame_stacked),
        "her_dqn_goals": Preset(her("DQN", seed=21)),
        "her_sac_goals": Preset(her("SAC", seed=22)),
        # one trained rl-baselines-zoo model per algorithm, with the zoo's normalization
        "zoo_a2c_bipedalwalker": Preset(zoo("a2c/BipedalWalker-v2.pkl")),
        "zoo_acer_cartpole": Preset(zoo("acer/CartPole-v1.pkl")),
        "zoo_acktr_pendulum": Preset(zoo("acktr/Pendulum-v0.zip")),
        "zoo_ddpg_pendulum": Preset(zoo("ddpg/Pendulum-v0.pkl")),
        "zoo_dqn_cartpole": Preset(zoo("dqn/CartPole-v1.pkl")),
        "zoo_her_sac_fetchreach": Preset(zoo("her/FetchReach-v1.pkl")),
        "zoo_ppo2_cartpole_bullet": Preset(zoo("ppo2/CartPoleContinuousBulletEnv-v0.zip")),
        "zoo_sac_pendulum": Preset(zoo("sac/Pendulum-v0.pkl")),
        "zoo_td3_pendulum": Preset(zoo("td3/Pendulum-v0.pkl")),
        "zoo_trpo_pendulum": Preset(zoo("trpo/Pendulum-v0.pkl")),
        # Stable-Baselines3 and sb3-contrib: one pack per family and variant, recorded from SB3
        "sb3_ppo_mlp_discrete": sb3("PPO", "MlpPolicy", "box", "discrete", {"net_arch": dict(pi=[8], vf=[6])},
                                    seed=31),
        "sb3_ppo_mlp_box": sb3("PPO", "MlpPolicy", "box2d", "box2d", {"net_arch": [8]}, seed=32),
        "sb3_a2c_mlp_multidiscrete": sb3("A2C", "MlpPolicy", "multidiscrete", "multidiscrete",
                                         {"net_arch": [8], "activation_fn": "ReLU"}, seed=33),
        "sb3_ppo_mlp_multibinary": sb3("PPO", "MlpPolicy", "multibinary", "multibinary", {"net_arch": [6]}, seed=34),
        "sb3_ppo_cnn_hwc_separate": sb3("PPO", "CnnPolicy", "image-hwc", "discrete",
                                        {"net_arch": [8], "features_extractor_kwargs": {"features_dim": 16},
                                         "share_features_extractor": False}, seed=35, config=IMAGE_CONFIG),
        "sb3_ppo_gsde": sb3("PPO", "MlpPolicy", "box", "box", {"net_arch": [8], "squash_output": True}, seed=36,
                            use_sde=True),
        "sb3_trpo_mlp_discreteobs_box": sb3("TRPO", "MlpPolicy", "discrete", "box", {"net_arch": [8]}, seed=37),
        "sb3_dqn_mlp_epsilon_greedy": sb3("DQN", "MlpPolicy", "box", "discrete", {"net_arch": [8]}, seed=38,
                                          exploration_initial_eps=0.6, exploration_final_eps=0.3),
        "sb3_qrdqn_mlp": sb3("QRDQN", "MlpPolicy", "box", "discrete", {"net_arch": [8], "n_quantiles": 5}, seed=39),
        "sb3_sac_mlp": sb3("SAC", "MlpPolicy", "box", "box2d", {"net_arch": [8]}, seed=40),
        "sb3_sac_gsde": sb3("SAC", "MlpPolicy", "box", "box", {"net_arch": [8]}, seed=41, use_sde=True),
        "sb3_tqc_mlp": sb3("TQC", "MlpPolicy", "box2d", "box", {"net_arch": [8], "n_quantiles": 5}, seed=42),
        "sb3_td3_mlp": sb3("TD3", "MlpPolicy", "box", "box", {"net_arch": [8]}, seed=43),
        "sb3_ddpg_mlp": sb3("DDPG", "MlpPolicy", "multibinary", "box", {"net_arch": [8]}, seed=44),
        "sb3_ars_linear_discrete": sb3("ARS", "LinearPolicy", "box", "discrete", seed=45),
        "sb3_ars_mlp_box": sb3("ARS", "MlpPolicy", "box", "box", {"net_arch": [8]}, seed=46),
        "sb3_ppo_zoo_vecnormalize": Preset(sb3_vecnormalized(seed=47), framework="sb3"),
        "sb3_recurrentppo_lstm_discrete": sb3("RecurrentPPO", "MlpLstmPolicy", "box", "discrete",
                                              {"net_arch": [8], "lstm_hidden_size": 4}, seed=48),
        "sb3_recurrentppo_shared_lstm_multibinary": sb3(
            "RecurrentPPO", "MlpLstmPolicy", "box2d", "multibinary",
            {"net_arch": [6], "lstm_hidden_size": 3, "n_lstm_layers": 2, "shared_lstm": True,
             "enable_critic_lstm": False}, seed=49),
        "sb3_maskableppo_multidiscrete": sb3("MaskablePPO", "MlpPolicy", "box", "multidiscrete", {"net_arch": [8]},
                                             seed=50),
        "sb3_crossq_mlp": sb3("CrossQ", "MlpPolicy", "box", "box", {"net_arch": [8, 8], "batch_norm_eps": 0.05},
                              seed=51),
    }


def saved(model: Any, directory: str, name: str) -> Built:
    """`model` saved as `NAME.zip` (SB2's own save), exported without normalization."""
    from tests.live.sb2_models import save

    return save(model, directory, name), {}


def demo(directory: str, name: str) -> Built:
    """The shipped demo model (demo/ppo2_cartpole.zip, trained by this project)."""
    return shutil.copy(os.path.join(ROOT, "demo", "ppo2_cartpole.zip"), os.path.join(directory, name + ".zip")), {}


def actor_critic(algorithm: str, obs: str, action: str, arch: int, policy: str = "MlpPolicy", n_envs: int = 1,
                 policy_kwargs: Optional[Dict[str, Any]] = None, seed: int = 0) -> Builder:
    """tests/live/sb2_models.make_model: `arch` picks MlpPolicy's net_arch/activation variant."""
    def build(directory: str, name: str) -> Built:
        from tests.live.sb2_models import make_model

        return saved(make_model(algorithm, obs, action, arch, seed=seed, policy=policy, n_envs=n_envs,
                                policy_kwargs=policy_kwargs), directory, name)
    return build


def dqn(policy: str, obs: str, policy_kwargs: Dict[str, Any], seed: int) -> Builder:
    """tests/live/dqn_models.make_dqn."""
    def build(directory: str, name: str) -> Built:
        from tests.live.dqn_models import make_dqn

        return saved(make_dqn(policy, obs, seed=seed, policy_kwargs=policy_kwargs), directory, name)
    return build


def off_policy(algorithm: str, policy: str, obs: str, action: str, seed: int, **kwargs: Any) -> Builder:
    """tests/live/off_policy_models.make_model (SAC, TD3, DDPG); `kwargs` go to the algorithm."""
    def build(directory: str, name: str) -> Built:
        from tests.live.off_policy_models import make_model

        return saved(make_model(algorithm, policy, obs, action, seed=seed, policy_kwargs=SMALL_LAYERS,
                                **kwargs), directory, name)
    return build


@contextlib.contextmanager
def image_space():
    """`IMAGE` among the observation spaces of tests/live/sb2_models.py while the block runs (the builders take
    spaces by name; their 36x36 images would hide the flatten order)."""
    import numpy as np

    from tests.live.sb2_models import IMAGE_SPACES, gym

    IMAGE_SPACES[IMAGE] = lambda: gym.spaces.Box(0, 255, shape=(36, 44, 2), dtype=np.uint8)
    try:
        yield
    finally:
        del IMAGE_SPACES[IMAGE]


def vecnormalize_saved(directory: str, name: str) -> Built:
    """PPO2 trained under SB2's `VecNormalize` (tests/live/test_gail_vecnormalize.py), with its statistics saved
    by `VecNormalize.save`: the file takes raw float64 observations."""
    from tests.live.test_gail_vecnormalize import make_normalized

    _, venv = make_normalized(pathlib.Path(directory), clip_obs=5.0, epsilon=1e-6)
    source = os.path.join(directory, name + ".zip")
    os.replace(os.path.join(directory, "model.zip"), source)
    statistics = os.path.join(directory, "vecnormalize.pkl")
    venv.save(statistics)
    return source, {"vecnormalize": statistics}


def frame_stacked(directory: str, name: str) -> Built:
    """A2C with Box actions trained the zoo's way under `normalize` and `frame_stack: 3` (VecFrameStack over
    VecNormalize), laid out as the zoo lays it out (`NAME.zip`, `NAME/config.yml`, `NAME/obs_rms.pkl`): each of
    the three stacked frames is normalized with the same statistics."""
    import numpy as np

    from sbif.export.live import quiet
    from tests.live.sb2_models import gym, randomize, sb2
    from tests.live.test_gail_vecnormalize import SkewedEnv

    vec_env = sb2.common.vec_env
    observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    action_space = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([2.0, 0.5], np.float32))
    np.random.seed(23)  # SkewedEnv draws from NumPy's global generator: the statistics are reproducible
    normalized = vec_env.VecNormalize(vec_env.DummyVecEnv([lambda: SkewedEnv(observation_space, action_space)]),
                                      clip_obs=4.0)
    stacked = vec_env.VecFrameStack(normalized, 3)
    stacked.reset()
    for _ in range(100):
        stacked.step(np.zeros((1, 2), np.float32))
    with quiet():
        model = sb2.A2C("MlpPolicy", stacked, n_steps=4, seed=23)
        randomize(model, 23)
    source, _ = saved(model, directory, name)
    folder = os.path.join(directory, name)
    os.makedirs(folder)
    normalized.save_running_average(folder)
    with open(os.path.join(folder, "config.yml"), "w") as handle:
        handle.write("normalize: \"{'clip_obs': 4.0}\"\nframe_stack: 3\nn_envs: 1\npolicy: MlpPolicy\n")
    return source, {}


def her(inner: str, seed: int) -> Builder:
    """HER over `inner` on the goal environment of tests/live/test_her.py (a dict of Box observation and goals);
    the pack's predict_api probes send the dict."""
    def build(directory: str, name: str) -> Built:
        import numpy as np

        from sbif.export.live import quiet
        from tests.live.sb2_models import gym, randomize, sb2
        from tests.live.test_her import GoalEnv

        action_space = gym.spaces.Discrete(3) if inner == "DQN" else gym.spaces.Box(-2.0, 1.0, (2,), np.float32)
        with quiet():
            model = sb2.HER("MlpPolicy", GoalEnv(action_space, "box"), getattr(sb2, inner), seed=seed,
                            policy_kwargs=SMALL_LAYERS)
            randomize(model.model, seed)
        return saved(model, directory, name)
    return build


def zoo(relative: str) -> Builder:
    """A trained model of ../shared/zoo (the normalization the zoo applied to it is found beside it)."""
    def build(directory: str, name: str) -> Built:
        from tests.zoo import ZOO

        source = os.path.join(ZOO, relative)
        if not os.path.isfile(source):
            raise RegenerateError("{} is missing: the zoo presets need ../shared/zoo".format(os.path.normpath(source)))
        return source, {}
    return build


def sb3(algorithm: str, policy: str, observation: str, action: str, policy_kwargs: Optional[Dict[str, Any]] = None,
        seed: int = 0, config: Optional[Config] = None, **algorithm_kwargs: Any) -> Preset:
    """An SB3 model of tests/sb3_models.py's spaces (by their names there), random from `seed`; an `activation_fn`
    is named by its torch.nn class."""
    def build(directory: str, name: str) -> Built:
        from tests.conformance.sb3_pack_models import save_case

        return save_case(directory, name, algorithm, policy, observation, action, policy_kwargs, seed,
                         **algorithm_kwargs), {}
    return Preset(build, config, framework="sb3")


def sb3_vecnormalized(seed: int) -> Builder:
    """A PPO with rl-zoo3's `vecnormalize.pkl` beside it, found there by the exporter and the oracle alike."""
    def build(directory: str, name: str) -> Built:
        from tests.conformance.sb3_pack_models import save_vecnormalized

        source, _ = save_vecnormalized(directory, name, seed)
        return source, {}
    return build


def record_preset(name: str, preset: Preset, oracle: Any, scratch: str) -> str:
    """Build, export and record one preset; returns a one-line summary."""
    from conformance.record import export_live, record
    from sbif.export.exporter import decide_normalization

    directory = os.path.join(scratch, name)
    os.makedirs(directory)
    target = os.path.join(HERE, name + ".sbif")
    with preset.loading():
        source, options = preset.build(directory, name)
        export_live(source, target, **options)
        if preset.framework == "sb3":
            oracle.add(target, source, vecnormalize=options.get("vecnormalize"))
        else:
            normalization = decide_normalization(source, options.get("vecnormalize"),
                                                 options.get("zoo_config")).statistics
            oracle.add(target, source, normalization=normalization)
        pack, skipped = record(target, oracle, os.path.join(HERE, name + ".golden"), config=preset.config)
    return "{}: {}".format(os.path.relpath(pack, ROOT), "; ".join(
        "{} not recorded ({})".format(check, reason) for check, reason in skipped.items()) or "every check recorded")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regenerate.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="presets to record (default: all those whose framework this Python has)")
    parser.add_argument("--list", action="store_true", help="print the preset names and stop")
    return parser


def oracle_here(framework: str) -> Any:
    """The framework's oracle in this Python, or the environment to run in where it cannot be imported."""
    import importlib

    module, name, environment = ORACLES[framework]
    try:
        return getattr(importlib.import_module(module), name)()
    except (ImportError, SbifError) as exc:  # (the SB2 oracle explains a missing SB2 with an ExportError)
        return "the {} environment ({}/bin/python): {}".format(framework.upper(), environment, exc)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    table = presets()
    if args.list:
        print("\n".join("{} ({})".format(name, preset.framework) for name, preset in table.items()))
        return 0
    try:
        unknown = [name for name in args.names if name not in table]
        if unknown:
            raise RegenerateError("unknown preset {} (--list shows them)".format(", ".join(unknown)))
        oracles = {framework: oracle_here(framework) for framework in ORACLES}
        if args.names:
            missing = ["{} needs {}".format(name, oracles[table[name].framework]) for name in args.names
                       if isinstance(oracles[table[name].framework], str)]
            if missing:
                raise RegenerateError("; ".join(missing))
            names = args.names
        else:
            names = [name for name, preset in table.items() if not isinstance(oracles[preset.framework], str)]
            for framework, oracle in oracles.items():
                if isinstance(oracle, str):
                    print("not recording the {} presets: they need {}".format(framework, oracle), flush=True)
        scratch = tempfile.mkdtemp(prefix="sbif-golden-")
        started = time.time()
        try:
            for name in names:
                print(record_preset(name, table[name], oracles[table[name].framework], scratch), flush=True)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        print("recorded {} pack(s) in {:.0f} s".format(len(names), time.time() - started))
    except SbifError as exc:
        print("regenerate: {}".format(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
