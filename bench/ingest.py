"""Cloud benchmark: sustained ingest from concurrent edge streams, and selective GetRegions.

    python -m bench.ingest [--streams 8] [--seconds 20] [--window 4] [--rate 40]
    python -m bench.ingest --nodes 1,2,3 [--streams 8] [--seconds 8] [--rate 40]

`--nodes` measures the distributed backends instead (PostgreSQL + SeaweedFS S3 + NATS JetStream, started
locally by bench/services.py): for each node count N, N `cloud serve` nodes on one fresh shared state
take `--streams` paced streams each (round robin), against the embedded single node in the same run;
frames/s, p50/p99 ack and CPU ms per frame per node, plus the shared services' CPU. Writes
bench/results/ingest_scale.json and ingest_scale.md.

Starts `roistream cloud serve` as a separate process on loopback with a fresh data directory,
pre-encodes a handful of realistic vtest.avi frames (3-6 object groups, 10-30 KB), and replays
them with new frame indexes from `--streams` concurrent client streams:

1. saturation: each stream sends as fast as acks allow (at most `--window` frames unacknowledged);
2. paced: each stream sends `--rate` frames/s (a camera), measuring acknowledgement latency under
   a steady load.

An acknowledgement is measured from the moment the client hands the frame to gRPC to the moment
its ack (sent by the server after the fsync + index commit) arrives. Then GetRegions latency for
one small group vs the whole frame (background included), decoded to PNG by the server.
Writes bench/results/ingest.json, ingest.md and ingest.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from codec.bitstream import record_crc
from codec.plan import FramePlan
from proto import bitstream_pb2
from codec import paths

from .common import RESULTS, md_table, write_results

# boxes (x, y, width, height) around the people and cars of the first vtest.avi frames
OBJECTS = [("person", (224, 176, 112, 160)), ("person", (464, 128, 96, 128)), ("person", (608, 208, 112, 144)),
           ("car", (624, 16, 144, 112)), ("tripod", (432, 320, 112, 176)), ("cone", (0, 160, 320, 64))]
GROUP_COUNTS = (3, 4, 5, 6, 4, 5)  # groups of the replayed frames
VIDEO_FRAMES = (0, 5, 10, 15, 20, 25)


def relabel(frame: bitstream_pb2.EncodedFrame, stream_id: str, frame_index: int,
            timestamp_us: int | None = None) -> bitstream_pb2.EncodedFrame:
    """A copy of a plaintext frame under another stream, frame index and time, with its CRCs recomputed."""
    out = bitstream_pb2.EncodedFrame()
    out.CopyFrom(frame)
    out.header.stream_id, out.header.frame_index = stream_id, frame_index
    out.header.timestamp_us = frame_index * 1000 if timestamp_us is None else timestamp_us
    for record in out.groups:
        record.crc32 = record_crc(out.header, record)
    return out


def _video_frames() -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(paths.video_path()))
    out, index = [], 0
    while len(out) < len(VIDEO_FRAMES):
        ok, bgr = cap.read()
        if not ok:
            raise SystemExit(f"cannot read {len(VIDEO_FRAMES)} frames from {paths.video_path()}")
        if index in VIDEO_FRAMES:
            out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        index += 1
    return out


def _group_map(shape: tuple[int, int], count: int) -> np.ndarray:
    from codec.geometry import block_grid_shape

    gm = np.zeros(block_grid_shape(*shape), np.int32)
    for gid, (_, (x, y, w, h)) in enumerate(OBJECTS[:count], 1):
        gm[y // 16:(y + h) // 16, x // 16:(x + w) // 16] = gid
    return gm


def encode_frames(codec) -> tuple[list[bitstream_pb2.EncodedFrame], bitstream_pb2.EncodedFrame]:
    """Replay frames (object groups only, as an edge sends between background refreshes) and one keyframe
    with the background group too (for the one-group vs whole-frame GetRegions comparison)."""
    images = _video_frames()
    labels = {gid: label for gid, (label, _) in enumerate(OBJECTS, 1)}
    qualities = {0: 0.3, **{gid: 0.95 for gid in labels}}
    replay = []
    for image, count in zip(images, GROUP_COUNTS):
        gm = _group_map(image.shape[:2], count)
        replay.append(codec.encode(image, FramePlan.from_groups(gm, qualities, labels=labels,
                                                                groups=range(1, count + 1))))
    key = codec.encode(images[0], FramePlan.from_groups(_group_map(images[0].shape[:2], len(OBJECTS)), qualities,
                                                        labels=labels), stream_id="keyframe", frame_index=0)
    return replay, key


class Server:
    """`roistream cloud serve` in its own process (the benchmark's clients must not share its GIL)."""

    def __init__(self, data: Path, log_path: Path, *backends: str):
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roistream.cli", "cloud", "serve", "--data", str(data), "--host", "127.0.0.1",
             "--port", "0", "--decode-threads", "1", "--log-level", "info",
             "--max-calls-per-peer", "0", *backends],  # every client stream of the benchmark comes from this host
            stderr=subprocess.PIPE, text=True, cwd=paths.SOURCE_ROOT)
        for line in self.proc.stderr:
            self.log.write(line)
            entry = json.loads(line) if line.startswith("{") else {}
            if entry.get("event") == "server started":
                self.port = entry["port"]
                break
        else:
            self.log.close()
            raise SystemExit("the server did not start:\n" + log_path.read_text()[-3000:])
        threading.Thread(target=lambda: [self.log.write(line) for line in self.proc.stderr], daemon=True).start()

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (Linux /proc)."""
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU time of a process (and of its exited children, if asked), from Linux /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    used = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return used / os.sysconf("SC_CLK_TCK")


def _stream(target: str, stream_id: str, templates, seconds: float, window: int, rate: float | None,
            out: dict) -> None:
    from cloud.client import CloudClient

    sent: dict[int, float] = {}
    latencies: list[float] = []
    stored_bytes = 0
    end = time.perf_counter() + seconds

    def frames():
        start = time.perf_counter()
        n = 0
        while time.perf_counter() < end:
            if rate:
                delay = start + n / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            frame = relabel(templates[n % len(templates)], stream_id, n, time.time_ns() // 1000)
            sent[n] = time.perf_counter()
            yield frame
            n += 1

    with CloudClient(target) as client:
        for ack in client.ingest(frames(), window=window):
            latencies.append(time.perf_counter() - sent.pop(ack.frame_index))
            if ack.status != ack.STORED:
                raise RuntimeError(f"{stream_id}/{ack.frame_index}: {ack.error or ack.status}")
            stored_bytes += ack.stored_bytes
    out[stream_id] = (latencies, stored_bytes)


def ingest_phase(servers: list[Server], templates, streams: int, seconds: float, window: int, rate: float | None,
                 tag: str, services=None) -> dict:
    """`streams` client streams spread round robin over `servers`; `services()` (optional) is the CPU seconds of
    the shared services so far."""
    results: dict = {}
    threads = [threading.Thread(target=_stream, args=(f"127.0.0.1:{servers[i % len(servers)].port}", f"{tag}{i}",
                                                      templates, seconds, window, rate, results))
               for i in range(streams)]
    node_cpu, client_cpu = [s.cpu_seconds() for s in servers], time.process_time()
    services_cpu = services() if services else 0.0
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    node_cpu = [s.cpu_seconds() - c for s, c in zip(servers, node_cpu)]
    server_cpu, client_cpu = sum(node_cpu), time.process_time() - client_cpu
    services_cpu = (services() - services_cpu) if services else 0.0
    if len(results) != streams:
        raise SystemExit(f"{streams - len(results)} streams failed")
    lat = np.array([x for lats, _ in results.values() for x in lats]) * 1000
    total_bytes = sum(b for _, b in results.values())
    return {"streams": streams, "window": window, "rate_per_stream": rate, "seconds": round(elapsed, 2),
            "frames": int(lat.size), "frames_per_s": round(lat.size / elapsed, 1),
            "mb_per_s": round(total_bytes / elapsed / 1e6, 2), "mean_frame_kb": round(total_bytes / lat.size / 1e3, 1),
            "ack_ms_p50": round(float(np.percentile(lat, 50)), 2), "ack_ms_p99": round(float(np.percentile(lat, 99)), 2),
            "ack_ms_max": round(float(lat.max()), 2),
            "server_cpu_ms_per_frame": round(1000 * server_cpu / lat.size, 3), "nodes": len(servers),
            "frames_per_s_per_node": round(lat.size / elapsed / len(servers), 1),
            "node_cpu_ms_per_frame": [round(1000 * c * len(servers) / lat.size, 3) for c in node_cpu],
            "services_cpu_ms_per_frame": round(1000 * services_cpu / lat.size, 3),
            "client_cpu_ms_per_frame": round(1000 * client_cpu / lat.size, 3), "_latencies": lat}


def regions_latency(port: int, keyframe: bitstream_pb2.EncodedFrame, repeats: int) -> dict:
    """Median GetRegions time for one small group vs the whole frame (every group, background included)."""
    from cloud.client import CloudClient

    area = keyframe.header.width * keyframe.header.height
    person = keyframe.groups[1]
    with CloudClient(f"127.0.0.1:{port}") as client:
        assert list(client.ingest([keyframe]))[0].status == 0

        def timed(**query) -> tuple[float, int]:
            times, count = [], 0
            for _ in range(repeats):
                t = time.perf_counter()
                count = len(list(client.get_regions(stream_id="keyframe", **query)))
                times.append(time.perf_counter() - t)
            return statistics.median(times) * 1000, count

        one, n_one = timed(group_ids=[person.group_id], output="png")
        whole, n_whole = timed(include_background=True, output="png")
        records, _ = timed(include_background=True, output="records")
    return {"frame": f"{keyframe.header.width}x{keyframe.header.height}", "frame_kb": round(keyframe.ByteSize() / 1e3, 1),
            "one_group_area_pct": round(100 * person.bbox.width * person.bbox.height / area, 2),
            "one_group_ms": round(one, 2), "whole_frame_ms": round(whole, 2), "whole_frame_groups": n_whole,
            "whole_frame_records_ms": round(records, 2), "speedup": round(whole / one, 2), "repeats": repeats,
            "one_group_regions": n_one}


def _plot(phases: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for p in phases:
        lat = np.sort(p["_latencies"])
        label = f"{p['name']}: {p['frames_per_s']} frames/s"
        ax.plot(lat, np.arange(1, lat.size + 1) / lat.size, label=label)
    ax.axvline(50, color="gray", linestyle=":", label="goal p99 50 ms")
    ax.set_xscale("log")
    ax.set_xlabel("ack latency (ms)")
    ax.set_ylabel("fraction of frames")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each ingest phase")
    parser.add_argument("--window", type=int, default=4, help="unacknowledged frames per stream (saturation)")
    parser.add_argument("--rate", type=float, default=40.0, help="frames/s per stream in the paced phase")
    parser.add_argument("--repeats", type=int, default=15, help="GetRegions repetitions")
    parser.add_argument("--nodes", help="node counts on the distributed backends, e.g. 1,2,3 (see above)")
    args = parser.parse_args(argv)
    nodes = [int(n) for n in args.nodes.split(",")] if args.nodes else []

    import torch

    from codec.api import Codec

    torch.set_num_threads(1)
    codec = Codec.load()
    t = time.perf_counter()
    templates, keyframe = encode_frames(codec)
    sizes = [f.ByteSize() / 1e3 for f in templates]
    print(f"encoded {len(templates)} frames in {time.perf_counter() - t:.1f} s: "
          f"{[round(s, 1) for s in sizes]} KB, groups {[len(f.groups) for f in templates]}", flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    if nodes:
        return scale(nodes, templates, args)
    with tempfile.TemporaryDirectory(prefix="roistream-bench-") as tmp:
        server = Server(Path(tmp) / "data", Path(tmp) / "server.log")
        try:
            phases = []
            for name, window, rate in (("saturation", args.window, None), ("paced", 1, args.rate)):
                phase = ingest_phase([server], templates, args.streams, args.seconds, window, rate, name[:3])
                phase["name"] = name
                phases.append(phase)
                print(json.dumps({k: v for k, v in phase.items() if not k.startswith("_")}), flush=True)
            regions = regions_latency(server.port, keyframe, args.repeats)
            print(json.dumps(regions), flush=True)
        finally:
            server.stop()

    _plot(phases, RESULTS / "ingest.png")
    sat, paced = phases
    goals = {"ingest_frames_per_s>=300": sat["frames_per_s"] >= 300,
             "paced_p99_ack_ms<=50": paced["ack_ms_p99"] <= 50,
             "saturation_p99_ack_ms<=50": sat["ack_ms_p99"] <= 50,
             "one_group_speedup>=3": regions["speedup"] >= 3}
    data = {"frames": {"replayed_kb": [round(s, 1) for s in sizes], "groups": [len(f.groups) for f in templates]},
            "ingest": [{k: v for k, v in p.items() if not k.startswith("_")} for p in phases],
            "get_regions": regions, "goals_met": goals}
    rows = [[p["name"], p["streams"], p["window"], p["rate_per_stream"] or "max", p["frames"], p["frames_per_s"],
             p["mb_per_s"], p["mean_frame_kb"], p["ack_ms_p50"], p["ack_ms_p99"], p["ack_ms_max"],
             p["server_cpu_ms_per_frame"], p["client_cpu_ms_per_frame"]] for p in phases]
    md = "\n\n".join([
        "# Cloud ingest benchmark (`python -m bench.ingest`)",
        f"Server: `roistream cloud serve` (separate process, SQLite index + segment files, fsync before every ack "
        f"batch) on loopback; {args.streams} client streams in one process; frames of "
        f"{min(sizes):.1f}-{max(sizes):.1f} KB with {min(data['frames']['groups'])}-{max(data['frames']['groups'])} "
        "groups, replayed with new frame indexes. Ack latency = frame handed to gRPC -> durable ack received.",
        md_table(["phase", "streams", "window", "fps/stream", "frames", "frames/s", "MB/s", "KB/frame", "p50 ack ms",
                  "p99 ack ms", "max ack ms", "server CPU ms/frame", "client CPU ms/frame"], rows),
        f"GetRegions on a {regions['frame']} frame ({regions['frame_kb']} KB, {regions['whole_frame_groups']} groups), "
        f"PNG output, median of {regions['repeats']}:",
        md_table(["query", "ms"], [
            [f"one group ({regions['one_group_area_pct']}% of the frame)", regions["one_group_ms"]],
            ["whole frame (every group, background included)", regions["whole_frame_ms"]],
            ["whole frame as records (no decode)", regions["whole_frame_records_ms"]],
            ["speedup one group vs whole frame", regions["speedup"]]]),
        "Goals: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in goals.items()),
        "![ack latency CDF](ingest.png)"])
    json_path, md_path = write_results("ingest", data, md)
    print(f"wrote {json_path} and {md_path}")
    return 0


def _services_cpu(pg, s3, nats) -> float:
    """CPU seconds of PostgreSQL (the postmaster, its exited backends and the live ones), SeaweedFS and NATS."""
    pg_pid = int((pg.dir / "db" / "postmaster.pid").read_text().split()[0])
    live = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pg_pid:
                live += cpu_seconds(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return cpu_seconds(pg_pid, children=True) + live + cpu_seconds(s3.proc.pid) + cpu_seconds(nats.proc.pid)


def scale(nodes: list[int], templates, args) -> int:
    """Paced ingest on 1..N distributed nodes and on the embedded single node, in one run."""
    from .services import Nats, Postgres, S3

    rows, phases = [], []
    with tempfile.TemporaryDirectory(prefix="roistream-bench-") as tmp:
        tmp = Path(tmp)
        server = Server(tmp / "data", tmp / "embedded.log")
        try:
            phase = ingest_phase([server], templates, args.streams, args.seconds, 1, args.rate, "emb")
        finally:
            server.stop()
        phase["name"] = "embedded (SQLite + segments)"
        phases.append(phase)
        print(json.dumps({k: v for k, v in phase.items() if not k.startswith("_")}), flush=True)
        pg, s3, nats = Postgres.create(), S3.create(), Nats.create()
        try:
            for n in nodes:
                backends = ("--index", pg.fresh_url(), "--objects", s3.fresh_url(), "--s3-endpoint", s3.endpoint,
                            "--events", nats.url)
                servers = []
                try:
                    for i in range(n):
                        servers.append(Server(tmp / "unused", tmp / f"n{n}-{i}.log", *backends))
                    phase = ingest_phase(servers, templates, args.streams * n, args.seconds, 1, args.rate, f"n{n}-",
                                         services=lambda: _services_cpu(pg, s3, nats))
                finally:
                    for sv in servers:
                        sv.stop()
                phase["name"] = f"{n} node(s) on PostgreSQL + S3 + NATS"
                phases.append(phase)
                print(json.dumps({k: v for k, v in phase.items() if not k.startswith("_")}), flush=True)
        finally:
            nats.close()
            s3.close()
            pg.close()
    for p in phases:
        rows.append([p["name"], p["streams"], p["rate_per_stream"], p["frames_per_s"], p["frames_per_s_per_node"],
                     p["ack_ms_p50"], p["ack_ms_p99"], " / ".join(str(c) for c in p["node_cpu_ms_per_frame"]),
                     p["services_cpu_ms_per_frame"], p["client_cpu_ms_per_frame"]])
    embedded, one = phases[0], next((p for p in phases[1:] if p["nodes"] == 1), None)
    goals = {}
    if one:
        goals["one_node_frames_per_s>=300"] = one["frames_per_s"] >= 300
        goals["one_node_paced_p99_ack_ms<=50"] = one["ack_ms_p99"] <= 50
        goals["node_cpu_per_frame<=1.5x_embedded"] = (one["node_cpu_ms_per_frame"][0]
                                                      <= 1.5 * embedded["node_cpu_ms_per_frame"][0])
    data = {"cpus": os.cpu_count(), "ingest": [{k: v for k, v in p.items() if not k.startswith("_")} for p in phases],
            "goals_met": goals}
    md = "\n\n".join([
        "# Scale-out ingest benchmark (`python -m bench.ingest --nodes " + ",".join(map(str, nodes)) + "`)",
        f"Paced ingest ({args.rate:g} frames/s per stream, window 1, {args.streams} streams per node, "
        f"{args.seconds:g} s per run) from one client process on loopback. Nodes are `roistream cloud serve` "
        "processes; the distributed ones share PostgreSQL (index), SeaweedFS `weed mini` (S3, one object per "
        f"frame) and NATS JetStream (live events), all on this {os.cpu_count()}-core machine, so nodes, services "
        "and the client share the same cores (and other work on the machine). Node CPU ms/frame is each node's "
        "CPU over the frames it acknowledged; services CPU is PostgreSQL + SeaweedFS + NATS over all frames.",
        md_table(["backend", "streams", "fps/stream", "frames/s", "frames/s per node", "p50 ack ms", "p99 ack ms",
                  "node CPU ms/frame (each)", "services CPU ms/frame", "client CPU ms/frame"], rows),
        "Goals: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in goals.items())])
    json_path, md_path = write_results("ingest_scale", data, md)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
