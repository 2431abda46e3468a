"""Admission control: how many calls may hold a worker thread at once, in all, per token and per peer.

Each open RPC holds one worker thread of the server for as long as it runs, and an Ingest or
Subscribe call stays open as long as its client likes. Without limits one caller opening calls
and sending nothing takes every worker, and every other call, health checks included, is refused.
So:

* RoiStream calls are capped in all (`calls`), per token (`per_token`) and per peer IP address
  (`per_peer`); a call over a cap is refused at once with RESOURCE_EXHAUSTED naming the cap;
* health checking and reflection are counted apart (`open_calls`) and the thread pool has that many
  threads beyond `calls`, so health answers while the service is saturated; the long-lived ones among
  them (health Watch, reflection streams) may take only half of those threads, so that they cannot
  hold every thread that health Checks need.

A call is counted from when its handler starts to when it returns, i.e. exactly while it holds a
thread. (A unary call's request message is read before its handler starts: a client that opens a
unary call and withholds its message holds a thread uncounted until its deadline.)
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from .auth import OPEN_PREFIXES, SERVICE, bearer, rewrap


@dataclass(frozen=True)
class Limits:
    calls: int = 64  # RoiStream calls open at once
    per_token: int = 16  # ... by one token (0 = no limit)
    per_peer: int = 32  # ... from one IP address (0 = no limit; behind a proxy every call has its address)
    open_calls: int = 4  # health and reflection calls open at once, on threads of their own

    def __post_init__(self) -> None:
        if self.calls < 1 or self.open_calls < 1 or self.per_token < 0 or self.per_peer < 0:
            raise ValueError(f"call limits must be positive (per-token / per-peer: 0 = no limit): {self}")

    @property
    def threads(self) -> int:
        return self.calls + self.open_calls


def peer_address(peer: str) -> str:
    """'ipv4:10.0.0.7:51234' -> 'ipv4:10.0.0.7', 'ipv6:[::1]:5000' -> 'ipv6:[::1]' (the port changes per connection)."""
    kind, _, rest = peer.partition(":")
    return f"{kind}:{rest.rsplit(':', 1)[0]}" if kind in ("ipv4", "ipv6") else peer


class AdmissionInterceptor(grpc.ServerInterceptor):
    """Counts open calls by key and refuses those over a limit (see the module docstring)."""

    def __init__(self, limits: Limits, on_refused: Callable[[str], None] | None = None):
        self.limits = limits
        self._on_refused = on_refused or (lambda _reason: None)
        self._open: Counter = Counter()
        self._lock = threading.Lock()

    def open_calls(self) -> dict[tuple, int]:
        with self._lock:
            return {k: v for k, v in self._open.items() if v}

    def _caps(self, method: str, streaming: bool, metadata, peer: str) -> list[tuple[tuple, int, str]]:
        """(key, limit, reason) of every cap the call counts against."""
        lim = self.limits
        if method.startswith(OPEN_PREFIXES):
            caps = [(("open",), lim.open_calls, "health/reflection")]
            if streaming:
                caps.append((("open-stream",), max(1, lim.open_calls // 2), "health watch/reflection"))
            return caps
        caps = [(("calls",), lim.calls, "server")]
        token = bearer(metadata)
        if lim.per_token and token:
            caps.append((("token", hashlib.sha256(token.encode()).digest()), lim.per_token, "token"))
        if lim.per_peer:
            caps.append((("peer", peer_address(peer)), lim.per_peer, "peer"))
        return caps

    def _acquire(self, caps) -> str | None:
        """Count the call against every cap, or return why it is refused (counting nothing)."""
        with self._lock:
            for key, limit, reason in caps:
                if self._open[key] >= limit:
                    who = {"server": "the server", "token": "this token", "peer": "this address"}.get(reason, reason)
                    self._on_refused(reason)
                    return f"{who} already has {limit} call(s) open, its limit; close some or retry later"
            for key, _, _ in caps:
                self._open[key] += 1
        return None

    def _release(self, caps) -> None:
        with self._lock:
            for key, _, _ in caps:
                self._open[key] -= 1

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith((SERVICE, *OPEN_PREFIXES)):
            return handler
        metadata = handler_call_details.invocation_metadata
        streaming = handler.request_streaming or handler.response_streaming

        def admit(context: grpc.ServicerContext):
            caps = self._caps(method, streaming, metadata, context.peer())
            refusal = self._acquire(caps)
            if refusal is not None:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
            return caps

        def wrap(behavior):
            if handler.response_streaming:
                def streaming(request, context):
                    caps = admit(context)  # inside the generator: counted only once it runs
                    try:
                        yield from behavior(request, context)
                    finally:
                        self._release(caps)
                return streaming

            def unary(request, context):
                caps = admit(context)
                try:
                    return behavior(request, context)
                finally:
                    self._release(caps)
            return unary

        return rewrap(handler, wrap)
