"""Cross-checks beyond the schema: tensors against the container, and a static type check of the whole graph."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import numpy as np

from ..errors import DocumentError, SbifError, preview
from ..ops import ValueSpec, get_op, resolve_attrs
from ..ops.nn import MAX_DIM
from .container import MAX_RANK
from .document import Document, check_bound

OBSERVATION_INPUT = "obs"
#: A dict observation space's inputs are named this prefix + the key (SPEC section 3.2).
DICT_INPUT_PREFIX = "obs/"
#: Largest value a file may declare, in bytes at batch 1 (SPEC section 3.5): far above any SB2 policy's (the Atari
#: CNN's largest, its first dense kernel, is 6.4 MB), and small enough that a runtime allocating every value of a
#: one-observation request stays within a few GiB, where a tiny file could otherwise ask for terabytes by
#: broadcasting.
MAX_VALUE_BYTES = 2 ** 28


def check_document(document: Document, tensors: Mapping[str, np.ndarray], source: str = "file") -> Dict[str, ValueSpec]:
    """Check a schema-valid document against its tensors; return the static type of every graph value."""
    specs = _check_tensors(document, tensors, source)
    for entry in document["inputs"]:
        _require_batch_first(entry, source, "input")
        _define(specs, entry["name"], ValueSpec(entry["dtype"], entry["shape"]), source, "input")
        if entry["kind"] == "noise" and entry["dtype"] != "float32":  # the schema requires its distribution
            raise DocumentError("{}: noise input {!r} must be float32".format(source, entry["name"]))
    if document["observation_space"]["kind"] == "dict":
        _check_dict_observation_inputs(document, specs, source)
    else:
        if OBSERVATION_INPUT not in specs or not any(i["kind"] == "observation" for i in document["inputs"]):
            raise DocumentError("{}: the graph has no observation input named {!r}".format(source, OBSERVATION_INPUT))
        _check_observation_input(document, document["observation_space"], specs[OBSERVATION_INPUT], source,
                                 "observation")
    for index, node in enumerate(document["graph"]):
        where = "{}: graph node {} ({})".format(source, index, node["op"])
        op = get_op(node["op"])
        attrs = resolve_attrs(op, node.get("attrs", {}), where)
        arity_ok = len(node["inputs"]) >= 1 if op.arity is None else len(node["inputs"]) == op.arity
        if not arity_ok:
            raise DocumentError("{}: takes {} inputs, got {}".format(
                where, "one or more" if op.arity is None else op.arity, len(node["inputs"])))
        if op.n_outputs is not None and len(node["outputs"]) != op.n_outputs:
            raise DocumentError("{}: has {} outputs, got {}".format(where, op.n_outputs, len(node["outputs"])))
        missing = [name for name in node["inputs"] if name not in specs]
        if missing:
            raise DocumentError("{}: uses {} before it is defined (not an input, tensor or earlier output)".format(
                where, ", ".join(repr(m) for m in missing)))
        try:
            results = op.infer([specs[name] for name in node["inputs"]], attrs, len(node["outputs"]))
        except SbifError as exc:
            raise DocumentError("{}: {}".format(where, exc)) from None
        for name, spec in zip(node["outputs"], results):
            _define(specs, name, spec, where, "output")
    for output in document["outputs"]:
        _require_batch_first(output, source, "output")
        name = output["name"]
        declared = ValueSpec(output["dtype"], output["shape"])
        if name not in specs:
            raise DocumentError("{}: output {!r} is never computed by the graph".format(source, name))
        if specs[name] != declared:
            raise DocumentError("{}: output {!r} is declared {} but the graph computes {}".format(
                source, name, declared, specs[name]))
    _check_predict(document, source)
    return specs


def _check_tensors(document: Document, tensors: Mapping[str, np.ndarray], source: str) -> Dict[str, ValueSpec]:
    specs: Dict[str, ValueSpec] = {}
    for entry in document["tensors"]:
        name = entry["name"]
        if name not in tensors:
            raise DocumentError("{}: tensor {!r} is listed in the document but missing from the file".format(
                source, name))
        actual = tensors[name]
        if actual.dtype.name != entry["dtype"]:
            raise DocumentError("{}: tensor {!r} is declared {} but stored as {}".format(
                source, name, entry["dtype"], actual.dtype.name))
        if list(actual.shape) != entry["shape"]:
            raise DocumentError("{}: tensor {!r} is declared with shape {} but stored with shape {}".format(
                source, name, entry["shape"], list(actual.shape)))
        _define(specs, name, ValueSpec(entry["dtype"], entry["shape"]), source, "tensor")
    stray = sorted(set(tensors) - set(specs))
    if stray:
        raise DocumentError("{}: the file holds tensors the document does not list: {}".format(
            source, ", ".join(stray[:5])))
    return specs


def _require_batch_first(entry: Mapping[str, Any], source: str, role: str) -> None:
    """Graph inputs and outputs have the batch (null) first (SPEC sections 1, 3.4, 3.6): runtimes feed and return
    them row by row, so a batch-free one (`[2]`, `[]`) would pass the static check and fail only when run."""
    if not entry["shape"] or entry["shape"][0] is not None:
        raise DocumentError("{}: {} {!r} has shape {}: a graph {} has the batch (null) as its first "
                            "dimension".format(source, role, entry["name"], entry["shape"], role))


def _define(specs: Dict[str, ValueSpec], name: str, spec: ValueSpec, where: str, role: str) -> None:
    if name in specs:
        raise DocumentError("{}: {} name {!r} is already defined".format(where, role, name))
    if any(d is None for d in spec.shape[1:]):
        raise DocumentError("{}: {} {!r}: only the first dimension may be the batch (null)".format(where, role, name))
    if any(d is not None and d > MAX_DIM for d in spec.shape):
        raise DocumentError("{}: {} {!r} has shape {}: a dimension exceeds {}".format(
            where, role, name, list(spec.shape), MAX_DIM))
    if len(spec.shape) > MAX_RANK:
        raise DocumentError("{}: {} {!r} has rank {}, above the limit of {} dimensions".format(
            where, role, name, len(spec.shape), MAX_RANK))
    if spec.nominal_bytes(batch=1) > MAX_VALUE_BYTES:
        raise DocumentError("{}: {} {} of type {} needs {} bytes at batch 1 (a zero dimension counted as 1), above "
                            "the limit of {} bytes for one value".format(  # the type: at most 32 dimensions < 2^63
                                where, role, preview(name), spec, preview(spec.nominal_bytes(batch=1)),
                                MAX_VALUE_BYTES))
    specs[name] = spec


def _check_dict_observation_inputs(document: Document, specs: Dict[str, ValueSpec], source: str) -> None:
    """A dict observation space (SB3 contract, SPEC section 3.2): one observation input per key, `obs/KEY`, in the
    keys' order, each typed for its space."""
    if contract(document) != "sb3":
        raise DocumentError("{}: a dict observation space belongs to the SB3 contract, but predict.contract is "
                            "sb2".format(source))
    keys = [entry["key"] for entry in document["observation_space"]["spaces"]]
    if len(set(keys)) != len(keys):
        raise DocumentError("{}: the dict observation space names a key twice".format(source))
    expected = [DICT_INPUT_PREFIX + key for key in keys]
    found = [entry["name"] for entry in document["inputs"] if entry["kind"] == "observation"]
    if found != expected:
        raise DocumentError("{}: a dict observation space needs the observation inputs {} (one per key, in order), "
                            "got {}".format(source, preview(expected), preview(found)))
    normalized = document["provenance"].get("vecnormalize", {}).get("keys")
    if "vecnormalize" in document["provenance"]:
        if normalized is None or "frame_stack" in document["provenance"]["vecnormalize"]:
            raise DocumentError("{}: provenance.vecnormalize of a dict observation space lists its keys and stacks "
                                "no frames (SPEC section 5.7)".format(source))
        boxes = {entry["key"] for entry in document["observation_space"]["spaces"] if entry["space"]["kind"] == "box"}
        if len(set(normalized)) != len(normalized) or not set(normalized) <= boxes:
            raise DocumentError("{}: provenance.vecnormalize.keys must name Box keys of the dict observation space, "
                                "each once, got {}".format(source, preview(normalized)))
    for entry in document["observation_space"]["spaces"]:
        name = DICT_INPUT_PREFIX + entry["key"]
        _check_observation_input(document, entry["space"], specs[name], source, "observation " + preview(name),
                                 entry["key"] in (normalized or ()))


def _check_observation_input(document: Document, space: Mapping[str, Any], obs: ValueSpec, source: str,
                             what: str, normalized: Optional[bool] = None) -> None:
    """One observation input against its space (SPEC section 3.2); `normalized` says whether VecNormalize statistics
    are folded in for it (None: whether the file has any, for the one `obs` input)."""
    kind = space["kind"]
    sb3 = contract(document) == "sb3"  # SB3 converts Box and MultiBinary observations with .float() (SPEC 3.2)
    if normalized is None:
        normalized = "vecnormalize" in document["provenance"]
        if normalized and "keys" in document["provenance"]["vecnormalize"]:
            raise DocumentError("{}: provenance.vecnormalize.keys belongs to dict observation spaces".format(source))
    if kind == "box":
        expected = ValueSpec("float32" if sb3 else space["dtype"], [None] + space["shape"])
        if normalized:  # raw float64 observations, normalized in the graph
            expected = ValueSpec("float64", expected.shape)
        for bound in ("low", "high"):
            try:
                check_bound(space[bound], space["shape"])
            except DocumentError as exc:
                raise DocumentError("{}: {} {}: {}".format(source, what + "_space" if what == "observation" else
                                                           what + " space", bound, exc)) from None
    elif kind == "discrete":
        expected = ValueSpec("int32", [None])
    elif kind == "multi_discrete":
        expected = ValueSpec("int32", [None, len(space["nvec"])])
    else:
        expected = ValueSpec("float32" if sb3 else "int32", [None, space["n"]])
    if obs != expected:
        raise DocumentError("{}: {} input is {} but a {} observation space needs {}".format(source, what, obs, kind,
                                                                                          expected))


def _check_predict(document: Document, source: str) -> None:
    outputs = {output["name"] for output in document["outputs"]}
    predict = document["predict"]
    names = [predict["deterministic_action"]] + ([] if predict["stochastic_action"] is None
                                                 else [predict["stochastic_action"]])
    names += list(predict.get("distribution", {"parameters": {}})["parameters"].values())
    for name in names:
        if name not in outputs:
            raise DocumentError("{}: predict refers to {!r}, which is not a declared output".format(source, name))
    _check_recurrent(document, source)
    _check_sb3_contract(document, source)


def contract(document: Document) -> str:
    """Whose predict the file reproduces (SPEC section 5.9): version 1 files are SB2's."""
    return document["predict"].get("contract", "sb2")


def _check_sb3_contract(document: Document, source: str) -> None:
    """The version-2 predict fields (SPEC section 5.9) name inputs of the right kind and type, and only the SB3
    contract uses them: an SB2 file with an action mask would be run by SB2's rules, which have none."""
    predict = document["predict"]
    inputs = {entry["name"]: entry for entry in document["inputs"]}
    sb3_fields = [field for field in ("channels_last", "action_mask", "shared_noise") if field in predict]
    if "state_layout" in predict.get("recurrent", {}):
        sb3_fields.append("recurrent.state_layout")
    if contract(document) != "sb3":
        if sb3_fields:
            raise DocumentError("{}: predict.{} belongs to the SB3 contract, but predict.contract is sb2".format(
                source, sb3_fields[0]))
        if any(entry["kind"] == "action_mask" for entry in document["inputs"]):
            raise DocumentError("{}: an action_mask input under the SB2 contract, which has none".format(source))
        return
    if predict["deterministic_default"] is not False:
        raise DocumentError("{}: deterministic_default must be false under the SB3 contract (SB3's predict samples "
                            "unless told otherwise)".format(source))
    masks = [entry["name"] for entry in document["inputs"] if entry["kind"] == "action_mask"]
    named = predict.get("action_mask")
    if masks != ([named] if named is not None else []):
        raise DocumentError("{}: predict.action_mask must name the one input of kind 'action_mask' (inputs of that "
                            "kind: {})".format(source, ", ".join(repr(name) for name in masks) or "none"))
    if named is not None:
        entry = inputs[named]
        if entry["dtype"] != "bool" or len(entry["shape"]) != 2:
            raise DocumentError("{}: the action mask {!r} must be a bool [B, L] input".format(source, named))
    shared = predict.get("shared_noise", [])
    if len(set(shared)) != len(shared):
        raise DocumentError("{}: predict.shared_noise names an input twice".format(source))
    for name in shared:
        if name not in inputs or inputs[name]["kind"] != "noise":
            raise DocumentError("{}: predict.shared_noise names {}, which is not a noise input".format(
                source, preview(name)))
    layout = predict.get("recurrent", {}).get("state_layout")
    if layout is not None:
        size = inputs[predict["recurrent"]["state_input"]]["shape"][1]
        if size not in (2 * layout["layers"] * layout["hidden"], 4 * layout["layers"] * layout["hidden"]):
            raise DocumentError("{}: the state has {} columns, but an LSTM state of {} layers of {} units holds "
                                "2 x {} (the actor's h and c) or 4 x {} (with the critic's)".format(
                                    source, size, layout["layers"], layout["hidden"], layout["layers"] * layout["hidden"],
                                    layout["layers"] * layout["hidden"]))


def _check_recurrent(document: Document, source: str) -> None:
    """State and mask inputs exist exactly when predict.recurrent names them, with the contract's types."""
    recurrent = document["predict"].get("recurrent")
    inputs = {entry["name"]: entry for entry in document["inputs"]}
    kinds = {entry["kind"] for entry in document["inputs"]}
    if recurrent is None:
        if kinds & {"state", "mask"}:
            raise DocumentError("{}: state/mask inputs without predict.recurrent".format(source))
        return
    state, mask = inputs.get(recurrent["state_input"]), inputs.get(recurrent["mask_input"])
    if state is None or state["kind"] != "state" or state["dtype"] != "float32" or len(state["shape"]) != 2:
        raise DocumentError("{}: predict.recurrent.state_input must name a float32 [B, S] input of kind "
                            "'state'".format(source))
    if mask is None or mask["kind"] != "mask" or mask["dtype"] != "float32" or mask["shape"] != [None]:
        raise DocumentError("{}: predict.recurrent.mask_input must name a float32 [B] input of kind "
                            "'mask'".format(source))
    outputs = {output["name"]: output for output in document["outputs"]}
    out = outputs.get(recurrent["state_output"])
    if out is None or out["dtype"] != "float32" or out["shape"] != state["shape"]:
        raise DocumentError("{}: predict.recurrent.state_output must name a declared output shaped like the "
                            "state input".format(source))
