"""A small JSON Schema (draft 7) validator for exactly the keywords the SBIF document schema uses.

Why not jsonschema: importing it costs 25-60 ms, a large share of `sbif.load`'s cold start. This module gives the
same valid/invalid verdict as jsonschema's Draft7Validator (tests/test_schema_check.py cross-checks the two) and
words its messages the same way. It refuses a schema that uses any other keyword, so that a later change to the
schema cannot be silently ignored.

Three options depart from jsonschema, for the SBIF document (sbif/format/document.py), so that every reader decides
alike: with `integer_literals=True`, "integer" means a number written without fraction or exponent (SPEC section 1),
which Python's `json` reads as an `int` (draft 7 also counts `3.0` and `1e2` as integers, which the C and Node readers,
reading the literal, do not); with `ecma_patterns=True`, a pattern's `$` matches only at the end of the text, as in
ECMA-262, the dialect draft 7 names for patterns (jsonschema uses Python's `re`, whose `$` also matches before a final
newline, so "softmax\n" would pass '^[a-z]+$'); and `refinements` add checks the schema cannot express to the
instances of a definition.
"""
from __future__ import annotations

import functools
import numbers
import re
from collections import abc
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple, Union

from ..errors import preview

SUPPORTED_KEYWORDS = frozenset(["$ref", "additionalProperties", "anyOf", "const", "enum", "items", "maxLength",
                                "minItems", "minLength", "minimum", "oneOf", "pattern", "properties", "required",
                                "type"])
#: Keywords that only document the schema or hold subschemas for $ref: no effect on validation.
ANNOTATIONS = frozenset(["$id", "$schema", "title", "description", "definitions"])
COMBINATORS = frozenset(["anyOf", "oneOf"])
JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")

Schema = Mapping[str, Any]
Path = Tuple[Union[str, int], ...]
#: A check of an instance that its subschema accepts: one message per violation.
Refinement = Callable[[Any], Iterator[str]]


class SchemaViolation(NamedTuple):
    """One failed keyword: where in the instance (keys and indexes from its root), jsonschema's message, the keyword.

    `meant_branch` is set on an anyOf/oneOf failure when the instance evidently meant one branch (its type, or a
    tag property such as a space's `kind`, fits only that branch): that branch's violations explain the failure.
    """

    path: Path
    message: str
    keyword: str
    meant_branch: Tuple["SchemaViolation", ...] = ()


def json_type_matches(instance: Any, type_name: str, integer_literals: bool = False) -> bool:
    """Draft 7's types as jsonschema checks them: a bool is not a number, and 1.0 is an integer unless
    `integer_literals` (then only an `int`, the reading of a literal without fraction or exponent, is one)."""
    if type_name == "object":
        return isinstance(instance, dict)
    if type_name == "array":
        return isinstance(instance, list)
    if type_name == "string":
        return isinstance(instance, str)
    if type_name == "boolean":
        return isinstance(instance, bool)
    if type_name == "null":
        return instance is None
    if isinstance(instance, bool):
        return False
    if type_name == "integer":
        return isinstance(instance, int) or (
            not integer_literals and isinstance(instance, float) and instance.is_integer())
    return isinstance(instance, numbers.Number)  # "number"


def json_equal(one: Any, two: Any) -> bool:
    """Equality for const and enum as jsonschema defines it: True is not 1, and 1 equals 1.0, also inside lists."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, abc.Sequence) and isinstance(two, abc.Sequence):
        return len(one) == len(two) and all(json_equal(a, b) for a, b in zip(one, two))
    if isinstance(one, abc.Mapping) and isinstance(two, abc.Mapping):
        return len(one) == len(two) and all(key in two and json_equal(value, two[key]) for key, value in one.items())
    if isinstance(one, bool) or isinstance(two, bool):
        return False  # the same bool was caught by `is` above
    return one == two


def _type_names(schema_type: Union[str, List[str]]) -> List[str]:
    return [schema_type] if isinstance(schema_type, str) else list(schema_type)


def _shares_a_type(instance: Any, values: List[Any], integer_literals: bool) -> bool:
    """Whether the instance has the JSON type of one of `values` (a string is meant for an enum of strings)."""
    return any(json_type_matches(instance, name, integer_literals)
               and any(json_type_matches(value, name, integer_literals) for value in values)
               for name in JSON_TYPES)


def _relevance(violation: SchemaViolation) -> Tuple[int, bool]:
    """Sort key, smallest first: nearest the root, then a plain keyword before a failed anyOf/oneOf."""
    return len(violation.path), violation.keyword in COMBINATORS


# --- keywords that check the instance itself: (keyword value, instance) -> messages ---------------------------

def _required(names: List[str], instance: Any) -> Iterator[str]:
    if isinstance(instance, dict):
        for name in names:
            if name not in instance:
                yield "{!r} is a required property".format(name)


def _const(expected: Any, instance: Any) -> Iterator[str]:
    if not json_equal(instance, expected):
        yield "{!r} was expected".format(expected)


def _enum(allowed: List[Any], instance: Any) -> Iterator[str]:
    if not any(json_equal(instance, each) for each in allowed):
        yield "{} is not one of {!r}".format(preview(instance), allowed)


def _minimum(minimum: Union[int, float], instance: Any) -> Iterator[str]:
    if json_type_matches(instance, "number") and instance < minimum:
        yield "{} is less than the minimum of {!r}".format(preview(instance), minimum)


def _min_items(minimum: int, instance: Any) -> Iterator[str]:
    if isinstance(instance, list) and len(instance) < minimum:
        yield "{} is too short".format(preview(instance))


def _min_length(minimum: int, instance: Any) -> Iterator[str]:
    if isinstance(instance, str) and len(instance) < minimum:
        yield "{} is too short".format(preview(instance))


def _max_length(maximum: int, instance: Any) -> Iterator[str]:
    if isinstance(instance, str) and len(instance) > maximum:
        yield "{} is too long".format(preview(instance))


def _pattern(pattern: str, instance: Any, ecma: bool = False) -> Iterator[str]:
    searched = ecma_end_anchors(pattern) if ecma else pattern
    if isinstance(instance, str) and not re.search(searched, instance):  # search, not match, as jsonschema does
        yield "{} does not match {!r}".format(preview(instance), pattern)


def ecma_end_anchors(pattern: str) -> str:
    """`pattern` with each `$` anchor (unescaped, outside a character class) written `\\Z`, Python's end of the text:
    ECMA-262's `$`, where Python's `$` also matches before a final newline."""
    out = []
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = "\\Z"
        out.append(char)
    return "".join(out)


MESSAGE_CHECKS: Dict[str, Callable[[Any, Any], Iterator[str]]] = {
    "const": _const, "enum": _enum, "maxLength": _max_length, "minItems": _min_items, "minLength": _min_length,
    "minimum": _minimum, "pattern": _pattern, "required": _required,
}


class SchemaValidator:
    """Validates instances against one draft-7 schema written with `SUPPORTED_KEYWORDS` (and annotations) only.

    `integer_literals`: "integer" matches only an `int` (not a bool), never an integral float such as 3.0 (see the
    module's docstring); the default is draft 7's meaning. `ecma_patterns`: a pattern's `$` matches only at the end
    of the text (the default is jsonschema's, Python's `re`). `refinements` maps a local reference ('#/definitions/name')
    to a check applied, after the subschema, to every instance that a `$ref` to it validates; a violation it reports
    has the keyword `$ref`."""

    def __init__(self, schema: Schema, integer_literals: bool = False, ecma_patterns: bool = False,
                 refinements: Optional[Mapping[str, Refinement]] = None):
        self.root = schema
        self.integer_literals = integer_literals
        self.refinements: Mapping[str, Refinement] = dict(refinements or {})
        self._check_supported(schema, "#")
        for reference in self.refinements:
            self._resolve(reference)
        # keywords that check the instance itself: (keyword value, instance) -> messages
        self._message_checks: Dict[str, Callable[[Any, Any], Iterator[str]]] = dict(MESSAGE_CHECKS, type=self._type)
        if ecma_patterns:
            self._message_checks["pattern"] = functools.partial(_pattern, ecma=True)
        # keywords that validate parts of the instance (or all of it) against subschemas
        self._descents: Dict[str, Callable[[Any, Any, Schema, Path], Iterator[SchemaViolation]]] = {
            "$ref": self._ref, "additionalProperties": self._additional_properties, "anyOf": self._any_of,
            "items": self._items, "oneOf": self._one_of, "properties": self._properties,
        }

    def violations(self, instance: Any) -> List[SchemaViolation]:
        """Every failed keyword, as jsonschema's `iter_errors` reports them (anyOf/oneOf as one violation each)."""
        return list(self._violations(instance, self.root, ()))

    def is_valid(self, instance: Any) -> bool:
        return self._is_valid_under(instance, self.root)

    def first_violation(self, instance: Any) -> Optional[SchemaViolation]:
        """The violation to report: the one nearest the document's root, a failed keyword before a failed anyOf/oneOf
        at the same place, the first in schema order among equals; inside an anyOf/oneOf, the violation of the
        branch the instance meant (if evident), else the anyOf/oneOf itself."""
        candidates = self.violations(instance)
        if not candidates:
            return None
        best = min(candidates, key=_relevance)
        while best.meant_branch:
            best = min(best.meant_branch, key=_relevance)
        return best

    # --- the schema itself -------------------------------------------------------------------------------------

    def _check_supported(self, schema: Any, where: str) -> None:
        """Refuse a subschema this validator would not fully enforce (unknown keyword, boolean schema, ...)."""
        if not isinstance(schema, abc.Mapping):
            raise ValueError("schema_check supports object subschemas only; {} is {!r}".format(where, schema))
        unknown = sorted(set(schema) - SUPPORTED_KEYWORDS - ANNOTATIONS)
        if unknown:
            raise ValueError("schema_check does not implement the keyword(s) {} used at {}".format(
                ", ".join(unknown), where))
        if "$ref" in schema:
            siblings = sorted(set(schema) - ANNOTATIONS - {"$ref"})
            if siblings:  # draft 7 ignores them: the author's intent would be dropped silently
                raise ValueError("{}: $ref next to {} (draft 7 ignores keywords beside $ref)".format(
                    where, ", ".join(siblings)))
            self._resolve(schema["$ref"])
        for name in _type_names(schema.get("type", [])):
            if name not in JSON_TYPES:
                raise ValueError("{}: unknown type {!r}".format(where, name))
        if "pattern" in schema:
            re.compile(schema["pattern"])
        for name, subschema in schema.get("definitions", {}).items():
            self._check_supported(subschema, "{}/definitions/{}".format(where, name))
        for name, subschema in schema.get("properties", {}).items():
            self._check_supported(subschema, "{}/properties/{}".format(where, name))
        if not isinstance(schema.get("additionalProperties", True), bool):
            self._check_supported(schema["additionalProperties"], where + "/additionalProperties")
        if "items" in schema:
            self._check_supported(schema["items"], where + "/items")  # so the list form (tuples) is refused
        for keyword in sorted(COMBINATORS & set(schema)):
            for index, subschema in enumerate(schema[keyword]):
                self._check_supported(subschema, "{}/{}/{}".format(where, keyword, index))

    def _resolve(self, reference: str) -> Schema:
        """The subschema a local JSON pointer ('#/definitions/name') designates."""
        if not reference.startswith("#/"):
            raise ValueError("schema_check resolves references inside the schema only, not {!r}".format(reference))
        target: Any = self.root
        for part in reference[2:].split("/"):
            try:
                target = target[part.replace("~1", "/").replace("~0", "~")]
            except (KeyError, TypeError):
                raise ValueError("unresolvable $ref {!r}".format(reference)) from None
        return target

    # --- validation --------------------------------------------------------------------------------------------

    def _is_type(self, instance: Any, names: List[str]) -> bool:
        return any(json_type_matches(instance, name, self.integer_literals) for name in names)

    def _type(self, schema_type: Union[str, List[str]], instance: Any) -> Iterator[str]:
        names = _type_names(schema_type)
        if not self._is_type(instance, names):
            yield "{} is not of type {}".format(preview(instance), ", ".join(repr(name) for name in names))

    def _violations(self, instance: Any, schema: Schema, path: Path) -> Iterator[SchemaViolation]:
        """Each keyword of `schema` in its written order, as jsonschema applies them."""
        for keyword, value in schema.items():
            if keyword in self._message_checks:
                for message in self._message_checks[keyword](value, instance):
                    yield SchemaViolation(path, message, keyword)
            elif keyword in self._descents:
                yield from self._descents[keyword](value, instance, schema, path)

    def _is_valid_under(self, instance: Any, schema: Schema, path: Path = ()) -> bool:
        return next(self._violations(instance, schema, path), None) is None

    def _ref(self, reference: str, instance: Any, schema: Schema, path: Path) -> Iterator[SchemaViolation]:
        valid = True
        for violation in self._violations(instance, self._resolve(reference), path):
            valid = False
            yield violation
        if valid and reference in self.refinements:
            for message in self.refinements[reference](instance):
                yield SchemaViolation(path, message, "$ref")

    def _properties(self, properties: Mapping[str, Schema], instance: Any, schema: Schema, path: Path
                    ) -> Iterator[SchemaViolation]:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if name in instance:
                    yield from self._violations(instance[name], subschema, path + (name,))

    def _additional_properties(self, allowed: Union[bool, Schema], instance: Any, schema: Schema, path: Path
                               ) -> Iterator[SchemaViolation]:
        if not isinstance(instance, dict):
            return
        declared = schema.get("properties", {})
        extras = [name for name in instance if name not in declared]
        if isinstance(allowed, abc.Mapping):
            for name in extras:
                yield from self._violations(instance[name], allowed, path + (name,))
        elif not allowed and extras:
            names = sorted(extras, key=str)
            yield SchemaViolation(path, "Additional properties are not allowed ({} {} unexpected)".format(
                ", ".join(repr(name) for name in names), "was" if len(names) == 1 else "were"),
                "additionalProperties")

    def _items(self, items: Schema, instance: Any, schema: Schema, path: Path) -> Iterator[SchemaViolation]:
        if isinstance(instance, list):
            for index, item in enumerate(instance):
                yield from self._violations(item, items, path + (index,))

    def _any_of(self, branches: List[Schema], instance: Any, schema: Schema, path: Path
                ) -> Iterator[SchemaViolation]:
        failures = []
        for branch in branches:
            failure = list(self._violations(instance, branch, path))
            if not failure:
                return
            failures.append(failure)
        yield self._no_branch_matches(instance, branches, failures, path, "anyOf")

    def _one_of(self, branches: List[Schema], instance: Any, schema: Schema, path: Path
                ) -> Iterator[SchemaViolation]:
        failures = []
        for index, branch in enumerate(branches):
            failure = list(self._violations(instance, branch, path))
            if not failure:
                also_valid = [other for other in branches[index + 1:] if self._is_valid_under(instance, other, path)]
                if also_valid:
                    yield SchemaViolation(path, "{} is valid under each of {}".format(
                        preview(instance), ", ".join(repr(each) for each in also_valid + [branch])), "oneOf")
                return
            failures.append(failure)
        yield self._no_branch_matches(instance, branches, failures, path, "oneOf")

    def _no_branch_matches(self, instance: Any, branches: List[Schema], failures: List[List[SchemaViolation]],
                           path: Path, keyword: str) -> SchemaViolation:
        meant = [failure for branch, failure in zip(branches, failures) if self._could_be_meant(instance, branch)]
        return SchemaViolation(path, "{} is not valid under any of the given schemas".format(preview(instance)),
                               keyword,
                               tuple(meant[0]) if len(meant) == 1 else ())

    def _could_be_meant(self, instance: Any, branch: Schema) -> bool:
        """Whether an anyOf/oneOf branch fits the instance's shape: its JSON type, the type of its const/enum values,
        the value of a tag property (an inline const/enum, such as a space's `kind`), and for a nested
        anyOf/oneOf, any of its branches."""
        if "$ref" in branch:
            return self._could_be_meant(instance, self._resolve(branch["$ref"]))
        if "type" in branch and not self._is_type(instance, _type_names(branch["type"])):
            return False
        allowed_values = [branch["const"]] if "const" in branch else branch.get("enum")
        if allowed_values is not None and not _shares_a_type(instance, allowed_values, self.integer_literals):
            return False
        if isinstance(instance, dict):
            for name, subschema in branch.get("properties", {}).items():
                if name in instance and not _tag_accepts(subschema, instance[name]):
                    return False
        return all(any(self._could_be_meant(instance, each) for each in branch[keyword])
                   for keyword in COMBINATORS & set(branch))


def _tag_accepts(property_schema: Schema, value: Any) -> bool:
    """Whether a property's inline const/enum (if any) allows `value`: the tag that tells oneOf branches apart."""
    if "const" in property_schema and not json_equal(value, property_schema["const"]):
        return False
    return "enum" not in property_schema or any(json_equal(value, each) for each in property_schema["enum"])
