"""The SBIF conformance suite: check any runtime, in any language, against SB2's own predictions.

A runtime joins as a Python object or as any executable speaking the JSON-lines protocol of
`spec/conformance-protocol.md` (`conformance.protocol`). Expected outputs come from an oracle: Stable-Baselines
itself (`conformance.adapters.sb2_live`, the SB2 environment), golden packs recorded from it
(`spec/golden-packs.md`, `conformance.golden`), or the NumPy reference runtime. Checks, tolerances and reports
are in `conformance.checks`, `conformance.rules` and `conformance.runner`; Hypothesis generation and replayable
case files in `conformance.generate` and `conformance.cases`; deliberately broken runtimes that the suite must
catch in `conformance.mutants`. The command line is `sbif conformance ...` (`conformance.cli`).
"""
__version__ = "0.1.0"
