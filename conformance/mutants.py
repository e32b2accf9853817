"""Deliberately broken runtimes: the NumPy reference with one realistic porting bug each.

The suite's own tests (`tests/conformance/test_mutants.py`) require every mutant to be caught by its named
check within a bounded number of Hypothesis examples. A mutant breaks the reference runtime either by
rewriting the graph it loads (found by op, attribute and graph patterns, never by a builder's node names, so a
mutant keeps working when an exporter changes its naming), by replacing an op's computation, or by changing
the predict interface. Each mutant lists the families whose models exercise it and the check expected to catch
it; `applies(document)` says whether a given file contains what the mutant breaks.

Run one as a protocol executable: `python -m conformance.adapters.sbif_numpy --mutant NAME`.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from .protocol import PythonRuntime

Rewrite = Callable[[Dict[str, Any], Mapping[str, np.ndarray], Mapping[str, Any]], bool]
Patch = Callable[[Callable[..., Any]], Callable[..., Any]]


class Mutant:
    """One broken runtime. `rewrite(document, tensors, specs)` edits the document in place and returns whether it
    changed anything; `patches` maps op names to functions turning the reference compute into a broken one;
    `policy_patch(policy)` breaks the predict interface."""

    def __init__(self, name: str, description: str, check: str, families: Sequence[str],
                 rewrite: Optional[Rewrite] = None, patches: Optional[Dict[str, Patch]] = None,
                 policy_patch: Optional[Callable[[Any], None]] = None,
                 constraints: Optional[Dict[str, Any]] = None):
        self.name, self.description, self.check, self.families = name, description, check, list(families)
        self.rewrite, self.patches, self.policy_patch = rewrite, dict(patches or {}), policy_patch
        #: narrows the fuzz draws to models this mutant can affect (keyword arguments of `model_specs`)
        self.constraints = dict(constraints or {})

    # -- applicability -----------------------------------------------------------------------------------------
    def applies(self, document: Mapping[str, Any], tensors: Optional[Mapping[str, np.ndarray]] = None) -> bool:
        if self.rewrite is not None:
            from sbif.format import SbifFile

            if tensors is None:
                return False
            edited = copy.deepcopy(document)
            return self.rewrite(edited, tensors, SbifFile(document, tensors).specs)
        if self.patches:
            return any(node["op"] in self.patches for node in document["graph"])
        if self.policy_patch is not None:
            obs = next(entry for entry in document["inputs"] if entry["name"] == "obs")
            return np.dtype(obs["dtype"]).kind in "iu"
        return False

    # -- the broken runtime ------------------------------------------------------------------------------------
    def load(self, path: str) -> Any:
        from sbif.format import SbifFile
        from sbif.format.container import read_container
        from sbif.format.document import decode_document
        from sbif.runtime import Policy

        metadata, tensors = read_container(path)
        document = decode_document(metadata, path)
        if self.rewrite is not None:
            specs = SbifFile(document, tensors, path).specs
            document = copy.deepcopy(document)
            self.rewrite(document, tensors, specs)
        policy = Policy(SbifFile(document, tensors, path), backend="numpy")  # the patches replace NumPy ops
        for step, node in zip(policy.executor.steps, document["graph"]):
            if node["op"] in self.patches:
                step.compute = self.patches[node["op"]](step.compute)
        if self.policy_patch is not None:
            self.policy_patch(policy)
        return policy

    def get_op(self, name: str) -> Any:
        from sbif.ops import get_op

        op = get_op(name)
        if name not in self.patches:
            return op
        broken = self.patches[name](op.compute)
        return type(op.__name__ + "Mutant", (op,), {"compute": staticmethod(broken)})

    def runtime(self) -> PythonRuntime:
        return PythonRuntime(load=self.load, get_op=self.get_op, name="sbif-numpy+mutant:" + self.name)


# -- graph helpers -------------------------------------------------------------------------------------------------
def producers(document: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {name: node for node in document["graph"] for name in node["outputs"]}


def consumers(document: Mapping[str, Any]) -> Dict[str, List[Dict[str, Any]]]:
    found: Dict[str, List[Dict[str, Any]]] = {}
    for node in document["graph"]:
        for name in node["inputs"]:
            found.setdefault(name, []).append(node)
    return found


def _is_constant(document: Mapping[str, Any], name: str) -> bool:
    if any(entry["name"] == name for entry in document["tensors"]):
        return True
    node = producers(document).get(name)
    return node is not None and node["op"] == "constant"


def _depends_on(document: Mapping[str, Any], name: str, sources: Sequence[str]) -> bool:
    produced = producers(document)
    todo, seen = [name], set()
    while todo:
        value = todo.pop()
        if value in sources:
            return True
        if value in seen or value not in produced:
            continue
        seen.add(value)
        todo.extend(produced[value]["inputs"])
    return False


_counter = [0]


def alias(document: Dict[str, Any], specs: Mapping[str, Any], output: str, source: str) -> None:
    """Make `output` a copy of `source` (same dtype): its producer is replaced by `mul(source, 1)`."""
    graph = document["graph"]
    index = next(i for i, node in enumerate(graph) if output in node["outputs"])
    if len(graph[index]["outputs"]) != 1:
        raise ValueError("cannot alias one output of a multi-output node")
    _counter[0] += 1
    one = "mutant/one_{}".format(_counter[0])
    dtype = specs[source].dtype
    graph[index:index + 1] = [
        {"op": "constant", "inputs": [], "outputs": [one], "attrs": {"value": True if dtype == "bool" else 1,
                                                                      "dtype": dtype}},
        {"op": "mul", "inputs": [source, one], "outputs": [output]}]


def _gate_splits(document: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Split nodes cutting an LSTM's pre-activations into 4 equal gates read by sigmoid, sigmoid, sigmoid, tanh."""
    users = consumers(document)
    found = []
    for node in document["graph"]:
        sizes = node.get("attrs", {}).get("sizes", [])
        if node["op"] != "split" or len(node["outputs"]) != 4 or len(set(sizes)) != 1:
            continue
        ops = [sorted(user["op"] for user in users.get(name, [])) for name in node["outputs"]]
        if ops == [["sigmoid"], ["sigmoid"], ["sigmoid"], ["tanh"]]:
            found.append(node)
    return found


# -- rewrites ------------------------------------------------------------------------------------------------------
def lstm_gate_order(document, tensors, specs) -> bool:
    """Read the gates as i, f, g, o (PyTorch's order) instead of SB2's i, f, o, g."""
    changed = False
    for node in _gate_splits(document):
        i, f, o, g = node["outputs"]
        node["outputs"] = [i, f, g, o]
        changed = True
    return changed


def forget_bias_one(document, tensors, specs) -> bool:
    """Add 1 to the forget gate's pre-activation (TF's BasicLSTMCell default; SB2's lstm has no forget bias)."""
    changed = False
    for node in _gate_splits(document):
        forget = node["outputs"][1]
        raw = forget + "/mutant_raw"
        node["outputs"][1] = raw
        graph = document["graph"]
        index = graph.index(node)
        one = raw + "/one"
        graph[index + 1:index + 1] = [
            {"op": "constant", "inputs": [], "outputs": [one], "attrs": {"value": 1.0, "dtype": specs[forget].dtype}},
            {"op": "add", "inputs": [raw, one], "outputs": [forget]}]
        changed = True
    return changed


def _state_split(document: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    recurrent = document["predict"].get("recurrent")
    if not recurrent:
        return None
    for node in document["graph"]:
        if node["op"] == "split" and node["inputs"] == [recurrent["state_input"]] and len(node["outputs"]) == 2:
            return node
    return None


def lstm_state_swapped(document, tensors, specs) -> bool:
    """Lay the state out as [h | c] instead of SB2's [c | h]."""
    split = _state_split(document)
    if split is None:
        return False
    split["outputs"] = split["outputs"][::-1]
    state_out = document["predict"]["recurrent"]["state_output"]
    producer = producers(document)[state_out]
    if producer["op"] != "concat" or len(producer["inputs"]) != 2:
        return False
    producer["inputs"] = producer["inputs"][::-1]
    return True


def mask_after_step(document, tensors, specs) -> bool:
    """Apply the reset mask to the state the step returns instead of the state it reads."""
    split = _state_split(document)
    if split is None:
        return False
    mask = document["predict"]["recurrent"]["mask_input"]
    keep = None
    for node in list(document["graph"]):
        if node["op"] == "mul" and any(name in split["outputs"] for name in node["inputs"]):
            other = [name for name in node["inputs"] if name not in split["outputs"]]
            if len(other) == 1 and _depends_on(document, other[0], [mask]):
                keep = other[0]
                source = next(name for name in node["inputs"] if name in split["outputs"])
                alias(document, specs, node["outputs"][0], source)
    if keep is None:
        return False
    state_out = document["predict"]["recurrent"]["state_output"]
    graph = document["graph"]
    index = next(i for i, node in enumerate(graph) if state_out in node["outputs"])
    raw = state_out + "/mutant_unmasked"
    graph[index]["outputs"] = [raw if name == state_out else name for name in graph[index]["outputs"]]
    graph[index + 1:index + 1] = [{"op": "mul", "inputs": [raw, keep], "outputs": [state_out]}]
    return True


def no_image_scaling(document, tensors, specs) -> bool:
    """Feed the cast observation straight to the network: no (x - low) / (high - low) for images."""
    produced = producers(document)
    changed = False
    for node in list(document["graph"]):
        if node["op"] != "div" or node["inputs"][1] not in tensors:
            continue
        sub = produced.get(node["inputs"][0])
        if sub is None or sub["op"] != "sub" or sub["inputs"][1] not in tensors:
            continue
        cast = produced.get(sub["inputs"][0])
        if cast is None or cast["op"] != "cast" or cast["inputs"] != ["obs"]:
            continue
        alias(document, specs, node["outputs"][0], cast["outputs"][0])
        changed = True
    return changed


def _action_outputs(document: Mapping[str, Any]) -> List[str]:
    predict = document["predict"]
    return [name for name in (predict["deterministic_action"], predict.get("stochastic_action")) if name]


def no_action_clip(document, tensors, specs) -> bool:
    """Return Box actions unclipped (SB2's predict clips them to the action space bounds)."""
    changed = False
    for name in _action_outputs(document):
        node = producers(document).get(name)
        if node is not None and node["op"] == "clip" and node["inputs"][1] in tensors:
            alias(document, specs, name, node["inputs"][0])
            changed = True
    return changed


def no_unscale(document, tensors, specs) -> bool:
    """Return the squashed action in [-1, 1] without SAC/TD3/DDPG's unscale to the action space bounds."""
    changed = False
    for name in _action_outputs(document):
        produced = producers(document)
        node, value, steps = produced.get(name), name, 0
        while node is not None and node["op"] in ("add", "sub", "mul", "div"):
            main = [i for i in node["inputs"] if not _is_constant(document, i)]
            if len(main) != 1:
                break
            value, node, steps = main[0], produced.get(main[0]), steps + 1
        if steps >= 2 and node is not None and node["op"] in ("tanh", "clip") and specs[value].dtype == specs[name].dtype:
            alias(document, specs, name, value)
            changed = True
    return changed


def ln_epsilon(document, tensors, specs) -> bool:
    """Use layer_norm epsilon 1e-5 (SB2's LSTM value) where TF's contrib layer_norm uses 1e-12."""
    changed = False
    for node in document["graph"]:
        if node["op"] == "layer_norm" and node.get("attrs", {}).get("epsilon", 1.0) < 1e-9:
            node["attrs"]["epsilon"] = 1e-5
            changed = True
    return changed


def gumbel_sign_flip(document, tensors, specs) -> bool:
    """Sample with argmax(logits + log(-log u)) instead of argmax(logits - log(-log u))."""
    noise = [entry["name"] for entry in document["inputs"] if entry["kind"] == "noise"]
    produced = producers(document)
    changed = False
    for node in document["graph"]:
        if node["op"] != "argmax":
            continue
        sub = produced.get(node["inputs"][0])
        if sub is not None and sub["op"] == "sub" and _depends_on(document, sub["inputs"][1], noise):
            sub["op"] = "add"
            changed = True
    return changed


def gaussian_std_ignored(document, tensors, specs) -> bool:
    """Sample mean + z instead of mean + std * z."""
    normal = [entry["name"] for entry in document["inputs"]
              if entry["kind"] == "noise" and entry.get("distribution") == "normal"]
    changed = False
    for node in list(document["graph"]):
        if node["op"] == "mul" and any(name in normal for name in node["inputs"]):
            source = next(name for name in node["inputs"] if name in normal)
            if specs[source].shape == specs[node["outputs"][0]].shape:
                alias(document, specs, node["outputs"][0], source)
                changed = True
    return changed


# -- op patches ----------------------------------------------------------------------------------------------------
def _flatten_nchw(original):
    def compute(x):
        if x.ndim == 4:
            x = np.transpose(x, (0, 3, 1, 2))
        return original(np.ascontiguousarray(x))
    return compute


def _float32_arithmetic(original):
    def compute(*inputs, **attrs):
        if any(np.asarray(x).dtype == np.float64 for x in inputs):
            result = original(*[np.asarray(x).astype(np.float32) if np.asarray(x).dtype == np.float64 else x
                                for x in inputs], **attrs)
            return np.asarray(result).astype(np.float64)
        return original(*inputs, **attrs)
    return compute


def _mean_zero(original):
    def compute(x):
        return np.zeros_like(original(x))
    return compute


def _argmax_last(original):
    def compute(x):
        x = np.asarray(x)
        if x.dtype.kind == "f":
            lowest = np.finfo(x.dtype).min
            x = np.where(x > lowest, x, lowest)
        flipped = np.argmax(x[..., ::-1], axis=-1)
        return (x.shape[-1] - 1 - flipped).astype(np.int64)
    return compute


def _softmax_unshifted(original):
    def compute(x):
        e = np.exp(x)
        return e / np.sum(e, axis=-1, keepdims=True)
    return compute


def _transpose_inverse(original):
    """perm read the other way round, as where each axis goes rather than where each comes from (torch's permute
    and np.transpose read it as spec/ops.md does; its inverse, np.argsort(perm), is the other convention)."""
    def compute(x, perm):
        return original(x, perm=[int(axis) for axis in np.argsort(perm)])
    return compute


#: Abramowitz and Stegun 7.1.26: erf(x) = 1 - t·(a1 + t·(a2 + t·(a3 + t·(a4 + t·a5))))·exp(-x²), t = 1/(1 + p·x)
AS_7_1_26_P = 0.3275911
AS_7_1_26_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erf_abramowitz_stegun(original):
    """erf by the textbook approximation a port without erf reaches for: its absolute error of 1.5e-7 is a few
    ULP near 1 but the whole value near 0, where it returns 1 - (almost 1) instead of about 2x/sqrt(pi)."""
    def compute(x):
        a = np.abs(x)
        t = 1 / (1 + x.dtype.type(AS_7_1_26_P) * a)
        poly = np.zeros_like(t)
        for coefficient in reversed(AS_7_1_26_A):
            poly = (poly + x.dtype.type(coefficient)) * t
        return np.sign(x) * (1 - poly * np.exp(-a * a))
    return compute


def _where_as_products(original):
    """The select written with arithmetic, as a masked-logits export without a select op writes it: c·x + (1 − c)·y
    leaks a NaN or an infinity of the operand not selected (NaN·0) and loses a selected -0 (-0 + 0)."""
    def compute(condition, x, y):
        if x.dtype == np.bool_:
            return original(condition, x, y)
        chosen = np.asarray(condition).astype(x.dtype)
        return chosen * x + (x.dtype.type(1) - chosen) * y
    return compute


def _one_hot_shifted(original):
    def compute(x, depth):
        return (np.asarray(x)[..., None] == np.arange(depth) + 1).astype(np.float32)
    return compute


def _squeeze_all(original):
    def compute(x, axis):
        return np.squeeze(x)
    return compute


def _tanh_half(original):
    def compute(x):
        return np.tanh(x.astype(np.float16)).astype(x.dtype)
    return compute


def _weights_half(original):
    def compute(x, w, *rest, **attrs):
        return original(x, w.astype(np.float16).astype(w.dtype), *rest, **attrs)
    return compute


def _first_bias_nudged(original):
    """Element 0 of the bias 1e-4 larger, relatively: a bias read through a lossy text format."""
    def compute(x, w, b, **attrs):
        nudged = np.array(b)
        nudged.reshape(-1)[0] *= nudged.dtype.type(1 + 1e-4)
        return original(x, w, nudged, **attrs)
    return compute


def _half_precision(original):
    def compute(x):
        return original(x.astype(np.float16)).astype(x.dtype)
    return compute


def _half_accumulation(original):
    """x @ w + b summed from the last term to the first in a float16 accumulator."""
    def compute(x, w, b):
        total = np.zeros((x.shape[0], w.shape[1]), np.float16)
        for k in reversed(range(w.shape[0])):
            total = (total + (x[:, k:k + 1] * w[k]).astype(np.float16)).astype(np.float16)
        return (total.astype(x.dtype) + b).astype(x.dtype)
    return compute


def _round_observations(policy: Any) -> None:
    """Convert float observations for integer inputs by rounding (SB2 truncates toward zero)."""
    original = policy.observation_batch
    dtype = np.dtype(policy.executor.inputs["obs"]["dtype"])

    def observation_batch(observation):
        obs = np.array(observation)
        if obs.dtype.kind == "f" and dtype.kind in "iu":
            obs = np.round(obs)
        return original(obs)

    policy.observation_batch = observation_batch


MUTANTS: Dict[str, Mutant] = {m.name: m for m in (
    # the ten of issue 6
    Mutant("lstm_gate_order", "LSTM gates read in PyTorch's i, f, g, o order", "recurrent_sequence",
           ["lstm"], rewrite=lstm_gate_order),
    Mutant("no_image_scaling", "images fed unscaled (no (x - low) / (high - low))", "deterministic", ["cnn"],
           rewrite=no_image_scaling),
    Mutant("no_action_clip", "Box actions not clipped to the action space", "deterministic", ["mlp"],
           rewrite=no_action_clip, constraints={"action_kinds": ("box",)}),
    Mutant("no_unscale", "squashed actions not unscaled from [-1, 1] (SAC/TD3/DDPG)", "deterministic",
           ["sac", "td3", "ddpg"], rewrite=no_unscale),
    Mutant("ln_epsilon_1e-5", "layer_norm epsilon 1e-5 where contrib's layer_norm has 1e-12", "deterministic",
           ["dqn", "sac", "td3", "ddpg"], rewrite=ln_epsilon, constraints={"layer_norm": True}),
    Mutant("nhwc_as_nchw", "images flattened in NCHW order", "deterministic", ["cnn"],
           patches={"flatten": _flatten_nchw}),
    Mutant("mask_after_step", "the reset mask applied to the new state instead of the old", "recurrent_sequence",
           ["lstm"], rewrite=mask_after_step),
    Mutant("normalization_float32", "float64 normalization statistics cast to float32 early", "deterministic",
           ["vecnormalize"], patches={op: _float32_arithmetic for op in ("sub", "div", "clip", "add", "mul")}),
    Mutant("dueling_mean_omitted", "dueling head without subtracting the mean advantage", "deterministic", ["dqn"],
           patches={"reduce_mean": _mean_zero}),
    Mutant("argmax_last_tie", "argmax ties broken towards the last index", "op_vectors", ["ops"],
           patches={"argmax": _argmax_last}),
    # more realistic porting bugs
    Mutant("softmax_no_max_shift", "softmax without subtracting the row maximum (overflows on huge logits)",
           "op_vectors", ["ops"], patches={"softmax": _softmax_unshifted}),
    Mutant("transpose_inverse_perm", "transpose by the inverse permutation (NCHW -> NHWC read as NHWC -> NCHW)",
           "op_vectors", ["ops"], patches={"transpose": _transpose_inverse}),
    Mutant("erf_abramowitz_stegun", "erf by Abramowitz and Stegun 7.1.26 (1.5e-7 absolute: wrong near 0)",
           "op_vectors", ["ops"], patches={"erf": _erf_abramowitz_stegun}),
    Mutant("where_as_products", "where as c·x + (1 − c)·y (a NaN or inf not selected leaks into the result)",
           "op_vectors", ["ops"], patches={"where": _where_as_products}),
    Mutant("one_hot_off_by_one", "one-hot encoding shifted by one (1-based indices)", "deterministic", ["mlp"],
           patches={"one_hot": _one_hot_shifted}, constraints={"observation_kinds": ("discrete", "multi_discrete")}),
    Mutant("gumbel_sign_flip", "Gumbel-max sampling with the noise term's sign flipped", "sampling", ["mlp"],
           rewrite=gumbel_sign_flip, constraints={"action_kinds": ("discrete", "multi_discrete")}),
    Mutant("value_squeeze_all_axes", "value squeezed on every axis (np.squeeze without axis)", "deterministic",
           ["mlp"], patches={"squeeze": _squeeze_all}),
    Mutant("tanh_float16", "tanh computed in half precision", "deterministic", ["mlp"],
           patches={"tanh": _tanh_half}, constraints={"activations": ("tanh",)}),
    Mutant("lstm_state_swapped", "recurrent state laid out [h | c] instead of [c | h]", "recurrent_sequence",
           ["lstm"], rewrite=lstm_state_swapped),
    Mutant("forget_bias_one", "forget gate bias of 1.0 added (TF BasicLSTMCell habit)", "recurrent_sequence",
           ["lstm"], rewrite=forget_bias_one),
    Mutant("obs_rounded", "float observations for integer inputs rounded instead of truncated", "predict_api",
           ["mlp"], policy_patch=_round_observations,
           constraints={"observation_kinds": ("discrete", "multi_discrete", "multi_binary")}),
    Mutant("gaussian_std_ignored", "Gaussian sampling as mean + z (std ignored)", "sampling", ["mlp"],
           rewrite=gaussian_std_ignored, constraints={"action_kinds": ("box",)}),
    # subtle numeric bugs that a fixed tolerance misses or catches by luck (issue 17): the error scales catch them
    Mutant("weights_float16", "dense and convolution weights rounded through float16", "deterministic", ["mlp"],
           patches={op: _weights_half for op in ("linear", "matmul", "conv2d")}),
    Mutant("bias_nudged_1e-4", "one bias element of every dense layer 1e-4 off, relatively", "deterministic",
           ["mlp"], patches={"linear": _first_bias_nudged}),
    Mutant("exp_log_float16", "exp and log evaluated in float16", "sampling", ["mlp"],
           patches={op: _half_precision for op in ("exp", "log")}, constraints={"action_kinds": ("box",)}),
    Mutant("float16_accumulation", "dense layers summed last term first in a float16 accumulator",
           "deterministic", ["mlp"], patches={"linear": _half_accumulation}),
)}


def mutant_runtime(name: str) -> PythonRuntime:
    try:
        return MUTANTS[name].runtime()
    except KeyError:
        raise SystemExit("unknown mutant {!r}; known: {}".format(name, ", ".join(sorted(MUTANTS)))) from None
