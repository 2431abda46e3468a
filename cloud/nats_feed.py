"""The live feed across nodes, over NATS JetStream: `Subscribe` on any node sees frames stored on every node.

A node publishes each stored frame's (stream, frame index) to the subject of its stream, and every node
consumes all of them (an ordered push consumer from "new" on) into the same in-process event buffer
`FrameFeed` keeps, so the service's Subscribe loop is unchanged. Events go through the bus only, also for
the node's own frames, so every node sees one order. `Nats-Msg-Id` is (stream, frame index): JetStream
drops a second publish of the same frame within its duplicate window, as storage answers DUPLICATE.

The feed only tells subscribers what to select; losing an event while NATS is down loses no frame
(queries still find it), and health reports NOT_SERVING meanwhile. nats-py is imported lazily.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures import Future

from .errors import DependencyUnavailable
from .feed import BACKLOG, FrameFeed

log = logging.getLogger(__name__)

STREAM = "ROISTREAM_FRAMES"  # the JetStream stream holding the events
SUBJECT = "roistream.frames"  # + "." + the stream id in hex (subjects cannot carry arbitrary ids)
KEEP_S = 3600.0  # events are kept this long (a live feed, not a store)
DEDUP_S = 120.0
CONNECT_TIMEOUT_S = 3.0
PUBLISH_TIMEOUT_S = 5.0


def subject(stream_id: str) -> str:
    return f"{SUBJECT}.{stream_id.encode().hex() or '_'}"


class NatsFeed(FrameFeed):
    def __init__(self, url: str, backlog: int = BACKLOG):
        super().__init__(backlog)
        self.url = url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats", daemon=True)
        self._thread.start()
        self._nc = None
        try:
            self._call(self._connect()).result(CONNECT_TIMEOUT_S * 3)
        except Exception as exc:  # noqa: BLE001 - nats-py raises several unrelated types for "not there"
            self._stop_loop()
            raise DependencyUnavailable("NATS", url, exc or type(exc).__name__) from None

    def _call(self, coro) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _connect(self) -> None:
        import nats
        from nats.js.api import DeliverPolicy, StreamConfig
        from nats.js.errors import BadRequestError

        async def disconnected():
            log.warning("NATS disconnected", extra={"fields": {"url": self.url}})

        async def reconnected():
            log.info("NATS reconnected", extra={"fields": {"url": self.url}})

        async def error(exc):
            log.debug("NATS client error: %s", exc)

        self._nc = await nats.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S, allow_reconnect=True,
                                      max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                      disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error)
        self._js = self._nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
        config = StreamConfig(name=STREAM, subjects=[f"{SUBJECT}.>"], max_age=KEEP_S, duplicate_window=DEDUP_S)
        try:
            await self._js.add_stream(config)
        except BadRequestError:  # another node made it first, with other settings: ours are the same kind
            await self._js.update_stream(config)
        await self._js.subscribe(f"{SUBJECT}.>", cb=self._on_event, ordered_consumer=True,
                                 deliver_policy=DeliverPolicy.NEW)

    async def _on_event(self, msg) -> None:
        try:
            event = json.loads(msg.data)
            FrameFeed.publish(self, str(event["stream_id"]), int(event["frame_index"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed frame event", extra={"fields": {"subject": msg.subject}})

    def publish(self, stream_id: str, frame_index: int) -> None:
        """Hand the event to the bus and return: the frame is stored already, its ack must not wait for NATS."""
        data = json.dumps({"stream_id": stream_id, "frame_index": frame_index}).encode()
        done = self._call(self._js.publish(subject(stream_id), data,
                                           headers={"Nats-Msg-Id": f"{stream_id}/{frame_index}"}))
        done.add_done_callback(lambda f: f.exception() and log.warning(
            "frame event not published", extra={"fields": {"stream_id": stream_id, "frame_index": frame_index,
                                                           "error": repr(f.exception())}}))

    def check(self) -> None:
        if self._nc is None or not self._nc.is_connected:
            raise DependencyUnavailable("NATS", self.url, "not connected (reconnecting)")

    def _stop_loop(self) -> None:
        async def cancel_rest() -> None:  # the client's background tasks would be destroyed pending
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            try:
                self._call(cancel_rest()).result(CONNECT_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    def close(self) -> None:
        """Wake subscribers (as FrameFeed does), then drain the connection and stop its thread."""
        super().close()
        if self._nc is not None:
            try:
                self._call(self._nc.close()).result(CONNECT_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - closing a connection to a server that is gone
                pass
            self._nc = None
        self._stop_loop()
