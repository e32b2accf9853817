"""SPEC section 6's rule as the live tests hold SB2's answers against an exported file's.

Float results are compared with `sbif.runtime.error_scales.predict_agreement` directly (a ratio, <= 1 passes);
this module adds what several tests share: the verdict on a `compare_with_sb2` report, and discrete actions
under the near-tie rule with the scores and scales the live exporter itself uses
(`sbif.runtime.error_scales.decision_scores`).
"""
from typing import Any, Dict

from sbif.compare import discrete_disagreements
from sbif.runtime.error_scales import ErrorScales, decision_scores


def assert_report_agrees(report: Dict[str, float]) -> None:
    """A `compare_with_sb2` (or `verify_export`) report passes: no discrete action differs outside a near-tie,
    and every float output is within its error scales (ratio <= 1; NaN fails)."""
    failing = {key: value for key, value in report.items()
               if (value != 0 if key == "action_mismatches" else not value <= 1.0)}
    assert report and not failing, report


def action_disagreements(policy: Any, expected: Any, actual: Any, observation: Any, state: Any = None,
                         mask: Any = None) -> int:
    """Rows where SB2's discrete `expected` actions and the policy's `actual` ones (both deterministic, for
    `observation`, `state`, `mask`) differ beyond a near-tie of the scores the modes were chosen from, under
    the error scales of the policy's file on those inputs (SPEC section 6)."""
    distribution = policy.document["predict"]["distribution"]
    feeds = policy.make_feeds(observation, state, mask)[0]
    values, scales = ErrorScales(policy.model).run(feeds, list(distribution["parameters"].values()))
    scores, score_scales = decision_scores(distribution, values, scales)
    return discrete_disagreements(expected, actual, scores, score_scales)
