"""One reader semantics (issue #18): the Python reader and the C reader reach the same verdict on every file —
loaded, or refused with the same error class (SPEC section 7).

The files are mutations of the 34 real exports of conformance/golden and of the reader-refusal corpus
(tests/fuzz/mutations.py: byte-level and structure-aware, drawn by Hypothesis so a disagreement shrinks to a small
mutation), compared between Python and C; transposes by drawn perms (spec/ops.md's rule, whose corner cases JSON
can spell several ways); and the committed files — the corpus the coverage-guided fuzzers kept with the hand-written
cases (tests/fuzz/corpus), and the reproducers of disagreements still open (tests/fuzz/reproducers, each with the
verdicts it gets today, until the reader that is wrong is fixed). The perms and the committed files go through
Python, C and Node's reader where node is installed (on CI it is).
"""
from __future__ import annotations

import functools
import glob
import json
import os
import random
from typing import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sbif.format import decode_document, encode_document, read_container, write_container
from sbif.format.document import METADATA_KEY

from .handwritten import REPRODUCERS
from .handwritten import files as handwritten_files
from .mutations import Choices, mutate_bytes, mutate_file, mutate_structure
from .readers import ROOT, disagreement, verdicts

HERE = os.path.dirname(os.path.abspath(__file__))
SEED_DIRECTORIES = {"golden": os.path.join(ROOT, "conformance", "golden"),
                    "malformed": os.path.join(ROOT, "conformance", "malformed")}
#: "golden:NAME" and "malformed:NAME": the real exports, and the reader-refusal corpus
SEEDS = sorted("{}:{}".format(kind, name) for kind, directory in SEED_DIRECTORIES.items()
               for name in os.listdir(directory) if name.endswith(".sbif"))
CORPUS = sorted(glob.glob(os.path.join(HERE, "corpus", "*")))
#: Mutants per Hypothesis test: together with the corpus replay, well under a minute on 2 shared cores.
EXAMPLES = int(os.environ.get("SBIF_FUZZ_EXAMPLES", "500"))
#: On CI the examples are derandomized (the same every run: a red build is about the change, not the draw); elsewhere
#: each run explores new ones.
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
                         derandomize=os.environ.get("CI") == "true",
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.function_scoped_fixture])


@functools.lru_cache(maxsize=None)
def seed_bytes(name: str) -> bytes:
    """A seed file's bytes, read once (not a fixture: Hypothesis would print every seed with a failing example)."""
    with open(os.path.join(SEED_DIRECTORIES[name.split(":")[0]], name.split(":")[1]), "rb") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def write_mutant(tmp_path_factory) -> Iterator[Callable[[bytes], str]]:
    """Factory: the path of a new file holding the bytes (a new name each time: runtimes cache loads by path)."""
    directory = tmp_path_factory.mktemp("mutants")
    counter = [0]

    def write(data: bytes) -> str:
        counter[0] += 1
        path = str(directory / "mutant{:05d}.sbif".format(counter[0]))
        with open(path, "wb") as handle:
            handle.write(data)
        return path

    yield write


def assert_agree(readers, path: str, what: str) -> None:
    """Every reader's verdict on `path` is the same; the file is removed when they agree (kept for a look if not)."""
    problem = disagreement(verdicts(readers, path))
    assert problem is None, "the readers disagree on {} ({}): {}".format(what, path, problem)
    os.remove(path)


def test_the_seeds_are_there():
    assert len([name for name in SEEDS if name.startswith("golden:")]) >= 34
    assert len(SEEDS) >= 100


def test_the_mutators_never_fail():
    """Thousands of mutation chains from every seed, drawn by a seeded generator as atheris draws them, each give
    bytes: a mutator that raised would end a long atheris run (two did, before this test)."""
    chooser = random.Random(18)
    for _ in range(1500):
        data = seed_bytes(chooser.choice(SEEDS))
        for _ in range(chooser.randint(1, 4)):
            data = mutate_file(data, Choices(chooser.randint))
        assert isinstance(data, bytes)


def choices_from(data) -> Choices:
    return Choices(lambda low, high: data.draw(st.integers(low, high)))


@FUZZ_SETTINGS
@given(data=st.data())
def test_byte_level_mutants(all_readers, write_mutant, data):
    """Bit flips, byte overwrites, inserts, deletes, truncation and header-length changes of real files."""
    name = data.draw(st.sampled_from(SEEDS), label="seed")
    choices = choices_from(data)
    mutated = seed_bytes(name)
    for _ in range(choices.integer(1, 3)):
        mutated = mutate_bytes(mutated, choices)
    assert_agree(all_readers, write_mutant(mutated), "a byte-level mutant of " + name)


@FUZZ_SETTINGS
@given(data=st.data())
def test_structure_aware_mutants(all_readers, write_mutant, data):
    """Header and document parsed, mutated as trees (keys, values, numbers, dtypes, shapes, graph nodes, nesting),
    written back with duplicates and raw tokens, sometimes with raw text edits."""
    name = data.draw(st.sampled_from(SEEDS), label="seed")
    choices = choices_from(data)
    mutated = seed_bytes(name)
    for _ in range(choices.integer(1, 3)):
        mutated = mutate_structure(mutated, choices) or mutate_bytes(mutated, choices)
    assert_agree(all_readers, write_mutant(mutated), "a structure-aware mutant of " + name)


@FUZZ_SETTINGS
@given(data=st.data())
def test_mixed_mutants(all_readers, write_mutant, data):
    """Both kinds in one file, as the coverage-guided harnesses mutate."""
    name = data.draw(st.sampled_from(SEEDS), label="seed")
    mutated = mutate_file(seed_bytes(name), choices_from(data))
    assert_agree(all_readers, write_mutant(mutated), "a mutant of " + name)


#: what a perm entry may be in a hostile file: axes in and out of range, negative, the integer literal -0 (written in
#: place of NEGATIVE_ZERO), beyond int64, bools, integral floats, strings, null, a nested list
NEGATIVE_ZERO = "negative zero"
PERM_ENTRIES = st.one_of(st.integers(-3, 5), st.sampled_from([True, False, 1.0, -0.0, NEGATIVE_ZERO, 2 ** 63,
                                                               -2 ** 63, 10 ** 30, "1", None, [0]]))


@FUZZ_SETTINGS
@given(perm=st.lists(PERM_ENTRIES, max_size=5), batched=st.booleans())
def test_transpose_perms_get_one_verdict(all_readers, write_mutant, perm, batched):
    """The valid base file with a transpose of its [B, 2] logits or its [3, 2] weight by a drawn perm: loaded by every
    reader or refused by all with one error class (spec/ops.md, transpose)."""
    metadata, tensors = read_container(os.path.join(SEED_DIRECTORIES["malformed"], "44_valid.sbif"))
    document = decode_document(metadata)
    document["graph"].append({"op": "transpose", "inputs": ["logits" if batched else "model/pi/w:0"],
                              "outputs": ["transposed"], "attrs": {"perm": perm}})
    metadata = encode_document(document)
    metadata[METADATA_KEY] = metadata[METADATA_KEY].replace(json.dumps(NEGATIVE_ZERO), "-0")
    path = write_mutant(b"")
    write_container(path, tensors, metadata)
    assert_agree(all_readers, path, "a transpose by perm {!r}".format(perm))


def test_the_handwritten_files_are_what_handwritten_py_writes():
    for relative, data in handwritten_files().items():
        with open(os.path.join(HERE, relative), "rb") as handle:
            assert handle.read() == data, "{} differs: rerun python -m tests.fuzz.handwritten".format(relative)


def test_the_committed_corpus_is_read_alike(all_readers):
    """Every input the coverage-guided fuzzers kept (tests/fuzz/corpus) gets one verdict from every reader."""
    assert len(CORPUS) >= 50, "tests/fuzz/corpus is missing (see tests/fuzz/README.md)"
    problems = []
    for path in CORPUS:
        problem = disagreement(verdicts(all_readers, path))
        if problem is not None:
            problems.append("{}: {}".format(os.path.basename(path), problem))
    assert not problems, "{} of {} corpus files are read differently:\n{}".format(
        len(problems), len(CORPUS), "\n".join(problems[:20]))


@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_open_disagreements_are_as_recorded(all_readers, name):
    """Each reproducer still gets the verdicts handwritten.py records: the day a reader's changes (a fix, or a
    regression), this fails; once every reader agrees, the file moves to the corpus (AGREED)."""
    recorded = REPRODUCERS[name][2]
    assert len(set(recorded.values())) > 1, "{}: the readers agree; move it to AGREED".format(name)
    results = verdicts(all_readers, os.path.join(HERE, "reproducers", name + ".sbif"))
    assert {reader: verdict.outcome for reader, verdict in results} == {
        reader: recorded[reader] for reader, _ in results}, disagreement(results)
