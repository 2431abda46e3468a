"""Selected groups -> Region messages: read each selected group's bytes and decode only those.

The whole frame is never read or decoded; the background group is decoded only when the query
selects it or asks for a composite. Ciphertext is decrypted only with keys the query carried
(they live in the request object and are dropped with it). A group damaged in storage does not
end the query: the other regions still come back, and the call then ends with DATA_LOSS naming
the groups that could not be read or decoded.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import grpc
import numpy as np

from codec.api import Codec, DecodedGroup
from codec.bitstream import COMPOSITE_BACKGROUND_LAYERS
from codec.errors import BitstreamError, DecryptionError, WeightsMismatchError
from proto import service_pb2

from .errors import ServiceError
from .metrics import Metrics
from .pixels import encode_pixels
from .selector import Encrypted, Output, RegionRequest, Selection
from .storage import GroupGone, GroupRef, Storage, StoredGroup


def _where(ref: GroupRef) -> str:
    return f"{ref.stream_id}/{ref.frame_index} group {ref.meta.group_id}"


class _Damaged(Exception):
    """A group that cannot be read or decoded from storage: left out of the answer, reported at its end."""


class RegionBuilder:
    def __init__(self, storage: Storage, codec: Codec, metrics: Metrics):
        self.storage = storage
        self.codec = codec
        self.metrics = metrics

    def regions(self, request: RegionRequest, selection: Selection | None = None) -> Iterator[service_pb2.Region]:
        """Regions for `selection` (default: the request's own), oldest first."""
        selection = selection or request.selection
        damaged: list[str] = []
        if request.composite:
            yield from self._composites(request, selection, damaged)
        else:
            for ref in self.storage.find_groups(selection):
                try:
                    stored = self._read(ref)
                    if stored is not None:
                        yield self._region(ref, stored, request)
                except _Damaged as exc:
                    damaged.append(str(exc))
        if damaged:
            more = f" (and {len(damaged) - 3} more)" if len(damaged) > 3 else ""
            raise ServiceError(grpc.StatusCode.DATA_LOSS, f"{len(damaged)} group(s) could not be read or decoded "
                                                          f"and were left out: {'; '.join(damaged[:3])}{more}")

    def _read(self, ref: GroupRef) -> StoredGroup | None:
        try:
            return self.storage.read_group(ref)
        except GroupGone:
            return None  # retention removed it after it was selected: as if it had not matched
        except BitstreamError as exc:
            raise _Damaged(f"{_where(ref)}: {exc}") from None

    def _decode(self, ref: GroupRef, stored: StoredGroup, request: RegionRequest) -> DecodedGroup:
        start = time.perf_counter()
        try:
            return self.codec.decode_group(stored.header, stored.record, request.keys)
        except WeightsMismatchError as exc:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, f"cannot decode {_where(ref)}: {exc}") from None
        except DecryptionError as exc:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"cannot decrypt {_where(ref)} with the query's keys: {exc}") from None
        except BitstreamError as exc:
            raise _Damaged(f"{_where(ref)} is damaged in storage: {exc}") from None
        finally:
            self.metrics.decode_seconds.observe(time.perf_counter() - start)

    @staticmethod
    def _returns_record(stored: StoredGroup, request: RegionRequest) -> bool:
        """RECORDS output, or an encrypted group the query does not decrypt: sent as stored."""
        return request.output == Output.RECORDS or (
            stored.record.HasField("encryption") and request.encrypted != Encrypted.DECRYPT)

    def _base(self, ref: GroupRef, stored: StoredGroup) -> service_pb2.Region:
        region = service_pb2.Region(stream_id=ref.stream_id, frame_index=ref.frame_index,
                                    timestamp_us=ref.timestamp_us)
        region.header.CopyFrom(stored.header)
        return region

    def _record_region(self, ref: GroupRef, stored: StoredGroup) -> service_pb2.Region:
        region = self._base(ref, stored)
        region.record.CopyFrom(stored.record)
        region.encrypted = stored.record.HasField("encryption")
        self.metrics.regions.labels("records").inc()
        return region

    def _region(self, ref: GroupRef, stored: StoredGroup, request: RegionRequest) -> service_pb2.Region:
        if self._returns_record(stored, request):
            return self._record_region(ref, stored)
        group = self._decode(ref, stored, request)
        region = self._base(ref, stored)
        region.record.CopyFrom(stored.record)
        region.record.ClearField("payload")
        region.image, region.mask = encode_pixels(group.pixels, group.mask, request.output)
        region.width, region.height = group.bbox.width, group.bbox.height
        self.metrics.regions.labels(Output.Name(request.output).lower()).inc()
        return region

    # ---- composites: one full-frame image per frame ----
    def _backgrounds(self, ref: GroupRef, size: tuple[int, int], request: RegionRequest,
                     cache: dict, damaged: list[str]) -> list[DecodedGroup]:
        """Backgrounds at or before the frame (same frame size), newest first, going back until they
        cover the whole frame (a background has holes where objects stood when it was sent) or
        COMPOSITE_BACKGROUND_LAYERS are used. Each is decoded once and reused by the following frames."""
        layers: list[DecodedGroup] = []
        covered = np.zeros((size[1], size[0]), bool)
        index = ref.frame_index
        while len(layers) < COMPOSITE_BACKGROUND_LAYERS:
            bg = self.storage.background_at(ref.stream_id, index, request.encrypted == Encrypted.DECRYPT)
            if bg is None:
                break
            key = (bg.stream_id, bg.frame_index)
            if key not in cache:
                if len(cache) >= 2 * COMPOSITE_BACKGROUND_LAYERS:
                    cache.pop(next(iter(cache)))
                try:
                    stored = self._read(bg)
                    fits = stored is not None and (stored.header.width, stored.header.height) == size
                    cache[key] = self._decode(bg, stored, request) if fits else None
                except _Damaged as exc:  # the layer is left out, once per query
                    damaged.append(str(exc))
                    cache[key] = None
            if cache[key] is not None:
                layers.append(cache[key])
                covered[cache[key].bbox.slices] |= cache[key].mask
                if covered.all():
                    break
            if bg.frame_index == 0:
                break
            index = bg.frame_index - 1
        return layers

    def _composites(self, request: RegionRequest, selection: Selection,
                    damaged: list[str]) -> Iterator[service_pb2.Region]:
        cache: dict = {}
        frames = itertools.groupby(self.storage.find_groups(selection), key=lambda r: (r.stream_id, r.frame_index))
        sent = 0
        for _, refs in frames:
            canvas = mask = base = None
            for ref in refs:
                try:
                    stored = self._read(ref)
                    if stored is None:
                        continue
                    if self._returns_record(stored, request):
                        yield self._record_region(ref, stored)  # ciphertext is never composited
                        continue
                    group = self._decode(ref, stored, request)
                except _Damaged as exc:
                    damaged.append(str(exc))
                    continue
                if canvas is None:
                    h = stored.header
                    canvas = np.zeros((h.height, h.width, 3), np.uint8)
                    mask = np.zeros((h.height, h.width), bool)
                    base = self._base(ref, stored)
                    for background in reversed(self._backgrounds(ref, (h.width, h.height), request, cache, damaged)):
                        canvas[background.bbox.slices][background.mask] = background.pixels[background.mask]
                canvas[group.bbox.slices][group.mask] = group.pixels[group.mask]
                mask[group.bbox.slices] |= group.mask
            if base is None:
                continue
            base.image, base.mask = encode_pixels(canvas, mask, request.output)
            base.width, base.height = canvas.shape[1], canvas.shape[0]
            self.metrics.regions.labels("composite").inc()
            yield base
            sent += 1
            if request.limit and sent >= request.limit:
                return
