"""`python -m conformance ...` is `sbif conformance ...`."""
import sys

from .cli import main

sys.exit(main())
