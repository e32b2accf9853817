"""`sbif export`: an SB2 or SB3 save file to an .sbif file."""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any

from ..errors import InputError, SbifError
from ..format.strict_json import loads_json_input
from .common import add_command, size_text


def add_parser(commands: Any) -> argparse.ArgumentParser:
    export = add_command(commands, "export", "convert an SB2 (.zip, .pkl) or SB3/sb3-contrib (.zip) model into an "
                                             ".sbif file", run_export,
                      "  sbif export model.zip -o model.sbif\n  sbif export old_model.pkl --algo TRPO -o model.sbif\n"
                      "  sbif export a2c/MountainCar-v0.pkl -o car.sbif   (folds a2c/MountainCar-v0/obs_rms.pkl)\n"
                      "  sbif export ppo/HalfCheetah-v4.zip --loader live   (SB3: folds ppo/HalfCheetah-v4/"
                      "vecnormalize.pkl, verifies against SB3)")
    export.add_argument("source", help="SB2 save file (.zip, or a legacy cloudpickle .pkl), or an SB3/sb3-contrib .zip "
                                       "(recognised by its members)")
    export.add_argument("-o", "--output", help="the .sbif file to write (default: SOURCE with .sbif suffix)")
    export.add_argument("--algo", help="the algorithm (SB2: A2C, PPO2, ...; SB3: PPO, QRDQN, ...; any case), where "
                                       "the file does not tell")
    from ..export.exporter import DEFAULT_LOADER, LOADERS
    export.add_argument("--loader", choices=LOADERS, default=DEFAULT_LOADER,
                        help="how to read SOURCE: 'safe' (default) reads it as data, in any environment, without "
                             "running code from the file; 'live' loads it with Stable-Baselines itself (SB2 files: "
                             "the SB2 environment; SB3 files: one with SB3 and sb3-contrib) and verifies the export")
    export.add_argument("--policy-kwargs", metavar="JSON",
                        help="policy kwargs the file does not tell the safe loader, as a JSON object, e.g. "
                             "'{\"act_fun\": \"relu\"}' or '{\"net_arch\": [{\"pi\": [64], \"vf\": [64]}]}'")
    export.add_argument("--policy", metavar="CLASS",
                        help="the policy class, where the safe loader cannot read it from the file (e.g. MlpPolicy)")
    export.add_argument("--vecnormalize", metavar="PATH",
                        help="fold observation normalization into the file: a VecNormalize save (SB2's, or "
                             "SB3's vecnormalize.pkl) or a zoo obs_rms.pkl (predict then takes raw environment "
                             "observations); by default the statistics the zoo keeps beside SOURCE (DIR/ENV/ for "
                             "DIR/ENV.zip) are found and folded in as the zoo applies them")
    export.add_argument("--zoo-config", metavar="CONFIG_YML",
                        help="an rl-baselines-zoo config.yml, where it is not DIR/ENV/config.yml beside SOURCE: "
                             "its 'normalize' setting (and kwargs) decides whether the statistics beside it (or "
                             "--vecnormalize) are folded in")
    export.add_argument("--no-normalize", dest="normalize", action="store_false",
                        help="fold no observation normalization, even where the zoo applied it (a warning names "
                             "the statistics left out: predict then expects normalized observations)")
    export.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip comparing the exported policy with the framework's own predictions (live "
                             "loader; the safe loader never runs the framework, so it does not verify)")
    export.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    return export


def run_export(args: argparse.Namespace) -> int:
    from ..export.exporter import ExportWarning, export

    output = args.output or os.path.splitext(args.source)[0] + ".sbif"
    policy_kwargs = None
    if args.policy_kwargs is not None:  # read strictly here (nesting, NaN, long numbers), checked by the exporter
        try:
            policy_kwargs = loads_json_input(args.policy_kwargs)
        except ValueError as exc:
            raise InputError("--policy-kwargs is not valid JSON: {}".format(exc)) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExportWarning)  # printed below, one line each, with the summary
        result = export(args.source, algorithm=args.algo, loader=args.loader, verify=args.verify,
                        policy_kwargs=policy_kwargs, policy=args.policy, vecnormalize=args.vecnormalize,
                        zoo_config=args.zoo_config, normalize=args.normalize)
    try:
        result.file.write(output)
    except OSError as exc:
        raise SbifError("cannot write {}: {}".format(output, exc.strerror or exc)) from None
    for warning in result.warnings:
        print("sbif export: warning: {}".format(warning), file=sys.stderr)
    provenance = result.file.document["provenance"]
    summary = {"source": args.source, "output": output, "algorithm": provenance["algorithm"],
               "policy_class": provenance["policy_class"], "parameters": result.file.parameter_count(),
               "bytes": os.path.getsize(output), "verified": result.verified,
               "verification_status": result.verification, "verification": result.report or None,
               "notes": result.notes, "warnings": result.warnings}
    if args.json:
        print(json.dumps(summary))
        return 0
    # the "wrote" line, then what the file holds beyond the model (folded, inferred) and its verification status,
    # one indented line each: a user reads at a glance whether the agent will behave as it did in SB2
    print("\n  ".join(["wrote {} ({} {}, {:,} parameters, {})".format(
        output, summary["algorithm"], summary["policy_class"], summary["parameters"], size_text(summary["bytes"]))]
        + result.notes + [result.verification]))
    return 0
