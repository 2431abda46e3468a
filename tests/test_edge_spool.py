"""The durable outbox: FIFO order, acks, bounds with drop-oldest counters, survival across restarts."""

from __future__ import annotations

import threading
import time

import pytest

from edge.spool import Spool


def fill(spool, n, size=100, stream="cam", start=0):
    return [spool.put(bytes([i % 256]) * size, stream, start + i) for i in range(n)]


def test_fifo_ack_and_reject(tmp_path):
    with Spool(tmp_path / "out.spool") as spool:
        seqs = fill(spool, 5)
        assert seqs == sorted(seqs) and len(spool) == 5 and spool.nbytes == 500
        entries = spool.peek(0, 3)
        assert [e.frame_index for e in entries] == [0, 1, 2] and entries[1].data == bytes([1]) * 100
        assert [e.frame_index for e in spool.peek(entries[-1].seq, 10)] == [3, 4]
        assert spool.ack(seqs[0]) and not spool.ack(seqs[0])
        assert spool.reject(seqs[1])
        assert [e.frame_index for e in spool.peek()] == [2, 3, 4]
        c = spool.counters()
        assert (c["put"], c["acked"], c["rejected"], c["dropped_size"]) == (5, 2, 1, 0)


def test_survives_restart(tmp_path):
    path = tmp_path / "out.spool"
    spool = Spool(path)
    seqs = fill(spool, 4, stream="cam7", start=10)
    spool.ack(seqs[0])
    spool.close()
    with pytest.raises(RuntimeError, match="closed"):
        spool.peek()
    again = Spool(path)
    assert [e.frame_index for e in again.peek()] == [11, 12, 13]
    assert len(again) == 3 and again.nbytes == 300
    assert again.next_index("cam7") == 14 and again.next_index("other") == 0
    assert again.counters()["acked"] == 1
    assert fill(again, 1)[0] > seqs[-1]  # order continues after the restart
    again.close()


def test_bounded_by_bytes_drops_oldest(tmp_path):
    with Spool(tmp_path / "s", max_bytes=1000) as spool:
        fill(spool, 25, size=100)
        assert len(spool) == 10 and spool.nbytes == 1000
        assert [e.frame_index for e in spool.peek(0, 100)] == list(range(15, 25))  # the newest kept
        assert spool.counters()["dropped_size"] == 15 and spool.dropped == 15


def test_bounded_by_age(tmp_path):
    with Spool(tmp_path / "s", max_age_s=60) as spool:
        old = time.time_ns() // 1000 - 120 * 10**6
        spool.put(b"a" * 10, "cam", 0, created_us=old)
        spool.put(b"b" * 10, "cam", 1, created_us=old + 1)
        spool.put(b"c" * 10, "cam", 2)
        assert [e.frame_index for e in spool.peek()] == [2]
        assert spool.counters()["dropped_age"] == 2


def test_producer_and_sender_threads(tmp_path):
    with Spool(tmp_path / "s") as spool:
        received = []

        def sender():
            last = 0
            while len(received) < 200:
                if not spool.wait(last, 5):
                    return
                for e in spool.peek(last, 16):
                    received.append(e.frame_index)
                    last = e.seq
                    spool.ack(e.seq)

        t = threading.Thread(target=sender)
        t.start()
        fill(spool, 200, size=10)
        t.join(30)
        assert received == list(range(200))
        assert spool.wait_empty(5) and len(spool) == 0


def test_not_a_spool(tmp_path):
    bad = tmp_path / "bad.spool"
    bad.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(RuntimeError, match="not a usable spool"):
        Spool(bad)
