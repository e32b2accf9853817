"""Hypothesis generation: spaces, architectures and weights SB2 can build, inputs, and the fuzz loop.

Every part of an example is a labelled draw (`data.draw(..., label=...)`) and every example is described with `note`, so a failure
reads as "family lstm, MultiDiscrete([3, 2]) observations, n_lstm 3, check recurrent_sequence, 2 envs...".
`fuzz` runs a runtime against an oracle (by default the NumPy reference, which needs no TensorFlow) on drawn
models and checks, steers towards large errors with `hypothesis.target`, and on failure writes the smallest
failing case Hypothesis found to a replayable `.sbifcase` file (`sbif conformance replay CASE`).

Profiles: `conformance-ci` (derandomized, no database: the same examples on every run) and `conformance-dev`.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
from hypothesis import HealthCheck, Phase, given, note, settings, target
from hypothesis import strategies as st

from .checks import CHECKS, Config
from .models import FAMILIES, ModelInfo, write_model
from .protocol import Runtime

settings.register_profile("conformance-ci", derandomize=True, database=None, deadline=None, print_blob=False,
                          suppress_health_check=list(HealthCheck), max_examples=50)
settings.register_profile("conformance-dev", deadline=None, suppress_health_check=list(HealthCheck),
                          max_examples=200)

ACTIVATIONS = ("tanh", "relu", "relu6", "elu", "selu", "sigmoid", "softplus", "softsign", "swish", "leaky_relu",
               "identity")
AC_ALGORITHMS = ("PPO2", "A2C", "ACKTR", "PPO1", "TRPO")
FLT_MAX = float(np.finfo(np.float32).max)
#: pseudo-family of the fuzz loop: op-level checks (op vectors), no model
OPS = "ops"
#: checks that make sense per family (beyond what the runtime and the model say)
FAMILY_CHECKS = {
    "mlp": ("deterministic", "sampling", "edge_observations", "predict_api"),
    "cnn": ("deterministic", "sampling", "edge_observations", "predict_api"),
    "lstm": ("deterministic", "sampling", "edge_observations", "recurrent_sequence", "predict_api"),
    "cnn_lstm": ("deterministic", "recurrent_sequence"),
    "dqn": ("deterministic", "sampling", "edge_observations", "predict_api"),
    "sac": ("deterministic", "sampling", "edge_observations", "predict_api"),
    "td3": ("deterministic", "edge_observations", "predict_api"),
    "ddpg": ("deterministic", "edge_observations", "predict_api"),
    "vecnormalize": ("deterministic", "sampling", "edge_observations", "predict_api"),
    "her": ("deterministic", "sampling", "predict_api"),
    OPS: ("op_vectors",),
}


# -- spaces ------------------------------------------------------------------------------------------------------
def _float_bound(value: float) -> Any:
    return "inf" if value == math.inf else "-inf" if value == -math.inf else value


@st.composite
def box_spaces(draw: Any, dtypes: Sequence[str] = ("float32", "float32", "float64", "uint8"),
               shapes: Any = None, bounds: Sequence[str] = ("finite", "huge", "infinite", "mixed")) -> Dict[str, Any]:
    """Box spaces: finite bounds, huge (±3.4e38) bounds, infinite bounds, or a mix per element; uint8 images
    have SB2's 0..255."""
    shape = draw(shapes if shapes is not None else st.lists(st.integers(1, 4), min_size=1, max_size=3).filter(
        lambda s: int(np.prod(s)) <= 24))
    dtype = draw(st.sampled_from(list(dtypes)))
    if dtype == "uint8":
        return {"kind": "box", "shape": list(shape), "dtype": dtype, "low": 0, "high": 255}
    kind = draw(st.sampled_from(list(bounds)))
    size = int(np.prod(shape))
    if kind == "finite":
        low = draw(st.floats(-5, 0, width=32))
        span = draw(st.floats(0.5, 10, width=32))
        return {"kind": "box", "shape": list(shape), "dtype": dtype, "low": low, "high": low + span}
    if kind == "huge":
        return {"kind": "box", "shape": list(shape), "dtype": dtype, "low": -FLT_MAX, "high": FLT_MAX}
    if kind == "infinite":
        return {"kind": "box", "shape": list(shape), "dtype": dtype, "low": "-inf", "high": "inf"}
    choices = draw(st.lists(st.sampled_from([(-1.0, 1.0), (-FLT_MAX, FLT_MAX), (-math.inf, math.inf),
                                             (0.0, math.inf)]), min_size=size, max_size=size))
    return {"kind": "box", "shape": list(shape), "dtype": dtype, "low": [_float_bound(c[0]) for c in choices],
            "high": [_float_bound(c[1]) for c in choices]}


def image_spaces(min_side: int = 36, max_side: int = 52) -> Any:
    side = st.integers(min_side, max_side)
    return st.one_of(
        st.builds(lambda h, w, c: {"kind": "box", "shape": [h, w, c], "dtype": "uint8", "low": 0, "high": 255},
                  side, side, st.integers(1, 3)),
        st.builds(lambda h, w: {"kind": "box", "shape": [h, w, 1], "dtype": "float32", "low": -1.0, "high": 2.0},
                  side, side))


def discrete_spaces() -> Any:
    return st.builds(lambda n: {"kind": "discrete", "n": n}, st.integers(2, 6))


def multi_discrete_spaces() -> Any:
    return st.builds(lambda nvec: {"kind": "multi_discrete", "nvec": nvec},
                     st.lists(st.integers(2, 4), min_size=1, max_size=3))


def multi_binary_spaces() -> Any:
    return st.builds(lambda n: {"kind": "multi_binary", "n": n}, st.integers(1, 5))


def observation_spaces(kinds: Sequence[str] = ("box", "discrete", "multi_discrete", "multi_binary")) -> Any:
    table = {"box": box_spaces(), "discrete": discrete_spaces(), "multi_discrete": multi_discrete_spaces(),
             "multi_binary": multi_binary_spaces()}
    return st.one_of([table[k] for k in kinds])


@st.composite
def box_action_spaces(draw: Any) -> Dict[str, Any]:
    d = draw(st.integers(1, 3))
    low = draw(st.lists(st.floats(-3, 0, width=32), min_size=d, max_size=d))
    span = draw(st.lists(st.floats(0.25, 4, width=32), min_size=d, max_size=d))
    return {"kind": "box", "shape": [d], "dtype": "float32", "low": low,
            "high": [float(np.float32(l + s)) for l, s in zip(low, span)]}


def action_spaces(kinds: Sequence[str] = ("discrete", "box", "multi_discrete", "multi_binary")) -> Any:
    table = {"discrete": st.builds(lambda n: {"kind": "discrete", "n": n}, st.integers(2, 5)),
             "box": box_action_spaces(), "multi_discrete": multi_discrete_spaces(),
             "multi_binary": multi_binary_spaces()}
    return st.one_of([table[k] for k in kinds])


# -- architectures -------------------------------------------------------------------------------------------------
widths = st.one_of(st.integers(1, 8), st.sampled_from([16, 64]))


@st.composite
def net_archs(draw: Any) -> List[Any]:
    shared = draw(st.lists(widths, max_size=2))
    if draw(st.booleans()):
        branches = {"pi": draw(st.lists(widths, max_size=2)),
                    "vf": draw(st.lists(widths, max_size=2))}
        return shared + [branches]
    return shared


def common(draw: Any, spec: Dict[str, Any]) -> Dict[str, Any]:
    """Seed and weights like trained nets': an overall scale from well-conditioned (1) to large (3, 10: logits in
    the hundreds, long cancelling sums), each tensor's own factor spread log-normally, and a Gaussian policy's
    log-std from -3 to 1. The comparison's error scales follow the conditioning, so every draw is fair game."""
    spec["seed"] = draw(st.integers(0, 2 ** 16))
    spec["scale"] = draw(st.sampled_from([1.0, 0.1, 3.0, 0.01, 10.0]))
    spec["spread"] = draw(st.sampled_from([0.0, 0.5, 1.0]))
    spec["log_std"] = draw(st.sampled_from([0.0, -3.0, -1.0, 1.0]))
    return spec


@st.composite
def model_specs(draw: Any, family: str, observation_kinds: Optional[Sequence[str]] = None,
                action_kinds: Optional[Sequence[str]] = None, layer_norm: Optional[bool] = None,
                activations: Sequence[str] = ACTIVATIONS) -> Dict[str, Any]:
    """A buildable spec of `family` (see `conformance.models`); the optional filters narrow the draw."""
    if family in ("mlp", "lstm"):
        obs = draw(observation_spaces(observation_kinds or ("box", "discrete", "multi_discrete", "multi_binary")))
        act = draw(action_spaces(action_kinds or ("discrete", "box", "multi_discrete", "multi_binary")))
        algorithms = AC_ALGORITHMS + (("ACER",) if act["kind"] == "discrete" else ())
        spec = {"family": family, "observation": obs, "action": act,
                "activation": draw(st.sampled_from(list(activations)))}
        if family == "mlp":
            spec["algorithm"] = draw(st.sampled_from(list(algorithms)))
            spec["net_arch"] = draw(net_archs())
        else:
            spec["algorithm"] = draw(st.sampled_from(["PPO2", "A2C", "ACKTR"]))
            spec["n_lstm"] = draw(st.integers(1, 6))
            spec["layer_norm"] = draw(st.booleans()) if layer_norm is None else layer_norm
            if draw(st.booleans()):
                spec["layers"] = draw(st.lists(widths, max_size=2))
            else:
                before = draw(st.lists(widths, max_size=1))
                after = draw(st.lists(widths, max_size=1))
                spec["net_arch"] = before + ["lstm"] + after + [
                    {"pi": draw(st.lists(widths, max_size=1)),
                     "vf": draw(st.lists(widths, max_size=1))}]
        return common(draw, spec)
    if family in ("cnn", "cnn_lstm"):
        obs = draw(image_spaces(36, 52 if family == "cnn" else 40))
        act = draw(action_spaces(action_kinds or ("discrete", "box", "multi_discrete", "multi_binary")))
        spec = {"family": family, "observation": obs, "action": act,
                "algorithm": draw(st.sampled_from(["PPO2", "A2C"]))}
        if family == "cnn":
            spec["padding"] = draw(st.sampled_from(["VALID", "SAME"]))
        else:
            spec["n_lstm"] = draw(st.integers(1, 6))
            spec["layer_norm"] = draw(st.booleans()) if layer_norm is None else layer_norm
        return common(draw, spec)
    if family == "dqn":
        norm = draw(st.booleans()) if layer_norm is None else layer_norm
        obs = draw(observation_spaces(observation_kinds or ("box", "discrete", "multi_discrete", "multi_binary")))
        spec = {"family": "dqn", "observation": obs, "action": draw(action_spaces(("discrete",))),
                "layers": draw(st.lists(st.integers(2 if norm else 1, 8), min_size=1, max_size=2)),
                "layer_norm": norm, "dueling": draw(st.booleans()) or norm,
                "activation": draw(st.sampled_from([a for a in activations if a != "identity"] or ["relu"]))}
        return common(draw, spec)
    if family in ("sac", "td3", "ddpg"):
        norm = draw(st.booleans()) if layer_norm is None else layer_norm
        spec = {"family": family,
                "observation": draw(box_spaces(dtypes=("float32",), bounds=("finite", "infinite", "huge"))),
                "action": draw(box_action_spaces()),
                "layers": draw(st.lists(st.integers(2 if norm else 1, 8), min_size=1, max_size=2)),
                "layer_norm": norm,
                "activation": draw(st.sampled_from([a for a in activations if a != "identity"] or ["relu"]))}
        return common(draw, spec)
    if family == "vecnormalize":
        obs = draw(box_spaces(dtypes=("float32",), bounds=("infinite", "huge", "finite")))
        size = int(np.prod(obs["shape"]))
        magnitude = draw(st.sampled_from([1e5, 1e4, 100.0, 1.0]))
        mean = draw(st.lists(st.floats(-1, 1), min_size=size, max_size=size))
        var = draw(st.lists(st.sampled_from([1e-4, 0.01, 1.0, 4.0]), min_size=size, max_size=size))
        spec = {"family": "vecnormalize", "algorithm": "PPO2", "observation": obs,
                "action": draw(action_spaces(action_kinds or ("discrete", "box"))),
                "net_arch": draw(net_archs()),
                "activation": draw(st.sampled_from(list(activations))),
                "mean": [float(m * magnitude) for m in mean], "var": [float(v) for v in var],
                "clip_obs": draw(st.sampled_from([10.0, 5.0]))}
        return common(draw, spec)
    if family == "her":
        inner = draw(st.sampled_from(["dqn", "sac", "td3", "ddpg"]), label="HER model_class")
        spec = dict(draw(model_specs(inner, layer_norm=layer_norm, activations=activations)), family="her",
                    inner=inner)
        goal = draw(st.integers(1, 3))
        low, high = draw(st.sampled_from([(-1.0, 1.0), ("-inf", "inf"), (-200.0, 200.0)]))
        spec["observation"] = {"kind": "box", "shape": [2 * goal + draw(st.integers(1, 4))], "dtype": "float32",
                               "low": low, "high": high}
        spec["goal_size"] = goal
        return spec
    raise ValueError("unknown family {!r} (known: {})".format(family, ", ".join(FAMILIES)))


@st.composite
def configs(draw: Any) -> Config:
    """Probe sizes: one batch of 1..8 rows, 1..4 envs, 1..6 steps, a reset probability, an input seed."""
    return Config(batches=[draw(st.integers(1, 8))], envs=[draw(st.integers(1, 4))],
                  steps=draw(st.integers(1, 6)),
                  reset_probability=draw(st.sampled_from([0.3, 0.0, 0.7])),
                  seed=draw(st.integers(0, 2 ** 16)))


def draw_example(data: Any, families: Sequence[str], checks: Sequence[str],
                 constraints: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """One fuzz example, drawn with labels (they name the parts of a failing example in Hypothesis' report): a
    family, a check that applies to it, a model spec, and probe sizes."""
    family = data.draw(st.sampled_from(list(families)), label="family")
    applicable = [c for c in FAMILY_CHECKS[family] if c in checks]
    check = data.draw(st.sampled_from(applicable), label="check")
    spec = None if family == OPS else data.draw(model_specs(family, **dict(constraints or {})), label="model spec")
    return {"family": family, "spec": spec, "check": check, "config": data.draw(configs(), label="probe sizes")}


# -- the fuzz loop -------------------------------------------------------------------------------------------------
class FuzzResult:
    """What `fuzz` found: the first failure (how many examples it took, which check), the case file written."""

    def __init__(self) -> None:
        self.examples = 0
        self.first_failure_at: Optional[int] = None
        self.failure: Optional[Dict[str, Any]] = None
        self.case_file: Optional[str] = None
        self.error: Optional[str] = None
        #: the passing float comparison closest to its limit: its ratio |a - e| / (λ·σ), family, check, output
        self.largest: Dict[str, Any] = {"ratio": 0.0}

    @property
    def caught(self) -> bool:
        return self.first_failure_at is not None

    def as_dict(self) -> Dict[str, Any]:
        return {"examples": self.examples, "first_failure_at": self.first_failure_at, "failure": self.failure,
                "case_file": self.case_file, "largest": self.largest}


def fuzz(runtime: Runtime, oracle: Runtime, families: Sequence[str] = FAMILIES, checks: Optional[Sequence[str]] = None,
         max_examples: int = 50, profile: str = "conformance-ci", shrink: bool = True, case_file: Optional[str] = None,
         workdir: Optional[str] = None, constraints: Optional[Mapping[str, Any]] = None,
         vectors_dir: Optional[str] = None) -> FuzzResult:
    """Draw models and checks; return at the first failing check (after shrinking it, if `shrink`).

    Families the exporter cannot build, and checks the runtime or oracle lack, are left out beforehand.
    """
    from sbif.errors import SbifError

    from .runner import run_check

    checks = [c for c in (checks or list(CHECKS)) if runtime.supports(CHECKS[c].feature)
              and (CHECKS[c].model_free or oracle.supports(CHECKS[c].feature))]
    families = [f for f in families if any(c in checks for c in FAMILY_CHECKS[f])]
    if not families:
        raise ValueError("no family has a check both the runtime and the oracle support")
    workdir = workdir or tempfile.mkdtemp(prefix="sbif-fuzz-")
    result = FuzzResult()

    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])

    @settings(settings.get_profile(profile), max_examples=max_examples, phases=phases)
    @given(st.data())
    def property(data: Any) -> None:
        example = draw_example(data, families, checks, constraints)
        result.examples += 1
        family, spec, check, config = example["family"], example["spec"], example["check"], example["config"]
        note("family {}, check {}, probe sizes {}".format(family, check, json.dumps(config.as_dict())))
        rng = np.random.default_rng(config.seed)
        if family == OPS:
            info = None
            plan = CHECKS[check].plan(None, rng, config, vectors_dir)
            model = "(op vectors)"
        else:
            note("model spec: " + json.dumps(spec, sort_keys=True))
            try:
                path = write_model(spec, workdir)
            except SbifError as exc:  # a draw the exporter refuses: not a runtime failure
                note("the exporter refuses this spec: {}".format(exc))
                return
            info = ModelInfo(path)
            if CHECKS[check].not_applicable(info):
                return
            plan = CHECKS[check].plan(info, rng, config)
            model = os.path.basename(path)
        outcome = run_check(model, check, plan, lambda probe: oracle.request(probe.request), runtime, info,
                            stop_at_first_failure=True)
        error = outcome.worst.get("error")
        if outcome.status == "pass" and error is not None and outcome.worst.get("kind") == "float":
            target(min(float(error), 1e6))  # the scale ratio: Hypothesis looks for inputs near the limit
            if error > result.largest["ratio"]:
                result.largest = {"ratio": float(error), "family": family, "check": check,
                                  "output": outcome.worst.get("output"), "spec": spec}
        if outcome.status != "fail":
            return
        if result.first_failure_at is None:
            result.first_failure_at = result.examples
        result.failure = dict({k: v for k, v in outcome.worst.items()}, check=check, family=family, spec=spec,
                              model=model)
        if case_file and outcome.failure is not None:
            from .cases import case_document, failing_probe

            failure = outcome.failure
            document = case_document(check, [failing_probe(failure)], failure["probe_object"].request.get("model"),
                                     failure, runtime.name, spec=spec, embed=True,
                                     note="found by `sbif conformance fuzz`; family {}".format(family))
            with open(case_file, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=1)
                handle.write("\n")
            result.case_file = case_file
        raise AssertionError("{} fails {} on {}: {} {} {}".format(runtime.name, check, model, outcome.worst.get(
            "output", ""), outcome.worst.get("where", ""), outcome.worst.get("detail", "")))

    try:
        property()
    except AssertionError as exc:
        result.error = str(exc).splitlines()[0] if str(exc) else "failure"
    return result
