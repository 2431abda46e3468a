"""Running the viewer: uvicorn on a socket bound here, so the port is known before serving starts
(port 0 picks a free one, which the tests and the demo use)."""

from __future__ import annotations

import socket
import threading

import uvicorn

from cloud.client import CloudClient

from .app import create_app


class WebViewer:
    """The viewer of one cloud on host:port; `start()` serves on a thread, `serve_forever()` here."""

    def __init__(self, client: CloudClient, cloud: str, host: str = "127.0.0.1", port: int = 0,
                 timeout_s: float = 10.0):
        self.client, self.cloud = client, cloud
        self.socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.host, self.port = host, self.socket.getsockname()[1]
        config = uvicorn.Config(create_app(client, cloud, timeout_s), log_level="warning",
                                timeout_graceful_shutdown=1, lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def serve_forever(self) -> None:
        self.server.run(sockets=[self.socket])

    def start(self) -> "WebViewer":
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="web-viewer")
        self._thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            if not self._thread.is_alive():
                raise RuntimeError(f"the web viewer on {self.url} did not start")
            threading.Event().wait(0.01)
        raise RuntimeError(f"the web viewer on {self.url} did not start within 5 s")

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.socket.close()

    def __enter__(self) -> "WebViewer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
