"""Comparison rules (spec/SPEC.md section 6, spec/ops.md "Tolerances"), as JSON-able rule objects.

A rule says how one output is compared; it is stored with the expected values in golden packs and case files,
so a replay compares exactly as the original run did:

- `{"rule": "float"}`: |a - e| <= atol * (1 + |e|) element-wise (atol = rtol = 1e-5, overridable with "atol"),
  NaN matching NaN and infinities matching exactly (`sbif.compare.float_error`);
- `{"rule": "exact"}`: equal dtype, shape and values (NaN matching NaN);
- `{"rule": "discrete", "ties": {...}}`: action indices (or Bernoulli 0/1) equal, except on a near-tie of the
  scores the two choices were taken from (see `TIE_KINDS`), computed from the *expected* outputs and the
  request's noise;
- `{"rule": "ulp", "ulp": N, "abs": A, "exact": bool, "unspecified_nan": bool}`: an op vector's tolerance.

Every comparison returns a `Comparison`: pass/fail, the error (normalised float error, or the number of
mismatched rows), and where the worst element is.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from sbif.compare import ATOL, RTOL

#: where near-tie scores come from, per kind of discrete decision
TIE_KINDS = ("none", "categorical", "multi_categorical", "gumbel", "bernoulli_mode", "bernoulli_sample",
             "inverse_cdf")


class Comparison:
    """The outcome of comparing one output: `ok`, `error` (float error, or mismatched rows), `where`."""

    __slots__ = ("ok", "error", "where", "detail")

    def __init__(self, ok: bool, error: float = 0.0, where: str = "", detail: str = ""):
        self.ok, self.error, self.where, self.detail = ok, float(error), where, detail

    def __repr__(self) -> str:
        return "Comparison({}, error={:.3g}{})".format("ok" if self.ok else "FAIL", self.error,
                                                       ", " + self.where if self.where else "")


def compare(rule: Mapping[str, Any], expected: Any, actual: Any, expected_outputs: Mapping[str, Any] = None,
            inputs: Mapping[str, Any] = None) -> Comparison:
    """Compare one output (an array, a list of arrays, or None) under `rule`.

    `expected_outputs` (all expected outputs of the request) and `inputs` (the request's inputs) supply the
    scores and noise of the near-tie rule."""
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
        for index, (e, a) in enumerate(zip(expected, actual)):
            result = compare(rule, e, a, expected_outputs, inputs)
            if not result.ok or result.error > worst.error:
                result.where = "item {}{}".format(index, ", " + result.where if result.where else "")
                if not result.ok:
                    return result
                worst = result
        return worst
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return Comparison(False, float("inf"), detail="shape {}, expected {}".format(actual.shape, expected.shape))
    kind = rule["rule"]
    if kind != "ulp" and expected.dtype != actual.dtype:
        return Comparison(False, float("inf"), detail="dtype {}, expected {}".format(actual.dtype, expected.dtype))
    if kind == "float":
        return float_comparison(expected, actual, rule.get("atol", ATOL), rule.get("rtol", RTOL))
    if kind == "exact":
        return exact_comparison(expected, actual)
    if kind == "discrete":
        return discrete_comparison(expected, actual, rule.get("ties", {"kind": "none"}), expected_outputs or {},
                                   inputs or {})
    if kind == "ulp":
        return ulp_comparison(expected, actual, rule, inputs)
    raise ValueError("unknown comparison rule {!r}".format(kind))


def _count(value: Any) -> str:
    return "{} items".format(len(value)) if isinstance(value, (list, tuple)) else "an array"


def _index(shape: Sequence[int], flat: int) -> str:
    return "[{}]".format(", ".join(str(int(i)) for i in np.unravel_index(flat, shape))) if shape else "[]"


def float_comparison(expected: np.ndarray, actual: np.ndarray, atol: float = ATOL, rtol: float = RTOL) -> Comparison:
    e = expected.astype(np.float64).reshape(-1)
    a = actual.astype(np.float64).reshape(-1)
    if e.size == 0:
        return Comparison(True)
    nan_e, nan_a = np.isnan(e), np.isnan(a)
    inf_e, inf_a = np.isinf(e), np.isinf(a)
    special = (nan_e != nan_a) | ((inf_e | inf_a) & ~(nan_e | nan_a) & (e != a))
    if np.any(special):
        flat = int(np.argmax(special))
        return Comparison(False, float("inf"), _index(expected.shape, flat),
                          "got {}, expected {}".format(_show(a[flat]), _show(e[flat])))
    finite = ~(nan_e | inf_e)
    if not np.any(finite):
        return Comparison(True)
    with np.errstate(all="ignore"):
        scaled = np.where(finite, np.abs(a - e) / (1.0 + (rtol / atol) * np.abs(e)), 0.0)
    flat = int(np.argmax(scaled))
    error = float(scaled[flat])
    return Comparison(error <= atol, error, _index(expected.shape, flat),
                      "got {}, expected {}".format(_show(a[flat]), _show(e[flat])))


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
                        outputs: Mapping[str, Any], inputs: Mapping[str, Any]) -> Comparison:
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
            if not _near_tie(ties, int(row), int(j), e[row, j], a[row, j], outputs, inputs):
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
              outputs: Mapping[str, Any], inputs: Mapping[str, Any]) -> bool:
    kind = ties.get("kind", "none")
    if kind == "none":
        return False
    try:
        chosen_i, ours_i = int(chosen), int(ours)
    except (TypeError, ValueError, OverflowError):
        return False
    if kind in ("categorical", "multi_categorical", "gumbel"):
        scores = np.asarray(outputs[ties["scores"]], dtype=np.float64)[row]
        if kind == "gumbel":
            u = np.asarray(inputs[ties["noise"]], dtype=np.float64)[row]
            with np.errstate(all="ignore"):
                scores = scores - np.log(-np.log(u))
        nvec = ties.get("nvec")
        if nvec:
            start = int(np.sum(nvec[:component]))
            scores = scores[start:start + int(nvec[component])]
        return _scores_tie(scores, chosen_i, ours_i)
    probabilities = np.asarray(outputs[ties["probabilities"]], dtype=np.float64)[row]
    if kind == "bernoulli_mode":
        p = probabilities[component]
        return _scores_tie(np.array([1 - p, p]), chosen_i, ours_i)
    u = np.asarray(inputs[ties["noise"]], dtype=np.float64)[row]
    if kind == "bernoulli_sample":
        return _scores_tie(np.array([u[component], probabilities[component]]), chosen_i, ours_i)
    if kind == "inverse_cdf":
        with np.errstate(all="ignore"):
            cdf = np.cumsum(probabilities)
            cdf = cdf / cdf[-1]
        low, high = sorted((chosen_i, ours_i))
        if low < 0 or high > len(cdf):
            return False
        boundaries = cdf[low:high]
        return bool(np.any(np.abs(boundaries - u[0]) <= ATOL * (1 + abs(u[0]))))
    raise ValueError("unknown near-tie kind {!r}".format(kind))


def _scores_tie(scores: np.ndarray, chosen: int, ours: int) -> bool:
    if not (0 <= chosen < len(scores) and 0 <= ours < len(scores)):
        return False
    a, b = scores[chosen], scores[ours]
    if not (np.isfinite(a) and np.isfinite(b)):
        return bool(a == b)
    return bool(abs(a - b) <= ATOL * (1 + abs(a)))


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
