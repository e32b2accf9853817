"""Coverage-guided differential fuzzing of the readers with atheris: each input is a whole .sbif file, read by the
Python reader (`SbifFile.read`, instrumented: the coverage that guides the search is the Python reader's) and, in the
same process, by the C reader (`sbif_model_load` through ctypes, `make -C runtimes/c shared`).

    .venv/bin/python -m tests.fuzz.atheris_readers -max_total_time=900 CORPUS_DIR tests/fuzz/corpus

Half the mutations are libFuzzer's own byte mutations, half tests/fuzz/mutations.py's (structure-aware where the
header parses), so the search reaches the document's checks rather than stopping at the JSON parser. A
disagreement (other verdicts, or a Python exception that is not an `SbifError`) does not stop the run: the input is
saved under $SBIF_FUZZ_FINDINGS (default .cache/fuzz/findings in the project), at most FINDINGS_PER_KIND per kind of
disagreement, and counted in its summary.txt (rewritten at each finding: libFuzzer ends the process without running
exit handlers). `make fuzz` runs it (tests/fuzz/README.md).
"""
from __future__ import annotations

import collections
import hashlib
import os
import random
import sys
from typing import Dict

import atheris

#: Run, not instrumented: atheris 3.0.0 keeps the result of every comparison it traces when that result is not a bool,
#: and the container's pre-parse scan compares NumPy arrays (`chunk == ord('"')`), about 17 KB an input, so a run
#: would reach its memory limit in minutes. The C reader's coverage of the same checks guides libFuzzer.
NOT_INSTRUMENTED = ["sbif.format.container"]

with atheris.instrument_imports(include=["sbif"], exclude=NOT_INSTRUMENTED):
    import sbif.format  # noqa: F401  (instrumented before anything else imports it)
    import sbif.ops  # noqa: F401

from .mutations import Choices, mutate_file  # noqa: E402
from .readers import CLibrary, disagreement, python_verdict  # noqa: E402

FINDINGS = os.environ.get("SBIF_FUZZ_FINDINGS", os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".cache", "fuzz", "findings"))
#: Inputs kept per kind of disagreement (the kind: each reader's outcome).
FINDINGS_PER_KIND = 5
INPUT_PATH = "/dev/shm/sbif-fuzz-atheris-{}.sbif".format(os.getpid())

c_reader = CLibrary()
found: Dict[str, int] = collections.Counter()


def test_one_input(data: bytes) -> None:
    """Both readers on one file; a disagreement is saved and counted."""
    with open(INPUT_PATH, "wb") as handle:
        handle.write(data)
    results = [("python", python_verdict(INPUT_PATH)), ("c", c_reader.verdict(INPUT_PATH))]
    os.remove(INPUT_PATH)
    problem = disagreement(results)
    if problem is None:
        return
    kind = " / ".join("{} {}".format(name, verdict.outcome) for name, verdict in results)
    found[kind] += 1
    os.makedirs(FINDINGS, exist_ok=True)
    if found[kind] <= FINDINGS_PER_KIND:
        name = hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(FINDINGS, name + ".sbif"), "wb") as handle:
            handle.write(data)
        with open(os.path.join(FINDINGS, name + ".txt"), "w", encoding="utf-8") as handle:
            handle.write(problem.replace(INPUT_PATH, "FILE") + "\n")
        print("disagreement ({}): {}".format(kind, name), file=sys.stderr)
    with open(os.path.join(FINDINGS, "summary.txt"), "w", encoding="utf-8") as handle:
        handle.write("".join("{:8d}  {}\n".format(count, what) for what, count in sorted(found.items())))


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's byte mutations or ours (structure-aware), one or the other at random."""
    chooser = random.Random(seed)
    if chooser.randrange(2):
        return atheris.Mutate(data, max_size)
    return mutate_file(data, Choices(chooser.randint))[:max_size]


#: What libFuzzer re-runs for -merge=1 and -fork (it execs argv[0], and a module's argv[0] is not executable).
RELAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "atheris-readers.sh")


def main() -> None:
    os.environ["SBIF_FUZZ_PYTHON"] = sys.executable
    atheris.Setup([RELAUNCHER] + sys.argv[1:], test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
