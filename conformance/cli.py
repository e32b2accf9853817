"""`sbif conformance ...` (also `python -m conformance ...`): run the suite, replay cases, record, fuzz.

    sbif conformance run                                    (the NumPy reference on everything shipped)
    sbif conformance run --runtime "node runtimes/js/bin/sbif-protocol.js"   (any runtime, on everything shipped)
    sbif conformance run --runtime numpy --oracle live --models model.sbif        (SB2 found next to the file)
    sbif conformance run --runtime numba --oracle sb3-live --models model.sbif    (SB3 found next to the file)
    sbif conformance run --runtime CMD --models *.sbif --json -k deterministic --known-failures known.txt
    sbif conformance replay failures/model--sampling.sbifcase --runtime CMD
    sbif conformance fuzz --runtime CMD --families mlp lstm --examples 200 --case found.sbifcase
    sbif conformance record model.zip                           (the SB2 environment; an SB3 save: .venv)
    sbif conformance mutants                                                      (the suite's self-test)

fuzz and mutants need Hypothesis: pip install 'sbif[conformance]'.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

from sbif.errors import UnsupportedError, preview
from sbif.progress import Progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: what installs the suite's optional dependencies (Hypothesis), for the errors that ask for it
CONFORMANCE_EXTRA = "pip install 'sbif[conformance]'"

RUN_EXAMPLES = """examples:
  sbif conformance run
      the NumPy reference runtime on everything the suite ships: the golden packs recorded from SB2 (with
      the known failures listed beside them) and TensorFlow's op vectors
  sbif conformance run --runtime "node runtimes/js/bin/sbif-protocol.js"
      the same for any runtime speaking spec/conformance-protocol.md
  sbif conformance run --runtime CMD --golden packs/ --known-failures known.txt
      your own packs (sbif conformance record) and known failures
  sbif conformance run --runtime CMD --golden --models model.sbif
      the shipped packs, and model.sbif against the NumPy reference runtime
  sbif conformance run --runtime CMD --oracle live --models model.sbif
      model.sbif against SB2 itself (the SB2 environment)
  sbif conformance run --runtime CMD --oracle sb3-live --models model.sbif --sources saves/
      model.sbif, exported from an SB3 or sb3-contrib save, against SB3 itself (an environment with SB3, such as
      .venv): the save is found by its sha256 next to the file or under --sources
"""


def add_conformance_command(commands: Any) -> argparse.ArgumentParser:
    """Add `conformance` (with its own subcommands) to an argparse subparsers object, e.g. sbif's."""
    parser = commands.add_parser("conformance", help="check a runtime against SB2 (the conformance suite)",
                                 description="The SBIF conformance suite: check any runtime, in any language, "
                                             "against SB2's own predictions.", epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    build(parser)
    parser.set_defaults(handler=dispatch)
    return parser


def build(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from .checks import CHECKS

    sub = parser.add_subparsers(dest="conformance_command", metavar="SUBCOMMAND")

    run = sub.add_parser("run", help="run the checks on a runtime and report", epilog=RUN_EXAMPLES,
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Run the named checks on a runtime: expected answers come from golden packs "
                                     "(--golden; by default the packs shipped with the suite), or from an oracle "
                                     "(--oracle live: SB2; sb3-live: SB3 and sb3-contrib; numpy: the reference "
                                     "runtime) on model files (--models).")
    _runtime_arguments(run)
    run.add_argument("--golden", nargs="*", metavar="PACK_OR_DIR",
                     help="golden packs (.golden files or directories); with no path, the packs shipped with the "
                          "suite, which are also the default when --models is not given")
    run.add_argument("--models", nargs="+", metavar="FILE", help=".sbif files to plan checks for")
    run.add_argument("--oracle", default="numpy", help="for --models: 'numpy' (the reference runtime, default), "
                                                        "'live' (Stable-Baselines 2), 'sb3-live' (Stable-Baselines3 "
                                                        "and sb3-contrib, in this Python), or a command line")
    run.add_argument("--sources", nargs="*", default=[],
                     help="live oracles: where the SB2 files or SB3 saves are (beside the .sbif file by default)")
    run.add_argument("--sb2-python", default=None, help="live oracle: the SB2 environment's python "
                                                        "(default: $SBIF_SB2_PYTHON or .venv-sb2/bin/python)")
    run.add_argument("--checks", nargs="+", choices=sorted(CHECKS), help="checks to run (default: all)")
    run.add_argument("-k", dest="select", action="append", default=[], metavar="PATTERN",
                     help="run only MODEL::CHECK keys containing (or glob-matching) PATTERN; repeatable")
    run.add_argument("--skip", action="append", default=[], metavar="PATTERN", help="skip matching keys; repeatable")
    run.add_argument("--known-failures", metavar="FILE",
                     help="MODEL::CHECK globs expected to fail (one a line, '#' comments); one that passes is "
                          "reported as fixed and fails the run (default with the shipped packs: the list shipped "
                          "with them, conformance/known-failures.txt)")
    run.add_argument("--cases", metavar="DIR", help="write a replayable .sbifcase file for every failure here")
    run.add_argument("--seed", type=int, default=0, help="seed of the generated inputs (with --models)")
    run.add_argument("--batches", type=int, nargs="+", default=[1, 5, 32], help="batch sizes (with --models)")
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    run.set_defaults(conformance_handler=run_command)

    replay = sub.add_parser("replay", help="rerun a .sbifcase file on a runtime")
    replay.add_argument("case", help="the .sbifcase file")
    _runtime_arguments(replay)
    replay.add_argument("--model", help="use this model file instead of the one in the case")
    replay.set_defaults(conformance_handler=replay_command)

    fuzz = sub.add_parser("fuzz", help="Hypothesis-generated models and inputs against the reference runtime",
                          description="Hypothesis-generated models and inputs against the reference runtime (needs "
                                      "Hypothesis: {}).".format(CONFORMANCE_EXTRA))
    _runtime_arguments(fuzz)
    fuzz.add_argument("--families", nargs="+", help="model families to draw (default: all SBIF builds; 'ops' "
                                                    "for op vectors)")
    fuzz.add_argument("--checks", nargs="+", choices=sorted(CHECKS), help="checks to draw (default: all)")
    fuzz.add_argument("--examples", type=int, default=100, help="examples to try (default 100)")
    fuzz.add_argument("--profile", choices=["ci", "dev"], default="ci",
                      help="ci: derandomized (the same examples every run); dev: random")
    fuzz.add_argument("--no-shrink", action="store_true", help="report the first failure without shrinking it")
    fuzz.add_argument("--case", default="fuzz-failure.sbifcase", help="where to write the failing case")
    fuzz.set_defaults(conformance_handler=fuzz_command)

    record = sub.add_parser("record", help="record a golden pack with SB2 (SB2 environment) or SB3 (.venv)",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    from .record import build_parser as record_parser

    record_parser(record)
    record.set_defaults(conformance_handler=record_command)

    mutants = sub.add_parser("mutants", help="self-test: run the deliberately broken runtimes and show what "
                                             "catches them",
                             description="The suite's self-test: every deliberately broken runtime must be caught "
                                         "by its named check (needs Hypothesis: {}).".format(CONFORMANCE_EXTRA))
    mutants.add_argument("names", nargs="*", help="mutants to run (default: all)")
    mutants.add_argument("--list", action="store_true", help="only list them")
    mutants.add_argument("--examples", type=int, default=40, help="examples per mutant (default 40)")
    mutants.add_argument("--json", action="store_true")
    mutants.set_defaults(conformance_handler=mutants_command)

    checks = sub.add_parser("checks", help="list the named checks")
    checks.set_defaults(conformance_handler=checks_command)
    return parser


def _runtime_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", default="numpy",
                        help="'numpy' (the reference runtime, in-process), 'numba' (SBIF's compiled backend, "
                             "in-process) or the command line of a runtime speaking spec/conformance-protocol.md "
                             "(default: numpy)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")


def dispatch(args: argparse.Namespace) -> int:
    handler = getattr(args, "conformance_handler", None)
    if handler is None:
        print("usage: sbif conformance {run,replay,fuzz,record,mutants,checks} ... (see --help)", file=sys.stderr)
        return EXIT_USAGE
    return handler(args)


def _runtime(args: argparse.Namespace):
    from .protocol import ProtocolError, runtime_from_spec

    try:
        return runtime_from_spec(args.runtime, timeout=args.timeout)
    except ProtocolError as exc:
        raise SystemExit("sbif conformance: {}".format(exc))


def live_oracle(args: argparse.Namespace):
    """SB2 in-process when this interpreter has it, else the SB2 environment's python as a process."""
    try:
        import stable_baselines  # noqa: F401
        from .adapters.sb2_live import Sb2Runtime

        return Sb2Runtime(args.sources)
    except ImportError:
        pass
    from .protocol import ProcessRuntime

    python = args.sb2_python or os.environ.get("SBIF_SB2_PYTHON") or os.path.join(ROOT, ".venv-sb2", "bin", "python")
    if not os.path.exists(python):
        raise SystemExit("sbif conformance: the live oracle needs the SB2 environment; no python at {} (use "
                         "--sb2-python or SBIF_SB2_PYTHON)".format(python))
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    command = [python, "-m", "conformance.adapters.sb2_live"] + (["--sources"] + args.sources if args.sources else [])
    return ProcessRuntime(command, timeout=max(args.timeout, 120.0), env=env, cwd=ROOT)


def sb3_oracle(args: argparse.Namespace):
    """SB3 in-process; where this Python cannot import it, an oracle that skips every request saying why."""
    from .adapters.sb3_live import sb3_oracle_or_unavailable

    return sb3_oracle_or_unavailable(args.sources)


def _import_generate() -> Any:
    """`conformance.generate` (the Hypothesis fuzz loop), or a one-line error naming the extra that installs
    Hypothesis: the suite's one optional dependency."""
    try:
        from . import generate
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "hypothesis":
            raise
        raise UnsupportedError("this command needs Hypothesis, which is not installed: {}".format(
            CONFORMANCE_EXTRA)) from None
    return generate


def run_command(args: argparse.Namespace) -> int:
    from .checks import Config
    from .data import GOLDEN_PACKS, KNOWN_FAILURES, MissingDataError, shipped
    from .golden import GoldenSource
    from .runner import CheckProgress, KnownFailures, OracleSource, report_json, run_suite

    shipped_packs = args.golden == [] or (args.golden is None and not args.models)
    sources = []
    if args.golden is not None or shipped_packs:
        golden = [shipped(GOLDEN_PACKS)] if shipped_packs else args.golden
        packs = GoldenSource(golden)
        if not packs.packs:
            raise MissingDataError("no golden packs (*.golden) in {}".format(", ".join(golden)))
        sources.append(packs)
    known_failures = args.known_failures
    if known_failures is None and shipped_packs:
        known_failures = shipped(KNOWN_FAILURES)
    runtime = _runtime(args)
    oracle = None
    try:
        if args.models:
            if args.oracle == "live":
                oracle = live_oracle(args)
            elif args.oracle == "sb3-live":
                oracle = sb3_oracle(args)
            else:
                from .protocol import runtime_from_spec

                oracle = runtime_from_spec(args.oracle, timeout=args.timeout)
            sources.append(OracleSource(args.models, oracle))
        known = KnownFailures.read(known_failures) if known_failures else None
        with CheckProgress("conformance run"):
            report = run_suite(sources, runtime, args.checks, Config(batches=args.batches, seed=args.seed),
                               args.select, args.skip, known, args.cases)
    finally:
        runtime.close()
        if oracle is not None:
            oracle.close()
    print(report_json(report) if args.json else report.render())
    return EXIT_OK if report.ok else EXIT_FAILED


def replay_command(args: argparse.Namespace) -> int:
    from .cases import read_case, replay

    case = read_case(args.case)
    runtime = _runtime(args)
    try:
        result = replay(case, runtime, args.model)
    finally:
        runtime.close()
    print("case {} ({} on {}): {}".format(args.case, case["check"], case.get("model", {}).get("file_name", "-"),
                                          "passes now" if result.ok else "still fails"))
    for line in result.lines:
        print("  " + line)
    return EXIT_OK if result.ok else EXIT_FAILED


def fuzz_command(args: argparse.Namespace) -> int:
    from .models import FAMILIES, family_status
    from .protocol import PythonRuntime
    from .runner import CheckProgress

    generate = _import_generate()
    status = family_status()
    families = args.families or [f for f in FAMILIES if status.get(f) is None]
    unknown = [f for f in families if f not in generate.FAMILY_CHECKS]
    if unknown:
        print("sbif conformance fuzz: unknown families {} (known: {}, {})".format(
            unknown, ", ".join(FAMILIES), generate.OPS), file=sys.stderr)
        return EXIT_USAGE
    unbuildable = [f for f in families if f != generate.OPS and status.get(f)]
    for family in unbuildable:
        print("skipping family {}: {}".format(family, status[family]), file=sys.stderr)
    families = [f for f in families if f not in unbuildable]
    runtime = _runtime(args)
    try:
        with CheckProgress("conformance fuzz ({} examples at most)".format(args.examples),
                           after_failure="" if args.no_shrink else "shrinking it"):
            result = generate.fuzz(runtime, PythonRuntime(), families, args.checks, args.examples,
                                   profile="conformance-" + args.profile, shrink=not args.no_shrink,
                                   case_file=args.case)
    finally:
        runtime.close()
    if not result.caught:
        largest = result.largest
        print("{} examples: no failure; the largest difference was {:.3g} of what rounding allows{}".format(
            result.examples, largest["ratio"], " ({} {} {})".format(largest["family"], largest["check"],
                                                                     largest["output"]) if "family" in largest else ""))
        return EXIT_OK
    failure = result.failure or {}
    print("failure after {} examples: check {} on family {}: {} {} {}".format(
        result.first_failure_at, failure.get("check"), failure.get("family"), failure.get("output", ""),
        failure.get("where", ""), failure.get("detail", "")))
    if result.case_file:
        print("minimal case written to {} (rerun: sbif conformance replay {} --runtime ...)".format(
            result.case_file, result.case_file))
    return EXIT_FAILED


def record_command(args: argparse.Namespace) -> int:
    from sbif.export.sb3.save_file import is_sb3_save

    from .record import run

    if is_sb3_save(args.source):
        from .adapters.sb3_live import UnavailableOracle, sb3_oracle_or_unavailable

        oracle = sb3_oracle_or_unavailable()
        if isinstance(oracle, UnavailableOracle):
            print("sbif conformance record: {}".format(oracle.reason), file=sys.stderr)
            return EXIT_USAGE
        return run(args)
    try:
        import stable_baselines  # noqa: F401
    except ImportError:
        print("sbif conformance record: needs Stable-Baselines 2 (run it with the SB2 environment, "
              ".venv-sb2/bin/sbif)", file=sys.stderr)
        return EXIT_USAGE
    return run(args)


def mutants_command(args: argparse.Namespace) -> int:
    from .models import family_status
    from .mutants import MUTANTS
    from .protocol import PythonRuntime

    names = args.names or list(MUTANTS)
    unknown = [name for name in names if name not in MUTANTS]
    if unknown:
        raise UnsupportedError("no mutant named {} (--list shows them)".format(", ".join(
            preview(name) for name in unknown[:3])))
    if args.list:
        for name in names:
            mutant = MUTANTS[name]
            print("{:24s} {:20s} {}".format(name, mutant.check, mutant.description))
        return EXIT_OK
    fuzz = _import_generate().fuzz
    status = family_status()
    rows, missed = [], 0
    with Progress("conformance mutants", total=len(names), unit="mutants") as line:
        for name in names:
            line.doing("{} missed, {}".format(missed, name))
            mutant = MUTANTS[name]
            families = [f for f in mutant.families if f == "ops" or status.get(f) is None]
            if not families:
                rows.append({"mutant": name, "status": "skipped", "reason": "; ".join(
                    "{}: {}".format(f, status.get(f)) for f in mutant.families)})
                line.advance()
                continue
            result = fuzz(mutant.runtime(), PythonRuntime(), families, [mutant.check], args.examples,
                          shrink=False, constraints=mutant.constraints)
            caught = result.caught and (result.failure or {}).get("check") == mutant.check
            missed += not caught
            failure = result.failure or {}
            rows.append({"mutant": name, "status": "caught" if caught else "MISSED", "check": mutant.check,
                         "examples": result.first_failure_at, "families": families,
                         "output": failure.get("output"), "kind": failure.get("kind"),
                         "error": _finite_or_none(failure.get("error")), "detail": failure.get("detail")})
            line.advance()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            if row["status"] == "skipped":
                print("{:24s} skipped: {}".format(row["mutant"], row["reason"]))
            else:
                size = "{:.3g}x the limit".format(row["error"]) if row.get("kind") == "float" and row.get("error") \
                    else ""
                print("{:24s} {:7s} by {:20s} after {} example(s): {} {} {}".format(
                    row["mutant"], row["status"], row["check"], row["examples"], row.get("output") or "", size,
                    (row.get("detail") or "")[:70]))
    return EXIT_OK if missed == 0 else EXIT_FAILED


def _finite_or_none(value: Any) -> Any:
    """A number for JSON (NaN and infinity are not JSON): None when it is not finite."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def checks_command(args: argparse.Namespace) -> int:
    from .checks import CHECKS

    for name, check in CHECKS.items():
        print("{:20s} needs '{}'  {}".format(name, check.feature, check.description))
    return EXIT_OK
