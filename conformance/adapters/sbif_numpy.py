"""The NumPy reference runtime as a conformance-protocol executable.

    python -m conformance.adapters.sbif_numpy                    # the reference runtime
    python -m conformance.adapters.sbif_numpy --backend numba    # SBIF's numba backend
    python -m conformance.adapters.sbif_numpy --mutant NAME      # a deliberately broken copy (conformance.mutants)

It reads one JSON request per line on stdin and writes one answer per line on stdout
(`spec/conformance-protocol.md`); diagnostics go to stderr.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ..protocol import PythonRuntime, serve


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.adapters.sbif_numpy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mutant", help="serve this broken runtime instead (see `sbif conformance mutants`)")
    parser.add_argument("--backend", choices=("numpy", "numba"), default="numpy",
                        help="the executor of `sbif.load` (default: numpy, the reference)")
    args = parser.parse_args(argv)
    if args.mutant:
        from ..mutants import mutant_runtime

        runtime = mutant_runtime(args.mutant)
    elif args.backend == "numba":
        import sbif

        runtime = PythonRuntime(lambda path: sbif.load(path, backend="numba"), name="sbif-numba")
    else:
        runtime = PythonRuntime()
    return serve(runtime, sys.stdin, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
