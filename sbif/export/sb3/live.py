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
from ...progress import Progress
from ..sb2_files import describe_source
from .description import ClassName, Sb3Description, sb3_space
from .policy_classes import policy_class
from .save_format import ALGORITHM_CLASSES, canonical_sb3_algorithm, detect_algorithm, saved_sb3_version


class SpaceFields:
    """A gymnasium space's fields as `sb3_space` reads them."""

    def __init__(self, space: Any, what: str):
        kind = type(space).__name__
        self.kind = {"Box": "box", "Discrete": "discrete", "MultiDiscrete": "multi_discrete",
                     "MultiBinary": "multi_binary"}.get(kind, kind)
        self.shape = tuple(getattr(space, "shape", ()) or ())
        self.dtype = np.dtype(space.dtype).name if getattr(space, "dtype", None) is not None else "int64"
        self.low, self.high = getattr(space, "low", None), getattr(space, "high", None)
        self.n = getattr(space, "n", None)
        self.nvec = getattr(space, "nvec", None)


def load_sb3_model(path: str, algorithm: Optional[str] = None) -> Tuple[Any, str]:
    """(model, algorithm name): the model loaded by SB3 on the CPU."""
    import importlib

    from stable_baselines3.common.save_util import load_from_zip_file

    data, _, _ = load_from_zip_file(path, device="cpu", load_data=True)
    if not data or "policy_class" not in data:
        raise ExportError("{}: not an SB3 save (no policy_class in its data)".format(path))
    if type(data.get("observation_space")).__name__ == "Dict":
        raise UnsupportedError("{}: dict observations (MultiInputPolicy, HER) are not supported by this SBIF version "
                               "yet".format(path))
    cls = data["policy_class"]
    known = policy_class(getattr(cls, "__module__", "?"), getattr(cls, "__name__", "?"))
    name = detect_algorithm(known, data, path) if algorithm is None else canonical_sb3_algorithm(algorithm)
    module, class_name = ALGORITHM_CLASSES[name]
    algorithm_class = getattr(importlib.import_module(module), class_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3 warns about the missing env and about gym versions
        model = algorithm_class.load(path, device="cpu")
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
    """Compare SB3's deterministic `predict` (and `predict_values`, the Q-values) with the file's on `count`
    sampled observations; raise ExportError if SBIF does not reproduce SB3 (SPEC section 6)."""
    from ...compare import discrete_disagreements, sample_observations
    from ...runtime.error_scales import ErrorScales, decision_scores, predict_agreement, result_agreement

    observations = sample_observations(policy.document["observation_space"], count, np.random.default_rng(seed))
    if normalization is not None:
        observations = normalization.typical_observations(observations.shape, np.random.default_rng(seed)).astype(
            observations.dtype)
    with Progress("verifying against SB3", total=count, unit="observations") as progress:
        fed = normalization.apply(observations) if normalization is not None else observations
        expected, _ = model.predict(fed, deterministic=True)
        actual, _ = policy.predict(observations, deterministic=True)
        report: Dict[str, float] = {}
        distribution = policy.document["predict"].get("distribution")
        feeds = policy.make_feeds(observations, None, None)[0]
        scales = ErrorScales(policy.model)
        if np.asarray(actual).dtype.kind == "f" and (distribution is None or distribution["kind"] != "bernoulli"):
            report["action"] = predict_agreement(policy, expected, "predict", observations, "action",
                                                 deterministic=True)
        elif distribution is not None:
            values, found = scales.run(feeds, list(distribution["parameters"].values()))
            scores, score_scales = decision_scores(distribution, values, found)
            report["action_mismatches"] = discrete_disagreements(expected, actual, scores, score_scales)
        else:
            q_name = "q_values" if "q_values" in policy.output_names else None
            if q_name is None:
                report["action_mismatches"] = int(np.sum(np.asarray(expected) != np.asarray(actual)))
            else:
                values, found = scales.run(feeds, [q_name])
                report["action_mismatches"] = discrete_disagreements(expected, actual, [values[q_name]],
                                                                     [found[q_name]])
        mask_input = policy.document["predict"].get("action_mask")
        if mask_input is not None:  # MaskablePPO: random masks, each allowing at least one action per component
            masks = _random_masks(policy, len(observations), np.random.default_rng(seed))
            expected_masked, _ = model.predict(fed, deterministic=True, action_masks=masks)
            actual_masked, _ = policy.predict(observations, deterministic=True, action_masks=masks)
            feeds_masked = dict(feeds, **{mask_input: masks})
            values, found = scales.run(feeds_masked, list(distribution["parameters"].values()))
            scores, score_scales = decision_scores(distribution, values, found)
            report["action_mismatches"] += discrete_disagreements(expected_masked, actual_masked, scores,
                                                                  score_scales)
        tensor = _observation_tensor(model, fed)
        if "value" in policy.output_names and hasattr(model.policy, "predict_values"):
            import torch

            with torch.no_grad():
                expected_value = model.policy.predict_values(tensor).cpu().numpy().reshape(-1)
            report["value"] = predict_agreement(policy, expected_value, "value", observations, "value")
        if "q_values" in policy.output_names:
            expected_q = _sb3_q_values(model, tensor)
            values, found = scales.run(feeds, ["q_values"])
            report["q_values"] = result_agreement(expected_q, values["q_values"], found["q_values"])
        progress.advance(count)
    failures = ["{} on {} of {} observations".format(k, int(v), count) if k == "action_mismatches"
                else "{} ({:.3g} times its error scale bound)".format(k, v) for k, v in report.items()
                if (v > 0 if k == "action_mismatches" else v > 1.0)]
    if failures:
        raise ExportError("the exported policy does not reproduce SB3: " + "; ".join(failures) +
                          ". Please report this with the model file.")
    return report


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


def _observation_tensor(model: Any, observations: np.ndarray) -> Any:
    tensor, _ = model.policy.obs_to_tensor(observations)
    return tensor


def _sb3_q_values(model: Any, tensor: Any) -> np.ndarray:
    """DQN's Q-values, QR-DQN's mean over quantiles, as SB3 computes them before the argmax."""
    import torch

    with torch.no_grad():
        if hasattr(model.policy, "q_net"):
            return model.policy.q_net(tensor).cpu().numpy()
        if hasattr(model.policy, "quantile_net"):
            return model.policy.quantile_net(tensor).mean(dim=1).cpu().numpy()
    raise UnsupportedError("{}: no Q-values to compare".format(preview(type(model).__name__)))
