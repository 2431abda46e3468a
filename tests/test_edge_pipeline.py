"""The edge pipeline from Python and through `roistream edge run`, with the real detector, codec and
cloud server."""

from __future__ import annotations

import json
import shutil
import socket

import numpy as np
import pytest

from cloud.client import CloudClient
from codec.crypto import EncryptionKey, Keyring
from codec.runtime import RuntimeUnavailable, load, make_codec
from edge.observers import EdgeMetrics
from edge.pipeline import STAGES, EdgePipeline
from edge.policy import RoiPolicy
from edge.sinks import MemorySink
from edge.sources import Frame, open_source
from codec import paths
from roistream.cli import main
from tests.edge_fixtures import detector, needs_shared, start_cloud, vtest_frames  # noqa: F401

pytestmark = needs_shared()


def test_pipeline_groups_background_refresh_and_encryption(codec, detector):
    key = EncryptionKey.generate()
    metrics = EdgeMetrics("cam9")
    sink = MemorySink()
    policy = RoiPolicy.from_words("people", encrypt="person", bg_quality=0.2)
    pipe = EdgePipeline.init(codec, policy, detector=detector, sink=sink, stream_id="cam9", bg_interval=2, bg_fill=False,
                        key=key, metrics=metrics, first_index=100)
    summary = pipe.run(open_source(paths.video_path()), max_frames=4)
    assert summary.frames == 4 and len(sink.frames) == 4
    assert (summary.first_index, summary.last_index, summary.background_frames) == (100, 103, 2)
    assert set(summary.stage_ms) == set(STAGES)
    assert summary.stage_ms["detect"] > 0 and summary.stage_ms["encode"] > 0
    assert summary.bytes_per_class["person"] > 0 and summary.bytes_per_class["background"] > 0
    assert summary.bytes_total == sum(len(f) for f in sink.frames) and summary.kbps > 0
    for i, data in enumerate(sink.frames):
        decoded = codec.decode(data, keys=Keyring([key]))
        from codec.bitstream import parse_frame

        frame = parse_frame(data)
        assert frame.header.frame_index == 100 + i and frame.header.stream_id == "cam9"
        ids = [g.group_id for g in frame.groups]
        assert (0 in ids) == (i % 2 == 0)  # background on frames 0 and 2 only
        people = [g for g in frame.groups if g.group_id != 0]
        assert people and all(g.label == "person" and g.HasField("encryption") for g in people)
        assert not decoded.failures and set(decoded.groups) == set(ids)
    text = metrics.exposition()
    assert 'roistream_edge_frames_total{stream="cam9"} 4.0' in text
    assert "roistream_edge_stage_seconds_bucket" in text and 'label="person"' in text


def test_frames_with_nothing_to_send_are_skipped(codec, detector):
    sink = MemorySink()
    pipe = EdgePipeline.init(codec, RoiPolicy(classes=["giraffe"]), detector=detector, sink=sink, bg_interval=0)
    images = vtest_frames(3)
    results = [pipe.process(Frame(im, i, 1_700_000_000_000_000 + i * 100_000)) for i, im in enumerate(images)]
    assert [r.nbytes > 0 for r in results] == [True, False, False]  # background once, then nothing to send
    assert len(sink.frames) == 1 and pipe.summary.empty_frames == 2


def test_onnxruntime_backend_needs_exported_models(tmp_path, capsys):
    with pytest.raises(RuntimeUnavailable, match="roistream export onnx"):
        make_codec("onnxruntime", models_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown runtime 'tensorflow' .choose from torch, onnxruntime, tensorrt"):
        make_codec("tensorflow")
    with pytest.raises(ValueError, match="runs fp16, fp32, not 'int8'"):
        make_codec("tensorrt", precision="int8")
    assert main(["edge", "run", "--source", str(paths.video_path()), "--stream", "x", "--backend", "onnxruntime",
                 "--models-dir", str(tmp_path), "--spool", str(tmp_path / "s")]) == 2
    assert "roistream export onnx" in capsys.readouterr().err


@pytest.mark.slow
def test_pipeline_on_onnxruntime(tmp_path, codec, detector):
    """The edge encoder on ONNX Runtime (graphs exported here), reporting the provider that runs."""
    from export.onnx import export_onnx

    export_onnx(codec.weights, tmp_path / "onnx", precisions=("fp32",), verify=False)
    from codec.api import Codec

    backend = load("onnxruntime", codec.weights, tmp_path / "onnx", threads=1)
    assert backend.provider == "CPUExecutionProvider" and backend.name == "onnxruntime-cpu-fp32"
    sink = MemorySink()
    pipe = EdgePipeline.init(Codec(codec.weights, backend=backend), RoiPolicy(classes=["person"]), detector=detector,
                        sink=sink, bg_interval=0)
    summary = pipe.run(open_source(paths.video_path()), max_frames=2)
    assert summary.encoder == "onnxruntime-cpu-fp32" and len(sink.frames) == 2
    for data in sink.frames:  # the reference decoder reads what the ONNX encoder wrote
        decoded = codec.decode(data)
        assert decoded.groups and not decoded.failures


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pinned_cloud(tmp_path):
    """A cloud server and a private copy of the codec weights that both it and the edge use (the shipped
    weights file may be replaced while the tests run)."""
    weights = tmp_path / "weights.npz"
    shutil.copy(paths.DEFAULT_WEIGHTS, weights)
    server = start_cloud(tmp_path / "cloud", weights=weights)
    yield server, weights
    server.stop(grace=0.5)


@pytest.mark.slow
def test_cli_edge_run_streams_to_the_cloud(tmp_path, pinned_cloud, capsys):
    cloud_server, weights = pinned_cloud
    target = f"127.0.0.1:{cloud_server.port}"
    common = ["edge", "run", "--source", str(paths.video_path()), "--cloud", target, "--insecure", "--stream", "cli",
              "--roi", "pedestrians", "--spool", str(tmp_path / "edge.spool"), "--no-status", "--weights", str(weights), "--no-bg-fill"]
    metrics_port = _free_port()
    code = main(common + ["--max-frames", "3", "--bg-interval", "2", "--target-kbps", "3000",
                          "--summary", str(tmp_path / "summary.json"), "--metrics-port", str(metrics_port)])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["frames"] == 3 and out["streamer"]["stored"] == 3 and out["spool"]["depth"] == 0
    assert out["background_frames"] == 2 and out["bytes_per_class"]["person"] > 0
    assert json.loads((tmp_path / "summary.json").read_text())["frames"] == 3
    # a second run continues the stream's frame numbering from the spool
    assert main(common + ["--max-frames", "2", "--bg-interval", "0"]) == 0
    with CloudClient(target) as client:
        frames = client.list_frames("cli")
    assert [f.frame_index for f in frames] == [0, 1, 2, 3, 4]
    assert {g.label for f in frames for g in f.groups} == {"background", "person"}
    assert [any(g.group_id == 0 for g in f.groups) for f in frames] == [True, False, True, True, False]
    # frame 4 carries no background: the cloud composites its people over frame 3's background
    with CloudClient(target, weights=weights) as client:
        regions = list(client.get_regions(stream_id="cli", frames=(4, 4), labels=["person"], composite=True,
                                          output="raw"))
        assert len(regions) == 1 and (regions[0].width, regions[0].height) == (768, 576)
        pixels, mask = client.region_pixels(regions[0])
    assert mask.any() and not mask.all()  # the people; the rest of the frame is background
    assert pixels[~mask].std() > 10  # a real picture there, not a black canvas


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["edge", "run", "--source", str(tmp_path / "missing.avi"), "--stream", "x"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["edge", "run", "--source", str(paths.video_path()), "--stream", "x", "--encrypt", "faces"]) == 2
    assert "--key" in capsys.readouterr().err
    assert main(["edge", "run", "--source", str(paths.video_path()), "--stream", "x", "--roi", "unicorns",
                 "--spool", str(tmp_path / "s")]) == 2
    assert "Known classes" in capsys.readouterr().err


def _black_blocks(image) -> int:
    """16x16 blocks of a composite with no pixel painted (no background layer and no group had them)."""
    h, w = image.shape[0] // 16 * 16, image.shape[1] // 16 * 16
    blocks = image[:h, :w].reshape(h // 16, 16, w // 16, 16, 3)
    return int((blocks.max(axis=(1, 3, 4)) == 0).sum())


@pytest.mark.slow
def test_background_fills_leave_no_black_holes_in_composites(tmp_path, codec, detector):
    """A refresh has holes where people stood; without fills, composites between refreshes show black
    where people have since walked away. With fills (the default), every block of every composite
    has a background layer or a person over it, and fills carry only blocks no layer had."""
    from codec.bitstream import record_block_mask
    from roistream.local import local_cloud, stream_source

    black = {}
    for fill in (False, True):
        results = []
        with local_cloud(tmp_path / f"cloud{fill}", codec) as server:
            summary, delivery = stream_source(server, codec, detector, RoiPolicy.from_words("person", bg_quality=0.1),
                                              open_source(paths.video_path()), stream="fill", bg_fill=fill,
                                              spool_path=tmp_path / f"{fill}.spool", bg_interval=3, max_frames=6,
                                              on_frame=results.append, pipelined=False)
            assert delivery.flushed and delivery.stored == 6
            with CloudClient(f"127.0.0.1:{server.port}") as client:
                composites = list(client.get_regions(stream_id="fill", labels=["person"], composite=True,
                                                     output="raw"))
                black[fill] = [_black_blocks(client.region_pixels(r)[0]) for r in composites]
        assert len(composites) == 6
        assert summary.background_frames == 2  # frames 0 and 3; fills are counted apart
        kinds = [r.background for r in results]
        assert kinds[0] == "first frame" and kinds[3] == "interval"
        if fill:
            assert summary.background_fills == kinds.count("fill") > 0
            layers = []
            for r in results:
                bg = [g for g in r.frame.groups if g.group_id == 0]
                if bg:
                    mask = record_block_mask(r.frame.header, bg[0])
                    if r.background == "fill":  # only blocks that no earlier layer covers
                        assert not (mask & np.logical_or.reduce(layers)).any()
                    layers.append(mask)
        else:
            assert summary.background_fills == 0 and "fill" not in kinds
    assert sum(black[False]) > 0, "vtest's people should uncover spots the first background never saw"
    assert black[True] == [0] * 6


def _person(x: int, y: int, size: int = 48, shape=(576, 768)):
    from edge.detector import Detection

    mask = np.zeros(shape, bool)
    mask[y : y + size, x : x + size] = True
    return Detection("person", 0, 0.9, (x, y, x + size, y + size), mask)


def test_static_camera_fills_the_spots_people_leave_then_refreshes_when_fills_are_spent(codec):
    """--bg-interval 0: the background is sent once; four people stood on it. As each leaves, a fill
    (5 frames apart) sends their spot; the fourth leaves after three fills and gets a refresh."""
    image = vtest_frames(1)[0]
    spots = [(64, 64), (256, 64), (448, 64), (64, 320)]
    pipe = EdgePipeline.init(codec, RoiPolicy(classes=["person"], margin_px=0), sink=MemorySink(), bg_interval=0)
    kinds = {}
    for index, present in ((0, 4), (5, 3), (10, 2), (15, 1), (20, 0)):
        people = [_person(*spot) for spot in spots[4 - present:]]
        r = pipe.process(Frame(image, index, 1_700_000_000_000_000 + index * 100_000), detections=people)
        kinds[index] = (r.background, r.group_bytes.get(0, 0) > 0)
        if r.background == "fill":  # only the spot just left: 48-px squares at 16-px aligned corners = 3x3 blocks
            assert r.plan.groups[0].blocks == 9
    assert kinds == {0: ("first frame", True), 5: ("fill", True), 10: ("fill", True), 15: ("fill", True),
                     20: ("holes", True)}
    assert (pipe.summary.background_frames, pipe.summary.background_fills) == (2, 3)
