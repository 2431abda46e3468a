"""The error the service layer turns into a gRPC status: a code plus a message meant for the caller."""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """Raised below the servicer; the servicer aborts the RPC with `code` and `message`."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class DependencyUnavailable(RuntimeError):
    """A shared service the node needs (PostgreSQL, the object store, NATS) does not answer.

    The message names the dependency and its address, so an operator knows which one to fix; an Ingest
    that meets it fails UNAVAILABLE (the edge resends) and health turns NOT_SERVING until it answers again."""

    def __init__(self, dependency: str, address: str, cause: object):
        super().__init__(f"{dependency} at {address} is unavailable: {cause}")
        self.dependency = dependency
        self.address = address
