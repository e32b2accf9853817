"""The named checks: what the suite asks a runtime, and how each answer is compared.

A check is a *plan*: a generator that yields `Probe`s (one request plus the comparison rule of every output
it asks for) and receives the oracle's expected `Answer` for each (`expected = yield probe`), so a recurrent
sequence can feed the oracle's state back in lock-step. The same plans drive live runs, golden-pack
recording and Hypothesis fuzzing.

| check | asks | catches |
|---|---|---|
| `deterministic` | every noise-free output for batches of observations | preprocessing, layers, heads, clip/unscale, value |
| `sampling` | the sampled action with injected noise (and edge noise 0, 1-2^-24, ±6) | Gumbel/Bernoulli/Gaussian sampling |
| `edge_observations` | bounds, zeros, single ±1e30 elements, ±inf, NaN, out-of-range indices | NaN/inf rules, scaling, one-hot |
| `recurrent_sequence` | steps over several envs with random resets, state fed in lock-step | gate order, state layout, masks |
| `predict_api` | SB2's predict / action_probability / value (single and batched, actions, logp) | section 5 of the spec |
| `op_vectors` | every op on TensorFlow's own test vectors (spec/vectors) | op semantics, ties, edge values |
| `reader_refusal` | a `load` of each file of conformance/malformed | corrupt files accepted, or refused by the wrong class |
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Generator, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from sbif.format.validate import DICT_INPUT_PREFIX

from .data import MALFORMED_FILES, OP_VECTORS, MissingDataError, shipped
from .malformed import read_manifest
from .models import HUGE_SPAN, ModelInfo
from .protocol import LOADED, Answer, decode_array

#: the "huge" edge observation: large enough to saturate every activation, small enough that no sum of a few
#: thousand such terms overflows float32
HUGE_VALUE = 1e30


class Probe:
    """One request and the rule of every output to compare; `expected` is set when the plan itself knows the
    answer (op vectors, golden packs) instead of asking the oracle."""

    __slots__ = ("request", "rules", "label", "expected", "rows", "scales", "undetermined")

    def __init__(self, request: Dict[str, Any], rules: Dict[str, Dict[str, Any]], label: str,
                 expected: Optional[Answer] = None, rows: Optional[List[str]] = None,
                 scales: Optional[Dict[str, Any]] = None, undetermined: Optional[Dict[str, str]] = None):
        self.request, self.rules, self.label, self.expected = request, rules, label, expected
        #: names of the batch rows, when they mean something (edge observations)
        self.rows = rows
        #: the expected outputs' error scales, when the plan knows them (golden packs, case files), and where their
        #: values not determined by float evaluation come from (node -> reason, SPEC section 6.3)
        self.scales, self.undetermined = scales, undetermined


Plan = Generator[Probe, Answer, None]


class Config:
    """Sizes of the generated probes (the CLI and Hypothesis change them)."""

    def __init__(self, batches: Sequence[int] = (1, 5, 32), envs: Sequence[int] = (3, 1), steps: int = 8,
                 reset_probability: float = 0.3, seed: int = 0):
        self.batches, self.envs, self.steps = list(batches), list(envs), steps
        self.reset_probability, self.seed = reset_probability, seed

    def as_dict(self) -> Dict[str, Any]:
        return {"batches": self.batches, "envs": self.envs, "steps": self.steps,
                "reset_probability": self.reset_probability, "seed": self.seed}


class Check:
    """A named check: the runtime feature it needs, whether it applies to a model, and its plan."""

    def __init__(self, name: str, description: str, plan: Callable[..., Plan], feature: str = "run",
                 applies: Optional[Callable[[ModelInfo], Optional[str]]] = None, model_free: bool = False):
        self.name, self.description, self.plan, self.feature = name, description, plan, feature
        self._applies = applies
        self.model_free = model_free

    def not_applicable(self, info: Optional[ModelInfo]) -> Optional[str]:
        """Why this check does not apply to the model (None: it applies)."""
        return self._applies(info) if self._applies is not None and info is not None else None


def run_request(info: ModelInfo, inputs: Dict[str, np.ndarray], outputs: Sequence[str]) -> Dict[str, Any]:
    return {"type": "run", "model": info.path, "inputs": inputs, "outputs": list(outputs)}


def with_tie_outputs(info: ModelInfo, outputs: Sequence[str]) -> List[str]:
    """`outputs` plus the outputs their near-tie rules read."""
    from .rules import tie_outputs

    wanted = list(outputs)
    for name in outputs:
        for extra in tie_outputs(info.rules.get(name, {})):
            if extra not in wanted:
                wanted.append(extra)
    return wanted


def first_inputs(info: ModelInfo, count: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """The inputs besides observations and noise that `count` rows need: a recurrent file's first state and mask
    (zeros), and the action masks of a file that takes them (SPEC section 5.9), random with at least one action of
    every categorical component allowed (a row with none allowed has no action to take)."""
    inputs = info.initial_inputs(count)
    name = info.predict.get("action_mask")
    if name:
        sizes = (info.distribution or {}).get("nvec") or [info.inputs[name]["shape"][1]]
        parts = []
        for size in sizes:
            part = rng.random((count, size)) < 0.5
            part[np.arange(count), rng.integers(0, size, count)] = True
            parts.append(part)
        inputs[name] = np.concatenate(parts, axis=1)
    return inputs


# -- deterministic outputs ---------------------------------------------------------------------------------------
def plan_deterministic(info: ModelInfo, rng: np.random.Generator, config: Config) -> Plan:
    for batch in config.batches:
        inputs = dict(info.observation_inputs(batch, rng), **first_inputs(info, batch, rng))
        yield Probe(run_request(info, inputs, info.plain_outputs),
                    {name: info.rules[name] for name in info.plain_outputs}, "batch of {}".format(batch))


def plan_sampling(info: ModelInfo, rng: np.random.Generator, config: Config) -> Plan:
    outputs = with_tie_outputs(info, info.sample_outputs)
    rules = {name: info.rules[name] for name in outputs}
    for batch in config.batches:
        inputs = dict(info.observation_inputs(batch, rng), **first_inputs(info, batch, rng))
        inputs.update(info.noise(batch, rng))
        yield Probe(run_request(info, inputs, outputs), rules, "batch of {}, random noise".format(batch))
    batch = 6
    inputs = dict(info.observation_inputs(batch, rng), **first_inputs(info, batch, rng))
    noise = info.noise(batch, rng)
    for entry in info.noise_inputs:
        values = noise[entry["name"]]
        flat = values.reshape(len(values), -1)
        edges = [0.0, np.nextafter(np.float32(1), np.float32(0)), 0.5] if entry["distribution"] == "uniform" \
            else [6.0, -6.0, 0.0]
        for row in range(min(batch, 3)):
            flat[row, :] = edges[row]
        flat[3:, 0] = edges[0]
        noise[entry["name"]] = flat.reshape(values.shape)
    inputs.update(noise)
    yield Probe(run_request(info, inputs, outputs), rules, "edge noise (U = 0, 1-2^-24, 0.5; N = ±6, 0)")


def _single_observation_input(info: ModelInfo) -> Optional[str]:
    return ("not yet for dict observation spaces (predict's dict form is planned)"
            if info.observation_space["kind"] == "dict" else None)


def _has_noise(info: ModelInfo) -> Optional[str]:
    return None if info.sample_outputs else "the file has no sampled outputs"


# -- edge observations ---------------------------------------------------------------------------------------------
def edge_observations(info: ModelInfo, space: Optional[Mapping[str, Any]] = None,
                      input_name: str = "obs") -> Dict[str, np.ndarray]:
    """Named edge observations for the file's observation space (or `space`, a dict space's key), in the dtype of
    its input `input_name`."""
    space = info.observation_space if space is None else space
    dtype = np.dtype(info.inputs[input_name]["dtype"])
    kind = space["kind"]
    rows: Dict[str, np.ndarray] = {}
    if kind == "discrete":
        n = int(space["n"])
        for name, value in (("first index", 0), ("last index", n - 1), ("index -1 (out of range)", -1),
                            ("index n (out of range)", n)):
            rows[name] = np.array(value, dtype)
        return rows
    if kind == "multi_discrete":
        nvec = np.array(space["nvec"])
        rows.update({"first indices": np.zeros_like(nvec), "last indices": nvec - 1,
                     "indices -1 (out of range)": -np.ones_like(nvec), "indices nvec (out of range)": nvec})
        return {k: v.astype(dtype) for k, v in rows.items()}
    if kind == "multi_binary":
        n = int(space["n"])
        rows.update({"all zeros": np.zeros(n), "all ones": np.ones(n), "alternating": np.arange(n) % 2})
        return {k: v.astype(dtype) for k, v in rows.items()}
    low, high = info.space_bounds(space)
    shape = low.shape
    if dtype.kind in "iu":
        info_range = np.iinfo(dtype)
        low = np.clip(np.where(np.isfinite(low), low, info_range.min), info_range.min, info_range.max)
        high = np.clip(np.where(np.isfinite(high), high, info_range.max), info_range.min, info_range.max)
        rows.update({"low bound": low, "high bound": high, "middle": np.floor((low + high) / 2)})
        return {k: v.astype(dtype) for k, v in rows.items()}
    # Bounds beyond ±100 (infinite, or huge such as ±3.4e38) are replaced by ±10, and huge values are 1e30, not
    # 3.4e38. The spec leaves summation order free: sums of several terms near FLT_MAX overflow (to inf, then NaN)
    # in some orders and not in others, and sums of terms around 1e3 carry order-dependent rounding noise the size
    # of the tolerance, so no runtime could be held to one answer there. A single 1e30 element is exact in the
    # first dense layer and saturates what follows. Not so in a convolution tower: each kernel position sums
    # several 1e30-scale products of mixed signs through ReLUs, which cancel differently in each summation order
    # (seen: 1.5e-5 relative on logits of 1e16), so convolutional files get no huge rows.
    finite_low = np.where(np.abs(low) <= HUGE_SPAN, low, -10.0)
    finite_high = np.where(np.abs(high) <= HUGE_SPAN, high, 10.0)
    rows["zeros"] = np.zeros(shape)
    rows["low bound (or -10)"] = finite_low
    rows["high bound (or 10)"] = finite_high
    positions = [] if "conv2d" in info.ops else list(range(min(int(np.prod(shape)), 3)))
    for position in positions:
        for sign in (1.0, -1.0):
            row = np.zeros(int(np.prod(shape)))
            row[position] = sign * HUGE_VALUE
            rows["element {} = {}1e30".format(position, "+" if sign > 0 else "-")] = row.reshape(shape)
    if np.any(~np.isfinite(low)) or np.any(~np.isfinite(high)):
        row = np.zeros(shape)
        row = np.where(~np.isfinite(high), np.inf, row)
        rows["+inf where unbounded above"] = row
        rows["-inf where unbounded below"] = np.where(~np.isfinite(low), -np.inf, np.zeros(shape))
    nan_row = np.zeros(int(np.prod(shape)))
    nan_row[0] = np.nan
    rows["element 0 = NaN"] = nan_row.reshape(shape)
    with np.errstate(over="ignore", invalid="ignore"):
        return {k: v.astype(dtype) for k, v in rows.items()}


def plan_edge(info: ModelInfo, rng: np.random.Generator, config: Config) -> Plan:
    rules = {name: info.rules[name] for name in info.plain_outputs}
    if info.observation_space["kind"] != "dict":
        rows = edge_observations(info)
        obs = np.stack(list(rows.values()))
        inputs = dict(obs=obs, **first_inputs(info, len(obs), rng))
        yield Probe(run_request(info, inputs, info.plain_outputs), rules, "{} edge observations".format(len(rows)),
                    rows=list(rows))
        return
    # a dict space: each key's edges in turn, the other keys holding one sampled observation
    others = info.observation_inputs(1, rng)
    for entry in info.observation_space["spaces"]:
        name = DICT_INPUT_PREFIX + entry["key"]
        rows = edge_observations(info, entry["space"], name)
        inputs = {key: np.repeat(value, len(rows), axis=0) for key, value in others.items()}
        inputs[name] = np.stack(list(rows.values()))
        inputs.update(first_inputs(info, len(rows), rng))
        yield Probe(run_request(info, inputs, info.plain_outputs), rules,
                    "{} edge observations of key {}".format(len(rows), entry["key"]), rows=list(rows))


# -- recurrent sequences -------------------------------------------------------------------------------------------
def plan_recurrent(info: ModelInfo, rng: np.random.Generator, config: Config) -> Plan:
    recurrent = info.recurrent
    outputs = list(info.plain_outputs)
    if info.sample_outputs:
        outputs = with_tie_outputs(info, outputs + info.sample_outputs)
    rules = {name: info.rules[name] for name in outputs}
    for envs in config.envs:
        state = np.zeros((envs, info.state_size), np.float32)
        for step in range(config.steps):
            mask = (rng.random(envs) < (0.0 if step == 0 else config.reset_probability)).astype(np.float32)
            inputs = dict(info.observation_inputs(envs, rng), **{recurrent["state_input"]: state,
                                                                 recurrent["mask_input"]: mask})
            if info.sample_outputs:
                inputs.update(info.noise(envs, rng))
            expected = yield Probe(run_request(info, inputs, outputs), rules,
                                   "{} env(s), step {} of {}, resets {}".format(
                                       envs, step + 1, config.steps, np.nonzero(mask)[0].tolist()))
            if expected is None or not expected.ok or recurrent["state_output"] not in expected.outputs:
                return
            state = np.asarray(expected.outputs[recurrent["state_output"]], np.float32)


def _is_recurrent(info: ModelInfo) -> Optional[str]:
    return None if info.recurrent else "feed-forward policy"


# -- the predict interface (spec section 5) ------------------------------------------------------------------------
def plan_predict(info: ModelInfo, rng: np.random.Generator, config: Config) -> Plan:
    distribution = info.distribution
    action_rule = info.rules.get(info.predict["deterministic_action"], {"rule": "float"})
    action_rule = {"rule": "discrete"} if action_rule["rule"] == "discrete" else action_rule
    rules = {"action": action_rule, "state": {"rule": "float"}, "probability": {"rule": "float"},
             "value": {"rule": "float"}}
    batch = max(config.batches) if config.batches else 8
    space_obs = info.observations(batch, rng)
    if info.observation_space["kind"] == "box" and info.inputs["obs"]["dtype"] != info.observation_space["dtype"]:
        space_obs = space_obs.astype(np.float64)
    base = {"type": "predict", "model": info.path}
    state = mask = None
    if info.recurrent:
        state = (rng.standard_normal((batch, info.state_size)) * 0.5).astype(np.float32)
        mask = (rng.random(batch) < 0.3).astype(np.float32)

    def request(method: str, observation: Any, single: bool = False, **extra: Any) -> Dict[str, Any]:
        result = dict(base, method=method, observation=observation,
                      state=_first(state) if single else state, mask=_first(mask) if single else mask)
        result.update(extra)
        return result

    def pick(*names: str) -> Dict[str, Dict[str, Any]]:
        return {name: rules[name] for name in names}

    action_names = ("action", "state")
    yield Probe(request("predict", space_obs, deterministic=True), pick(*action_names), "predict, batch, deterministic")
    # SB2 refuses single (non-batched) observations for recurrent policies; SBIF's batch-free extension is not
    # part of SB2's contract, so it is not checked here
    single = not info.recurrent
    if single:
        yield Probe(request("predict", space_obs[0], single=True, deterministic=True), pick(*action_names),
                    "predict, one observation, deterministic")
    if info.predict.get("stochastic_action") and info.sample_outputs:
        noise = info.noise(batch, rng)
        yield Probe(request("predict", space_obs, deterministic=False, noise=noise), pick(*action_names),
                    "predict, batch, stochastic with noise")
        yield Probe(request("predict", space_obs, deterministic=None, noise=noise), pick(*action_names),
                    "predict, batch, the algorithm's default (deterministic={})".format(
                        info.predict["deterministic_default"]))
    if info.observation_dict is not None:  # HER: the dict, split along the last axis in the file's key order
        keys = info.observation_dict["keys"]
        sizes = [_flat_width(info.observation_dict["spaces"][key]) for key in keys]
        parts = dict(zip(keys, np.split(space_obs, np.cumsum(sizes)[:-1], axis=-1)))
        yield Probe(request("predict", parts, deterministic=True), pick(*action_names),
                    "predict, dict observation, batch")
        yield Probe(request("predict", {key: part[0] for key, part in parts.items()}, single=True,
                            deterministic=True), pick(*action_names), "predict, dict observation, one")
    if np.dtype(info.inputs["obs"]["dtype"]).kind in "iu":
        as_float = space_obs.astype(np.float64) + np.where(space_obs >= 0, 0.6, -0.6)
        yield Probe(request("predict", as_float, deterministic=True), pick(*action_names),
                    "predict, float observations for an integer input (truncated toward zero)")
    if distribution is not None:
        yield Probe(request("action_probability", space_obs), pick("probability"), "action_probability, batch")
        if single:
            yield Probe(request("action_probability", space_obs[0], single=True), pick("probability"),
                        "action_probability, one observation")
        actions = _valid_actions(info, batch, rng)
        for logp in (False, True):
            yield Probe(request("action_probability", space_obs, actions=actions, logp=logp), pick("probability"),
                        "action_probability of given actions, logp={}".format(logp))
    else:
        yield Probe(request("action_probability", space_obs), pick("probability"),
                    "action_probability of a deterministic policy (None)")
    if "value" in info.outputs:
        yield Probe(request("value", space_obs), pick("value"), "value, batch")
        if single:
            yield Probe(request("value", space_obs[0], single=True), pick("value"), "value, one observation")


def _flat_width(space: Mapping[str, Any]) -> int:
    """How many columns of the flat observation a HER dict entry's space fills (one per index for Discrete)."""
    kind = space["kind"]
    if kind == "box":
        return int(np.prod(space["shape"]))
    if kind == "multi_binary":
        return int(space["n"])
    if kind == "multi_discrete":
        return len(space["nvec"])
    return 1


def _first(value: Optional[np.ndarray]) -> Optional[np.ndarray]:
    return None if value is None else value[:1]


def _valid_actions(info: ModelInfo, count: int, rng: np.random.Generator) -> np.ndarray:
    space = info.action_space
    if space["kind"] == "discrete":
        return rng.integers(0, space["n"], size=count).astype(np.int64)
    if space["kind"] == "multi_discrete":
        return np.stack([rng.integers(0, n, size=count) for n in space["nvec"]], axis=1).astype(np.int64)
    if space["kind"] == "multi_binary":
        return rng.integers(0, 2, size=(count, space["n"])).astype(np.int64)
    from .models import sample_space

    return sample_space(dict(space, dtype="float32"), count, rng)


# -- op vectors ---------------------------------------------------------------------------------------------------
def vector_files(directory: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """TensorFlow's test vectors, by op, from `directory` (default: the shipped ones, spec/vectors). Finding none
    is an error: an op check over no vectors would pass any runtime."""
    directory = directory or shipped(OP_VECTORS)
    names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    names = [name for name in names if name.endswith(".json")]
    if not names:
        raise MissingDataError("no op vectors (*.json) in {}".format(directory))
    files = {}
    for name in names:
        with open(os.path.join(directory, name), encoding="utf-8") as handle:
            files[name[:-len(".json")]] = json.load(handle)
    return files


def plan_op_vectors(info: Optional[ModelInfo], rng: np.random.Generator, config: Config,
                    directory: Optional[str] = None, ops: Optional[Sequence[str]] = None) -> Plan:
    for op, document in vector_files(directory).items():
        if ops is not None and op not in ops:
            continue
        for case in document["cases"]:
            inputs = [decode_array(t, "{}/{}".format(op, case["name"])) for t in case["inputs"]]
            expected = {str(i): decode_array(t, "{}/{}".format(op, case["name"])) for i, t in enumerate(case["outputs"])}
            rule = dict(case["tolerance"], rule="ulp")
            request = {"type": "op", "op": op, "attrs": case["attrs"], "inputs": inputs,
                       "n_outputs": len(case["outputs"])}
            yield Probe(request, {name: rule for name in expected}, "{}/{}".format(op, case["name"]),
                        expected=Answer("result", expected))


# -- reader refusal -----------------------------------------------------------------------------------------------
def plan_reader_refusal(info: Optional[ModelInfo], rng: np.random.Generator, config: Config,
                        directory: Optional[str] = None) -> Plan:
    """A `load` of every file of the malformed-file corpus (default: the shipped one, conformance/malformed): each
    malformed file must be refused with the error class its manifest names (SPEC section 7), each valid one must
    load, so that neither a reader that accepts corrupt files nor one that refuses everything passes."""
    directory = os.path.abspath(directory or shipped(MALFORMED_FILES))
    for entry in read_manifest(directory):
        request = {"type": "load", "model": os.path.join(directory, entry["file"])}
        yield Probe(request, {"load": {"rule": "refusal"}}, "{} (SPEC {})".format(entry["file"], entry["section"]),
                    expected=Answer("result", {"load": entry["error_class"] or LOADED}))


CHECKS: Dict[str, Check] = {check.name: check for check in (
    Check("deterministic", "every noise-free output on batches of sampled observations", plan_deterministic),
    Check("sampling", "sampled actions from injected noise", plan_sampling, feature="sampling", applies=_has_noise),
    Check("edge_observations", "bounds, zeros, huge (1e30), infinite and NaN observations, out-of-range indices",
          plan_edge),
    Check("recurrent_sequence", "sequences over several envs with resets, state in lock-step", plan_recurrent,
          feature="recurrent", applies=_is_recurrent),
    Check("predict_api", "SB2's predict / action_probability / value contract (spec section 5)", plan_predict,
          feature="predict", applies=_single_observation_input),
    Check("op_vectors", "every op on TensorFlow 1.15's test vectors (spec/vectors)", plan_op_vectors,
          feature="op", model_free=True),
    Check("reader_refusal", "malformed files refused with the error class SPEC section 7 requires, valid ones "
          "loaded (conformance/malformed)", plan_reader_refusal, feature="load", model_free=True),
)}
MODEL_CHECKS = [name for name, check in CHECKS.items() if not check.model_free]


def iterate(plan: Plan, answer: Callable[[Probe], Answer]) -> Iterator[Any]:
    """Drive a plan: yields (probe, expected) pairs, sending each expected answer back into the plan."""
    try:
        probe = next(plan)
        while True:
            expected = probe.expected if probe.expected is not None else answer(probe)
            yield probe, expected
            probe = plan.send(expected)
    except StopIteration:
        return
