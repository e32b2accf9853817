#!/usr/bin/env bash
# The coverage-guided fuzzers of the readers, one after the other (one process at a time: -fork=1 runs one job):
#   1. libFuzzer on the C reader under ASan+UBSan (runtimes/c/build/fuzz-reader);
#   2. atheris on the Python reader, differential against the C reader in-process (tests/fuzz/atheris_readers.py).
# `make fuzz` installs what they need and calls this. Each runs FUZZ_SECONDS (default 300) from the committed corpus
# (tests/fuzz/corpus), the reader-refusal corpus and the small golden exports, into a working corpus under
# FUZZ_WORK (default .cache/fuzz); the last lines say the executions, coverage (cov: edges, ft: features) and corpus
# size, crashes, and the disagreements found. The exit status is 1 when either found a crash or a disagreement.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
FUZZ_SECONDS=${FUZZ_SECONDS:-300}
FUZZ_WORK=${FUZZ_WORK:-.cache/fuzz}
PYTHON=${PYTHON:-.venv/bin/python}
#: Seeds larger than this are left out (the CNN exports): libFuzzer's inputs stay at most this long.
MAX_LEN=32768
WORK=$(realpath -m "$FUZZ_WORK")
mkdir -p "$WORK/seeds" "$WORK/c" "$WORK/python" "$WORK/c-crashes"
cp conformance/malformed/*.sbif "$WORK/seeds/"
for seed in conformance/golden/*.sbif; do
    if [ "$(stat -c %s "$seed")" -le "$MAX_LEN" ]; then cp "$seed" "$WORK/seeds/golden_$(basename "$seed")"; fi
done
status=0

echo "== libFuzzer: the C reader (sbif_model_load) under ASan+UBSan, ${FUZZ_SECONDS} s"
(cd runtimes/c && build/fuzz-reader -dict=fuzz/sbif.dict -max_len=$MAX_LEN -timeout=10 -rss_limit_mb=2048 \
    -max_total_time="$FUZZ_SECONDS" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
    -artifact_prefix="$WORK/c-crashes/" "$WORK/c" "$ROOT/tests/fuzz/corpus" "$WORK/seeds") > "$WORK/c.log" 2>&1 \
    || status=1
grep -E "^#[0-9]+: cov:" "$WORK/c.log" | tail -1 || true
crashes=$(find "$WORK/c-crashes" -type f | wc -l)
echo "libFuzzer: $(find "$WORK/c" -type f | wc -l) corpus files, $crashes crash/timeout/oom inputs in $WORK/c-crashes (log: $WORK/c.log)"
[ "$crashes" -eq 0 ] || status=1

echo "== atheris: the Python reader, against the C reader in-process, ${FUZZ_SECONDS} s"
rm -rf "$WORK/findings"
SBIF_FUZZ_FINDINGS="$WORK/findings" "$PYTHON" -m tests.fuzz.atheris_readers -max_len=$MAX_LEN -timeout=30 \
    -rss_limit_mb=2048 -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
    -artifact_prefix="$WORK/python-" "$WORK/python" tests/fuzz/corpus "$WORK/seeds" > "$WORK/python.log" 2>&1 \
    || status=1
grep -E "DONE|stat::number_of_executed_units" "$WORK/python.log" || true
echo "atheris: $(find "$WORK/python" -type f | wc -l) corpus files (log: $WORK/python.log)"
if [ -s "$WORK/findings/summary.txt" ]; then
    echo "disagreements between the Python and the C reader (inputs in $WORK/findings):"
    cat "$WORK/findings/summary.txt"
    status=1
else
    echo "disagreements between the Python and the C reader: none"
fi
exit $status
