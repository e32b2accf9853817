"""sbif/format/schema_check.py against jsonschema's Draft7Validator: valid documents (the factory matrix and the
zoo), Hypothesis mutations of them (same verdict, same failed keywords at the same places), the wording of the
messages, the refusal of keywords it does not implement, and that `sbif.load` never imports jsonschema."""
from __future__ import annotations

import copy
import functools
import json
import os
import re
import subprocess
import sys
from collections import Counter
from typing import Any, Dict, List, Tuple

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sbif.errors import DocumentError, preview
from sbif.format.document import SCHEMA_PATHS, check_schema
from sbif.format.schema_check import SchemaValidator, ecma_end_anchors
from tests.factories import MATRIX, make_sbif
from tests.zoo import ZOO, zoo_models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(SCHEMA_PATHS[1], encoding="utf-8") as _handle:
    SCHEMA = json.load(_handle)
REFERENCE = jsonschema.Draft7Validator(SCHEMA)
VALIDATOR = SchemaValidator(SCHEMA)

Path = Tuple[Any, ...]


@functools.lru_cache(maxsize=None)
def valid_files() -> Tuple[Any, ...]:
    """Every factory-matrix file and every zoo model's (safe export), validated."""
    from sbif.export import export

    files = [make_sbif(*case, seed=index) for index, case in enumerate(MATRIX)]
    for relative in zoo_models():
        source = os.path.join(ZOO, relative)
        files.append(export(source)[0])
    return tuple(files)


def valid_documents() -> Tuple[Dict[str, Any], ...]:
    """Every valid file's document, as a file's JSON would give it."""
    return tuple(json.loads(json.dumps(each.document)) for each in valid_files())


def failed_keywords(document: Dict[str, Any]) -> Tuple[Counter, Counter]:
    """(place, keyword) of every top-level failure: jsonschema's, ours."""
    reference = Counter((tuple(error.absolute_path), error.validator) for error in REFERENCE.iter_errors(document))
    ours = Counter((violation.path, violation.keyword) for violation in VALIDATOR.violations(document))
    return reference, ours


def assert_same_verdict(document: Dict[str, Any]) -> None:
    """Same verdict as jsonschema, the same (place, keyword) failures, and a reported place that exists."""
    reference, ours = failed_keywords(document)
    assert ours == reference
    assert VALIDATOR.is_valid(document) == REFERENCE.is_valid(document)
    reported = VALIDATOR.first_violation(document)
    assert (reported is None) == (not reference)
    if reported is not None:
        value_at(document, reported.path)  # raises if the reported place is not in the document


def test_valid_documents_pass():
    assert len(valid_documents()) >= len(MATRIX)
    for document in valid_documents():
        assert REFERENCE.is_valid(document)
        assert VALIDATOR.violations(document) == []
        check_schema(document)


def test_real_models_are_far_below_the_size_limits():
    """SPEC sections 2 and 3.5 bound a header's entries and a value's size at batch 1: every factory and zoo model
    stays below a 64th of both, so the limits refuse only what no exporter writes."""
    from sbif.format.container import MAX_ENTRIES
    from sbif.format.validate import MAX_VALUE_BYTES

    for model in valid_files():
        assert len(model.tensors) < MAX_ENTRIES // 64
        assert max(spec.nominal_bytes(batch=1) for spec in model.specs.values()) < MAX_VALUE_BYTES // 64


# --- mutations -------------------------------------------------------------------------------------------------

#: Replacement values: every JSON type, edge numbers, strings the schema gives meaning to, near-valid containers.
VALUES = [None, True, False, 0, 1, -1, 2, 1.0, 2.0, 0.5, -0.5, 1e300, "", "x", "inf", "-inf", "nan", "Inf", "box",
          "discrete", "multi_binary", "multi_discrete", "float32", "complex64", "PPO2", "live", "zip", "parameter",
          "observation", "categorical", "linear", "Linear", "2linear", "0" * 64, "0" * 63 + "G", "a" * 513,
          "sbif", [], [0], [1], [None], [-1], ["x"], ["inf", 1.5], [[1]], {}, {"kind": "box"},
          {"kind": "discrete", "n": 1}, {"a": 1}]
KEYS = ["comment", "kind", "n", "nvec", "low", "shape", "dtype", "name", "distribution", "description", "attrs",
        "recurrent", "frame_stack", "sb2_version", "policy_kwargs", "observation_dict", "1"]


def locations(node: Any, path: Path = ()) -> List[Path]:
    """The path of every value in a document, its root first."""
    found = [path]
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        found.extend(locations(child, path + (key,)))
    return found


def value_at(document: Any, path: Path) -> Any:
    for part in path:
        document = document[part]
    return document


def edited(data: st.DataObject, old: Any, document: Dict[str, Any]) -> Any:
    """Draw an edit of one value of the document and return the value that replaces it."""
    other = copy.deepcopy(value_at(document, data.draw(st.sampled_from(locations(document)), label="other")))
    some_value = copy.deepcopy(data.draw(st.sampled_from(VALUES + [other]), label="value"))
    kinds = ["replace", "other"]
    if isinstance(old, dict):
        kinds += ["delete", "add"] if old else ["add"]
    if isinstance(old, list):
        kinds += ["empty", "append"]
    if isinstance(old, (int, float)) and not isinstance(old, bool):
        kinds += ["negate", "as_float"]
    if isinstance(old, str):
        kinds += ["upper", "suffix", "shorten", "newline"]
    kind = data.draw(st.sampled_from(kinds), label="kind")
    if kind == "replace":
        return some_value
    if kind == "other":  # a value from elsewhere: a space swapped for another, a wrong const, a list of names...
        return other
    if kind == "delete":
        key = data.draw(st.sampled_from(sorted(old)), label="key")
        return {k: v for k, v in old.items() if k != key}
    if kind == "add":
        return dict(old, **{data.draw(st.sampled_from(KEYS), label="key"): some_value})
    if kind == "append":
        return old + [some_value]
    edits = {"empty": lambda: [], "negate": lambda: -old - 1, "as_float": lambda: float(old),
             "upper": lambda: old.upper(), "suffix": lambda: old + "_x", "shorten": lambda: old[:-1],
             "newline": lambda: old + "\n"}  # "$" also matches before a final newline, in both validators
    return edits[kind]()


def mutated(data: st.DataObject) -> Dict[str, Any]:
    """A valid document with one to three drawn edits."""
    document = copy.deepcopy(data.draw(st.sampled_from(valid_documents()), label="document"))
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        path = data.draw(st.sampled_from(locations(document)), label="path")
        if not path:
            document = edited(data, document, document)
        else:
            parent = value_at(document, path[:-1])
            parent[path[-1]] = edited(data, parent[path[-1]], document)
    return document


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_documents_get_jsonschemas_verdict(data):
    assert_same_verdict(mutated(data))


@pytest.mark.parametrize("value", [True, False, 1, 1.0, 2, 2.5, -0.0, "1", None, [], {}])
def test_json_types_and_equality(value):
    """bool is not an integer or a number, 1.0 is an integer in draft 7, const 1 accepts 1.0 but not True."""
    for schema in ({"type": "integer"}, {"type": "number"}, {"type": "boolean"}, {"type": ["integer", "null"]},
                   {"const": 1}, {"enum": [1, "1", False, [], {}]}, {"minimum": 0}):
        assert SchemaValidator(schema).is_valid(value) == jsonschema.Draft7Validator(schema).is_valid(value), schema


# --- the messages ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("edit, where, message", [
    (lambda d: d.pop("graph"), "(top level)", "'graph' is a required property"),
    (lambda d: d.update(comment="hi"), "(top level)",
     "Additional properties are not allowed ('comment' was unexpected)"),
    (lambda d: d["provenance"].update(algorithm="PPO3"), "provenance/algorithm",
     "'PPO3' is not one of ['A2C', 'ACER', 'ACKTR', 'PPO1', 'PPO2', 'TRPO', 'GAIL', 'DQN', 'SAC', 'TD3', 'DDPG', "
     "'HER']"),
    (lambda d: d["action_space"].update(n=5.5), "action_space/n", "5.5 is not of type 'integer'"),
    (lambda d: d["action_space"].update(n=0), "action_space/n", "0 is less than the minimum of 1"),
    (lambda d: d["inputs"][0].update(shape=[None, -1]), "inputs/0/shape/1", "-1 is less than the minimum of 0"),
    (lambda d: d["inputs"][0].update(shape=[True]), "inputs/0/shape/0", "True is not of type 'integer', 'null'"),
    # an input's kind picks its oneOf branch: noise needs a distribution, the other kinds may not have one
    (lambda d: d["inputs"][1].pop("distribution"), "inputs/1", "'distribution' is a required property"),
    (lambda d: d["inputs"][1].update(distribution="gaussian"), "inputs/1/distribution",
     "'gaussian' is not one of ['uniform', 'normal']"),
    (lambda d: d["inputs"][0].update(distribution="normal"), "inputs/0",
     "Additional properties are not allowed ('distribution' was unexpected)"),
    (lambda d: d.update(outputs=[]), "outputs", "[] is too short"),
    (lambda d: d["tensors"][0].update(name=""), "tensors/0/name", "'' is too short"),
    (lambda d: d["tensors"][0].update(name="n" * 513), "tensors/0/name", "{} is too long".format(preview("n" * 513))),
    (lambda d: d["graph"][0].update(op="Cast"), "graph/0/op", "'Cast' does not match '^[a-z][a-z0-9_]*$'"),
    (lambda d: d.update(format="SBIF"), "format", "'sbif' was expected"),
    (lambda d: d["predict"].update(stochastic_action=3), "predict/stochastic_action",
     "3 is not valid under any of the given schemas"),
    (lambda d: d["action_space"].update(kind="dicsrete"), "action_space",
     "{'kind': 'dicsrete', 'n': 3} is not valid under any of the given schemas"),
    # inside a oneOf, the branch the space's kind (or a bound's type) names
    (lambda d: d["action_space"].update(shape=[3]), "action_space",
     "Additional properties are not allowed ('shape' was unexpected)"),
    (lambda d: d["observation_space"].update(low=["-inf", "-inf", "-Inf", "-inf"]), "observation_space/low/2",
     "'-Inf' is not one of ['inf', '-inf', 'nan']"),
    (lambda d: d["observation_space"].update(high=None), "observation_space/high",
     "None is not valid under any of the given schemas"),
    (lambda d: d["observation_space"].pop("kind"), "observation_space", "'kind' is a required property"),
])
def test_messages(edit, where, message):
    document = json.loads(json.dumps(make_sbif("box_inf", "discrete", "none").document))
    edit(document)
    assert not REFERENCE.is_valid(document)
    with pytest.raises(DocumentError) as caught:
        check_schema(document, "model.sbif")
    assert str(caught.value) == "model.sbif: schema violation at {}: {}".format(where, message)


def test_oneof_valid_under_two_branches():
    schema = {"oneOf": [{"type": "integer"}, {"minimum": 0}]}
    violation = SchemaValidator(schema).first_violation(3)
    assert violation is not None and jsonschema.Draft7Validator(schema).is_valid(3) is False
    assert violation.message == "3 is valid under each of {'minimum': 0}, {'type': 'integer'}"


# --- the schema ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("schema, fragment", [
    ({"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}}}, "format"),
    ({"definitions": {"odd": {"multipleOf": 2}}}, "multipleOf"),
    ({"items": [{"type": "string"}]}, "object subschemas only"),
    ({"anyOf": [True, {"type": "null"}]}, "object subschemas only"),
    ({"$ref": "#/definitions/a", "type": "string", "definitions": {"a": {}}}, "beside $ref"),
    ({"$ref": "#/definitions/missing"}, "unresolvable"),
    ({"$ref": "other.json#/a"}, "inside the schema only"),
    ({"type": "float"}, "unknown type"),
])
def test_refuses_what_it_does_not_implement(schema, fragment):
    with pytest.raises(ValueError, match=fragment.replace("$", r"\$")):
        SchemaValidator(schema)


def test_the_bundled_schema_uses_only_supported_keywords():
    SchemaValidator(SCHEMA)  # also done at module level: a new keyword there fails this file at import


def test_load_does_not_import_jsonschema(tmp_path):
    path = str(tmp_path / "model.sbif")
    make_sbif("box_inf", "discrete", "mixed").write(path)
    code = ("import sys, sbif; sbif.load(sys.argv[1], backend='numpy'); "
            "assert 'jsonschema' not in sys.modules, sorted(m for m in sys.modules if 'jsonschema' in m)")
    subprocess.run([sys.executable, "-c", code, path], cwd=ROOT, check=True)


# --- the SBIF document's reading (SPEC sections 1 and 3): where it departs from jsonschema ---------------------------

def sbif_document() -> Dict[str, Any]:
    return json.loads(json.dumps(make_sbif("box_inf", "discrete", "none").document))


@pytest.mark.parametrize("value, draft7, literals", [(3, True, True), (3.0, True, False), (1e2, True, False),
                                                     (-0.0, True, False), (True, False, False), (2.5, False, False)])
def test_integer_literals(value, draft7, literals):
    """With integer_literals, an integer is an int (a JSON number written without fraction or exponent): 3.0 is
    not one, though draft 7, and so the default, counts it."""
    schema = {"type": "integer"}
    assert SchemaValidator(schema).is_valid(value) == jsonschema.Draft7Validator(schema).is_valid(value) == draft7
    assert SchemaValidator(schema, integer_literals=True).is_valid(value) == literals


@pytest.mark.parametrize("edit, where, message", [
    (lambda d: d["action_space"].update(n=2.0), "action_space/n", "2.0 is not of type 'integer'"),
    (lambda d: d["tensors"][0]["shape"].__setitem__(0, float(d["tensors"][0]["shape"][0])), "tensors/0/shape/0",
     "is not of type 'integer'"),
    (lambda d: d["inputs"][0]["shape"].append(1e2), "inputs/0/shape/2", "100.0 is not of type 'integer', 'null'"),
    (lambda d: d["graph"][0].update(op=d["graph"][0]["op"] + "\n"), "graph/0/op", "does not match '^[a-z][a-z0-9_]*$'"),
    (lambda d: d["provenance"]["source"].update(sha256=d["provenance"]["source"]["sha256"] + "\n"),
     "provenance/source/sha256", "does not match '^[0-9a-f]{64}$'"),
], ids=["n", "tensor-dimension", "input-dimension", "op-newline", "sha256-newline"])
def test_the_document_schema_reads_integers_and_patterns_as_every_reader(edit, where, message):
    """Documents jsonschema (and the draft-7 default) accepts, and the C and Node readers refuse: an integral number
    written with a fraction or exponent, and a pattern's `$` before a final newline (Python's re; ECMA-262's `$`,
    the dialect JSON Schema names, is the end of the text)."""
    document = sbif_document()
    edit(document)
    assert REFERENCE.is_valid(document) and VALIDATOR.is_valid(document)
    with pytest.raises(DocumentError) as caught:
        check_schema(document, "model.sbif")
    assert str(caught.value).startswith("model.sbif: schema violation at {}: ".format(where))
    assert message in str(caught.value)


@pytest.mark.parametrize("pattern, text, matches", [
    ("^a$", "a\n", False), ("^a$", "a", True), (r"^a\$", "a$", True), ("^a[$]", "a$", True),
    (r"^[\]$]$", "$", True), (r"^[\]$]$", "]\n", False),
])
def test_ecma_end_anchors(pattern, text, matches):
    assert bool(re.search(ecma_end_anchors(pattern), text)) == matches


#: Edits putting U+0000 in a name at each kind of place the schema's `name` definition covers, by the place.
NUL = "\x00x"
NAME_EDITS = [
    (("tensors", 0, "name"), lambda d: d["tensors"][0].update(name=d["tensors"][0]["name"] + NUL)),
    (("inputs", 0, "name"), lambda d: d["inputs"][0].update(name=d["inputs"][0]["name"] + NUL)),
    (("graph", 0, "inputs", 0), lambda d: d["graph"][0]["inputs"].__setitem__(0, NUL)),
    (("graph", 0, "outputs", 0), lambda d: d["graph"][0]["outputs"].__setitem__(0, NUL)),
    (("outputs", 0, "name"), lambda d: d["outputs"][0].update(name=NUL)),
    (("predict", "deterministic_action"), lambda d: d["predict"].update(deterministic_action=NUL)),
    (("predict", "stochastic_action"), lambda d: d["predict"].update(stochastic_action=NUL)),  # inside an anyOf
    (("predict", "distribution", "parameters", "probabilities"),
     lambda d: d["predict"]["distribution"]["parameters"].update(probabilities=NUL)),
]


@pytest.mark.parametrize("path, edit", NAME_EDITS, ids=["/".join(map(str, path)) for path, _ in NAME_EDITS])
def test_a_name_holds_no_u0000(path, edit):
    """SPEC section 3: the document's checker refines the schema's `name` definition, wherever it applies (C runtimes
    name values with C strings); jsonschema, which has no such rule, accepts the document."""
    document = sbif_document()
    edit(document)
    assert REFERENCE.is_valid(document)
    with pytest.raises(DocumentError) as caught:
        check_schema(document, "model.sbif")
    where = "/".join(str(part) for part in path)
    assert str(caught.value).startswith("model.sbif: schema violation at {}: ".format(where)), caught.value
    assert str(caught.value).endswith("contains U+0000, which no name may hold")


def test_refinements_apply_after_the_subschema_and_name_a_real_definition():
    schema = {"definitions": {"name": {"type": "string"}}, "items": {"$ref": "#/definitions/name"}}
    short = SchemaValidator(schema, refinements={"#/definitions/name": lambda v: iter(["long"] if len(v) > 2 else [])})
    assert [v.path for v in short.violations(["ab", "abc", 7])] == [(1,), (2,)]
    assert short.violations(["abc"])[0].message == "long" and short.violations([7])[0].keyword == "type"
    with pytest.raises(ValueError, match="unresolvable"):
        SchemaValidator(schema, refinements={"#/definitions/other": lambda v: iter([])})
