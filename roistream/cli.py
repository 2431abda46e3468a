"""`roistream <subcommand>`: one entry point; each stage's package registers its own subcommands.

This module is the top of the layer order (tests/test_layers_imports.py): it may import every
package, which is why the wiring between packages that must not import each other lives here.
"""

from __future__ import annotations

import argparse
import os
import sys


def _detect_groups(image, words: str):
    """`roistream encode --detect`: the edge's detector picks the groups. Wired here because the
    codec must not import the edge."""
    from edge.image_groups import group_map_for_image

    return group_map_for_image(image, words)


def build_parser() -> argparse.ArgumentParser:
    """Every package's `register(subparsers)`; imported here, not at module level, so importing
    roistream.cli stays cheap."""
    from bench import cli as bench_cli
    from cloud import cli as cloud_cli
    from cloud.web import cli as web_cli
    from codec import cli as codec_cli
    from edge import cli as edge_cli
    from export import cli as export_cli
    from roistream import demo

    parser = argparse.ArgumentParser(prog="roistream", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    codec_cli.register(sub, detect_groups=_detect_groups)
    for module in (cloud_cli, web_cli, edge_cli, export_cli, demo, bench_cli):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand. Expected failures (bad streams, bad input, missing files, a runtime that
    cannot run here) print one `error: ...` line and exit with status 2; set ROISTREAM_DEBUG=1 to
    see the traceback."""
    from codec.runtime import RuntimeUnavailable

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeUnavailable) as exc:  # BitstreamError is a ValueError
        if os.environ.get("ROISTREAM_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
