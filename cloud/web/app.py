"""The viewer's pages and endpoints (FastAPI, server-rendered Jinja2, one small script for the live view).

Every piece of data comes from the cloud through `CloudClient`; a gRPC failure becomes a page that
says what went wrong (cloud unreachable, token refused, unknown stream, damaged group) with the
matching HTTP status, never an empty page.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import queue
import threading
import time
from pathlib import Path as FilePath
from typing import Annotated

import cv2
import grpc
import numpy as np
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.client import CloudClient
from cloud.outline import outline_groups
from cloud.pixels import decode_pixels
from proto import service_pb2

from . import plot
from .filters import MAX_SCAN_FRAMES, BadInput, GalleryFilter

HERE = FilePath(__file__).parent
RECENT_US = 10_000_000  # "live" kbps: bytes of the last 10 s of a stream
FrameIndex = Annotated[int, Path(ge=0, le=2**63 - 1)]
GroupId = Annotated[int, Path(ge=0, le=2**32 - 1)]
Code = grpc.StatusCode
# gRPC status -> (HTTP status, what the page says happened)
RPC_ERRORS = {
    Code.NOT_FOUND: (404, "not found"),
    Code.INVALID_ARGUMENT: (400, "the cloud rejected the request"),
    Code.OUT_OF_RANGE: (400, "the cloud rejected the request"),
    Code.UNAVAILABLE: (503, "the cloud is unreachable"),
    Code.DEADLINE_EXCEEDED: (504, "the cloud did not answer in time"),
    Code.UNAUTHENTICATED: (502, "the cloud refused the viewer's token"),
    Code.PERMISSION_DENIED: (502, "the cloud refused the viewer's token"),
    Code.DATA_LOSS: (502, "a stored group is damaged"),
    Code.FAILED_PRECONDITION: (502, "the cloud cannot decode this group"),
}


def _when(us: int) -> str:
    return datetime.datetime.fromtimestamp(us / 1e6, datetime.timezone.utc).isoformat(timespec="milliseconds")


def _png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


def _until_data_loss(regions) -> tuple[list[service_pb2.Region], grpc.RpcError | None]:
    """All regions a query returns; a DATA_LOSS end (damaged groups, the others still came) is returned,
    not raised, so the page can show what arrived and say what did not."""
    out = []
    try:
        out.extend(regions)
    except grpc.RpcError as exc:
        if exc.code() != Code.DATA_LOSS:
            raise
        return out, exc
    return out, None


class Viewer:
    """The pages of one cloud; `app` is the ASGI application."""

    def __init__(self, client: CloudClient, cloud: str, timeout_s: float = 10.0):
        self.client, self.cloud, self.timeout = client, cloud, timeout_s
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters["when"] = _when
        self.app = FastAPI(title="roistream viewer", docs_url=None, redoc_url=None, openapi_url=None)
        self.app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
        self.app.add_exception_handler(grpc.RpcError, self._rpc_error)
        self.app.add_exception_handler(BadInput, self._bad_input)
        self.app.add_exception_handler(RequestValidationError, self._bad_input)
        self.app.add_exception_handler(StarletteHTTPException, self._http_error)  # FastAPI's and the router's
        self._routes()

    # ---- errors ----
    def _error(self, request: Request, status: int, title: str, detail: str) -> HTMLResponse:
        return self.templates.TemplateResponse(request, "error.html", {
            "title": title, "detail": detail, "status": status, "cloud": self.cloud}, status_code=status)

    def _rpc_error(self, request: Request, exc: grpc.RpcError) -> HTMLResponse:
        status, title = RPC_ERRORS.get(exc.code(), (502, "the cloud failed the request"))
        return self._error(request, status, title, f"{self.cloud}: {exc.code().name}: {exc.details()}")

    def _bad_input(self, request: Request, exc: Exception) -> HTMLResponse:
        if isinstance(exc, RequestValidationError):
            detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        else:
            detail = str(exc)
        return self._error(request, 400, "bad request", detail)

    def _http_error(self, request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        return self._error(request, exc.status_code, {404: "not found", 423: "locked"}.get(exc.status_code, "error"),
                           str(exc.detail))

    # ---- cloud look-ups ----
    def _stream(self, stream_id: str) -> service_pb2.StreamInfo:
        for s in self.client.list_streams(timeout=self.timeout):
            if s.stream_id == stream_id:
                return s
        raise HTTPException(404, f"no stream {stream_id!r} is stored in the cloud at {self.cloud}")

    def _frame(self, stream_id: str, frame: int) -> service_pb2.FrameInfo:
        found = self.client.list_frames(stream_id, frames=(frame, frame), timeout=self.timeout)
        if not found:
            raise HTTPException(404, f"stream {stream_id!r} has no frame {frame}")
        return found[0]

    def _group(self, stream_id: str, frame: int, group_id: int) -> tuple[service_pb2.FrameInfo, service_pb2.GroupInfo]:
        info = self._frame(stream_id, frame)
        for g in info.groups:
            if g.group_id == group_id:
                return info, g
        raise HTTPException(404, f"frame {frame} of stream {stream_id!r} has no group {group_id}")

    def _recent_kbps(self, s: service_pb2.StreamInfo) -> float:
        frames = self.client.list_frames(s.stream_id, time=(s.last_timestamp_us - RECENT_US + 1, s.last_timestamp_us),
                                         limit=MAX_SCAN_FRAMES, timeout=self.timeout)
        return sum(g.bytes for f in frames for g in f.groups) * 8 / (RECENT_US / 1e6) / 1000

    # ---- pages ----
    def _routes(self) -> None:
        app, page = self.app, self.templates.TemplateResponse

        @app.get("/", response_class=HTMLResponse)
        def streams(request: Request):
            now = time.time() * 1e6
            rows = [{"info": s, "kbps": self._recent_kbps(s), "live": now - s.last_timestamp_us < RECENT_US}
                    for s in self.client.list_streams(timeout=self.timeout)]
            return page(request, "streams.html", {"rows": rows, "cloud": self.cloud})

        @app.get("/streams/{stream_id}", response_class=HTMLResponse)
        def live(request: Request, stream_id: str):
            s = self._stream(stream_id)
            return page(request, "live.html", {"s": s, "cloud": self.cloud,
                                               "frame": self._frame(stream_id, s.last_frame)})

        @app.get("/streams/{stream_id}/composite.png")
        def composite(stream_id: str, frame: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None):
            if frame is None:
                frame = self._stream(stream_id).last_frame
            info = self._frame(stream_id, frame)
            regions, damaged = _until_data_loss(self.client.get_regions(
                stream_id=stream_id, frames=(frame, frame), composite=True, include_background=True,
                output="raw", encrypted="omit", timeout=self.timeout))
            image = next((decode_pixels(r)[0] for r in regions if r.image), None)
            if image is None:
                if damaged is not None:
                    raise damaged
                image = np.full((info.height, info.width, 3), 96, np.uint8)  # only encrypted groups: nothing to show
            # the records (metadata and block runs; never decoded) give each group's outline
            records = list(self.client.get_regions(stream_id=stream_id, frames=(frame, frame), output="records",
                                                   timeout=self.timeout))
            if records:
                image = outline_groups(image, records[0].header, [r.record for r in records])
            if damaged is not None:
                cv2.putText(image, "damaged group(s) not shown", (8, image.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX,
                            0.5, (255, 0, 0), 1, cv2.LINE_AA)
            return Response(_png(image), media_type="image/png",
                            headers={"Cache-Control": "no-store", "X-Frame-Index": str(frame)})

        @app.get("/streams/{stream_id}/events")
        async def events(request: Request, stream_id: str):
            await run_in_threadpool(self._stream, stream_id)  # an unknown stream is a 404, not an empty stream
            return StreamingResponse(self._events(stream_id), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-store"})

        @app.get("/streams/{stream_id}/regions", response_class=HTMLResponse)
        def gallery(request: Request, stream_id: str):
            f = GalleryFilter.parse(request.query_params)
            frames = self.client.list_frames(stream_id, frames=f.frames, time=f.time, limit=MAX_SCAN_FRAMES,
                                             timeout=self.timeout)
            matches = [(info, g) for info in frames for g in info.groups if g.group_id != 0 and f.keeps(g)]
            pages = max(1, -(-len(matches) // f.per_page))
            if f.page > pages:
                raise BadInput(f"page={f.page} is past the last page ({pages})")
            shown = matches[(f.page - 1) * f.per_page: f.page * f.per_page]
            labels = sorted({g.label for info in frames for g in info.groups if g.group_id != 0})
            query = {k: v for k, v in request.query_params.items() if k != "page" and v}
            return page(request, "gallery.html", {
                "stream_id": stream_id, "cloud": self.cloud, "shown": shown, "total": len(matches), "f": f,
                "pages": pages, "labels": labels, "params": request.query_params, "query": query,
                "scanned": len(frames), "truncated": len(frames) >= MAX_SCAN_FRAMES})

        @app.get("/streams/{stream_id}/frames/{frame}/groups/{group_id}", response_class=HTMLResponse)
        def region(request: Request, stream_id: str, frame: FrameIndex, group_id: GroupId):
            info, g = self._group(stream_id, frame, group_id)
            return page(request, "region.html", {"stream_id": stream_id, "info": info, "g": g, "cloud": self.cloud})

        @app.get("/streams/{stream_id}/frames/{frame}/groups/{group_id}/crop.png")
        def crop(stream_id: str, frame: FrameIndex, group_id: GroupId, overlay: bool = False):
            _, g = self._group(stream_id, frame, group_id)
            if g.encrypted:
                raise HTTPException(423, f"group {group_id} of frame {frame} is encrypted (key {g.key_id}); "
                                         "the viewer holds no keys, so it stays locked")
            regions, damaged = _until_data_loss(self.client.get_regions(
                stream_id=stream_id, frames=(frame, frame), group_ids=[group_id], include_background=group_id == 0,
                output="png", timeout=self.timeout))
            if damaged is not None:
                raise damaged
            if not regions or not regions[0].image:
                raise HTTPException(404, f"the cloud returned no pixels for group {group_id} of frame {frame}")
            if not overlay:
                return Response(regions[0].image, media_type="image/png")
            pixels, mask = decode_pixels(regions[0])
            shaded = pixels.copy()
            shaded[~mask] = shaded[~mask] // 3  # outside the group's blocks: dimmed
            shaded[mask] = (shaded[mask] * 0.6 + np.array([0, 255, 0]) * 0.4).astype(np.uint8)
            return Response(_png(shaded), media_type="image/png")

        @app.get("/streams/{stream_id}/bandwidth", response_class=HTMLResponse)
        def bandwidth(request: Request, stream_id: str):
            frames = self.client.list_frames(stream_id, limit=MAX_SCAN_FRAMES, timeout=self.timeout)
            _, series = plot.bytes_per_class(frames)
            return page(request, "bandwidth.html", {
                "stream_id": stream_id, "cloud": self.cloud, "svg": plot.svg(frames), "frames": len(frames),
                "totals": {k: sum(v) for k, v in series.items()}, "truncated": len(frames) >= MAX_SCAN_FRAMES})

    async def _events(self, stream_id: str):
        """Server-sent events: one `frame` event per frame the cloud stores from now on (read from
        Subscribe on a thread, since the gRPC iterator blocks), `error` if the subscription fails, and a
        comment every second so a closed page is noticed and its subscription cancelled."""
        call = self.client.subscribe(stream_id=stream_id, output="records", include_background=True)
        events: queue.Queue = queue.Queue()

        def pump() -> None:
            last = None
            try:
                for r in call:
                    if r.frame_index != last:
                        last = r.frame_index
                        events.put(("frame", {"frame": r.frame_index, "time": _when(r.timestamp_us)}))
            except grpc.RpcError as exc:
                if exc.code() != Code.CANCELLED:
                    events.put(("error", {"error": f"{self.cloud}: {exc.code().name}: {exc.details()}"}))
            events.put(None)

        threading.Thread(target=pump, daemon=True, name=f"sse-{stream_id}").start()
        try:
            yield "retry: 2000\n\n"
            while True:
                try:
                    item = await asyncio.to_thread(events.get, True, 1.0)
                except queue.Empty:
                    yield ": keepalive\n\n"
                    continue
                if item is None:
                    return
                kind, data = item
                yield f"event: {kind}\ndata: {json.dumps(data)}\n\n"
        finally:
            call.cancel()


def create_app(client: CloudClient, cloud: str, timeout_s: float = 10.0) -> FastAPI:
    return Viewer(client, cloud, timeout_s).app
