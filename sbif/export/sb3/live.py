"""The live SB3 loader: SB3 (or sb3-contrib) loads the model, and the exported file is verified against its own
`predict` on the spot. Only this module (and the SB3 oracle) imports torch and SB3.

It fills the same `Sb3Description` as the safe loader, from the loaded model: the state dict as torch holds it
(bit for bit what `policy.pth` stores), the model's spaces and `policy_kwargs`. Both loaders therefore write the
same document and tensors; only `provenance.exporter` differs.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ...errors import ExportError, UnsupportedError, preview
from ..normalization import KeyedNormalization
from ..safe_pickle import exception_text
from ...progress import Progress
from ..sb2_files import describe_source
from .description import ClassName, Sb3Description, sb3_space
from .policy_classes import policy_class
from .save_format import ALGORITHM_CLASSES, canonical_sb3_algorithm, detect_algorithm, placeholder, saved_sb3_version

#: RecurrentPPO is verified over this many steps, each env's episode starting again with this probability.
RECURRENT_STEPS = 4
RESET_PROBABILITY = 0.25


class SpaceFields:
    """A gymnasium space's fields as `sb3_space` reads them."""

    def __init__(self, space: Any, what: str):
        kind = type(space).__name__
        self.kind = {"Box": "box", "Discrete": "discrete", "MultiDiscrete": "multi_discrete",
                     "MultiBinary": "multi_binary", "Dict": "dict"}.get(kind, kind)
        self.spaces = (OrderedDict((key, SpaceFields(sub, "{} key {}".format(what, key)))
                                   for key, sub in space.spaces.items()) if self.kind == "dict" else None)
        self.shape = tuple(getattr(space, "shape", ()) or ())
        self.dtype = np.dtype(space.dtype).name if getattr(space, "dtype", None) is not None else "int64"
        self.low, self.high = getattr(space, "low", None), getattr(space, "high", None)
        self.n = getattr(space, "n", None)
        self.nvec = getattr(space, "nvec", None)


def load_sb3_model(path: str, algorithm: Optional[str] = None) -> Tuple[Any, str]:
    """(model, algorithm name): the model loaded by SB3 on the CPU, after the safe reader has read the whole file as
    data, so a file the safe loader refuses (a pickle naming anything it does not allow, a storage bomb, a zip trick)
    is refused here too, before SB3 unpickles anything. The `data` entries the safe reader does not decode
    (schedules and other functions pickled by value, buffers, noise objects) are never unpickled: SB3 gets a
    placeholder for each (`custom_objects`), since predict reads none of them; torch reads `policy.pth` with
    `weights_only`."""
    import importlib

    from stable_baselines3.common.save_util import load_from_zip_file

    from .save_file import DECODED_KEYS, read_sb3_save

    save = read_sb3_save(path)
    placeholders = {key: placeholder(key) for key, value in save.data.items()
                    if key not in DECODED_KEYS and isinstance(value, dict) and ":serialized:" in value}
    try:
        data, _, _ = load_from_zip_file(path, device="cpu", load_data=True, custom_objects=placeholders)
    except Exception as exc:  # SB3 raises anything its zip, JSON, pickle and torch readers raise
        raise ExportError("{}: SB3 could not read the save: {}".format(path, exception_text(exc))) from None
    if not data or "policy_class" not in data:
        raise ExportError("{}: not an SB3 save (no policy_class in its data)".format(path))
    cls = data["policy_class"]
    known = policy_class(getattr(cls, "__module__", "?"), getattr(cls, "__name__", "?"))
    name = detect_algorithm(known, data, path) if algorithm is None else canonical_sb3_algorithm(algorithm)
    module, class_name = ALGORITHM_CLASSES[name]
    algorithm_class = getattr(importlib.import_module(module), class_name)
    # Off-policy models build their replay buffer on load: make it one transition, and a plain one (HER's needs the
    # training environment), since predict never reads it.
    custom = dict(placeholders)
    if "replay_buffer_class" in data:
        custom.update(buffer_size=1, replay_buffer_class=None, replay_buffer_kwargs={})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3 warns about the missing env and about gym versions
        try:
            model = algorithm_class.load(path, device="cpu", custom_objects=custom)
        except Exception as exc:  # a save SB3 itself cannot load (a missing optimizer state, ...)
            raise ExportError("{}: SB3 could not load the save as {}: {}".format(path, name, exception_text(exc))) \
                from None
    return model, name


def class_name(value: Any) -> Any:
    """policy_kwargs with every class as a `ClassName` (the safe loader never imports them)."""
    if isinstance(value, type):
        return ClassName(value.__module__, value.__name__)
    if isinstance(value, dict):
        return {key: class_name(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [class_name(item) for item in value]
    if type(value).__name__ == "device":  # torch.device: where it trained, irrelevant here
        return None
    return value


def describe_live_model(model: Any, algorithm: str, path: str) -> Sb3Description:
    """The description of a model SB3 loaded from `path`."""
    policy = type(model.policy)
    parameters: "OrderedDict[str, np.ndarray]" = OrderedDict(
        (name, tensor.detach().cpu().numpy().copy()) for name, tensor in model.policy.state_dict().items())
    provenance = {"exporter": "live", "framework_version": saved_sb3_version(path), "source": describe_source(path)}
    return Sb3Description(algorithm, ClassName(policy.__module__, policy.__name__),
                          class_name(dict(model.policy_kwargs)),
                          sb3_space(SpaceFields(model.observation_space, "observation space"), "observation space"),
                          sb3_space(SpaceFields(model.action_space, "action space"), "action space"),
                          parameters, provenance, use_sde=bool(getattr(model, "use_sde", False)),
                          exploration_rate=getattr(model, "exploration_rate", None))


def verify_export(model: Any, policy: Any, count: int = 64, seed: int = 0, normalization: Any = None
                  ) -> Dict[str, float]:
    """Compare SB3's deterministic `predict` (and `predict_values`, the Q-values; with random action masks for
    MaskablePPO; over a few steps with random episode starts for RecurrentPPO, states included) with the file's on
    `count` sampled observations; raise ExportError if SBIF does not reproduce SB3 (SPEC section 6)."""
    from ...compare import sample_observations
    from ...runtime.error_scales import predict_agreement, result_agreement

    rng = np.random.default_rng(seed)
    observations = sample_observations(policy.document["observation_space"], count, rng)
    if isinstance(normalization, KeyedNormalization):
        observations = normalization.typical(observations, rng)
    elif normalization is not None:
        observations = normalization.typical_observations(observations.shape, rng).astype(observations.dtype)
    fed = normalization.apply(observations) if normalization is not None else observations
    report: Dict[str, float] = {"action_mismatches": 0}

    def worst(key: str, value: float) -> None:
        report[key] = max(report.get(key, 0.0), value)

    mask_input = policy.document["predict"].get("action_mask")
    steps = RECURRENT_STEPS if policy.recurrent else 1
    with Progress("verifying against SB3", total=count * steps, unit="observations") as progress:
        sb3_state, rows, critic_state = None, policy.initial_state_for(count), None  # rows: the file's state
        for _ in range(steps):
            starts = rng.random(count) < RESET_PROBABILITY if policy.recurrent else None
            recurrent = {"state": sb3_state, "episode_start": starts} if policy.recurrent else {}
            expected, new_sb3_state = model.predict(fed, deterministic=True, **recurrent)
            _compare_actions(policy, expected, observations, rows, starts, None, report, worst)
            if mask_input is not None:  # MaskablePPO: random masks, at least one action allowed per component
                masks = _random_masks(policy, count, rng)
                expected, _ = model.predict(fed, deterministic=True, action_masks=masks)
                _compare_actions(policy, expected, observations, None, None, masks, report, worst)
            if policy.recurrent:
                value, critic_state = sb3_recurrent_critic(model, fed, count, sb3_state, critic_state, starts)
                worst("value", predict_agreement(policy, value, "value", observations, "value", state=rows,
                                                 mask=starts))
                expected_rows = recurrent_state_rows(policy, new_sb3_state, critic_state, count)
                worst("state", predict_agreement(policy, expected_rows, "predict", observations, "state", state=rows,
                                                 mask=starts, deterministic=True))
                sb3_state, rows = new_sb3_state, expected_rows  # go on from SB3's state: errors do not compound
            progress.advance(count)
        if not policy.recurrent:
            tensor, _ = model.policy.obs_to_tensor(fed)
            if "value" in policy.output_names and hasattr(model.policy, "predict_values"):
                import torch

                with torch.no_grad():
                    expected_value = model.policy.predict_values(tensor).cpu().numpy().reshape(-1)
                worst("value", predict_agreement(policy, expected_value, "value", observations, "value"))
            expected_outputs = {}
            if "q_values" in policy.output_names:
                expected_outputs["q_values"] = sb3_q_values(model, tensor)
            expected_outputs.update(sb3_critics(model, tensor, policy.output_names))
            if expected_outputs:
                from ...runtime.error_scales import ErrorScales

                values, found = ErrorScales(policy.model).run(policy.make_feeds(observations, None, None)[0],
                                                              list(expected_outputs))
                for name, expected_output in expected_outputs.items():
                    worst(name, result_agreement(expected_output, values[name], found[name]))
    failures = ["{} on {} of {} observations".format(k, int(v), count * steps) if k == "action_mismatches"
                else "{} ({:.3g} times its error scale bound)".format(k, v) for k, v in report.items()
                if (v > 0 if k == "action_mismatches" else v > 1.0)]
    if failures:
        raise ExportError("the exported policy does not reproduce SB3: " + "; ".join(failures) +
                          ". Please report this with the model file.")
    if all(key == "action_mismatches" for key in report) or np.asarray(expected).dtype.kind != "f":
        return report
    del report["action_mismatches"]  # continuous actions: compared as floats
    return report


def _compare_actions(policy: Any, expected: Any, observations: np.ndarray, state: Any, starts: Any, masks: Any,
                     report: Dict[str, float], worst: Any) -> None:
    """One batch's actions: floats within their error scales, discrete ones equal but for near-ties."""
    from ...compare import discrete_disagreements
    from ...runtime.error_scales import ErrorScales, decision_scores, predict_agreement

    actual, _ = policy.predict(observations, state, starts, deterministic=True, action_masks=masks)
    distribution = policy.document["predict"].get("distribution")
    if np.asarray(actual).dtype.kind == "f" and (distribution is None or distribution["kind"] != "bernoulli"):
        worst("action", predict_agreement(policy, expected, "predict", observations, "action", state=state,
                                          mask=starts, deterministic=True))
        return
    feeds = policy.make_feeds(observations, state, starts, None, masks)[0]
    scales = ErrorScales(policy.model)
    if distribution is not None:
        values, found = scales.run(feeds, list(distribution["parameters"].values()))
        scores, score_scales = decision_scores(distribution, values, found)
    else:  # DQN, QR-DQN: chosen from the Q-values; ARS: from its outputs, compared as they are
        name = "q_values" if "q_values" in policy.output_names else None
        if name is None:
            report["action_mismatches"] += int(np.sum(np.asarray(expected) != np.asarray(actual)))
            return
        values, found = scales.run(feeds, [name])
        scores, score_scales = [values[name]], [found[name]]
    report["action_mismatches"] += discrete_disagreements(expected, actual, scores, score_scales)


def sb3_recurrent_critic(model: Any, observations: Any, rows: int, actor_state: Any, critic_state: Any,
                          starts: np.ndarray) -> Tuple[np.ndarray, Any]:
    """RecurrentPPO's value for this step, and its critic LSTM's next (h, c) (None without one), from SB3's modules:
    `predict_values` reads the critic LSTM's state, or the actor's with `shared_lstm`; SB3's predict returns neither
    the critic's state nor the value, so the critic LSTM is stepped here as SB3 steps it (`_process_sequence`)."""
    import torch

    policy = model.policy
    tensor, _ = policy.obs_to_tensor(observations)
    zeros = np.zeros((policy.lstm_actor.num_layers, rows, policy.lstm_actor.hidden_size), np.float32)
    episode_starts = torch.as_tensor(starts, dtype=torch.float32)

    def tensors(pair: Any) -> Any:
        pair = (zeros, zeros) if pair is None else pair
        return tuple(torch.as_tensor(np.asarray(part), dtype=torch.float32) for part in pair)

    with torch.no_grad():
        if policy.lstm_critic is None:
            values = policy.predict_values(tensor, tensors(actor_state), episode_starts)
            return values.cpu().numpy().reshape(-1), None
        values = policy.predict_values(tensor, tensors(critic_state), episode_starts)
        extracted = policy.extract_features(tensor)
        vf_features = extracted if policy.share_features_extractor else extracted[1]
        _, new_state = policy._process_sequence(vf_features, tensors(critic_state), episode_starts,
                                                policy.lstm_critic)
    return values.cpu().numpy().reshape(-1), tuple(part.cpu().numpy() for part in new_state)


def recurrent_state_rows(policy: Any, actor: Any, critic: Any, rows: int) -> np.ndarray:
    """The file's state rows from SB3's actor (h, c) and, with a critic LSTM, the critic's (SPEC section 5.9)."""
    actor_rows = policy.state_rows(actor, rows)
    if critic is None:
        return actor_rows
    width = actor_rows.shape[1] // 2
    return np.concatenate([actor_rows[:, :width], policy.state_rows(critic, rows)[:, :width]], axis=1)


def _random_masks(policy: Any, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Action masks [rows, L] allowing about half the actions, and at least one of each categorical component."""
    distribution = policy.document["predict"]["distribution"]
    sizes = distribution.get("nvec") or [policy.executor.inputs[policy.document["predict"]["action_mask"]]["shape"][1]]
    parts = []
    for size in sizes:
        part = rng.random((rows, size)) < 0.5
        part[np.arange(rows), rng.integers(0, size, rows)] = True
        parts.append(part)
    return np.concatenate(parts, axis=1)


def sb3_critics(model: Any, tensor: Any, outputs: Any) -> Dict[str, np.ndarray]:
    """SB3's critics at the actor's deterministic action in [-1, 1], as the file's `qf1`, `qf2`, ... outputs."""
    import inspect

    import torch

    if not any(name.startswith("qf") for name in outputs) or getattr(model, "critic", None) is None:
        return {}
    with torch.no_grad():
        deterministic = "deterministic" in inspect.signature(model.actor.forward).parameters
        action = model.actor(tensor, deterministic=True) if deterministic else model.actor(tensor)
        values = model.critic(tensor, action)
    if isinstance(values, torch.Tensor):  # TQC: [B, n_critics, n_quantiles]
        values = [values[:, index] for index in range(values.shape[1])]
    return {"qf{}".format(index + 1): value.cpu().numpy().reshape(len(value), -1).squeeze(-1)
            if value.shape[-1] == 1 else value.cpu().numpy() for index, value in enumerate(values)
            if "qf{}".format(index + 1) in outputs}


def sb3_q_values(model: Any, tensor: Any) -> np.ndarray:
    """DQN's Q-values, QR-DQN's mean over quantiles, as SB3 computes them before the argmax."""
    import torch

    with torch.no_grad():
        if hasattr(model.policy, "q_net"):
            return model.policy.q_net(tensor).cpu().numpy()
        if hasattr(model.policy, "quantile_net"):
            return model.policy.quantile_net(tensor).mean(dim=1).cpu().numpy()
    raise UnsupportedError("{}: no Q-values to compare".format(preview(type(model).__name__)))
