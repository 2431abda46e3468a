"""Fixtures for the web viewer tests: a real cloud on 127.0.0.1 holding real codec frames, and the
real viewer (uvicorn on an ephemeral port) in front of it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from proto import service_pb2
from tests.cloud_fixtures import stream_of


@dataclass
class Site:
    server: object  # CloudServer
    client: object  # CloudClient (ingests more frames; the viewer has its own)
    viewer: object  # WebViewer

    @property
    def url(self) -> str:
        return self.viewer.url.rstrip("/")


@pytest.fixture
def site(start_server, cloud_frames):
    """Cloud with "cam" (frames 0..3: person + car + background) and "secure" (car encrypted), viewer on top."""
    from cloud.client import CloudClient
    from cloud.web.server import WebViewer

    server = start_server(metrics_port=0)
    target = f"127.0.0.1:{server.port}"
    ingest = CloudClient(target)
    acks = list(ingest.ingest(stream_of(cloud_frames.plain, "cam", 4) + cloud_frames.secure))
    assert all(a.status == service_pb2.IngestAck.STORED for a in acks)
    query = CloudClient(target)
    viewer = WebViewer(query, target).start()
    yield Site(server, ingest, viewer)
    viewer.stop()
    query.close()
    ingest.close()
