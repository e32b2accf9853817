"""What the commands share: how a subcommand is declared, and how sizes and tables are printed."""
from __future__ import annotations

import argparse
from typing import Any, List


def add_command(commands: Any, name: str, summary: str, handler: Any, examples: str) -> argparse.ArgumentParser:
    sub = commands.add_parser(name, help=summary, description=summary, epilog="examples:\n" + examples,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.set_defaults(handler=handler)
    return sub



def size_text(nbytes: int) -> str:
    return "{:.1f} KiB".format(nbytes / 1024) if nbytes < 1 << 20 else "{:.1f} MiB".format(nbytes / (1 << 20))


def table(rows: List[List[str]]) -> List[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]

