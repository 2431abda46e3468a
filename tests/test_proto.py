from pathlib import Path

from proto.generate import PROTOS, ROOT, generate


def test_generated_modules_match_the_schema(tmp_path):
    generate(tmp_path)
    for proto in PROTOS:
        stem = Path(proto).with_suffix("")
        suffixes = ["_pb2.py", "_pb2.pyi"] + (["_pb2_grpc.py"] if "service" in proto else [])
        for suffix in suffixes:
            fresh = (tmp_path / f"{stem}{suffix}").read_text()
            committed = (ROOT / f"{stem}{suffix}").read_text()
            assert fresh == committed, f"{stem}{suffix} is stale: run python -m proto.generate"
