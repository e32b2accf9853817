"""Live tests need Stable-Baselines 2; outside its environment they are skipped, unless SBIF_REQUIRE_SB2=1
(set by `make test` in the legacy environment) turns a missing SB2 into a failure. Every test here is marked
`live` (pyproject.toml), so `-m live` / `-m "not live"` pick them as a whole."""
import os
import pathlib

import pytest

try:
    import stable_baselines  # noqa: F401
    HAVE_SB2 = True
except ImportError:
    HAVE_SB2 = False

if not HAVE_SB2 and os.environ.get("SBIF_REQUIRE_SB2") == "1":
    raise RuntimeError("SBIF_REQUIRE_SB2=1 but stable_baselines cannot be imported")

collect_ignore_glob = [] if HAVE_SB2 else ["test_*.py"]
HERE = pathlib.Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    """Mark the tests of this directory `live` (the hook sees every collected test: the others are left alone)."""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.live)


def pytest_report_header(config):
    return "live SB2 tests: {}".format("enabled" if HAVE_SB2 else "skipped (stable_baselines not installed)")


def pytest_terminal_summary(terminalreporter):
    """test_matrix's table: combinations passed per family and the worst ratio |SB2 - SBIF| / (8 error scales)
    over their float outputs (SPEC section 6: <= 1 passes)."""
    families = {}
    for report in terminalreporter.stats.get("passed", []):
        properties = dict(getattr(report, "user_properties", ()))
        if "family" in properties and report.when == "call":
            count, worst = families.get(properties["family"], (0, 0.0))
            families[properties["family"]] = (count + 1, max(worst, properties.get("max_ratio", 0.0)))
    if families:
        terminalreporter.section("SB2 combinations exported and matched (test_matrix)")
        terminalreporter.write_line("{:<14}{:>8}{:>16}".format("family", "passed", "worst ratio"))
        for family, (count, worst) in sorted(families.items()):
            terminalreporter.write_line("{:<14}{:>8}{:>16.3f}".format(family, count, worst))
        terminalreporter.write_line("{:<14}{:>8}".format("total", sum(c for c, _ in families.values())))
