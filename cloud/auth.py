"""Bearer tokens: who may call what (role) and on which streams (scope). The one place that decides.

Two roles: `ingest` (edges) may only call Ingest and StreamPosition, `query` (analytics)
everything else. Each grant of a role carries a scope: the stream ids it covers, as exact names or fnmatch-style patterns
(`cam-*`, `lobby-?`, `site[12]-*`, matched case-sensitively). A grant without a scope covers every
stream, so tokens files written before scopes existed keep their meaning.

Tokens file, JSON (a token listed under both roles has both; an entry is a token, or an object
with its streams):

    {"ingest": ["edge-all", {"token": "edge-lobby", "streams": ["lobby-*"]}],
     "query": ["analytics", {"token": "guard", "streams": ["lobby-*", "gate"]}]}

or one grant a line, `role:token[:pattern[,pattern...]]` (`#` starts a comment; a token in this
form cannot contain `:`):

    ingest:edge-lobby:lobby-*
    query:guard:lobby-*,gate
    query:analytics

Clients send the metadata `authorization: Bearer <token>`. Health checking and reflection stay
open so load balancers and grpcurl work without a token; they reveal no data.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Scope:
    """The streams a grant covers: `patterns` None = every stream, () = none."""

    patterns: tuple[str, ...] | None = None

    @property
    def everything(self) -> bool:
        return self.patterns is None

    def allows(self, stream_id: str) -> bool:
        return self.patterns is None or any(fnmatch.fnmatchcase(stream_id, p) for p in self.patterns)

    def union(self, other: "Scope") -> "Scope":
        if self.patterns is None or other.patterns is None:
            return EVERY_STREAM
        return Scope(tuple(dict.fromkeys(self.patterns + other.patterns)))

    def __str__(self) -> str:
        return "every stream" if self.patterns is None else ", ".join(self.patterns) or "no stream"


EVERY_STREAM = Scope()
NO_STREAM = Scope(())


def _scope(patterns: Sequence[str] | None, where: str) -> Scope:
    if patterns is None:
        return EVERY_STREAM
    if isinstance(patterns, str) or not all(isinstance(p, str) and p.strip() for p in patterns) or not patterns:
        raise ValueError(f"{where}: streams must be a non-empty list of non-empty stream ids or patterns")
    return Scope(tuple(p.strip() for p in patterns))


class Tokens:
    """Token -> {role: scope}, compared in constant time."""

    def __init__(self, grants: Iterable[tuple[str, str, Scope]]):
        """grants: (role, token, scope); a token granted a role twice gets the union of the scopes."""
        self._entries = []
        for role, token, scope in grants:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
            if not token:
                raise ValueError("empty token")
            self._entries.append((_digest(token), role, scope))

    @classmethod
    def load(cls, path: Path | str) -> "Tokens":
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read tokens file {path}: {exc}") from exc
        return cls.from_json(text, path) if text.lstrip().startswith("{") else cls.from_lines(text, path)

    @classmethod
    def from_json(cls, text: str, source: Path | str = "tokens") -> "Tokens":
        expected = (f'{source}: expected {{"ingest": [tokens], "query": [tokens]}}, each token a non-empty string '
                    'or {"token": "...", "streams": ["pattern", ...]}')
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"cannot read tokens file {source}: {exc}") from exc
        if not isinstance(data, dict) or set(data) - set(ROLES) or not all(isinstance(v, list) for v in data.values()):
            raise ValueError(expected)
        grants = []
        for role, entries in data.items():
            for entry in entries:
                if isinstance(entry, str) and entry:
                    grants.append((role, entry, EVERY_STREAM))
                elif (isinstance(entry, dict) and isinstance(entry.get("token"), str) and entry["token"]
                      and set(entry) <= {"token", "streams"}):
                    grants.append((role, entry["token"], _scope(entry.get("streams"), f"{source}: {role} token")))
                else:
                    raise ValueError(expected)
        return cls(grants)

    @classmethod
    def from_lines(cls, text: str, source: Path | str = "tokens") -> "Tokens":
        grants = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            role, _, rest = line.partition(":")
            token, sep, patterns = rest.partition(":")
            where = f"{source}:{number}"
            if role.strip() not in ROLES or not token.strip():
                raise ValueError(f"{where}: expected role:token[:pattern[,pattern...]] with role "
                                 f"{' or '.join(ROLES)}, got {line!r}")
            scope = _scope([p for p in patterns.split(",")], where) if sep else EVERY_STREAM
            grants.append((role.strip(), token.strip(), scope))
        return cls(grants)

    def grants(self, token: str) -> dict[str, Scope]:
        """The roles a token has, each with the streams it covers (empty: an unknown token)."""
        digest = _digest(token)
        found: dict[str, Scope] = {}
        for entry, role, scope in self._entries:  # no early exit: the time taken does not depend on the match
            if hmac.compare_digest(entry, digest):
                found[role] = found[role].union(scope) if role in found else scope
        return found

    def roles(self, token: str) -> set[str]:
        return set(self.grants(token))


def required_role(method: str) -> str | None:
    """The role a full method name needs; None for open (health, reflection) or unknown methods."""
    if method.startswith(OPEN_PREFIXES) or not method.startswith(SERVICE):
        return None
    return INGEST if method in INGEST_METHODS else QUERY


def bearer(metadata) -> str | None:
    """The token of `authorization: Bearer <token>` metadata, if any."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer "):].strip()
    return None


class Access:
    """What the caller of an RPC may touch: the interceptor asks it for roles, the service for scopes.

    Without tokens (no auth configured) every caller has every role on every stream.
    """

    def __init__(self, tokens: Tokens | None):
        self.tokens = tokens

    def scope(self, context: grpc.ServicerContext, role: str) -> Scope:
        """The streams this call's token may use in `role` (the interceptor has already checked the role)."""
        if self.tokens is None:
            return EVERY_STREAM
        token = bearer(context.invocation_metadata())
        return self.tokens.grants(token).get(role, NO_STREAM) if token else NO_STREAM


def denying(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that fails the call with `code`."""
    def abort(_request, context: grpc.ServicerContext):
        context.abort(code, message)

    return rewrap(handler, lambda _behavior: abort)


def rewrap(handler: grpc.RpcMethodHandler, wrap: Callable[[Callable], Callable]) -> grpc.RpcMethodHandler:
    """`handler` with its behavior replaced by `wrap(behavior)`, same shape and (de)serializers."""
    kinds: dict[tuple[bool, bool], tuple[Callable, str]] = {
        (False, False): (grpc.unary_unary_rpc_method_handler, "unary_unary"),
        (False, True): (grpc.unary_stream_rpc_method_handler, "unary_stream"),
        (True, False): (grpc.stream_unary_rpc_method_handler, "stream_unary"),
        (True, True): (grpc.stream_stream_rpc_method_handler, "stream_stream")}
    make, attr = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(wrap(getattr(handler, attr)), request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


class AuthInterceptor(grpc.ServerInterceptor):
    def __init__(self, tokens: Tokens):
        self.tokens = tokens

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        role = required_role(handler_call_details.method)
        if handler is None or role is None:
            return handler
        token = bearer(handler_call_details.invocation_metadata)
        if token is None:
            return denying(handler, grpc.StatusCode.UNAUTHENTICATED,
                           "missing metadata 'authorization: Bearer <token>'")
        roles = self.tokens.roles(token)
        if not roles:
            return denying(handler, grpc.StatusCode.UNAUTHENTICATED, "unknown token")
        if role not in roles:
            name = handler_call_details.method.rsplit("/", 1)[-1]
            return denying(handler, grpc.StatusCode.PERMISSION_DENIED,
                           f"{name} needs a {role} token; this token is {'/'.join(sorted(roles))} only")
        return handler
