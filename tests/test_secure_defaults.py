"""Secure, consistent defaults (real servers on 127.0.0.1, the real CLIs): the server listens on loopback
unless told otherwise and refuses to listen beyond it in the clear; the edge dials loopback in plaintext
and anything else with TLS, so the two defaults talk; an edge run that delivered nothing fails."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cloud.client import CloudClient
from cloud.server import CloudServer, InsecureBindError, ServerConfig
from codec import paths
from roistream.cli import build_parser, main
from tests.cloud_fixtures import certs, start_server, tokens_file  # noqa: F401
from tests.edge_fixtures import needs_shared


def test_serve_listens_on_loopback_by_default(tmp_path):
    args = build_parser().parse_args(["cloud", "serve", "--data", str(tmp_path)])
    assert args.host == "127.0.0.1" and args.metrics_host == "127.0.0.1" and not args.insecure


@pytest.mark.parametrize("extra, missing", [((), "TLS (--tls-cert/--tls-key) and client authentication"),
                                            (("--tokens", "t.json"), "without TLS")])
def test_serve_refuses_to_listen_beyond_loopback_in_the_clear(tmp_path, extra, missing):
    """In a process of its own: a server that does start would serve until killed (the timeout fails the test)."""
    run = subprocess.run([sys.executable, "-m", "roistream.cli", "cloud", "serve", "--data", str(tmp_path / "data"),
                          "--host", "0.0.0.0", "--port", "0", *extra], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and missing in run.stderr and "--insecure" in run.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was opened


def test_an_exposed_server_needs_tls_and_client_auth_or_insecure(tmp_path, codec, certs, tokens_file):
    with pytest.raises(InsecureBindError, match="client authentication"):
        CloudServer(ServerConfig(tmp_path / "a", host="0.0.0.0", port=0, tls_cert=certs.server_cert,
                                 tls_key=certs.server_key), codec=codec).start()
    for config in (dict(tls_cert=certs.server_cert, tls_key=certs.server_key, tokens=tokens_file),
                   dict(tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=certs.ca),
                   dict(insecure=True)):
        server = CloudServer(ServerConfig(tmp_path / "b", host="0.0.0.0", port=0, grace_s=0.5, **config),
                             codec=codec).start()
        server.stop(grace=0.2)


def _edge(tmp_path, target: str, *extra: str) -> list[str]:
    return ["edge", "run", "--source", str(paths.video_path()), "--max-frames", "1", "--cloud", target,
            "--stream", "cam", "--spool", str(tmp_path / "edge.spool"), "--no-status", "--flush-timeout", "3",
            "--tracker", "none", *extra]


@needs_shared()
def test_edge_default_talks_to_the_server_default(tmp_path, start_server, capsys):
    """Before: the edge dialled TLS, the server listened in plaintext; nothing was stored and the edge exited 0."""
    server = start_server()
    target = f"127.0.0.1:{server.port}"
    assert main(_edge(tmp_path, target)) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["streamer"]["stored"] == 1 and out["spool"]["depth"] == 0
    with CloudClient(target) as client:
        assert [f.frame_index for f in client.list_frames("cam")] == [0]


@needs_shared()
def test_an_edge_run_that_delivered_nothing_fails_and_says_why(tmp_path, start_server, certs, capsys):
    server = start_server(tls_cert=certs.server_cert, tls_key=certs.server_key)
    target = f"127.0.0.1:{server.port}"
    assert main(_edge(tmp_path, target)) == 1  # plaintext to loopback, which here speaks TLS only
    err = capsys.readouterr().err
    assert "1 frame(s) encoded but the cloud at" in err and "acknowledged none (plaintext" in err
    assert "stay in the spool" in err
    # an explicit TLS option dials TLS to loopback too, and the spooled frame goes out with the new one
    assert main(_edge(tmp_path, target, "--tls-ca", str(certs.ca))) == 0
    with CloudClient(target, tls_ca=certs.ca) as client:
        assert len(client.list_frames("cam")) == 2
