"""The part of a document's graph that a set of outputs needs, and the output names a caller may ask for.

A deployer rarely wants every output of a file: a deterministic action needs no noise input, and a critic's weights
are dead weight in an actor's ONNX or TorchScript file. `required_subgraph` says which nodes, tensors and graph
inputs some outputs read (what SPEC section 3.5 lets a runtime skip is everything else); `select_outputs` turns the
names a user types (the document's output names, or the predict contract's names such as `action` and
`stochastic_action`, SPEC section 5) into the document's output names a converter keeps.
"""
from __future__ import annotations

from typing import Any, Dict, FrozenSet, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ..errors import InputError, preview

Document = Mapping[str, Any]
#: roles of `predict.distribution.parameters` that are also SPEC section 3.6's output names, hence what users type
DISTRIBUTION_ROLES = ("logits", "probabilities", "mean", "std")
#: names an error message lists before it says how many more there are (a document may declare thousands)
LISTED_NAMES = 16
#: characters of one name an error message quotes (names may be 512 characters long)
QUOTED_NAME_CHARS = 80


class Subgraph(NamedTuple):
    """What computing `outputs` takes: the graph's nodes (and their positions) in graph order, and the graph inputs
    and tensors those nodes read, in document order."""

    outputs: Tuple[str, ...]
    node_indices: Tuple[int, ...]
    nodes: Tuple[Mapping[str, Any], ...]
    inputs: Tuple[str, ...]
    tensors: Tuple[str, ...]


def required_subgraph(document: Document, outputs: Sequence[str]) -> Subgraph:
    """The nodes, graph inputs and tensors that `outputs` (names of values of the graph: outputs, node outputs,
    inputs or tensors) depend on, walking the graph backwards from them. An unknown name is an InputError."""
    _check_names(outputs)
    graph = document["graph"]
    defined = {entry["name"] for entry in document["inputs"]} | {entry["name"] for entry in document["tensors"]}
    defined.update(name for node in graph for name in node["outputs"])
    unknown = sorted(set(outputs) - defined)
    if unknown:
        raise InputError("unknown output(s) {}; this file computes {}".format(
            listing(unknown), listing([entry["name"] for entry in document["outputs"]])))
    needed = set(outputs)
    chosen: List[int] = []
    for index in range(len(graph) - 1, -1, -1):
        node = graph[index]
        if needed.intersection(node["outputs"]):
            chosen.append(index)
            needed.update(node["inputs"])
    chosen.reverse()
    return Subgraph(tuple(outputs), tuple(chosen), tuple(graph[index] for index in chosen),
                    tuple(entry["name"] for entry in document["inputs"] if entry["name"] in needed),
                    tuple(entry["name"] for entry in document["tensors"] if entry["name"] in needed))


def inputs_of_outputs(document: Document) -> Dict[str, Tuple[str, ...]]:
    """For every declared output, the graph inputs it reads (document order): what `required_subgraph` says of
    each output alone, computed for all of them in one pass over the graph."""
    order = [entry["name"] for entry in document["inputs"]]
    reads: Dict[str, FrozenSet[str]] = {name: frozenset([name]) for name in order}
    for node in document["graph"]:
        read = frozenset().union(*(reads.get(name, frozenset()) for name in node["inputs"]))
        for name in node["outputs"]:
            reads[name] = read
    return {entry["name"]: tuple(name for name in order if name in reads.get(entry["name"], ()))
            for entry in document["outputs"]}


def deployed_subgraph(document: Document, outputs: Optional[Sequence[str]]) -> Subgraph:
    """The part of the graph a converted model holds: the whole graph (every node, input, tensor and output) when
    `outputs` is None, a converter's default, else what `select_outputs(document, outputs)` needs."""
    if outputs is None:
        graph = document["graph"]
        return Subgraph(tuple(entry["name"] for entry in document["outputs"]), tuple(range(len(graph))),
                        tuple(graph), tuple(entry["name"] for entry in document["inputs"]),
                        tuple(entry["name"] for entry in document["tensors"]))
    return required_subgraph(document, select_outputs(document, outputs))


def output_aliases(document: Document) -> Dict[str, str]:
    """The predict contract's names for outputs (SPEC section 5), each mapped to the document's output name:
    `action` and `deterministic_action` (the deterministic action), `stochastic_action`, the distribution's
    parameters (`logits`, `probabilities`, `mean`, `std`; DQN's logits are `q_values`) and, for recurrent files,
    `state_output` (the next state). A name the document itself gives an output is not an alias."""
    predict = document["predict"]
    aliases = {"action": predict["deterministic_action"], "deterministic_action": predict["deterministic_action"]}
    if predict.get("stochastic_action") is not None:
        aliases["stochastic_action"] = predict["stochastic_action"]
    parameters = predict.get("distribution", {}).get("parameters", {})
    aliases.update((role, parameters[role]) for role in DISTRIBUTION_ROLES if role in parameters)
    if predict.get("recurrent"):
        aliases["state_output"] = predict["recurrent"]["state_output"]
    names = {entry["name"] for entry in document["outputs"]}
    return {alias: name for alias, name in aliases.items() if alias not in names and name in names}


def select_outputs(document: Document, requested: Optional[Sequence[str]]) -> List[str]:
    """The document's output names for the names a caller asked for (document names or `output_aliases`), in the
    order asked, each once; None asks for every output. A recurrent file's next-state output is added when a kept
    output reads the state input: without it the caller could not feed the state back (SPEC section 5.6)."""
    declared = [entry["name"] for entry in document["outputs"]]
    if requested is None:
        return declared
    if isinstance(requested, str):
        raise InputError("outputs must be a list of names, e.g. ['action'], not the string {}".format(
            preview(requested)))
    if not requested:
        raise InputError("no outputs asked for: name at least one of {}".format(listing(declared)))
    _check_names(requested)
    aliases = output_aliases(document)
    chosen: List[str] = []
    for name in requested:
        if name in declared:
            resolved = name
        elif name in aliases:
            resolved = aliases[name]
        else:
            raise InputError("unknown output {}: {}".format(preview(name), available_outputs(document)))
        if resolved not in chosen:
            chosen.append(resolved)
    recurrent = document["predict"].get("recurrent")
    if recurrent and recurrent["state_output"] not in chosen:
        if recurrent["state_input"] in required_subgraph(document, chosen).inputs:
            chosen.append(recurrent["state_output"])
    return chosen


def available_outputs(document: Document) -> str:
    """The names `select_outputs` accepts, for an error message."""
    predict = document["predict"]
    text = "this file has the outputs " + listing([entry["name"] for entry in document["outputs"]])
    aliases = output_aliases(document)
    if aliases:
        text += " (also accepted: {})".format(", ".join(
            "{} = {}".format(alias, quoted(name)) for alias, name in sorted(aliases.items())))
    if predict.get("stochastic_action") is None:
        text += "; it has no stochastic action: SB2 samples it with noise state the file cannot hold (SPEC 5.2)"
    return text


def _check_names(names: Sequence[Any]) -> None:
    """Output names are strings (a caller's list could hold anything)."""
    for name in names:
        if not isinstance(name, str):
            raise InputError("output names are strings, got {}".format(preview(name)))


def quoted(name: str) -> str:
    """A document name as an error message shows it: whole when short, else its start and an ellipsis."""
    return name if len(name) <= QUOTED_NAME_CHARS else name[:QUOTED_NAME_CHARS] + "..."


def listing(names: Sequence[str]) -> str:
    """Names for an error message: the first LISTED_NAMES, then how many more there are."""
    shown = ", ".join(quoted(name) for name in names[:LISTED_NAMES])
    return shown if len(names) <= LISTED_NAMES else "{}, ... ({} more)".format(shown, len(names) - LISTED_NAMES)
