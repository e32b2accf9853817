"""Record golden packs with Stable-Baselines itself: SB2 files in the SB2 environment (`.venv-sb2`), SB3 and
sb3-contrib saves in an environment with SB3 (`.venv`).

    python -m conformance.record MODEL.zip [--sbif MODEL.sbif] [-o MODEL.golden] [--checks ...]
    sbif conformance record MODEL.zip ...

Without `--sbif`, the model file is first exported with the live loader, next to the pack. The suite's own plans
are run against the framework that saved the file (`conformance.adapters.sb2_live` or `sb3_live`), and every probe
with its answer is stored (`spec/golden-packs.md`): deterministic outputs, sampling with injected noise, edge
observations, recurrent sequences with resets over several envs, and the predict interface.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from sbif.progress import Progress, echo

from . import __version__
from .checks import CHECKS, MODEL_CHECKS, Config, Probe, iterate
from .golden import SUFFIX, sha256_of, write_pack
from .models import ModelInfo
from .protocol import Answer, Runtime


def record(sbif_path: str, oracle: Runtime, output: Optional[str] = None, checks: Optional[Sequence[str]] = None,
           config: Optional[Config] = None, source: Optional[str] = None,
           progress: Optional[Progress] = None) -> Tuple[str, Dict[str, str]]:
    """Record a pack for `sbif_path` with `oracle`; returns (pack path, {check: reason} of checks not recorded).
    Checks done and the probes the oracle has answered go to `progress` (default: a progress line of its own)."""
    from .runner import _stable_hash

    config = config or Config()
    info = ModelInfo(sbif_path)
    name = os.path.basename(sbif_path)
    checks = list(checks or MODEL_CHECKS)
    records: List[Tuple[str, Probe, Answer]] = []
    skipped: Dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        line = progress or stack.enter_context(Progress("recording a golden pack for " + name))
        line.total, line.unit = len(checks), "checks"
        for check in checks:
            spec = CHECKS[check]
            reason = spec.not_applicable(info)
            if reason:
                skipped[check] = "not applicable: " + reason
                line.advance()
                continue
            if not oracle.supports(spec.feature):
                skipped[check] = "the oracle has no '{}' feature".format(spec.feature)
                line.advance()
                continue
            rng = np.random.default_rng(config.seed + _stable_hash(name + check))
            found: List[Tuple[str, Probe, Answer]] = []
            line.doing("{}: 0 probes recorded".format(check))
            for probe, expected in iterate(spec.plan(info, rng, config), lambda p: oracle.request(p.request)):
                if not expected.ok:
                    skipped[check] = "oracle {}: {}".format(expected.status, expected.message)
                    found = []
                    break
                found.append((check, probe, expected))
                line.doing("{}: {} probes recorded".format(check, len(found)))
            if found and not any(expected.outputs for _, _, expected in found):  # e.g. SB3 refuses every probe's
                reasons = sorted({reason for _, _, expected in found for reason in expected.missing.values()})
                skipped[check] = "the oracle answered none of its outputs ({})".format("; ".join(reasons))
                found = []
            records.extend(found)
            line.advance()
        line.doing("writing the pack")
        import sbif

        recorded_by = {"oracle": oracle.name, "oracle_language": oracle.hello.get("runtime", {}).get("language"),
                       "numpy": np.__version__, "python": platform.python_version(), "sbif": sbif.__version__,
                       "harness": "sbif-conformance {}".format(__version__)}
        source_entry = dict(info.provenance.get("source", {}))
        if source:
            source_entry["path"] = os.path.basename(source)
        output = output or os.path.splitext(sbif_path)[0] + SUFFIX
        write_pack(output, sbif_path, records, skipped, recorded_by, source_entry, config)
    return output, skipped


def export_live(source: str, target: str, vecnormalize: Optional[str] = None,
                zoo_config: Optional[str] = None) -> str:
    """Export an SB2 file or SB3 save with the live loader to `target` (not verified on the spot: checking the file
    against its framework is what the recorded pack is for); `vecnormalize` and `zoo_config` fold observation
    normalization in, as `sbif export` does."""
    from sbif.export import export

    sbif_file, _ = export(source, loader="live", verify=False, vecnormalize=vecnormalize, zoo_config=zoo_config)
    sbif_file.write(target)
    return target


def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m conformance.record", description=__doc__,
                                               formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="the model file: SB2's .zip or .pkl, or an SB3 or sb3-contrib save (.zip)")
    parser.add_argument("--sbif", help="the exported file (default: export SOURCE with the live loader first)")
    parser.add_argument("-o", "--output", help="the pack to write (default: next to the .sbif file, .golden)")
    parser.add_argument("--checks", nargs="*", choices=MODEL_CHECKS, help="checks to record (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled inputs")
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 5, 32], help="batch sizes")
    parser.add_argument("--steps", type=int, default=8, help="recurrent sequence length")
    parser.add_argument("--envs", type=int, nargs="*", default=[3, 1], help="env counts of recurrent sequences")
    return parser


def oracle_for(source: str, sbif_path: str) -> Runtime:
    """The oracle of the framework that saved `source` (an SB3 save is told by its members), answering for
    `sbif_path` from it."""
    from sbif.export.sb3.save_file import is_sb3_save

    if is_sb3_save(source):
        from .adapters.sb3_live import Sb3Runtime

        return Sb3Runtime(mapping={sbif_path: source})
    from .adapters.sb2_live import Sb2Runtime

    return Sb2Runtime(mapping={sbif_path: source})


def run(args: argparse.Namespace) -> int:
    sbif_path = args.sbif
    with Progress("recording a golden pack for " + os.path.basename(args.source)) as line:
        if sbif_path is None:
            directory = os.path.dirname(os.path.abspath(args.output)) if args.output else os.path.dirname(
                os.path.abspath(args.source))
            sbif_path = os.path.join(directory, os.path.splitext(os.path.basename(args.source))[0] + ".sbif")
            line.doing("exporting it with the live loader (its framework loads the model)")
            export_live(args.source, sbif_path)
            echo("exported {} to {}".format(args.source, sbif_path), sys.stdout)
        oracle = oracle_for(args.source, sbif_path)
        config = Config(batches=args.batches, envs=args.envs, steps=args.steps, seed=args.seed)
        path, skipped = record(sbif_path, oracle, args.output, args.checks, config, source=args.source,
                               progress=line)
    print("recorded {} ({} probes; source sha256 {}...)".format(path, _count(path), sha256_of(args.source)[:12]))
    for check, reason in skipped.items():
        print("  not recorded: {}: {}".format(check, reason))
    return 0


def _count(path: str) -> int:
    from .golden import GoldenPack

    return len(GoldenPack(path).manifest["probes"])


def main(argv: Optional[List[str]] = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
