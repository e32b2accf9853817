"""The benchmark's models and file layout, shared by both environments (Python 3.7 and the modern one).

Everything generated (SB2 saves, SBIF/ONNX files, observations, SB2's reference outputs, numba's cache) lives
under `benchmarks/.work/`; only `benchmarks/results/latest.{json,md}` are meant to be committed.
"""
from __future__ import annotations

import os
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join(HERE, ".work")
MODELS_DIR = os.path.join(WORK, "models")
NUMBA_CACHE = os.path.join(WORK, "numba-cache")
RESULTS = os.path.join(HERE, "results")
SB2_PYTHON = os.path.join(ROOT, ".venv-sb2", "bin", "python")

#: name -> what SB2 builds. `kind` decides which targets apply: "mlp", "cnn" or "lstm".
MODELS = OrderedDict([
    ("ppo2_mlp", {"title": "PPO2 MlpPolicy 64×64", "kind": "mlp", "algorithm": "PPO2"}),
    ("sac_256", {"title": "SAC 256×256", "kind": "mlp", "algorithm": "SAC"}),
    ("td3_400_300", {"title": "TD3 400×300", "kind": "mlp", "algorithm": "TD3"}),
    ("dqn_dueling", {"title": "DQN dueling 64×64", "kind": "mlp", "algorithm": "DQN"}),
    ("ppo2_cnn", {"title": "PPO2 nature-CNN 84×84×4", "kind": "cnn", "algorithm": "PPO2"}),
    ("ppo2_lstm", {"title": "PPO2 MlpLstm 64×64→LSTM256", "kind": "lstm", "algorithm": "PPO2"}),
])
#: the 400×300 net whose numba kernel is held against the FLOP-bound limit
KERNEL_MODEL = "td3_400_300"
BATCH_SIZES = (256, 4096)
#: observations stored per model: enough for the largest batch; the first REFERENCE_ROWS carry SB2's outputs
OBSERVATION_ROWS = max(BATCH_SIZES)
REFERENCE_ROWS = 256
#: the recurrent reference is one env stepped this many times, with episode resets at RESET_STEPS
ROLLOUT_STEPS = 64
RESET_STEPS = (21, 42)


def model_dir(name: str) -> str:
    return os.path.join(MODELS_DIR, name)


def model_file(name: str, file_name: str) -> str:
    """A generated file of one model: sb2.zip, model.sbif, model.onnx, observations.npy, reference.npz."""
    return os.path.join(model_dir(name), file_name)


def parse_models(text: str) -> list:
    """`a,b` -> the listed model names, checked against the catalog (None or '' -> all)."""
    if not text:
        return list(MODELS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise SystemExit("unknown model(s) {}; choose from {}".format(", ".join(unknown), ", ".join(MODELS)))
    return names
