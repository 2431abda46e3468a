"""Bearer-token auth with two roles: `ingest` (edges) may only call Ingest and StreamPosition, `query`
(analytics) everything else.

Tokens file (JSON; a token listed under both roles has both):

    {"ingest": ["edge-token-1", "edge-token-2"], "query": ["analytics-token"]}

Clients send the metadata `authorization: Bearer <token>`. Health checking and reflection stay
open so load balancers and grpcurl work without a token; they reveal no data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path

import grpc

INGEST = "ingest"
QUERY = "query"
ROLES = (INGEST, QUERY)
SERVICE = "/roistream.v1.RoiStream/"
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
INGEST_METHODS = (SERVICE + "Ingest", SERVICE + "StreamPosition")  # an edge asks where its stream continues


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Tokens:
    """Token -> roles, compared in constant time."""

    def __init__(self, by_role: dict[str, list[str]]):
        self._entries = [(_digest(t), role) for role in ROLES for t in by_role.get(role, [])]

    @classmethod
    def load(cls, path: Path | str) -> "Tokens":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read tokens file {path}: {exc}") from exc
        if not isinstance(data, dict) or set(data) - set(ROLES) or not all(
                isinstance(v, list) and all(isinstance(t, str) and t for t in v) for v in data.values()):
            raise ValueError(f'{path}: expected {{"ingest": [tokens], "query": [tokens]}} with non-empty strings')
        return cls(data)

    def roles(self, token: str) -> set[str]:
        digest = _digest(token)
        found = set()
        for entry, role in self._entries:  # no early exit: the time taken does not depend on the match
            if hmac.compare_digest(entry, digest):
                found.add(role)
        return found


def required_role(method: str) -> str | None:
    """The role a full method name needs; None for open (health, reflection) or unknown methods."""
    if method.startswith(OPEN_PREFIXES) or not method.startswith(SERVICE):
        return None
    return INGEST if method in INGEST_METHODS else QUERY


def _bearer(metadata) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer "):].strip()
    return None


def _denying(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that fails the call with `code`."""
    def abort(_request, context: grpc.ServicerContext):
        context.abort(code, message)

    kinds: dict[tuple[bool, bool], Callable] = {
        (False, False): grpc.unary_unary_rpc_method_handler, (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler, (True, True): grpc.stream_stream_rpc_method_handler}
    make = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(abort, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


class AuthInterceptor(grpc.ServerInterceptor):
    def __init__(self, tokens: Tokens):
        self.tokens = tokens

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        role = required_role(handler_call_details.method)
        if handler is None or role is None:
            return handler
        token = _bearer(handler_call_details.invocation_metadata)
        if token is None:
            return _denying(handler, grpc.StatusCode.UNAUTHENTICATED,
                            "missing metadata 'authorization: Bearer <token>'")
        roles = self.tokens.roles(token)
        if not roles:
            return _denying(handler, grpc.StatusCode.UNAUTHENTICATED, "unknown token")
        if role not in roles:
            name = handler_call_details.method.rsplit("/", 1)[-1]
            return _denying(handler, grpc.StatusCode.PERMISSION_DENIED,
                            f"{name} needs a {role} token; this token is {'/'.join(sorted(roles))} only")
        return handler
