"""`python -m conformance ARGS` is `sbif conformance ARGS`, errors reported the same way (one line, exit 1)."""
import sys

from sbif.cli import main

sys.exit(main(["conformance"] + sys.argv[1:]))
