"""Stable-Baselines3 and sb3-contrib themselves as a conformance runtime: the SB3 oracle (the modern environment).

    python -m conformance.adapters.sb3_live [--sources DIR_OR_FILE ...] [--map MODEL.sbif=SOURCE.zip ...]

For a request naming an `.sbif` file, the adapter loads the SB3 save it was exported from — the file named in the
document's provenance (`source.file_name`, checked against `source.sha256`), looked for next to the `.sbif` file,
as `<model>.zip`, under `--sources`, or as given by `--map` — with SB3 (`sbif.export.sb3.live.load_sb3_model`), and
answers with SB3's own torch modules:

- the deterministic action is SB3's `predict(deterministic=True)`, flattened to the graph's output shape;
- values are `policy.predict_values`, Q-values what DQN's and QR-DQN's `predict` takes the argmax of, probabilities
  and standard deviations those of SB3's distribution objects, and an output named after one of the policy's
  modules (`action_net`, `actor.mu`) is that module's output in SB3's forward pass;
- sampled actions put the request's noise into SB3's distribution by the formulas of SPEC sections 5.3 and 5.9:
  Gumbel-max on SB3's logits, `u < p` on SB3's Bernoulli probabilities, SB3's mean + SB3's std·z (then `tanh` for
  a squashed Gaussian), followed by `predict`'s own clip or `unscale_action`; DQN's ε-greedy compares the
  exploration draw with the model's saved `exploration_rate` (`sbif/export/sb3/heads.py`);
- `predict` requests call `model.predict` (deterministic), or sample as above from the request's noise; `value`
  is `predict_values`; SB3 has no `action_probability`, so its outputs are listed as missing.

What a family computes is its entry in `FAMILIES` (keyed by `sbif.export.sb3.policy_classes`' family names): adding
a family is adding its forward there. A file with VecNormalize statistics folded in takes raw observations: the
oracle finds the statistics as the exporter does (`sbif.export.exporter.decide_normalization`) and feeds SB3 what
SB3's own `VecNormalize.normalize_obs` makes of them, as rl-zoo3 does.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import sys
import traceback
import warnings
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..protocol import Answer, Runtime, hello_message, serve
from .sb2_live import SourceNotFound, sha256_of

#: A family's forward pass: (the SB3 model, the observation tensor of SB3's `obs_to_tensor`) -> what SB3's own
#: modules give for it: "distribution" (an SB3 Distribution), "value" and "q_values" (tensors or arrays).
Forward = Callable[[Any, Any], Dict[str, Any]]


def actor_critic_forward(model: Any, obs: Any) -> Dict[str, Any]:
    """ActorCriticPolicy (A2C, PPO, TRPO): the action distribution and `predict_values`."""
    policy = model.policy
    return {"distribution": policy.get_distribution(obs), "value": policy.predict_values(obs).reshape(-1)}


def squashed_actor_forward(model: Any, obs: Any) -> Dict[str, Any]:
    """SAC's and TQC's Actor: the squashed Gaussian `actor.action_dist` builds from `get_action_dist_params`."""
    actor = model.policy.actor
    mean, log_std, kwargs = actor.get_action_dist_params(obs)
    return {"distribution": actor.action_dist.proba_distribution(mean, log_std, **kwargs)}


def q_network_forward(model: Any, obs: Any) -> Dict[str, Any]:
    """DQN's and QR-DQN's Q-values, as the live loader reads them (their argmax is `predict`'s greedy action)."""
    from sbif.export.sb3.live import _sb3_q_values

    return {"q_values": _sb3_q_values(model, obs)}


def deterministic_actor_forward(model: Any, obs: Any) -> Dict[str, Any]:
    """TD3, DDPG and ARS: `predict` is all there is (their files' only output is its action)."""
    return {}


FAMILIES: Dict[str, Forward] = {
    "actor_critic": actor_critic_forward, "sac": squashed_actor_forward, "dqn": q_network_forward,
    "qrdqn": q_network_forward, "td3": deterministic_actor_forward, "ars": deterministic_actor_forward,
}


class Sb3Runtime(Runtime):
    """The oracle, in-process (used by `conformance.record` and served by `main`)."""

    def __init__(self, sources: Sequence[str] = (), mapping: Optional[Mapping[str, str]] = None):
        import sb3_contrib
        import stable_baselines3
        import torch

        self.hello = hello_message("stable-baselines3", stable_baselines3.__version__,
                                   "python {}.{} + torch {} + sb3-contrib {}".format(
                                       sys.version_info[0], sys.version_info[1], torch.__version__,
                                       sb3_contrib.__version__), ("run", "predict", "sampling"), None)
        self.sources = list(sources)
        self.mapping = {os.path.abspath(k): os.path.abspath(v) for k, v in (mapping or {}).items()}
        #: .sbif path -> the VecNormalize save whose statistics it folds in (given by `add`)
        self.vecnormalize: Dict[str, Optional[str]] = {}
        self._models: Dict[str, "Sb3Model"] = {}
        self._index: Optional[Dict[str, str]] = None

    # -- finding the SB3 save ----------------------------------------------------------------------------------
    def source_of(self, sbif_path: str, provenance: Mapping[str, Any]) -> str:
        sbif_path = os.path.abspath(sbif_path)
        if sbif_path in self.mapping:
            return self.mapping[sbif_path]
        source = provenance.get("source", {})
        digest, name = source.get("sha256"), source.get("file_name", "")
        candidates = [os.path.join(os.path.dirname(sbif_path), name)] if name else []
        candidates.append(os.path.splitext(sbif_path)[0] + ".zip")
        differing = []
        for candidate in candidates:
            if os.path.isfile(candidate):
                if sha256_of(candidate) == digest:
                    return candidate
                differing.append(candidate)
        found = self._source_index().get(digest)
        if found:
            return found
        raise SourceNotFound("no SB3 save with sha256 {}... ({}) next to {} or under --sources{}".format(
            str(digest)[:12], name, sbif_path, "; these differ: " + ", ".join(differing) if differing else ""))

    def _source_index(self) -> Dict[str, str]:
        if self._index is None:
            self._index = {}
            for root in self.sources:
                paths = [root] if os.path.isfile(root) else [
                    os.path.join(d, f) for d, _, files in os.walk(root) for f in files]
                for path in paths:
                    if path.endswith(".zip"):
                        self._index.setdefault(sha256_of(path), path)
        return self._index

    def add(self, sbif_path: str, source: str, vecnormalize: Optional[str] = None) -> None:
        """Use the SB3 save `source` for `sbif_path`; `vecnormalize` is the VecNormalize save the file was exported
        with (None: the one the exporter finds beside `source`, if any)."""
        key = os.path.abspath(sbif_path)
        self.mapping[key] = os.path.abspath(source)
        self.vecnormalize[key] = vecnormalize
        self._models.pop(key, None)

    def model(self, sbif_path: str) -> "Sb3Model":
        key = os.path.abspath(sbif_path)
        if key not in self._models:
            from ..models import ModelInfo

            info = ModelInfo(key)
            self._models[key] = Sb3Model(info, self.source_of(key, info.provenance), self.vecnormalize.get(key))
        return self._models[key]

    # -- requests -----------------------------------------------------------------------------------------------
    def request(self, request: Mapping[str, Any]) -> Answer:
        kind = request.get("type")
        if kind not in ("run", "predict"):
            return Answer("skipped", message="the SB3 oracle answers run and predict requests, not {!r}".format(kind))
        try:
            model = self.model(request["model"])
            if model.unsupported:
                return Answer("skipped", message=model.unsupported)
            with unvalidated_distributions():
                if kind == "run":
                    outputs, missing = model.run(request["inputs"], request["outputs"])
                else:
                    outputs, missing = model.predict_request(request)
            return Answer("result", outputs, missing=missing)
        except SourceNotFound as exc:
            return Answer("errored", message=str(exc))
        except Exception as exc:
            return Answer("errored", message="{}: {}".format(type(exc).__name__, exc),
                          details=traceback.format_exc(limit=6))


class UnavailableOracle(Runtime):
    """The SB3 oracle where SB3 cannot be imported: every request is answered skipped with the reason, so each check
    is reported skipped with it (nothing was compared, so nothing failed)."""

    def __init__(self, reason: str):
        self.reason = reason
        self.hello = hello_message("stable-baselines3 (not importable)", "", "", ("run", "predict", "sampling"), None)

    def request(self, request: Mapping[str, Any]) -> Answer:
        return Answer("skipped", message=self.reason)


def sb3_oracle_or_unavailable(sources: Sequence[str] = ()) -> Runtime:
    """The SB3 oracle, or, where this Python cannot import SB3, sb3-contrib or torch, one that says so."""
    try:
        return Sb3Runtime(sources)
    except ImportError as exc:
        return UnavailableOracle("the SB3 oracle needs Stable-Baselines3, sb3-contrib and torch, which this Python "
                                 "cannot import ({}): run it from an environment with them, such as .venv".format(exc))


class Sb3Model:
    """One SB3 model and, for each output of the `.sbif` file exported from it, the SB3 computation behind it."""

    def __init__(self, info: Any, source: str, vecnormalize: Optional[str] = None):
        from sbif.export.sb3.live import load_sb3_model
        from sbif.export.sb3.policy_classes import policy_class

        self.info = info
        self.source = source
        self.model, self.algorithm = load_sb3_model(source, info.provenance["algorithm"])
        self.policy = self.model.policy
        self.policy.set_training_mode(False)
        module, _, name = info.provenance["policy_class"].rpartition(".")
        family = policy_class(module, name).family
        self.unsupported = "" if family in FAMILIES else \
            "the SB3 oracle has no forward pass for the {} family (conformance.adapters.sb3_live.FAMILIES)".format(
                family)
        self.forward = FAMILIES.get(family)
        self.normalizer = None
        if info.provenance.get("vecnormalize") is not None:
            self.normalizer, problem = sb3_normalizer(source, vecnormalize, info.provenance["vecnormalize"])
            self.unsupported = self.unsupported or problem
        predict = info.predict
        modules = dict(self.policy.named_modules())
        #: SBIF output name -> the role SB3 answers it in
        self.roles: Dict[str, str] = {}
        for name in info.outputs:
            if name in modules:
                self.roles[name] = "module"
        self.roles.setdefault(predict["deterministic_action"], "action")
        if predict.get("stochastic_action"):
            self.roles.setdefault(predict["stochastic_action"], "action_sample")
        for role, name in (info.distribution or {}).get("parameters", {}).items():
            self.roles.setdefault(name, role)
        for name in ("value", "q_values", "std", "probabilities"):
            if name in info.outputs:
                self.roles.setdefault(name, name)

    # -- observations -------------------------------------------------------------------------------------------
    def fed(self, observations: Any) -> Any:
        """What SB3's model is fed for the file's observations: rl-zoo3's VecNormalize applied by SB3 itself when
        the file folds it in."""
        if self.normalizer is None:
            return observations
        return self.normalizer.normalize_obs(np.asarray(observations))

    def observation_tensor(self, observations: Any) -> Tuple[Any, bool]:
        """SB3's `obs_to_tensor` of the fed observations: (tensor, whether they were a batch)."""
        return self.policy.obs_to_tensor(self.fed(observations))

    def out_of_space(self, observations: np.ndarray) -> Optional[str]:
        """Why SB3 cannot take these observations (its `one_hot` refuses indices outside [0, n)), or None."""
        space = self.model.observation_space
        kind = type(space).__name__
        if kind not in ("Discrete", "MultiDiscrete"):
            return None
        limit = space.nvec if kind == "MultiDiscrete" else space.n
        indices = np.asarray(observations)
        if np.all((indices >= 0) & (indices < limit)):
            return None
        return "SB3's one_hot refuses {} observations outside [0, n), which a row of this request holds".format(kind)

    # -- run requests -------------------------------------------------------------------------------------------
    def run(self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> Tuple[Dict[str, np.ndarray],
                                                                                       Dict[str, str]]:
        missing = {name: "SB3 has no counterpart of the SBIF output {!r}".format(name) for name in outputs
                   if name not in self.roles}
        wanted = [name for name in outputs if name in self.roles]
        refused = self.out_of_space(inputs["obs"])
        if refused:
            missing.update({name: refused for name in wanted})
            return {}, missing
        values = self.evaluate(inputs["obs"], wanted, {k: v for k, v in inputs.items() if k != "obs"})
        return values, missing

    def evaluate(self, observations: np.ndarray, wanted: Sequence[str], noise: Mapping[str, np.ndarray]
                 ) -> Dict[str, np.ndarray]:
        """The wanted outputs for a batch of observations, in the graph's output shapes."""
        import torch

        roles = {name: self.roles[name] for name in wanted}
        hooked = [name for name, role in roles.items() if role == "module"]
        captured: Dict[str, Any] = {}
        modules = dict(self.policy.named_modules())
        hooks = [modules[name].register_forward_hook(
            lambda module, args, output, name=name: captured.__setitem__(name, output)) for name in hooked]
        try:
            with torch.no_grad():
                tensor, _ = self.observation_tensor(observations)
                computed = self.forward(self.model, tensor)
        finally:
            for hook in hooks:
                hook.remove()
        values: Dict[str, np.ndarray] = {}
        for name, role in roles.items():
            if role == "module":
                value = captured[name]
            elif role == "action":
                value = self.deterministic_actions(observations)
            elif role == "action_sample":
                value = self.sampled_actions(observations, computed, noise)
            elif role in ("value", "q_values"):
                value = computed[role]
            else:
                value = distribution_parameter(computed["distribution"], role)
            values[name] = self.graph_shaped(name, _numpy(value))
        return values

    def graph_shaped(self, name: str, value: np.ndarray) -> np.ndarray:
        """`value` (batch first) in the rank the file declares for output `name` (Box actions are flat)."""
        rank = len(self.info.outputs[name]["shape"])
        return value.reshape(len(value), -1) if rank == 2 and value.ndim != 2 else value

    def deterministic_actions(self, observations: Any) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            actions, _ = self.model.predict(self.fed(observations), deterministic=True)
        return np.asarray(actions)

    def sampled_actions(self, observations: Any, computed: Mapping[str, Any], noise: Mapping[str, np.ndarray]
                        ) -> np.ndarray:
        """A sample drawn with the request's noise from SB3's own distribution (or DQN's ε-greedy), post-processed
        as SB3's `predict` post-processes it, in SB3's action shape [B, *action_space.shape]."""
        import torch

        if "q_values" in computed:
            from sbif.export.sb3.heads import EXPLORATION_DRAW, RANDOM_ACTION

            greedy = self.deterministic_actions(observations)
            return epsilon_greedy(greedy, noise[EXPLORATION_DRAW], noise[RANDOM_ACTION],
                                  self.model.exploration_rate, self.model.action_space.n)
        noise_input = self.info.noise_inputs[0]["name"]
        draws = torch.as_tensor(np.asarray(noise[noise_input], np.float32))
        with torch.no_grad():
            raw = sample_distribution(computed["distribution"], draws, self.info.distribution)
        return self.predict_postprocess(_numpy(raw))

    def predict_postprocess(self, actions: np.ndarray) -> np.ndarray:
        """What `BasePolicy.predict` does to the policy's actions: reshape to the space's shape, and for Box actions
        `unscale_action` (a squashing policy) or clip to the bounds."""
        space = self.model.action_space
        actions = actions.reshape((-1,) + tuple(space.shape))
        if type(space).__name__ == "Box":
            if self.policy.squash_output:
                return self.policy.unscale_action(actions)
            return np.clip(actions, space.low, space.high)
        return actions

    # -- predict requests ---------------------------------------------------------------------------------------
    def predict_request(self, request: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, str]]:
        method = request["method"]
        observations = np.asarray(request["observation"])
        refused = self.out_of_space(np.trunc(observations) if observations.dtype.kind == "f" else observations)
        if method == "action_probability":
            return {}, {"probability": "SB3 has no action_probability"}
        names = {"predict": ("action", "state"), "value": ("value",)}[method]
        if refused:
            return {}, {name: refused for name in names}
        import torch

        if method == "value":
            if not hasattr(self.policy, "predict_values"):
                return {}, {"value": "{}'s policy has no predict_values".format(self.algorithm)}
            with torch.no_grad():
                tensor, vectorized = self.observation_tensor(observations)
                values = _numpy(self.policy.predict_values(tensor)).reshape(-1)
            return {"value": values if vectorized else values[0]}, {}
        deterministic = request.get("deterministic")
        if deterministic or self.info.predict.get("stochastic_action") is None:
            # (a policy that samples nothing, gSDE's unsaved exploration matrix among them, answers deterministic)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                action, state = self.model.predict(self.fed(observations), deterministic=True)
            return {"action": np.asarray(action), "state": state}, {}
        noise = request.get("noise")
        if not noise:
            return {}, {"action": "a stochastic predict without the request's noise has no reproducible answer",
                        "state": "as action"}
        with torch.no_grad():
            tensor, vectorized = self.observation_tensor(observations)
            computed = self.forward(self.model, tensor)
        batch_observations = observations if vectorized else observations[None]
        actions = self.sampled_actions(batch_observations, computed, {k: np.asarray(v) for k, v in noise.items()})
        return {"action": actions if vectorized else actions[0], "state": None}, {}


# -- SB3's distributions with the request's noise (SPEC sections 5.3 and 5.9) ---------------------------------------
def distribution_parameter(distribution: Any, role: str) -> Any:
    """`probabilities` or `std` of an SB3 distribution object, in the graph's layout (one row per observation)."""
    import torch

    inner = distribution.distribution
    if role == "probabilities":
        if isinstance(inner, (list, tuple)):  # MultiCategorical: one torch Categorical per component
            return torch.cat([part.probs for part in inner], dim=-1)
        return inner.probs
    if role == "std":
        return inner.stddev
    if role == "mean":
        return inner.mean
    raise KeyError("no {!r} in SB3's {}".format(role, type(distribution).__name__))


def sample_distribution(distribution: Any, draws: Any, declared: Optional[Mapping[str, Any]]) -> Any:
    """SB3's distribution sampled with the given draws by SPEC section 5.3: Gumbel-max on SB3's logits, `u < p` on
    its Bernoulli probabilities, its mean + its std·z (tanh'ed for SB3's squashed Gaussian)."""
    import torch

    kind = type(distribution).__name__
    inner = distribution.distribution
    if kind == "CategoricalDistribution":
        return gumbel_max(inner.logits, draws)
    if kind == "MultiCategoricalDistribution":
        columns = torch.split(draws, [part.logits.shape[-1] for part in inner], dim=-1)
        return torch.stack([gumbel_max(part.logits, u) for part, u in zip(inner, columns)], dim=-1)
    if kind == "BernoulliDistribution":
        return (draws < inner.probs).to(torch.float32)
    if kind == "DiagGaussianDistribution":
        return inner.mean + inner.stddev * draws
    if kind == "SquashedDiagGaussianDistribution":
        return torch.tanh(inner.mean + inner.stddev * draws)
    raise NotImplementedError("the SB3 oracle does not sample {} (the file declares {})".format(
        kind, (declared or {}).get("kind")))


def gumbel_max(logits: Any, uniforms: Any) -> Any:
    """argmax(logits - log(-log(u))), SPEC section 5.3."""
    import torch

    return torch.argmax(logits - torch.log(-torch.log(uniforms)), dim=-1)


def epsilon_greedy(greedy: np.ndarray, exploration: np.ndarray, uniforms: np.ndarray, exploration_rate: float,
                   n_actions: int) -> np.ndarray:
    """DQN's ε-greedy `predict` as SPEC section 5.9 and `heads.epsilon_greedy` define it: a row explores when its
    exploration draw is below the saved rate (float32), and then takes ⌊u·n⌋ (float32)."""
    explore = np.asarray(exploration, np.float32).reshape(-1) < np.float32(exploration_rate)
    random = (np.asarray(uniforms, np.float32).reshape(-1) * np.float32(n_actions)).astype(np.int64)
    return np.where(explore, random, np.asarray(greedy).astype(np.int64))


def sb3_normalizer(source: str, vecnormalize: Optional[str], folded: Mapping[str, Any]) -> Tuple[Any, str]:
    """SB3's own VecNormalize for a file that folds statistics in — the save the exporter would fold in beside
    `source` (or `vecnormalize`), unpickled, with the clip and epsilon the export decided — or (None, why not)."""
    from sbif.export.exporter import decide_normalization
    from sbif.export.sb3.statistics import read_sb3_normalization

    statistics = decide_normalization(source, vecnormalize, reader=read_sb3_normalization).statistics
    if statistics is None:
        return None, ("the file folds VecNormalize statistics into its graph, but no VecNormalize save is beside "
                      "{} for SB3 to normalize with".format(source))
    if statistics.as_kwargs() != dict(folded):
        return None, "the VecNormalize save found ({}) is not the one the file folds in ({})".format(
            statistics.as_kwargs(), dict(folded))
    if statistics.frame_stack > 1:
        return None, "the SB3 oracle does not stack frames (the file folds {} stacked frames)".format(
            statistics.frame_stack)
    with open(statistics.source, "rb") as handle:
        normalizer = pickle.load(handle)  # as SB3's VecNormalize.load does: the oracle runs SB3's code anyway
    normalizer.clip_obs, normalizer.epsilon = statistics.clip_obs, statistics.epsilon
    return normalizer, ""


@contextlib.contextmanager
def unvalidated_distributions() -> Iterator[None]:
    """torch's distributions without their argument checks: they refuse a NaN parameter (from a NaN observation, the
    edge check's) by raising, where SB3's modules have computed the answer the graph's float rules judge."""
    from torch.distributions import Distribution

    validating = Distribution._validate_args
    Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        Distribution.set_default_validate_args(validating)


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.adapters.sb3_live", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", nargs="*", default=[], help="directories or files holding the SB3 saves")
    parser.add_argument("--map", action="append", default=[], metavar="MODEL.sbif=SOURCE.zip",
                        help="the SB3 save of one .sbif file (repeatable)")
    args = parser.parse_args(argv)
    mapping = dict(item.split("=", 1) for item in args.map)
    stdout = sys.stdout
    sys.stdout = sys.stderr  # only protocol lines may reach the real stdout
    return serve(Sb3Runtime(args.sources, mapping), sys.stdin, stdout)


if __name__ == "__main__":
    sys.exit(main())
