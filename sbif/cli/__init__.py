"""The `sbif` command: export, inspect, validate and run SBIF files."""
from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn, Optional, Sequence

from .. import progress
from ..errors import SbifError, preview
from ..version import __version__

EPILOG = """examples:
  sbif export ppo2_cartpole.zip -o ppo2_cartpole.sbif     (anywhere: SB2's file is read as data, no SB2 needed)
  sbif export ppo2_cartpole.zip --loader live -o ppo2_cartpole.sbif
                                        (in the SB2 environment: SB2 loads it, and the file is verified against it)
  sbif inspect ppo2_cartpole.sbif
  sbif validate ppo2_cartpole.sbif --json
  sbif predict ppo2_cartpole.sbif --obs '[[0.01, 0.02, 0.03, 0.04]]' --deterministic
  sbif predict ppo2_cartpole.sbif --obs observations.npy -o actions.npy
  sbif predict lstm.sbif --obs episode.npy --steps --json     (a recurrent policy over time, carrying its state)
  sbif convert ppo2_cartpole.sbif --to onnx -o ppo2_cartpole.onnx
"""

def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 1
    if getattr(args, "json", False):
        progress.silence()  # --json output is for programs: no progress lines on stderr either
    try:
        return args.handler(args)
    except SbifError as exc:
        print("sbif {}: error: {}".format(args.command, exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `sbif inspect ... | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug in SBIF: one line for the user, the traceback on request
        if os.environ.get("SBIF_DEBUG"):
            raise
        print("sbif {}: internal error: {}: {} (rerun with SBIF_DEBUG=1 for the traceback, and please "
              "report it)".format(args.command, type(exc).__name__, preview(str(exc))), file=sys.stderr)
        return 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line usage errors and exit status 1, like every other refusal: status 2 means only an
    internal error (a bug in SBIF), so a script or a fuzzer can tell the two apart."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(1, "{}: error: {} (see {} --help)\n".format(self.prog, message.replace("\n", " "), self.prog))


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="sbif", description="Stable-Baselines policies as one framework-neutral file (SBIF).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version="sbif {}".format(__version__))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import convert, export, inspect, predict, validate

    for command in (export, inspect, validate, predict, convert):
        command.add_parser(commands)
    from conformance.cli import add_conformance_command  # the conformance suite: `sbif conformance --help`
    add_conformance_command(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
