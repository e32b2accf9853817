"""Run checks: send each probe to the runtime under test, compare with the oracle's answer, and report.

`run_suite` takes *sources* of checks — models planned against an oracle (`OracleSource`: SB2 live, or the
NumPy reference) or golden packs (`conformance.golden.GoldenSource`) — and returns a `Report`: one
`CheckResult` per (model, check), with the worst error and where it happened, known failures applied
(a known failure that passes is reported as `fixed`, and fails the run), and optionally a `.sbifcase` file for
every failure. While a `CheckProgress` is open, the checks run report to its progress line.
"""
from __future__ import annotations

import fnmatch
import itertools
import json
import os
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from sbif.progress import Progress

from .checks import CHECKS, Config, Probe, iterate
from .models import ModelInfo
from .protocol import Answer, Runtime, load_outcome
from .scales import ReferenceScales
from .rules import UNDETERMINED_REASONS, Comparison, compare, comparison_inputs, refusal_comparison

#: statuses of a check; `fail`, `error` and `fixed` make the run fail
STATUSES = ("pass", "fail", "skip", "error", "known_failure", "fixed")
FAILING = ("fail", "error", "fixed")
OP_VECTORS_MODEL = "(op vectors)"
MALFORMED_MODEL = "(malformed files)"


class CheckResult:
    """The outcome of one check on one model."""

    def __init__(self, model: str, check: str, status: str, message: str = "", probes: int = 0,
                 worst: Optional[Dict[str, Any]] = None, seconds: float = 0.0):
        self.model, self.check, self.status, self.message = model, check, status, message
        self.probes, self.worst, self.seconds = probes, worst or {}, seconds
        self.failure: Optional[Dict[str, Any]] = None  # the failing probe, for case files
        self.case_file: Optional[str] = None

    @property
    def key(self) -> str:
        return "{}::{}".format(self.model, self.check)

    def as_dict(self) -> Dict[str, Any]:
        result = {"model": self.model, "check": self.check, "status": self.status, "probes": self.probes,
                  "seconds": round(self.seconds, 3)}
        if self.message:
            result["message"] = self.message
        if self.worst:
            result["worst"] = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                               for k, v in self.worst.items()}
        if self.case_file:
            result["case_file"] = self.case_file
        return result


class Report:
    def __init__(self, runtime: str, oracle: str, results: List[CheckResult]):
        self.runtime, self.oracle, self.results = runtime, oracle, results

    def counts(self) -> Dict[str, int]:
        counts = {status: 0 for status in STATUSES}
        for result in self.results:
            counts[result.status] += 1
        return counts

    @property
    def ok(self) -> bool:
        counts = self.counts()
        return not any(counts[status] for status in FAILING)

    def as_dict(self) -> Dict[str, Any]:
        return {"runtime": self.runtime, "oracle": self.oracle, "ok": self.ok, "summary": self.counts(),
                "results": [r.as_dict() for r in self.results]}

    def render(self) -> str:
        rows = [["model", "check", "result", "probes", "worst error", "where"]]
        for r in self.results:
            failed = r.status in ("fail", "known_failure")
            where = r.message if r.status in ("skip", "error") or not r.worst else _where(r.worst, failed)
            if r.status == "pass" and r.worst and r.message:  # what was not compared, and why
                where += "; " + r.message
            error_text = _error_text(r.worst, failed)
            rows.append([r.model, r.check, r.status.upper() if r.status in ("fail", "fixed", "error") else r.status,
                         str(r.probes), error_text, where])
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = ["runtime: {}".format(self.runtime), "oracle:  {}".format(self.oracle), ""]
        for row in rows:
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths)) + "  " + row[5])
        counts = self.counts()
        lines.append("")
        lines.append("{} checks: {} passed, {} failed, {} skipped, {} errors, {} known failures, {} fixed".format(
            len(self.results), counts["pass"], counts["fail"], counts["skip"], counts["error"],
            counts["known_failure"], counts["fixed"]))
        for r in self.results:
            if r.case_file:
                lines.append("replay {}: sbif conformance replay {}".format(r.key, r.case_file))
        return "\n".join(line.rstrip() for line in lines)


def _where(worst: Mapping[str, Any], failed: bool) -> str:
    text = " ".join(str(worst[key]) for key in ("output", "where") if worst.get(key))
    if worst.get("probe"):
        text += " ({})".format(worst["probe"])
    if failed and worst.get("detail"):
        text += ": " + worst["detail"]
    return text.strip()


def _error_text(worst: Mapping[str, Any], failed: bool) -> str:
    error = worst.get("error")
    if error is None:
        return "-"
    kind = worst.get("kind")
    if kind in ("errored", "crashed", "timeout"):
        return kind
    if not np.isfinite(error):
        return "inf"
    if kind in ("discrete", "exact") and failed:
        return "{:d} rows".format(int(error)) if kind == "discrete" else "{:d} values".format(int(error))
    if not np.isfinite(error):
        return "inf"
    if kind == "ulp":
        return "{:d} ULP".format(int(error))
    return "{:.2g}".format(error)


# -- sources of checks ---------------------------------------------------------------------------------------------
class Source:
    """Yields (model name, ModelInfo or None, check name, plan or skip reason, oracle answer function)."""

    description = ""

    def items(self, checks: Sequence[str], config: Config) -> Iterator[Tuple[str, Optional[ModelInfo], str, Any]]:
        raise NotImplementedError

    def answer(self, probe: Probe) -> Answer:
        raise NotImplementedError


class OracleSource(Source):
    """Model files planned here and answered by an oracle runtime (SB2 live, or the NumPy reference)."""

    def __init__(self, models: Sequence[str], oracle: Runtime, vectors_dir: Optional[str] = None):
        self.models, self.oracle, self.vectors_dir = list(models), oracle, vectors_dir
        self.description = oracle.name

    def items(self, checks: Sequence[str], config: Config):
        if "op_vectors" in checks:
            plan = CHECKS["op_vectors"].plan(None, np.random.default_rng(config.seed), config, self.vectors_dir)
            yield OP_VECTORS_MODEL, None, "op_vectors", plan
        for path in self.models:
            name = os.path.basename(path)
            try:
                info = ModelInfo(path)
            except Exception as exc:  # an unreadable model file is reported, not fatal
                for check in checks:
                    if not CHECKS[check].model_free:
                        yield name, None, check, "error: cannot read the model: {}".format(exc)
                continue
            for check in checks:
                if CHECKS[check].model_free:
                    continue
                reason = CHECKS[check].not_applicable(info)
                if reason:
                    yield name, info, check, "skip: not applicable: " + reason
                    continue
                if not self.oracle.supports(CHECKS[check].feature):
                    yield name, info, check, "skip: the oracle ({}) has no '{}' feature".format(
                        self.oracle.name, CHECKS[check].feature)
                    continue
                seed = config.seed + _stable_hash(name + check)
                yield name, info, check, CHECKS[check].plan(info, np.random.default_rng(seed), config)

    def answer(self, probe: Probe) -> Answer:
        return self.oracle.request(probe.request)


def corpus_items(checks: Sequence[str], config: Config) -> Iterator[Tuple[str, None, str, Any]]:
    """The reader-refusal check: model-free, and its expected answers ship with the corpus, so it runs with any
    source (run_suite runs it once)."""
    if "reader_refusal" in checks:
        plan = CHECKS["reader_refusal"].plan(None, np.random.default_rng(config.seed), config)
        yield MALFORMED_MODEL, None, "reader_refusal", plan


def _stable_hash(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode("utf-8")) & 0xFFFF


# -- running ------------------------------------------------------------------------------------------------------
class KnownFailures:
    """Patterns `MODEL::CHECK` (fnmatch globs; a line may end with `# reason`) that are expected to fail."""

    def __init__(self, patterns: Iterable[str] = ()):
        self.patterns = [p for p in patterns if p]

    @classmethod
    def read(cls, path: str) -> "KnownFailures":
        patterns = []
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.split("#", 1)[0].strip()
                if line:
                    patterns.append(line)
        return cls(patterns)

    def match(self, key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, p) or p == key for p in self.patterns)


def selected(key: str, select: Sequence[str], skip: Sequence[str]) -> bool:
    """-k: a key is run if it contains (or glob-matches) any selection; --skip removes matching keys."""
    def matches(pattern: str) -> bool:
        return pattern in key or fnmatch.fnmatchcase(key, pattern)

    if select and not any(matches(p) for p in select):
        return False
    return not any(matches(p) for p in skip)


def run_suite(sources: Sequence[Source], runtime: Runtime, checks: Optional[Sequence[str]] = None,
              config: Optional[Config] = None, select: Sequence[str] = (), skip: Sequence[str] = (),
              known: Optional[KnownFailures] = None, cases_dir: Optional[str] = None,
              stop_at_first_failure: bool = False) -> Report:
    """Run every selected check of every source (planned first, so an open `CheckProgress` knows how many)."""
    checks = list(checks or CHECKS)
    config = config or Config()
    known = known or KnownFailures()
    scales = ReferenceScales()  # each model loaded once for all its checks, not once per check
    for watcher in _watchers:
        watcher.planning()
    planned = []
    done = set()
    for source in sources:
        for model, info, check, plan in itertools.chain(corpus_items(checks, config), source.items(checks, config)):
            key = "{}::{}".format(model, check)
            if not selected(key, select, skip) or (CHECKS[check].model_free and key in done):
                continue  # model-free checks (op vectors) run once, whatever the number of sources
            done.add(key)
            planned.append((source, model, info, check, plan))
    for watcher in _watchers:
        watcher.expect(len(planned))
    results: List[CheckResult] = []
    for source, model, info, check, plan in planned:
        key = "{}::{}".format(model, check)
        _tell_started(key)
        if isinstance(plan, str):
            status, message = plan.split(": ", 1)
            result = CheckResult(model, check, status, message)
        else:
            result = _check_outcome(model, check, plan, source.answer, runtime, info,
                                    stop_at_first_failure=stop_at_first_failure, scales=scales)
        if known.match(key):
            if result.status == "fail":
                result.status = "known_failure"
            elif result.status == "pass":
                result.status = "fixed"
                result.message = "listed as a known failure but passes now: remove it from the list"
        if cases_dir and result.failure is not None and result.status in ("fail", "known_failure"):
            from .cases import write_case

            result.case_file = write_case(cases_dir, result, runtime.name)
        results.append(result)
        _tell_finished(result)
    oracle = " + ".join(s.description for s in sources)
    return Report(runtime.name, oracle, results)


class CheckProgress:
    """The progress line (`sbif.progress`) of checks being run: checks done, of how many when `run_suite` plans
    them, failures so far (statuses that fail a run) and the check running now. While it is open (a `with` block)
    every `run_suite` and `run_check` of this process reports to it, so the Hypothesis loop of
    `conformance.generate.fuzz`, which calls `run_check`, is followed without a parameter for it. `after_failure`
    says what happens once a check has failed (fuzz: shrinking it)."""

    def __init__(self, what: str, total: Optional[int] = None, after_failure: str = ""):
        self.line = Progress(what, total, unit="checks")
        self.failing = 0
        self.after_failure = after_failure

    def __enter__(self) -> "CheckProgress":
        _watchers.append(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _watchers.remove(self)
        self.line.close()

    def planning(self) -> None:
        """run_suite reads its sources (every pack and model, whatever -k selects) before the first check."""
        self.line.doing("planning the checks (reading the packs and models)")

    def expect(self, total: int) -> None:
        """`total` checks are planned."""
        self.line.total = total

    def started(self, key: str) -> None:
        self._show(key)

    def finished(self, result: CheckResult) -> None:
        self.failing += result.status in FAILING
        self.line.advance()
        self._show(result.key)

    def _show(self, key: str) -> None:
        parts = ["{} failing".format(self.failing)]
        if self.failing and self.after_failure:
            parts.append(self.after_failure)
        self.line.doing(", ".join(parts + [key]))


#: the open CheckProgress lines, told of every check (see CheckProgress)
_watchers: List[CheckProgress] = []


def _tell_started(key: str) -> None:
    for watcher in _watchers:
        watcher.started(key)


def _tell_finished(result: CheckResult) -> None:
    for watcher in _watchers:
        watcher.finished(result)


def run_check(model: str, check: str, plan: Any, answer: Callable[[Probe], Answer], runtime: Runtime,
              info: Optional[ModelInfo], stop_at_first_failure: bool = False,
              scales: Optional[ReferenceScales] = None) -> CheckResult:
    """Drive one plan against the runtime (`_check_outcome`), told to any open `CheckProgress`."""
    _tell_started("{}::{}".format(model, check))
    result = _check_outcome(model, check, plan, answer, runtime, info, stop_at_first_failure, scales)
    _tell_finished(result)
    return result


def _check_outcome(model: str, check: str, plan: Any, answer: Callable[[Probe], Answer], runtime: Runtime,
                   info: Optional[ModelInfo], stop_at_first_failure: bool = False,
                   scales: Optional[ReferenceScales] = None) -> CheckResult:
    """Drive one plan against the runtime; the first failing probe is kept for a case file. The expected
    answers' error scales come with the probe (golden packs, case files) or from `scales` (the reference)."""
    start = time.perf_counter()
    scales = scales or ReferenceScales()
    excluded = 0
    undetermined: Dict[str, str] = {}  # node -> why its values are not determined, for the report
    feature = CHECKS[check].feature if check in CHECKS else "run"
    if not runtime.supports(feature):
        return CheckResult(model, check, "skip", "the runtime does not declare the '{}' feature".format(feature))
    probes = 0
    compared = 0
    not_compared: Dict[str, str] = {}
    largest: Dict[str, Any] = {}  # the largest error among passing float comparisons
    failure: Optional[Dict[str, Any]] = None
    skipped = ""
    for probe, expected in iterate(plan, answer):
        if not expected.ok:
            status = "skip" if expected.status == "skipped" else "error"
            return CheckResult(model, check, status, "oracle {}: {}".format(expected.status, expected.message),
                               probes, _summary(failure, largest), time.perf_counter() - start)
        missing_ops = _missing_ops(probe, runtime, info)
        if missing_ops:
            skipped = skipped or "the runtime does not implement op(s) {}".format(", ".join(missing_ops))
            continue
        actual = runtime.request(probe.request)
        if probe.request.get("type") == "load":  # compared by its outcome: loaded, or the refusal's error class
            actual = load_outcome(actual)
        if actual.status == "skipped":
            if probe.request.get("type") == "op":
                skipped = skipped or actual.message
                continue
            return CheckResult(model, check, "skip", "runtime skipped: {}".format(actual.message), probes,
                               _summary(failure, largest), time.perf_counter() - start)
        probes += 1
        expected_scales, reasons = ((probe.scales, probe.undetermined or {}) if probe.scales is not None
                                    else scales.for_request(probe.request))
        if not actual.ok:
            if failure is None:
                failure = {"output": "", "error": float("inf"), "where": "", "probe": probe.label,
                           "detail": "runtime {}: {}".format(actual.status, actual.message), "kind": actual.status,
                           "probe_object": probe, "expected": expected, "actual": actual,
                           "scales": expected_scales}
            if stop_at_first_failure:
                break
            continue
        for name, rule in probe.rules.items():
            if name not in expected.outputs:
                not_compared[name] = expected.missing.get(name, "the oracle did not answer it")
                continue
            compared += 1
            if name not in actual.outputs:
                comparison = Comparison(False, float("inf"), detail="the runtime did not return this output")
            elif rule["rule"] == "refusal":
                comparison = refusal_comparison(rule, expected.outputs[name], actual.outputs[name])
            else:
                comparison = compare(rule, expected.outputs[name], actual.outputs[name], expected.outputs,
                                     comparison_inputs(probe.request), (expected_scales or {}).get(name),
                                     expected_scales)
                excluded += comparison.excluded
                if comparison.excluded:
                    undetermined.update(reasons)
            where = comparison.where
            if probe.rows and where.startswith("["):
                row = int(where[1:].split(",")[0].rstrip("]"))
                if row < len(probe.rows):
                    where += " = {}".format(probe.rows[row])
            elif probe.rows and where.startswith("row "):
                row = int(where[4:].split()[0])
                if row < len(probe.rows):
                    where += " = {}".format(probe.rows[row])
            outcome = {"output": name, "error": comparison.error, "where": where, "probe": probe.label,
                       "detail": comparison.detail, "kind": rule["rule"]}
            if not comparison.ok:
                if failure is None:
                    failure = dict(outcome, probe_object=probe, expected=expected, actual=actual,
                                   scales=expected_scales)
            elif rule["rule"] in ("float", "ulp") and comparison.error > largest.get("error", -1.0):
                largest = outcome
        if failure is not None and stop_at_first_failure:
            break
    seconds = time.perf_counter() - start
    if failure is not None:
        result = CheckResult(model, check, "fail", "", probes, _summary(failure, largest), seconds)
        result.failure = failure
        return result
    if probes == 0 or compared == 0:
        reason = skipped or "; ".join("{}: {}".format(k, v) for k, v in sorted(not_compared.items()))
        return CheckResult(model, check, "skip", "nothing to compare ({})".format(reason or "no probes"), probes,
                           {}, seconds)
    result = CheckResult(model, check, "pass", "", probes, largest, seconds)
    notes = (["some probes skipped: " + skipped] if skipped else []) + (
        ["not compared: " + ", ".join(sorted(not_compared))] if not_compared else []) + (
        ["{} element(s) left out as not determined by float32 evaluation (SPEC section 6.3): {}".format(
            excluded, "; ".join("{}: {}".format(node, reason) for node, reason in sorted(undetermined.items()))
            or UNDETERMINED_REASONS)] if excluded else [])
    result.message = "; ".join(notes)
    return result


def _missing_ops(probe: Probe, runtime: Runtime, info: Optional[ModelInfo]) -> List[str]:
    """Ops a probe needs that the runtime's hello does not list (a runtime with `ops: null` is asked anyway)."""
    if runtime.ops is None:
        return []
    request = probe.request
    if request.get("type") == "op":
        needed = [request["op"]]
    elif info is None:
        return []
    elif request.get("type") == "run":
        needed = info.ops_for(request["outputs"])
    else:
        needed = info.ops
    return sorted(set(needed) - set(runtime.ops))


def _summary(failure: Optional[Dict[str, Any]], largest: Dict[str, Any]) -> Dict[str, Any]:
    if failure is None:
        return dict(largest)
    return {key: failure[key] for key in ("output", "error", "where", "probe", "detail", "kind")}


def report_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, allow_nan=False)
