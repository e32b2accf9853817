"""SB2's side of the benchmark (run in .venv-sb2): `model.predict` as shipped, TensorFlow 1.15 on its defaults.

    sb2_side.py serve          a worker (harness protocol): load, check, single, batch for the coordinator
    sb2_side.py cold MODEL     a cold start: import stable_baselines, load the .zip, one predict, report

Recurrent models run one env per request as built (n_envs=1); for batch throughput SB2 needs a model built for
exactly that many envs, so the same file is loaded again with `n_envs=batch`. The state is carried from call to
call, as an agent would.
"""
from __future__ import annotations

import sys

import numpy as np

from catalog import MODELS, model_file
from harness import agreement, observations, report_first_action, serve, time_batch, time_single


def load_sb2(name: str, n_envs: int = 0):
    """SB2's model from the benchmark's .zip (rebuilt for `n_envs` envs when given)."""
    from sbif.export.live import import_sb2, quiet

    sb2 = import_sb2()
    with quiet():
        algorithm = getattr(sb2, MODELS[name]["algorithm"])
        return algorithm.load(model_file(name, "sb2.zip"), **({"n_envs": n_envs} if n_envs else {}))


class Stepper:
    """`predict` on a fixed batch, carrying a recurrent model's state from call to call."""

    def __init__(self, model, obs: np.ndarray, recurrent: bool):
        self.model, self.obs = model, obs
        self.state = model.initial_state if recurrent else None
        self.mask = np.zeros(len(obs), bool) if recurrent else None

    def __call__(self):
        actions, self.state = self.model.predict(self.obs, self.state, self.mask, deterministic=True)
        return actions


class Sb2Runtime:
    """The worker's runtime: SB2 models loaded once, observations from the benchmark's files."""

    def __init__(self):
        self.models, self.batch_models = {}, {}

    def load(self, model: str) -> dict:
        self.models[model] = load_sb2(model)  # imports SB2 and TensorFlow quietly
        import stable_baselines
        import tensorflow as tf

        return {"versions": "stable-baselines {}, tensorflow {}".format(stable_baselines.__version__, tf.__version__)}

    def check(self, model: str) -> dict:
        """SB2 against its own recorded outputs: proves the files on disk are the ones the reference came from."""
        reference = dict(np.load(model_file(model, "reference.npz")))
        sb2_model = self.models[model]
        if not self._recurrent(model):
            return agreement(model, {"action": reference["action"]}, {"action": sb2_model.predict(
                reference["obs"], deterministic=True)[0]})
        state, actions, states = sb2_model.initial_state, [], []
        for obs, mask in zip(reference["obs"], reference["mask"]):
            action, state = sb2_model.predict(obs[None], state, np.array([mask]), deterministic=True)
            actions.append(action[0])
            states.append(state[0])
        return agreement(model, {"action": reference["action"], "state": reference["state"]},
                         {"action": np.array(actions), "state": np.array(states)})

    def single(self, model: str, calls: int, warmup: int) -> list:
        first = observations(model, 1)
        if self._recurrent(model):
            return time_single(Stepper(self.models[model], first, True), calls, warmup)
        obs, sb2_model = first[0], self.models[model]
        return time_single(lambda: sb2_model.predict(obs, deterministic=True), calls, warmup)

    def batch(self, model: str, size: int, budget: float, min_calls: int) -> list:
        obs = observations(model, size)
        if self._recurrent(model):
            if (model, size) not in self.batch_models:
                self.batch_models[model, size] = load_sb2(model, n_envs=size)
            return time_batch(Stepper(self.batch_models[model, size], obs, True), budget, min_calls)
        return time_batch(Stepper(self.models[model], obs, False), budget, min_calls)

    @staticmethod
    def _recurrent(model: str) -> bool:
        return MODELS[model]["kind"] == "lstm"


def cold(name: str) -> None:
    """Process start to first action, as a user's script would do it; the coordinator times the process."""
    import warnings

    warnings.filterwarnings("ignore")
    import stable_baselines

    model = getattr(stable_baselines, MODELS[name]["algorithm"]).load(model_file(name, "sb2.zip"))
    obs = observations(name, 1)
    if MODELS[name]["kind"] == "lstm":
        model.predict(obs, model.initial_state, np.zeros(1, bool), deterministic=True)
    else:
        model.predict(obs[0], deterministic=True)
    report_first_action()


def main() -> int:
    if sys.argv[1:2] == ["serve"]:
        serve(Sb2Runtime())
    elif len(sys.argv) == 3 and sys.argv[1] == "cold":
        cold(sys.argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
