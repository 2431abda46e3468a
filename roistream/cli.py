"""`roistream <subcommand>`: one entry point; each stage's package registers its own subcommands."""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

# modules that define `register(subparsers)`; imported lazily so `roistream --help` stays fast
COMMAND_MODULES = ("codec.cli",)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roistream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
