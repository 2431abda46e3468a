"""Frame-level codec API: `Codec.encode(image, plan) -> EncodedFrame` and
`Codec.decode(frame, groups=...) -> DecodedFrame`.

A frame is a set of independently decodable groups; decoding any subset reads and decodes only
those groups' records. Encrypted groups need the key whose id their record names.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import crypto, scaling, signing
from .bitstream import (BITSTREAM_VERSION, EncodedFrame, GroupRecord, dequantize_quality, parse_frame,
                        quantize_quality, record_binding, record_block_mask, record_crc, set_block_mask)
from .coder import GroupCoder
from .errors import BitstreamError, CorruptStreamError, DecryptionError
from .geometry import BBox, bbox_blocks, block_grid_shape, frame_blocks, model_input, upsample_blocks
from .plan import FramePlan, GroupInfo
from .runtime.backend import Backend
from .validate import DEFAULT_LIMITS, DecodeLimits, check_frame_groups, check_header, check_record
from .weights import CodecWeights, load_codec_weights


@dataclass
class DecodedGroup:
    group_id: int
    label: str
    score: float
    quality: float
    bbox: BBox
    pixels: np.ndarray  # uint8 [bbox.height, bbox.width, 3], black outside the mask
    mask: np.ndarray  # bool [bbox.height, bbox.width]: the group's pixels
    track_id: int = 0  # the object's track (0 = not tracked)
    latents: np.ndarray | None = None  # the group's gained latents as entropy-decoded: the same on every runtime


@dataclass
class DecodedFrame:
    width: int
    height: int
    groups: dict[int, DecodedGroup] = field(default_factory=dict)
    failures: dict[int, BitstreamError] = field(default_factory=dict)

    @property
    def image(self) -> np.ndarray:
        """The decoded groups composited on a black frame [H, W, 3] uint8."""
        canvas = np.zeros((self.height, self.width, 3), np.uint8)
        for g in self.groups.values():
            region = canvas[g.bbox.slices]
            region[g.mask] = g.pixels[g.mask]
        return canvas

    @property
    def mask(self) -> np.ndarray:
        """Pixels covered by the decoded groups [H, W] bool."""
        out = np.zeros((self.height, self.width), bool)
        for g in self.groups.values():
            out[g.bbox.slices] |= g.mask
        return out


def _to_rgb_float(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.dtype} {image.shape}")
    return model_input(image)


class Codec:
    """Encoder and decoder for roistream frames with one set of weights.

    The decoder refuses frames over `limits` (codec.validate.DecodeLimits) before allocating anything.
    """

    def __init__(self, weights: CodecWeights, backend: Backend | None = None, limits: DecodeLimits = DEFAULT_LIMITS):
        self.weights = weights
        self.coder = GroupCoder(weights, backend)
        self.limits = limits

    @classmethod
    def load(cls, path: Path | str | None = None, backend: Backend | None = None,
             limits: DecodeLimits = DEFAULT_LIMITS) -> "Codec":
        """Load a weights file (default: the weights shipped with the package)."""
        return cls(load_codec_weights(path), backend, limits)

    @property
    def weights_id(self) -> str:
        return self.weights.weights_id

    # ---- encoding ----
    def encode(self, image: np.ndarray, plan: FramePlan, *, key: crypto.EncryptionKey | None = None,
               signer: signing.SigningKey | None = None, stream_id: str = "", frame_index: int = 0,
               timestamp_us: int | None = None) -> EncodedFrame:
        """Code the groups of `plan` (codec.plan.FramePlan) in an HxWx3 uint8 RGB image.

        Groups the plan marks for encryption are sealed with `key`; with a `signer` every record is
        signed (codec.signing). Groups with no block inside the frame (only padding) are not coded.
        """
        height, width = image.shape[:2]
        grid = block_grid_shape(height, width)
        group_map = plan.group_map
        if group_map.shape != grid:
            raise ValueError(f"group map is {group_map.shape}, a {width}x{height} frame needs {grid}")
        if plan.encrypt_ids and key is None:
            raise ValueError("groups to encrypt were given without a key")
        padded = _to_rgb_float(image)
        downscaled: dict[int, np.ndarray] = {}
        frame = EncodedFrame()
        h = frame.header
        h.format_version, h.weights_id = BITSTREAM_VERSION, self.weights_id
        h.width, h.height, h.stream_id, h.frame_index = width, height, stream_id, frame_index
        h.timestamp_us = time.time_ns() // 1000 if timestamp_us is None else timestamp_us
        # a group made only of padding blocks (a background when objects cover the whole frame) has
        # no pixel to code: it is left out, as its record could not name a box inside the frame
        in_frame = set(np.unique(group_map[frame_blocks(height, width)]).tolist())
        present = set(np.unique(group_map).tolist())
        ids = [gid for gid in plan.groups if gid in present and gid in in_frame]
        h.group_ids.extend(ids)
        h.encrypted_group_ids.extend(gid for gid in ids if plan.groups[gid].encrypt)  # covered by every CRC and AAD
        for gid in ids:
            info = plan.groups[gid]
            q_index = quantize_quality(info.quality)
            block_mask = group_map == gid
            factor = info.scale
            if factor == 1:
                payload, _ = self.coder.encode(padded, block_mask, q_index)
            else:
                if factor not in downscaled:
                    downscaled[factor] = _to_rgb_float(scaling.downscale(image, factor))
                coarse = scaling.coarse_block_mask(block_mask, height, width, factor)
                payload, _ = self.coder.encode(downscaled[factor], coarse, q_index)
            self._add_record(frame, payload, block_mask, gid, info, key if info.encrypt else None, signer)
        return frame

    def _add_record(self, frame: EncodedFrame, payload: bytes, block_mask: np.ndarray, gid: int, info: GroupInfo,
                    key: crypto.EncryptionKey | None, signer: signing.SigningKey | None = None) -> None:
        rec = frame.groups.add()
        rec.group_id, rec.label, rec.score, rec.quality = gid, info.label, info.score, quantize_quality(info.quality)
        rec.track_id = info.track_id  # set before the CRC and the AES-GCM binding, which cover the record's metadata
        rec.scale_log2 = scaling.scale_log2(info.scale)
        set_block_mask(frame.header, rec, block_mask)
        if key is not None:
            rec.encryption.algorithm, rec.encryption.key_id = crypto.ALGORITHM, key.key_id
            nonce, payload = crypto.seal(key, payload, record_binding(frame.header, rec))
            rec.encryption.nonce = nonce
        rec.payload = payload
        if signer is not None:
            signer.sign(frame.header, rec)
        rec.crc32 = record_crc(frame.header, rec)

    # ---- decoding ----
    def decode_group(self, header, record: GroupRecord, keys: crypto.Keyring | None = None,
                     trusted: signing.TrustedKeys | None = None) -> DecodedGroup:
        """Decode one group record (codec.validate checks it first, `trusted` edge keys verify its
        signature when given, then the key opens it)."""
        check_header(header, self.weights_id, self.limits)
        check_record(header, record, self.limits)
        if trusted:
            trusted.verify(header, record)
        payload = record.payload
        what = f"group {record.group_id}"
        if record.HasField("encryption"):
            enc = record.encryption
            key = keys.get(enc.key_id) if keys else None
            if key is None:
                raise DecryptionError(f"{what} is encrypted with key {enc.key_id!r}, which was not given")
            payload = crypto.open_sealed(key, enc.nonce, payload, record_binding(header, record), what)
        block_mask = record_block_mask(header, record)
        factor = 1 << record.scale_log2
        coded_mask = block_mask if factor == 1 else scaling.coarse_block_mask(block_mask, header.height,
                                                                              header.width, factor)
        out = self.coder.decode(payload, coded_mask, record.quality)
        pixels = out.pixels if factor == 1 else scaling.upsample(out.pixels, out.pixel_mask, factor)
        box = BBox(record.bbox.x, record.bbox.y, record.bbox.width, record.bbox.height)  # checked against the mask
        rows, cols = out.crop.pixel_slices
        oy, ox = box.y - rows.start * factor, box.x - cols.start * factor
        region = (slice(oy, oy + box.height), slice(ox, ox + box.width))
        in_box = upsample_blocks(block_mask[bbox_blocks(box, header.width, header.height)])
        mask = in_box[: box.height, : box.width]  # the group's pixels in its box
        rgb = np.rint(pixels.transpose(1, 2, 0)[region] * 255).astype(np.uint8) * mask[..., None]
        return DecodedGroup(record.group_id, record.label, float(record.score), dequantize_quality(record.quality),
                            box, rgb, mask, int(record.track_id), out.y_hat)

    def decode(self, frame: EncodedFrame | bytes, groups: Iterable[int] | None = None,
               labels: Iterable[str] | None = None, keys: crypto.Keyring | None = None,
               on_error: str = "raise", trusted: signing.TrustedKeys | None = None) -> DecodedFrame:
        """Decode the selected groups (all by default; `groups` ids and/or `labels` select).

        With `trusted` edge keys, every decoded record must carry a valid signature of one of them.

        on_error="raise" raises the first BitstreamError; "skip" records failures per group in
        DecodedFrame.failures and decodes the others.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError("on_error must be 'raise' or 'skip'")
        if not isinstance(frame, EncodedFrame):
            frame = parse_frame(frame)
        check_header(frame.header, self.weights_id, self.limits)
        check_frame_groups(frame, self.limits)
        wanted_ids = None if groups is None else set(groups)
        wanted_labels = None if labels is None else set(labels)
        out = DecodedFrame(frame.header.width, frame.header.height)
        present, listed = {r.group_id for r in frame.groups}, set(frame.header.group_ids)
        missing = sorted((listed if wanted_ids is None else wanted_ids & listed) - present)
        if missing and wanted_labels is None:
            raise CorruptStreamError(f"the frame is missing group(s) {missing} (truncated stream?)")
        for record in frame.groups:
            if wanted_ids is not None and record.group_id not in wanted_ids:
                continue
            if wanted_labels is not None and record.label not in wanted_labels:
                continue
            try:
                out.groups[record.group_id] = self.decode_group(frame.header, record, keys, trusted)
            except BitstreamError as exc:
                if on_error == "raise":
                    raise
                out.failures[record.group_id] = exc
        return out
