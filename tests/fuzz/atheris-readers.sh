#!/bin/sh
# What libFuzzer re-runs (its argv[0]) for -merge=1 and -fork: the atheris harness as a module, with the Python that
# started it (atheris_readers.main sets SBIF_FUZZ_PYTHON), from the same working directory.
exec "${SBIF_FUZZ_PYTHON:-python3}" -m tests.fuzz.atheris_readers "$@"
