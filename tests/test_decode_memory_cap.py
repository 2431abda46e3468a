"""Issue 19 defect 6 under a real memory cap: a record of a few dozen bytes with a valid CRC that describes
a huge background is refused by `roistream decode` with the decoder's limit message, before anything is
allocated; it never ends in a MemoryError or a crash. The fix is `codec.validate.DecodeLimits`; this test
runs the real command in a child process whose address space is capped (RLIMIT_AS)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codec.bitstream import record_crc, set_block_mask
from codec.geometry import block_grid_shape
from codec.plan import FramePlan

HEADROOM = 1536 * 2**20  # above what importing the command takes; a 2048x2048 decode once took ~1.9 GB more
CLI = "from roistream.cli import main; raise SystemExit(main())"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # every thread's stack counts against the cap


def _vm_peak_after_import() -> int:
    """Bytes of address space the command's imports take here (torch and its libraries map a lot)."""
    probe = ("import torch, cv2, roistream.cli, codec.api; "
             "print(open('/proc/self/status').read().split('VmPeak:')[1].split()[0])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=ENV, check=True)
    return int(out.stdout) * 1024


@pytest.fixture(scope="module")
def cap() -> int:
    if not Path("/proc/self/status").is_file():
        pytest.skip("needs /proc to size the memory cap")
    return max(3 * 2**30, _vm_peak_after_import() + HEADROOM)


def _decode_capped(path: Path, out: Path, cap: int) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return subprocess.run([sys.executable, "-c", CLI, "decode", str(path), "-o", str(out)], capture_output=True,
                          text=True, env=ENV, preexec_fn=limit, timeout=300)


def _hostile(codec, side: int) -> bytes:
    """A real 64x64 background frame re-described as side x side, every block coded from an 8-byte payload,
    with its CRC recomputed: what an attacker (or a damaged file) hands the decoder."""
    frame = codec.encode(np.zeros((64, 64, 3), np.uint8), FramePlan.from_groups(np.zeros(block_grid_shape(64, 64),
                                                                                          np.int32), {0: 0.0}),
                         stream_id="x", frame_index=0, timestamp_us=1)
    frame.header.width = frame.header.height = side
    group = frame.groups[0]
    set_block_mask(frame.header, group, np.ones(block_grid_shape(side, side), bool))
    group.payload = group.payload[:8]
    group.crc32 = record_crc(frame.header, group)
    return frame.SerializeToString()


def test_a_valid_frame_decodes_under_the_cap(tmp_path, codec, small_image, cap):
    """The cap leaves room for real work: what fails below fails because of the record, not the cap."""
    frame = codec.encode(small_image, FramePlan.from_groups(np.zeros(block_grid_shape(*small_image.shape[:2]),
                                                                     np.int32), {0: 0.5}))
    (tmp_path / "ok.rsf").write_bytes(frame.SerializeToString())
    run = _decode_capped(tmp_path / "ok.rsf", tmp_path / "ok.png", cap)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "ok.png").stat().st_size > 0


@pytest.mark.parametrize("side, code, message", [
    (4096, 1, "65536 coded blocks from a 8-byte payload"),
    (16384, 2, "frame size 16384x16384 is over the decoder's limits"),
])
def test_a_tiny_record_of_a_huge_background_is_refused_before_allocating(tmp_path, codec, cap, side, code, message):
    data = _hostile(codec, side)
    assert len(data) < 100
    (tmp_path / "hostile.rsf").write_bytes(data)
    run = _decode_capped(tmp_path / "hostile.rsf", tmp_path / "out.png", cap)
    assert run.returncode == code, run.stderr
    assert message in run.stderr
    assert "MemoryError" not in run.stderr and "Traceback" not in run.stderr
