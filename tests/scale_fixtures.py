"""Real PostgreSQL, SeaweedFS (S3) and NATS JetStream servers on 127.0.0.1 for the distributed-backend tests,
started once per session by bench/services.py (free ports, readiness checks) and stopped at the end.

A server that is not installed skips the tests that need it, saying how to install it (scripts/test
installs all three). Each test takes its own PostgreSQL schema (`fresh_url`) and S3 key prefix, so tests
share the servers without seeing each other's frames.
"""

from __future__ import annotations

import pytest

from bench.services import Nats, NotInstalled, Postgres, S3, free_port  # noqa: F401 - free_port for tests


def _started(kind, module: str):
    pytest.importorskip(module, reason=f"{module} is missing: pip install -e '.[scale]'")
    try:
        return kind.create()
    except NotInstalled as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def postgres():
    server = _started(Postgres, "psycopg")
    yield server
    server.close()


@pytest.fixture(scope="session")
def s3():
    server = _started(S3, "boto3")
    yield server
    server.close()


@pytest.fixture(scope="session")
def nats():
    server = _started(Nats, "nats")
    yield server
    server.close()
