"""Prometheus metrics of one server, in its own registry (several servers may share a process in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("roistream_frames_ingested", "Frames received by Ingest, by outcome",
                              ["status"], registry=r)
        self.groups = Counter("roistream_groups_ingested", "Groups stored by Ingest", registry=r)
        self.bytes = Counter("roistream_bytes_ingested", "Record bytes stored by Ingest", registry=r)
        self.store_seconds = Histogram("roistream_store_seconds", "Time from receiving a frame to its durable ack",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.decode_seconds = Histogram("roistream_decode_seconds", "Time to decode one group",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.regions = Counter("roistream_regions_served", "Regions sent by GetRegions and Subscribe",
                               ["output"], registry=r)
        self.active_streams = Gauge("roistream_active_ingest_streams", "Open Ingest calls", registry=r)
        self.subscribers = Gauge("roistream_active_subscriptions", "Open Subscribe calls", registry=r)
        self.calls_refused = Counter("roistream_calls_refused", "Calls refused at admission, by the limit they hit",
                                     ["limit"], registry=r)
        self.idle_calls_ended = Counter("roistream_idle_ingest_calls_ended",
                                        "Ingest calls the server ended after its idle timeout", registry=r)
        self._http = None

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Expose /metrics over HTTP; returns the bound port (port 0 picks a free one)."""
        self._http, _ = start_http_server(port, host, registry=self.registry)
        return self._http.server_address[1]

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
