"""The error the service layer turns into a gRPC status: a code plus a message meant for the caller."""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """Raised below the servicer; the servicer aborts the RPC with `code` and `message`."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
