"""`roistream <subcommand>`: one entry point; each stage's package registers its own subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module

# modules that define `register(subparsers)`; imported lazily so `roistream --help` stays fast
COMMAND_MODULES = (
    "codec.cli",
    "cloud.cli",
    "edge.cli",
    "export.cli",
    "roistream.demo",
    "bench.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roistream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand. Expected failures (bad streams, bad input, missing files) print one
    `error: ...` line and exit with status 2; set ROISTREAM_DEBUG=1 to see the traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:  # BitstreamError is a ValueError
        if os.environ.get("ROISTREAM_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
