"""Comparison rules (spec/SPEC.md section 6, spec/ops.md "Tolerances"), as JSON-able rule objects.

A rule says how one output is compared; it is stored with the expected values in golden packs and case files,
so a replay compares exactly as the original run did. The expected side of a model's request carries, with its
values, their error *scales* (`sbif.runtime.error_scales`: how far any correct float32 program may be from the
reference on those inputs, in standard deviations), stored with them too:

- `{"rule": "float"}`: |a - e| <= λ·σ element-wise (`sbif.compare.float_agreement`, λ = CONFIDENCE), NaN
  matching NaN and infinities matching exactly; elements whose σ is NaN (not determined by float evaluation)
  are left out and counted; the error reported is the ratio |a - e| / (λ·σ), <= 1 passing;
- `{"rule": "exact"}`: equal dtype, shape and values (NaN matching NaN);
- `{"rule": "discrete", "ties": {...}}`: action indices (or Bernoulli 0/1) equal, except on a near-tie of the
  scores the two choices were taken from (see `TIE_KINDS`), computed from the *expected* outputs, their scales
  and the request's noise (`sbif.compare.near_tie`);
- `{"rule": "ulp", "ulp": N, "abs": A, "exact": bool, "unspecified_nan": bool}`: an op vector's tolerance.

Every comparison returns a `Comparison`: pass/fail, the error (scale ratio, or the number of mismatched rows),
and where the worst element is.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from sbif.compare import float_agreement, near_tie
from sbif.ops.elementwise import Log, Neg, Sub
from sbif.ops.rounding import CONFIDENCE, finish, own_scale, quadrature

#: where near-tie scores come from, per kind of discrete decision
TIE_KINDS = ("none", "categorical", "multi_categorical", "gumbel", "bernoulli_mode", "bernoulli_sample",
             "inverse_cdf")


class Comparison:
    """The outcome of comparing one output: `ok`, `error` (scale ratio, or mismatched rows), `where`."""

    __slots__ = ("ok", "error", "where", "detail", "excluded")

    def __init__(self, ok: bool, error: float = 0.0, where: str = "", detail: str = "", excluded: int = 0):
        self.ok, self.error, self.where, self.detail = ok, float(error), where, detail
        #: elements left out of a float comparison as not determined by float evaluation (SPEC section 6.2)
        self.excluded = excluded

    def __repr__(self) -> str:
        return "Comparison({}, error={:.3g}{})".format("ok" if self.ok else "FAIL", self.error,
                                                       ", " + self.where if self.where else "")


def compare(rule: Mapping[str, Any], expected: Any, actual: Any, expected_outputs: Mapping[str, Any] = None,
            inputs: Mapping[str, Any] = None, scale: Any = None, scales: Mapping[str, Any] = None) -> Comparison:
    """Compare one output (an array, a list of arrays, or None) under `rule`.

    `scale` is the expected output's error scale (same structure as `expected`), needed by the float rule;
    `expected_outputs` (all expected outputs of the request), their `scales` and `inputs` (the request's inputs)
    supply the scores, score scales and noise of the near-tie rule."""
    if expected is None or actual is None:
        if expected is None and actual is None:
            return Comparison(True)
        return Comparison(False, float("inf"), detail="expected {}, got {}".format(
            "None" if expected is None else "a value", "None" if actual is None else "a value"))
    if isinstance(expected, (list, tuple)) or isinstance(actual, (list, tuple)):
        if not (isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple))) or \
                len(expected) != len(actual):
            return Comparison(False, float("inf"), detail="expected a list of {}, got {}".format(
                _count(expected), _count(actual)))
        worst = Comparison(True)
        parts = scale if isinstance(scale, (list, tuple)) else [None] * len(expected)
        excluded = 0
        for index, (e, a, b) in enumerate(zip(expected, actual, parts)):
            result = compare(rule, e, a, expected_outputs, inputs, b, scales)
            excluded += result.excluded
            if not result.ok or result.error > worst.error:
                result.where = "item {}{}".format(index, ", " + result.where if result.where else "")
                if not result.ok:
                    return result
                worst = result
        worst.excluded = excluded
        return worst
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return Comparison(False, float("inf"), detail="shape {}, expected {}".format(actual.shape, expected.shape))
    kind = rule["rule"]
    if kind != "ulp" and expected.dtype != actual.dtype:
        return Comparison(False, float("inf"), detail="dtype {}, expected {}".format(actual.dtype, expected.dtype))
    if kind == "float":
        if scale is None:
            return Comparison(False, float("inf"), detail="the expected answer carries no error scales (a golden "
                              "pack or case file of an older version: record it again)")
        return float_comparison(expected, actual, np.asarray(scale, dtype=np.float64))
    if kind == "exact":
        return exact_comparison(expected, actual)
    if kind == "discrete":
        return discrete_comparison(expected, actual, rule.get("ties", {"kind": "none"}), expected_outputs or {},
                                   inputs or {}, scales or {})
    if kind == "ulp":
        return ulp_comparison(expected, actual, rule, inputs)
    raise ValueError("unknown comparison rule {!r}".format(kind))


def _count(value: Any) -> str:
    return "{} items".format(len(value)) if isinstance(value, (list, tuple)) else "an array"


def _index(shape: Sequence[int], flat: int) -> str:
    return "[{}]".format(", ".join(str(int(i)) for i in np.unravel_index(flat, shape))) if shape else "[]"


def float_comparison(expected: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> Comparison:
    """SPEC section 6's float rule; the error is the worst |a - e| / (λ·σ), elements not determined left out."""
    if expected.size == 0:
        return Comparison(True)
    if scale.shape != expected.shape:
        return Comparison(False, float("inf"), detail="error scales of shape {} for an output of shape {}".format(
            scale.shape, expected.shape))
    agreement = float_agreement(expected, actual, scale)
    where = _index(expected.shape, agreement.where) if agreement.where >= 0 else ""
    detail = ""
    if agreement.where >= 0:
        flat = agreement.where
        detail = "got {}, expected {} ± {}".format(_show(actual.reshape(-1)[flat]), _show(expected.reshape(-1)[flat]),
                                                   _show(CONFIDENCE * scale.reshape(-1)[flat]))
    if agreement.excluded:
        detail += "{}{} element(s) not compared: not determined by float32 evaluation (SPEC section 6.2: {})".format(
            "; " if detail else "", agreement.excluded, UNDETERMINED_REASONS)
    return Comparison(agreement.ok, agreement.ratio, where, detail, agreement.excluded)


#: why an element may be not determined, shown when elements are left out (SPEC section 6.2)
UNDETERMINED_REASONS = ("a layer-norm variance that overflows, where SB2 itself gives NaN or beta by the row's "
                        "position in the batch; a log or division whose argument's scale reaches 0; a value whose "
                        "scale overflows")


def _show(value: Any) -> str:
    value = float(value)
    return repr(value) if not np.isfinite(value) else "{:.9g}".format(value)


def exact_comparison(expected: np.ndarray, actual: np.ndarray) -> Comparison:
    if expected.dtype.kind == "f":
        bad = ~((expected == actual) | (np.isnan(expected) & np.isnan(actual)))
    else:
        bad = expected != actual
    bad = np.asarray(bad).reshape(-1)
    if not np.any(bad):
        return Comparison(True)
    flat = int(np.argmax(bad))
    return Comparison(False, float(np.sum(bad)), _index(expected.shape, flat), "got {!r}, expected {!r}".format(
        actual.reshape(-1)[flat].item(), expected.reshape(-1)[flat].item()))


# -- discrete decisions and near-ties -------------------------------------------------------------------------------
def discrete_comparison(expected: np.ndarray, actual: np.ndarray, ties: Mapping[str, Any],
                        outputs: Mapping[str, Any], inputs: Mapping[str, Any],
                        scales: Mapping[str, Any]) -> Comparison:
    """Rows whose choices differ, not counting near-ties (SPEC section 6); `error` counts the rows."""
    rows = expected.shape[0] if expected.ndim else 1
    e = expected.reshape(rows, -1)
    a = actual.reshape(rows, -1)
    differs = e != a
    if expected.dtype.kind == "f":
        differs &= ~(np.isnan(e) & np.isnan(a))
    mismatched: List[int] = []
    first = ""
    for row in np.nonzero(np.any(differs, axis=1))[0]:
        for j in np.nonzero(differs[row])[0]:
            if not _near_tie(ties, int(row), int(j), e[row, j], a[row, j], outputs, inputs, scales):
                mismatched.append(int(row))
                if not first:
                    first = "row {}{}: got {!r}, expected {!r}".format(
                        row, " component {}".format(j) if e.shape[1] > 1 else "", a[row, j].item(), e[row, j].item())
                break
    if mismatched:
        return Comparison(False, len(mismatched), "row {}".format(mismatched[0]),
                          "{} of {} rows differ (not near-ties); first: {}".format(len(mismatched), rows, first))
    return Comparison(True)


def _near_tie(ties: Mapping[str, Any], row: int, component: int, chosen: Any, ours: Any,
              outputs: Mapping[str, Any], inputs: Mapping[str, Any], scales: Mapping[str, Any]) -> bool:
    kind = ties.get("kind", "none")
    if kind == "none":
        return False
    try:
        chosen_i, ours_i = int(chosen), int(ours)
    except (TypeError, ValueError, OverflowError):
        return False
    source = ties.get("scores") or ties.get("probabilities")
    if source not in scales:
        return False  # no scales for the scores: no tie can be shown
    if kind in ("categorical", "multi_categorical", "gumbel"):
        scores = np.asarray(outputs[ties["scores"]], dtype=np.float32)[row]
        score_scales = np.asarray(scales[ties["scores"]], dtype=np.float64)[row]
        if kind == "gumbel":
            scores, score_scales = _gumbel_scores(scores, score_scales, np.asarray(inputs[ties["noise"]])[row])
        nvec = ties.get("nvec")
        if nvec:
            start = int(np.sum(nvec[:component]))
            scores = scores[start:start + int(nvec[component])]
            score_scales = score_scales[start:start + int(nvec[component])]
        return _scores_tie(scores, score_scales, chosen_i, ours_i)
    p = np.asarray(outputs[ties["probabilities"]], dtype=np.float64)[row]
    p_scale = np.asarray(scales[ties["probabilities"]], dtype=np.float64)[row]
    if kind == "bernoulli_mode":  # the scores 1 - p (one more rounding) and p
        complement_scale = quadrature(p_scale[component], own_scale(np.dtype(np.float32), abs(1 - p[component])))
        return _scores_tie(np.array([1 - p[component], p[component]]),
                           np.array([complement_scale, p_scale[component]]), chosen_i, ours_i)
    u = np.asarray(inputs[ties["noise"]], dtype=np.float64)[row]
    if kind == "bernoulli_sample":  # u < p, u exact
        return _scores_tie(np.array([u[component], p[component]]), np.array([0.0, p_scale[component]]),
                           chosen_i, ours_i)
    if kind == "inverse_cdf":
        return _inverse_cdf_tie(p, p_scale, float(u[0]), chosen_i, ours_i)
    raise ValueError("unknown near-tie kind {!r}".format(kind))


def _gumbel_scores(logits: np.ndarray, logit_scales: np.ndarray, noise: np.ndarray):
    """logits - log(-log(u)) as the graph computes it in float32, with its scales (the ops' own)."""
    values, errors = np.asarray(noise, np.float32), np.zeros(np.shape(noise))
    with np.errstate(all="ignore"):
        for op in (Log, Neg, Log):
            result = op.compute(values)
            errors = finish([result], op.error_scale([values], [errors], [result]))[0]
            values = result
        scores = Sub.compute(logits, values)
        return scores, finish([scores], Sub.error_scale([logits, values], [logit_scales, errors], [scores]))[0]


def _inverse_cdf_tie(p: np.ndarray, p_scale: np.ndarray, u: float, chosen: int, ours: int) -> bool:
    """NumPy's choice compares u with d_j = c_j / c_n (c the cumulative sums in float64): the choices tie when u
    is within the scale of a boundary between them."""
    low, high = sorted((chosen, ours))
    if low < 0 or high > len(p):
        return False
    with np.errstate(all="ignore"):
        cdf, cdf_scale = np.cumsum(p), np.sqrt(np.cumsum(np.square(p_scale))) + 1e-15  # + float64 rounding
        total, total_scale = cdf[-1], cdf_scale[-1]
        boundaries = cdf / total
        boundary_scales = quadrature(cdf_scale, boundaries * total_scale) / (total - CONFIDENCE * total_scale)
    span = slice(low, high)
    return bool(np.any(~(np.abs(boundaries[span] - u) > CONFIDENCE * boundary_scales[span])))


def _scores_tie(scores: np.ndarray, score_scales: np.ndarray, chosen: int, ours: int) -> bool:
    if not (0 <= chosen < len(scores) and 0 <= ours < len(scores)):
        return False
    return near_tie(float(scores[chosen]), float(score_scales[chosen]), float(scores[ours]),
                    float(score_scales[ours]))


# -- op vectors ---------------------------------------------------------------------------------------------------
class UlpDifferences(NamedTuple):
    """Element-wise outcome of an op vector's float tolerance (`ulp_differences`): `bad` positions fail it (those
    in `skip` excluded), `skip` ones are ignored because a NaN input reaches them (`unspecified_nan`), `finite`
    ones hold finite values on both sides; `distance` (ULP, uint64) and `difference` (absolute, float64) are 0
    where a value is not finite."""

    bad: np.ndarray
    skip: np.ndarray
    finite: np.ndarray
    distance: np.ndarray
    difference: np.ndarray


def ulp_differences(expected: np.ndarray, actual: np.ndarray, tolerance: Mapping[str, Any],
                    inputs: Optional[Mapping[str, Any]]) -> UlpDifferences:
    """Float arrays of one dtype and shape under an op vector's tolerance (spec/ops.md), element by element:
    subnormals flushed, within `ulp` ULP or `abs`, NaN where expected, infinities exact."""
    skip = np.zeros(expected.shape, dtype=bool)
    if tolerance.get("unspecified_nan") and inputs:
        for x in inputs.get("arrays", []):
            if np.asarray(x).dtype.kind == "f":
                try:
                    skip |= np.broadcast_to(np.isnan(x), expected.shape)
                except ValueError:
                    skip[...] = True
    with np.errstate(all="ignore"):
        a, e = _flushed(actual), _flushed(expected)
        nan_a, nan_e = np.isnan(a), np.isnan(e)
        infinite = np.isinf(a) | np.isinf(e)
        finite = ~(nan_a | nan_e | infinite)
        bad = (nan_a != nan_e) | (infinite & ~(nan_a | nan_e) & (a != e))
        distance = np.where(finite, _ulp_distance(a, e), np.uint64(0))
        difference = np.where(finite, np.abs(a.astype(np.float64) - e.astype(np.float64)), 0.0)
        if tolerance.get("exact"):
            bad |= distance > 0
        else:
            bad |= (distance > tolerance.get("ulp", 0)) & (difference > tolerance.get("abs", 0.0))
    return UlpDifferences(bad & ~skip, skip, finite, distance, difference)


def ulp_comparison(expected: np.ndarray, actual: np.ndarray, tolerance: Mapping[str, Any],
                   inputs: Optional[Mapping[str, Any]]) -> Comparison:
    """An op vector's tolerance (spec/ops.md): dtype exact; floats flushed, within `ulp` ULP or `abs`; NaN where
    expected; infinities exact; positions a NaN input reaches ignored when `unspecified_nan`."""
    if expected.dtype != actual.dtype:
        return Comparison(False, float("inf"), detail="dtype {}, expected {}".format(actual.dtype, expected.dtype))
    if expected.dtype.kind != "f":
        return exact_comparison(expected, actual)
    bad, skip, finite, distance, difference = ulp_differences(expected, actual, tolerance, inputs)
    counted = np.where(skip | (difference <= tolerance.get("abs", -1.0)), np.uint64(0), distance)
    worst = float(counted.max()) if counted.size else 0.0
    if np.any(bad):
        flat = int(np.argmax(bad.reshape(-1)))
        got, want = actual.reshape(-1)[flat], expected.reshape(-1)[flat]
        how = "{} ULP".format(int(distance.reshape(-1)[flat])) if finite.reshape(-1)[flat] else "NaN/inf mismatch"
        return Comparison(False, float("inf") if not finite.reshape(-1)[flat] else max(worst, 1.0),
                          _index(expected.shape, flat), "got {}, expected {} ({})".format(_show(got), _show(want), how))
    return Comparison(True, worst, _index(expected.shape, int(np.argmax(counted.reshape(-1)))) if counted.size else "",
                      "{} ULP".format(int(worst)))


def _flushed(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < np.finfo(x.dtype).tiny, x.dtype.type(0), x)


def _ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    oa, ob = _ordinal(a), _ordinal(b)
    return np.maximum(oa, ob) - np.minimum(oa, ob)


def _ordinal(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.float32:
        bits, width = np.ascontiguousarray(x).view(np.uint32).astype(np.uint64), 32
    else:
        bits, width = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64), 64
    sign = np.uint64(1 << (width - 1))
    magnitude = bits & ~sign
    return np.where(bits & sign, sign - magnitude, sign + magnitude)


# -- rules for a model's outputs ------------------------------------------------------------------------------------
def output_rules(document: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The rule for every declared output of a file: discrete rules (with their near-tie scores) for the
    actions of discrete distributions, exact for other integer outputs, float for the rest."""
    predict = document["predict"]
    distribution = predict.get("distribution") or {}
    kind = distribution.get("kind")
    parameters = distribution.get("parameters", {})
    producers = {name: node for node in document["graph"] for name in node["outputs"]}
    noise = [entry["name"] for entry in document["inputs"] if entry["kind"] == "noise"]
    rules: Dict[str, Dict[str, Any]] = {}
    for output in document["outputs"]:
        name, dtype = output["name"], output["dtype"]
        integer = np.dtype(dtype).kind in "iub"
        rules[name] = {"rule": "exact"} if integer else {"rule": "float"}
    actions = {predict["deterministic_action"]: "mode", predict["stochastic_action"]: "sample"}
    for name, role in actions.items():
        if name not in rules or kind in (None, "diag_gaussian"):
            continue
        op = _decision_op(producers, name)
        ties: Dict[str, Any] = {"kind": "none"}
        if kind in ("categorical", "multi_categorical"):
            nvec = distribution.get("nvec") if kind == "multi_categorical" else None
            if op == "inverse_cdf_sample":
                ties = {"kind": "inverse_cdf", "probabilities": parameters["probabilities"], "noise": noise[0]}
            elif role == "sample" and noise:
                ties = {"kind": "gumbel", "scores": parameters["logits"], "noise": noise[0], "nvec": nvec}
            else:
                ties = {"kind": "categorical", "scores": parameters["logits"], "nvec": nvec}
        elif kind == "bernoulli":
            if role == "sample" and noise:
                ties = {"kind": "bernoulli_sample", "probabilities": parameters["probabilities"], "noise": noise[0]}
            else:
                ties = {"kind": "bernoulli_mode", "probabilities": parameters["probabilities"]}
        rules[name] = {"rule": "discrete", "ties": ties}
    return rules


def _decision_op(producers: Mapping[str, Any], name: str) -> str:
    """The op that makes a discrete decision behind output `name` (through stack/cast/concat)."""
    node = producers.get(name)
    seen = 0
    while node is not None and node["op"] in ("stack", "cast", "concat", "reshape") and seen < 8:
        node = producers.get(node["inputs"][0])
        seen += 1
    return node["op"] if node is not None else ""


def tie_outputs(rule: Mapping[str, Any]) -> List[str]:
    """The expected outputs a rule's near-tie test reads (a request must ask for them too)."""
    ties = rule.get("ties") or {}
    return [ties[key] for key in ("scores", "probabilities") if key in ties]


# -- reader refusal -------------------------------------------------------------------------------------------------
def refusal_comparison(rule: Mapping[str, Any], expected: str, actual: Any) -> Comparison:
    """`{"rule": "refusal"}`: the outcome of a `load` request (`conformance.protocol.load_outcome`), "loaded" or the
    class of the refusal, must be the expected one (SPEC section 7). The error is 1 for a wrong outcome."""
    if actual == expected:
        return Comparison(True)
    return Comparison(False, 1.0, detail="expected {}, got {}".format(expected, actual))


def comparison_inputs(request: Mapping[str, Any]) -> Dict[str, Any]:
    """What the near-tie and NaN rules read from a request: its named inputs (and noise), or the op inputs."""
    if request.get("type") == "op":
        return {"arrays": request["inputs"]}
    inputs = dict(request.get("inputs") or {}) if request.get("type") == "run" else {}
    if request.get("noise"):
        inputs.update(request["noise"])
    return inputs
