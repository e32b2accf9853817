"""Stable-Baselines3 and sb3-contrib themselves as a conformance runtime: the SB3 oracle (the modern environment).

    python -m conformance.adapters.sb3_live [--sources DIR_OR_FILE ...] [--map MODEL.sbif=SOURCE.zip ...]

For a request naming an `.sbif` file, the adapter loads the SB3 save it was exported from — the file named in the
document's provenance (`source.file_name`, checked against `source.sha256`), looked for next to the `.sbif` file,
as `<model>.zip`, under `--sources`, or as given by `--map` — with SB3 (`sbif.export.sb3.live.load_sb3_model`), and
answers with SB3's own torch modules:

- the deterministic action is SB3's `predict(deterministic=True)`, flattened to the graph's output shape (with the
  request's action masks for MaskablePPO; for RecurrentPPO with the actor LSTM's `(h, c)` of the request's state
  rows, SPEC section 5.9's layout, and its mask as `episode_start`);
- values are `policy.predict_values`, Q-values what DQN's and QR-DQN's `predict` takes the argmax of, probabilities
  and standard deviations those of SB3's distribution objects, and an output named after one of the policy's
  modules (`action_net`, `actor.mu`) is that module's output in SB3's forward pass;
- sampled actions put the request's noise into SB3's distribution by the formulas of SPEC sections 5.3 and 5.9:
  Gumbel-max on SB3's logits, `u < p` on SB3's Bernoulli probabilities, SB3's mean + SB3's std·z (then `tanh` for
  a squashed Gaussian), followed by `predict`'s own clip or `unscale_action`; DQN's ε-greedy compares the
  exploration draw with the model's saved `exploration_rate` (`sbif/export/sb3/heads.py`);
- `predict` requests call `model.predict` (deterministic), or sample as above from the request's noise; `value`
  is `predict_values`; a recurrent file's state goes in and out as the file's rows; SB3 has no
  `action_probability`, so its outputs are listed as missing, as are the outputs of a request holding a Discrete
  or MultiDiscrete observation outside `[0, n)`, which SB3's `one_hot` refuses.

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
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..protocol import Answer, Runtime, hello_message, serve
from .sources import SourceFinder, SourceNotFound


class Family(NamedTuple):
    """What the oracle asks SB3 for one policy family.

    `forward(model, fed, inputs)` runs SB3's own modules on `fed` (the observations as SB3 is fed them) and the
    request's other inputs by name, and returns what they give by role: "distribution" (an SB3 Distribution),
    "value", "q_values", "logits" (where no module gives the file's logits), "state" (the file's state rows), and
    "outputs": values of the file's outputs by their names (the critics `qf1`, `qf2`, ...).
    `predict_arguments(model, inputs)` are the keyword arguments of SB3's `predict` those inputs stand for."""

    forward: Callable[["Sb3Model", Any, Mapping[str, np.ndarray]], Dict[str, Any]]
    predict_arguments: Callable[["Sb3Model", Mapping[str, np.ndarray]], Dict[str, Any]]


def no_arguments(model: "Sb3Model", inputs: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """A family whose `predict` takes the observations alone."""
    return {}


def actor_critic_forward(model: "Sb3Model", fed: Any, inputs: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """ActorCriticPolicy (A2C, PPO, TRPO): the action distribution and `predict_values`."""
    policy = model.policy
    obs, _ = policy.obs_to_tensor(fed)
    return {"distribution": policy.get_distribution(obs), "value": policy.predict_values(obs).reshape(-1)}


def maskable_forward(model: "Sb3Model", fed: Any, inputs: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """MaskablePPO: the distribution with the request's masks applied, `predict_values`, and the file's masked
    logits: SB3 masks the logits it has normalized, the file the network's, both by `where(mask, logits, -1e8)`
    (`heads.MASKED_LOGIT`), so the oracle masks the output of SB3's `action_net` that way."""
    import torch

    from sbif.export.sb3.heads import MASKED_LOGIT

    policy = model.policy
    obs, _ = policy.obs_to_tensor(fed)
    masks = maskable_arguments(model, inputs)["action_masks"]
    logits: List[Any] = []
    hook = policy.action_net.register_forward_hook(lambda module, args, output: logits.append(output))
    try:
        distribution = policy.get_distribution(obs, action_masks=masks)
    finally:
        hook.remove()
    allowed = torch.as_tensor(np.asarray(masks, bool).reshape(logits[0].shape))
    return {"distribution": distribution, "value": policy.predict_values(obs).reshape(-1),
            "logits": torch.where(allowed, logits[0], torch.tensor(MASKED_LOGIT, dtype=logits[0].dtype))}


def maskable_arguments(model: "Sb3Model", inputs: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """The request's action masks (SPEC section 5.9: absent, every action is allowed)."""
    name = model.info.predict["action_mask"]
    if name in inputs:
        return {"action_masks": np.asarray(inputs[name], bool)}
    width = model.info.inputs[name]["shape"][1]
    rows = len(next(value for key, value in inputs.items() if model.info.inputs[key]["kind"] == "observation"))
    return {"action_masks": np.ones((rows, width), bool)}


def recurrent_forward(model: "Sb3Model", fed: Any, inputs: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """RecurrentPPO: the distribution after the actor's LSTM step, the value and the critic LSTM's step as the
    live loader takes them from SB3's modules, and the new state as the file's rows."""
    import torch

    from sbif.export.sb3.live import sb3_recurrent_critic, recurrent_state_rows

    policy = model.policy
    obs, _ = policy.obs_to_tensor(fed)
    actor, critic, starts = model.recurrent_inputs(inputs)
    distribution, new_actor = policy.get_distribution(
        obs, tuple(torch.as_tensor(part) for part in actor), torch.as_tensor(starts, dtype=torch.float32))
    value, new_critic = sb3_recurrent_critic(model.model, fed, len(starts), actor, critic, starts)
    rows = recurrent_state_rows(model.file_policy, tuple(_numpy(part) for part in new_actor), new_critic, len(starts))
    return {"distribution": distribution, "value": value, "state": rows}


def recurrent_arguments(model: "Sb3Model", inputs: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """SB3's `state` (the actor LSTM's (h, c)) and `episode_start` for the request's state rows and mask."""
    actor, _, starts = model.recurrent_inputs(inputs)
    return {"state": actor, "episode_start": starts}


def squashed_actor_forward(model: "Sb3Model", fed: Any, inputs: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """SAC's, TQC's and CrossQ's Actor: the squashed Gaussian `actor.action_dist` builds from
    `get_action_dist_params`; their critics at the actor's deterministic action."""
    actor = model.policy.actor
    obs, _ = model.policy.obs_to_tensor(fed)
    mean, log_std, kwargs = actor.get_action_dist_params(obs)
    return {"distribution": actor.action_dist.proba_distribution(mean, log_std, **kwargs),
            "outputs": critic_outputs(model, obs)}


def critic_outputs(model: "Sb3Model", obs: Any) -> Dict[str, np.ndarray]:
    """The off-policy critics at the actor's deterministic action, by the file's output names, as the live loader
    takes them from SB3's `critic`."""
    from sbif.export.sb3.live import sb3_critics

    return sb3_critics(model.model, obs, list(model.info.outputs))


def q_network_forward(model: "Sb3Model", fed: Any, inputs: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """DQN's and QR-DQN's Q-values, as the live loader reads them (their argmax is `predict`'s greedy action)."""
    from sbif.export.sb3.live import sb3_q_values

    obs, _ = model.policy.obs_to_tensor(fed)
    return {"q_values": sb3_q_values(model.model, obs)}


def deterministic_actor_forward(model: "Sb3Model", fed: Any, inputs: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """TD3's, DDPG's and ARS's actions are `predict`'s; TD3's and DDPG's critics at them."""
    obs, _ = model.policy.obs_to_tensor(fed)
    return {"outputs": critic_outputs(model, obs)}


#: the family names of `sbif.export.sb3.policy_classes`
FAMILIES: Dict[str, Family] = {
    "actor_critic": Family(actor_critic_forward, no_arguments),
    "maskable_actor_critic": Family(maskable_forward, maskable_arguments),
    "recurrent_actor_critic": Family(recurrent_forward, recurrent_arguments),
    "sac": Family(squashed_actor_forward, no_arguments),
    "crossq": Family(squashed_actor_forward, no_arguments),
    "dqn": Family(q_network_forward, no_arguments),
    "qrdqn": Family(q_network_forward, no_arguments),
    "td3": Family(deterministic_actor_forward, no_arguments),
    "ars": Family(deterministic_actor_forward, no_arguments),
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
                                       sb3_contrib.__version__), ("run", "predict", "recurrent", "sampling"), None)
        self.finder = SourceFinder(sources, mapping, (".zip",), "SB3 save")
        #: .sbif path -> the VecNormalize save whose statistics it folds in (given by `add`)
        self.vecnormalize: Dict[str, Optional[str]] = {}
        self._models: Dict[str, "Sb3Model"] = {}

    # -- finding the SB3 save ----------------------------------------------------------------------------------
    def source_of(self, sbif_path: str, provenance: Mapping[str, Any]) -> str:
        return self.finder.find(sbif_path, provenance)

    def add(self, sbif_path: str, source: str, vecnormalize: Optional[str] = None) -> None:
        """Use the SB3 save `source` for `sbif_path`; `vecnormalize` is the VecNormalize save the file was exported
        with (None: the one the exporter finds beside `source`, if any)."""
        key = os.path.abspath(sbif_path)
        self.finder.mapping[key] = os.path.abspath(source)
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
        self.hello = hello_message("stable-baselines3 (not importable)", "", "", ("run", "predict", "recurrent",
                                                                                 "sampling"), None)

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
        import sbif
        from sbif.export.sb3.live import load_sb3_model
        from sbif.export.sb3.policy_classes import policy_class

        self.info = info
        self.source = source
        self.model, self.algorithm = load_sb3_model(source, info.provenance["algorithm"])
        self.policy = self.model.policy
        self.policy.set_training_mode(False)
        #: the file, read by the reference runtime for SPEC section 5.9's state layout (it computes nothing here)
        self.file_policy = sbif.load(info.path, backend="numpy") if info.recurrent else None
        module, _, name = info.provenance["policy_class"].rpartition(".")
        family = policy_class(module, name).family
        self.unsupported = "" if family in FAMILIES else \
            "the SB3 oracle has no forward pass for the {} family (conformance.adapters.sb3_live.FAMILIES)".format(
                family)
        self.family = FAMILIES.get(family)
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
        if info.recurrent:
            self.roles.setdefault(info.recurrent["state_output"], "state")
        for role, name in (info.distribution or {}).get("parameters", {}).items():
            self.roles.setdefault(name, role)
        for name in ("value", "q_values", "std", "probabilities"):
            if name in info.outputs:
                self.roles.setdefault(name, name)
        for name in info.outputs:
            self.roles.setdefault(name, "by_name")  # answered when the family's forward names it

    # -- inputs -------------------------------------------------------------------------------------------------
    def fed(self, observations: Any) -> Any:
        """What SB3's model is fed for the file's observations: rl-zoo3's VecNormalize applied by SB3 itself when
        the file folds it in."""
        if self.normalizer is None:
            return observations
        return self.normalizer.normalize_obs(np.asarray(observations))

    def observations(self, inputs: Mapping[str, np.ndarray]) -> Any:
        """The request's observations as SB3's `predict` takes them: the `obs` input, or for a dict observation
        space the dict of its `obs/KEY` inputs."""
        from sbif.format.validate import DICT_INPUT_PREFIX

        if "obs" in self.info.inputs:
            return inputs["obs"]
        return {name[len(DICT_INPUT_PREFIX):]: inputs[name] for name, entry in self.info.inputs.items()
                if entry["kind"] == "observation"}

    def out_of_space(self, observations: Any) -> Optional[str]:
        """Why SB3 cannot take these observations (its `one_hot` refuses indices outside [0, n)), or None."""
        space = self.model.observation_space
        if isinstance(observations, Mapping):
            subspaces = [(space.spaces[key], value) for key, value in observations.items()]
        else:
            subspaces = [(space, observations)]
        for subspace, value in subspaces:
            kind = type(subspace).__name__
            if kind not in ("Discrete", "MultiDiscrete"):
                continue
            indices = np.asarray(value)
            if indices.dtype.kind == "f":
                indices = np.trunc(indices)
            if not np.all((indices >= 0) & (indices < (subspace.nvec if kind == "MultiDiscrete" else subspace.n))):
                return ("SB3's one_hot refuses {} observations outside [0, n), which a row of this request "
                        "holds".format(kind))
        return None

    def recurrent_inputs(self, inputs: Mapping[str, np.ndarray]) -> Tuple[Any, Any, np.ndarray]:
        """(the actor LSTM's (h, c), the critic LSTM's (h, c) or None, the episode starts) of the request's state
        rows and mask (SPEC section 5.9's layout: the critic's part after the actor's)."""
        recurrent = self.info.recurrent
        rows = np.asarray(inputs[recurrent["state_input"]], np.float32)
        layout = recurrent["state_layout"]
        width = 2 * layout["layers"] * layout["hidden"]
        critic = self.file_policy.state_pair(rows[:, width:]) if rows.shape[1] > width else None
        starts = np.asarray(inputs[recurrent["mask_input"]], np.float32).reshape(-1)
        return self.file_policy.state_pair(rows), critic, starts

    # -- run requests -------------------------------------------------------------------------------------------
    def run(self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> Tuple[Dict[str, np.ndarray],
                                                                                       Dict[str, str]]:
        refused = self.out_of_space(self.observations(inputs))
        if refused:
            return {}, {name: refused for name in outputs}
        values = self.evaluate(inputs, outputs)
        return values, {name: "SB3 has no counterpart of the SBIF output {!r}".format(name) for name in outputs
                        if name not in values}

    def evaluate(self, inputs: Mapping[str, np.ndarray], wanted: Sequence[str]) -> Dict[str, np.ndarray]:
        """The wanted outputs SB3 has a counterpart for, for the request's inputs (observations batched), in the
        graph's output shapes."""
        import torch

        observations = self.observations(inputs)
        roles = {name: self.roles[name] for name in wanted}
        captured: Dict[str, Any] = {}
        modules = dict(self.policy.named_modules())
        hooks = [modules[name].register_forward_hook(
            lambda module, args, output, name=name: captured.__setitem__(name, output))
            for name, role in roles.items() if role == "module"]
        try:
            with torch.no_grad():
                computed = self.family.forward(self, self.fed(observations), inputs)
        finally:
            for hook in hooks:
                hook.remove()
        values: Dict[str, np.ndarray] = {}
        for name, role in roles.items():
            if role == "module":
                value = captured[name]
            elif role == "action":
                value = self.deterministic_actions(observations, inputs)
            elif role == "action_sample":
                value = self.sampled_actions(observations, computed, inputs)
            elif role == "by_name":
                if name not in computed.get("outputs", {}):
                    continue
                value = computed["outputs"][name]
            elif role in computed:
                value = computed[role]
            else:
                value = distribution_parameter(computed["distribution"], role)
            values[name] = self.graph_shaped(name, _numpy(value))
        return values

    def graph_shaped(self, name: str, value: np.ndarray) -> np.ndarray:
        """`value` (batch first) in the rank the file declares for output `name` (Box actions are flat)."""
        rank = len(self.info.outputs[name]["shape"])
        return value.reshape(len(value), -1) if rank == 2 and value.ndim != 2 else value

    def deterministic_actions(self, observations: Any, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """SB3's `predict(deterministic=True)`."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            actions, _ = self.model.predict(self.fed(observations), deterministic=True,
                                            **self.family.predict_arguments(self, inputs))
        return np.asarray(actions)

    def sampled_actions(self, observations: Any, computed: Mapping[str, Any], inputs: Mapping[str, np.ndarray]
                        ) -> np.ndarray:
        """A sample drawn with the request's noise from SB3's own distribution (or DQN's ε-greedy), post-processed
        as SB3's `predict` post-processes it, in SB3's action shape [B, *action_space.shape]."""
        import torch

        if "q_values" in computed:
            from sbif.export.sb3.heads import EXPLORATION_DRAW, RANDOM_ACTION

            greedy = self.deterministic_actions(observations, inputs)
            return epsilon_greedy(greedy, inputs[EXPLORATION_DRAW], inputs[RANDOM_ACTION],
                                  self.model.exploration_rate, self.model.action_space.n)
        draws = torch.as_tensor(np.asarray(inputs[self.info.noise_inputs[0]["name"]], np.float32))
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
        """SB3's `predict` (the request's noise put into SB3's distribution when it samples) and `predict_values`;
        a recurrent file's state goes in and out as the file's rows, as the runtimes take and return them."""
        method = request["method"]
        if method == "action_probability":
            return {}, {"probability": "SB3 has no action_probability"}
        observation = request["observation"]
        observations = {key: np.asarray(value) for key, value in observation.items()} if isinstance(
            observation, Mapping) else np.asarray(observation)
        names = {"predict": ("action", "state"), "value": ("value",)}[method]
        refused = self.out_of_space(observations)
        if refused:
            return {}, {name: refused for name in names}
        _, vectorized = self.policy.obs_to_tensor(self.fed(observations))
        batch = observations if vectorized else _batch_of_one(observations)
        inputs = self.predict_inputs(batch, request)
        if method == "value":
            if "value" not in self.roles:
                return {}, {"value": "{}'s file has no value output".format(self.algorithm)}
            values = self.evaluate(inputs, ["value"])["value"]
            return {"value": values if vectorized else values[0]}, {}
        predict = self.info.predict
        name = predict["deterministic_action" if request.get("deterministic") else "stochastic_action"]
        if name is None:
            return {}, {output: "the file cannot sample as SB3 does (predict.stochastic_action is null)"
                        for output in names}
        noise = request.get("noise") or {}
        if self.roles.get(name) == "action_sample" and not noise:
            return {}, {output: "a stochastic predict without the request's noise has no reproducible answer"
                        for output in names}
        inputs.update({key: np.asarray(value) for key, value in noise.items()})
        wanted = [name] + ([self.info.recurrent["state_output"]] if self.info.recurrent else [])
        results = self.evaluate(inputs, wanted)
        action = results[name].reshape((-1,) + tuple(self.model.action_space.shape))
        state = results[wanted[-1]] if self.info.recurrent else request.get("state")
        return {"action": action if vectorized else action[0], "state": state}, {}

    def predict_inputs(self, batch: Any, request: Mapping[str, Any]) -> Dict[str, np.ndarray]:
        """The graph inputs a predict request stands for (SPEC section 5): its observations (a dict's by key), and a
        recurrent file's state rows and mask (zeros when not given)."""
        from sbif.format.validate import DICT_INPUT_PREFIX

        if isinstance(batch, Mapping):
            inputs = {DICT_INPUT_PREFIX + key: value for key, value in batch.items()}
        else:
            inputs = {"obs": batch}
        recurrent = self.info.recurrent
        if recurrent:
            rows = len(next(iter(inputs.values())))
            state, mask = request.get("state"), request.get("mask")
            inputs[recurrent["state_input"]] = np.zeros((rows, self.info.state_size), np.float32) if state is None \
                else np.asarray(state, np.float32).reshape(rows, -1)
            inputs[recurrent["mask_input"]] = np.zeros(rows, np.float32) if mask is None else \
                np.asarray(mask, np.float32).reshape(-1)
        return inputs


# -- SB3's distributions with the request's noise (SPEC sections 5.3 and 5.9) ---------------------------------------
def categorical_components(distribution: Any) -> Optional[List[Any]]:
    """The torch Categorical of each component of an SB3 categorical distribution (sb3-contrib's maskable ones and
    its MaskableBernoulli, categoricals over {0, 1}, included), or None for another kind."""
    kind = type(distribution).__name__
    if kind in ("CategoricalDistribution", "MaskableCategoricalDistribution"):
        return [distribution.distribution]
    if kind == "MultiCategoricalDistribution":
        return list(distribution.distribution)
    if kind in ("MaskableMultiCategoricalDistribution", "MaskableBernoulliDistribution"):
        return list(distribution.distributions)
    return None


def distribution_parameter(distribution: Any, role: str) -> Any:
    """`probabilities`, `std` or `mean` of an SB3 distribution object, in the graph's layout (one row per
    observation; a multi-categorical's components side by side)."""
    import torch

    components = categorical_components(distribution)
    if role == "probabilities" and components is not None:
        return torch.cat([component.probs for component in components], dim=-1)
    inner = distribution.distribution
    if role == "probabilities":
        return inner.probs
    if role == "std":
        return inner.stddev
    if role == "mean":
        return inner.mean
    raise KeyError("no {!r} in SB3's {}".format(role, type(distribution).__name__))


def sample_distribution(distribution: Any, draws: Any, declared: Optional[Mapping[str, Any]]) -> Any:
    """SB3's distribution sampled with the given draws by SPEC section 5.3: Gumbel-max on SB3's logits (per
    component, on consecutive columns of the draws), `u < p` on its Bernoulli probabilities, its mean + its std·z
    (tanh'ed for SB3's squashed Gaussian)."""
    import torch

    kind = type(distribution).__name__
    components = categorical_components(distribution)
    if components is not None:
        columns = torch.split(draws, [component.logits.shape[-1] for component in components], dim=-1)
        samples = [gumbel_max(component.logits, u) for component, u in zip(components, columns)]
        single = kind in ("CategoricalDistribution", "MaskableCategoricalDistribution")
        return samples[0] if single else torch.stack(samples, dim=-1)
    inner = distribution.distribution
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


def _batch_of_one(observation: Any) -> Any:
    """A single observation (a dict's entries each) as a batch of one."""
    if isinstance(observation, Mapping):
        return {key: np.asarray(value)[None] for key, value in observation.items()}
    return np.asarray(observation)[None]


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
