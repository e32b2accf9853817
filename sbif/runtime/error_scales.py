"""How far a correct runtime's answers may be from the reference's on given inputs (SPEC section 6).

`ErrorScales(model).run(feeds, outputs)` evaluates the graph with the NumPy reference and, op by op, the error
scale of every value (`Op.error_scale`, `sbif/ops/rounding.py`): for each output element, how far from the
reference's value a correct float32 program may be. Two correct programs agree within CONFIDENCE scales
(`sbif.compare`). `predict_scales` maps the scales onto SB2's `predict`, `action_probability` and `value`
results, including the NumPy formulas SB2 applies after the graph (probabilities of given actions).
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..format import SbifFile
from ..ops.elementwise import Div, Exp, Log, Mul, Sub
from ..ops.rounding import finish, magnitude, own_scale, quadrature
from .executor import GraphExecutor
from .policy import Policy, distribution_parameters, parameter_outputs

Arrays = Dict[str, np.ndarray]


class ErrorScales:
    """The reference's values and their error scales for a file's outputs."""

    def __init__(self, model: SbifFile):
        self.executor = GraphExecutor(model)
        self._tensor_scales = {name: np.zeros(np.shape(value)) for name, value in model.tensors.items()}

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str],
            undetermined: Optional[Dict[str, str]] = None) -> Tuple[Arrays, Arrays]:
        """(values, scales) of `outputs`: the reference's values and, element by element, the float64 error scale
        of a correct program's value (NaN where the value is not determined by float evaluation). Inputs and
        tensors are exact. `undetermined`, if given, receives for each node that makes values not determined (NaN
        scales none of its inputs had) "op output" -> the op's reason (SPEC section 6.3)."""
        steps, required = self.executor.plan(outputs)
        checked = self.executor.check_feeds({name: feeds[name] for name in required})
        values: Dict[str, np.ndarray] = dict(self.executor.model.tensors)
        values.update(checked)
        scales: Dict[str, np.ndarray] = dict(self._tensor_scales)
        scales.update({name: np.zeros(np.shape(value)) for name, value in checked.items()})
        with np.errstate(all="ignore"):
            for step in steps:
                inputs = [values[name] for name in step.inputs]
                result = step.compute(*inputs, **step.attrs)
                results = list(result) if len(step.outputs) > 1 else [result]
                carried = [scales[name] for name in step.inputs]
                found = finish(results, step.error_scale(inputs, carried, results, **step.attrs))
                if undetermined is not None and any(np.isnan(scale).any() for scale in found) and not any(
                        np.isnan(scale).any() for scale in carried):
                    undetermined["{} {}".format(step.op_name, step.outputs[0])] = step.undetermined_reason
                values.update(zip(step.outputs, results))
                scales.update(zip(step.outputs, found))
        return {name: values[name] for name in outputs}, {name: scales[name] for name in outputs}


def predict_scales(policy: Policy, scales: ErrorScales, method: str, observation: Any, state: Any = None,
                   mask: Any = None, deterministic: Optional[bool] = None, noise: Optional[Mapping[str, Any]] = None,
                   actions: Any = None, logp: bool = False, undetermined: Optional[Dict[str, str]] = None
                   ) -> Dict[str, Any]:
    """The error scales of a `predict` (keys `action`, `state`), `action_probability` (`probability`) or `value`
    (`value`) result, shaped like the result `policy` returns for the same arguments (None where it is None).
    `undetermined` receives the reasons for NaN scales, as in `ErrorScales.run`."""
    feeds, vectorized = policy.make_feeds(observation, state, mask)
    document = policy.document["predict"]
    recurrent = document.get("recurrent")

    def single(value: Any) -> Any:  # as `Policy`: element 0 of the result (of a list: its first array)
        return value if value is None or vectorized else value[0]

    if method == "value":
        return {"value": single(scales.run(feeds, ["value"], undetermined)[1]["value"])}
    if method == "predict":
        if deterministic is None:
            deterministic = document["deterministic_default"]
        name = document["deterministic_action" if deterministic else "stochastic_action"]
        if not deterministic:
            feeds.update(policy.noise_feeds(policy.batch_rows(feeds), None, noise))
        wanted = [name] + ([recurrent["state_output"]] if recurrent else [])
        found = scales.run(feeds, wanted, undetermined)[1]
        action = found[name]
        if policy.contract == "sb3":  # shaped as the policy shapes its actions (SPEC section 5.9)
            action = action.reshape((-1,) + policy.action_space.shape)
        return {"action": single(action),
                "state": single(found[recurrent["state_output"]]) if recurrent else None}
    distribution = document.get("distribution")
    if distribution is None:
        return {"probability": None}
    wanted = parameter_outputs(distribution)
    values, found = scales.run(feeds, wanted, undetermined)
    if actions is None:
        return {"probability": single(distribution_parameters(distribution, found))}
    result = probability_scale(policy, distribution["kind"], distribution, [values[name] for name in wanted],
                               [found[name] for name in wanted], actions, logp)
    if undetermined is not None and np.isnan(result).any() and not any(np.isnan(found[name]).any() for name in wanted):
        undetermined["log of the actions' probability"] = Log.undetermined_reason
    return {"probability": single(result)}


def probability_scale(policy: Policy, kind: str, distribution: Mapping[str, Any], parameters: List[np.ndarray],
                      scales: List[np.ndarray], actions: Any, logp: bool) -> np.ndarray:
    """The error scale of SB2's probability (or log-probability) of `actions`, [B, 1], following the float32
    NumPy formulas of `Policy._probability_of` step by step with the ops' own scales."""
    batch = len(parameters[0])
    actions = np.array([actions])
    if kind == "diag_gaussian":
        (mean, std), (s_mean, s_std) = parameters, scales
        actions = actions.reshape((-1,) + policy.action_space.shape).astype(mean.dtype)
        log_std, s_log_std = _apply(Log, [std], [s_std])
        squared_std, s_squared_std = _apply(Mul, [std, std], [s_std, s_std])
        deviation, s_deviation = _apply(Sub, [actions, mean], [np.zeros(actions.shape), s_mean])
        squared, s_squared = _apply(Mul, [deviation, deviation], [s_deviation, s_deviation])
        quotient, s_quotient = _apply(Div, [squared, 2 * squared_std], [s_squared, 2 * s_squared_std])
        quadratic, s_quadratic = _row_sum(quotient, s_quotient)
        normalizer, s_normalizer = _row_sum(log_std, s_log_std)
        constant = np.float32(float(np.prod(mean.shape[1:])) / 2.0 * np.log(2 * np.pi))
        logprob = -quadratic - (constant + normalizer)
        s_logprob = quadrature(s_quadratic, s_normalizer, own_scale(
            mean.dtype, magnitude(quadratic) + abs(float(constant)) + magnitude(normalizer), roundings=2))
        if logp:
            return s_logprob.reshape(-1, 1)
        return _apply(Exp, [logprob.astype(mean.dtype)], [s_logprob])[1].reshape(-1, 1)
    if kind == "categorical":
        (probabilities,), (scale,) = parameters, scales
        actions = actions.reshape(-1)
        chosen, s_chosen = probabilities[np.arange(batch), actions], scale[np.arange(batch), actions]
    elif kind == "multi_categorical":
        split = np.cumsum(distribution["nvec"])[:-1]
        columns = np.swapaxes(actions.reshape((-1, len(distribution["nvec"]))), 0, 1)
        pieces = zip(np.split(parameters[0], split, axis=-1), np.split(scales[0], split, axis=-1), columns)
        chosen, s_chosen = _product([(p[np.arange(batch), a], s[np.arange(batch), a]) for p, s, a in pieces])
    else:  # bernoulli: p·a + (1 - p)·(1 - a) is p, or 1 - p (one more rounding), for a in {0, 1}
        (probabilities,), (scale,) = parameters, scales
        actions = actions.reshape((-1, probabilities.shape[1]))
        complement = quadrature(scale, own_scale(probabilities.dtype, magnitude(1 - probabilities, scale)))
        values = np.where(actions == 1, probabilities, 1 - probabilities)
        terms = np.where(actions == 1, scale, complement)
        chosen, s_chosen = _product([(values[:, j], terms[:, j]) for j in range(values.shape[1])])
    if logp:
        return _apply(Log, [chosen], [s_chosen])[1].reshape(-1, 1)
    return np.asarray(s_chosen).reshape(-1, 1)


def _apply(op: Any, inputs: List[np.ndarray], scales: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """One op of a NumPy formula: its value and error scale."""
    with np.errstate(all="ignore"):
        value = op.compute(*inputs)
        return value, finish([value], op.error_scale(inputs, scales, [value]))[0]


def _row_sum(values: np.ndarray, scales: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """np.sum over axis 1: n terms in any order."""
    count = values.shape[1]
    return np.sum(values, axis=1), quadrature(np.sqrt(np.sum(np.square(scales), axis=1)), own_scale(
        values.dtype, np.sum(magnitude(values, scales), axis=1), roundings=count))


def _product(factors: List[Tuple[np.ndarray, np.ndarray]]) -> Tuple[np.ndarray, np.ndarray]:
    value, scale = factors[0]
    for factor, factor_scale in factors[1:]:
        value, scale = _apply(Mul, [value, factor], [scale, factor_scale])
    return value, scale


def result_agreement(expected: Any, actual: Any, scale: Any) -> float:
    """The worst |actual − expected| / (CONFIDENCE·σ) over a result (an array, a list of arrays, or None): <= 1
    means SPEC section 6's rule holds; inf for a shape, None, NaN or infinity mismatch."""
    from ..compare import float_agreement

    if expected is None or actual is None:
        return 0.0 if expected is None and actual is None else float("inf")
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            return float("inf")
        return max([result_agreement(e, a, s) for e, a, s in zip(expected, actual, scale)] or [0.0])
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return float("inf")
    return float_agreement(expected, actual, scale).ratio


def predict_agreement(policy: Policy, expected: Any, method: str, observation: Any, result: str, state: Any = None,
                      mask: Any = None, deterministic: Optional[bool] = None, noise: Optional[Mapping[str, Any]] = None,
                      actions: Any = None, logp: bool = False) -> float:
    """How well `expected` (another runtime's answer, e.g. SB2's) agrees with `policy`'s own answer to the same
    `predict` / `action_probability` / `value` call: the `result_agreement` of the `result` named ("action",
    "state", "probability" or "value"), under the scales of the policy's file."""
    if method == "predict":
        if noise is None:  # the policy and its scales must sample from the same noise
            noise = policy.noise_feeds(policy.batch_rows(policy.make_feeds(observation, state, mask)[0]), None, None)
        action, new_state = policy.predict(observation, state, mask, deterministic=deterministic, noise=noise)
        actual = {"action": action, "state": new_state}[result]
    elif method == "value":
        actual = policy.value(observation, state, mask)
    else:
        actual = policy.action_probability(observation, state, mask, actions=actions, logp=logp)
    scales = predict_scales(policy, ErrorScales(policy.model), method, observation, state, mask, deterministic,
                            noise, actions, logp)
    return result_agreement(expected, actual, scales[result])


def decision_scores(distribution: Mapping[str, Any], values: Arrays, scales: Arrays
                    ) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Per action component of a discrete distribution's deterministic action, the scores its mode was chosen from
    ([B, n_j]) and their error scales, for `sbif.compare.discrete_disagreements`: the logits (per component for a
    multi-categorical head), or the Bernoulli pair 1 - p, p. `values` and `scales` hold the distribution's
    parameters (`ErrorScales.run`)."""
    parameters, kind = distribution["parameters"], distribution["kind"]
    if kind in ("categorical", "multi_categorical"):
        logits, logit_scales = values[parameters["logits"]], scales[parameters["logits"]]
        if kind == "categorical":
            return [logits], [logit_scales]
        split = np.cumsum(distribution["nvec"])[:-1]
        return np.split(logits, split, axis=-1), np.split(logit_scales, split, axis=-1)
    p, p_scale = values[parameters["probabilities"]], scales[parameters["probabilities"]]
    complement = quadrature(p_scale, own_scale(p.dtype, np.abs(1 - p)))  # 1 - p: one more rounding
    return ([np.stack([1 - p[:, j], p[:, j]], axis=1) for j in range(p.shape[1])],
            [np.stack([complement[:, j], p_scale[:, j]], axis=1) for j in range(p.shape[1])])
