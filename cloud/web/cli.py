"""`roistream web`: the viewer in front of one cloud (docs/web.md)."""

from __future__ import annotations

import argparse
import os
import sys


def _web(args: argparse.Namespace) -> int:
    from cloud.client import CloudClient

    from .server import WebViewer

    token = args.token or os.environ.get("ROISTREAM_TOKEN")
    with CloudClient(args.cloud, token=token, tls=args.tls, tls_ca=args.tls_ca, tls_cert=args.tls_cert,
                     tls_key=args.tls_key) as client:
        viewer = WebViewer(client, args.cloud, args.host, args.port, args.timeout)
        print(f"roistream viewer of {args.cloud} on {viewer.url}", file=sys.stderr, flush=True)
        try:
            viewer.serve_forever()
        except KeyboardInterrupt:  # uvicorn shuts down on SIGINT/SIGTERM, then re-raises the signal
            pass
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from cloud.cli import _tls_client_args

    p = sub.add_parser("web", help="web viewer: streams, live composite, region gallery, bandwidth (docs/web.md)")
    p.add_argument("--cloud", required=True, help="HOST:PORT of the cloud's gRPC API")
    p.add_argument("--token", help="query token the viewer uses (default: $ROISTREAM_TOKEN)")
    _tls_client_args(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1: put the operator's proxy in front, docs/web.md)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a page waits for the cloud")
    p.set_defaults(func=_web)
