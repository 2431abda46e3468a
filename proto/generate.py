"""Regenerate the Python modules from the .proto files: `python -m proto.generate`.

The generated modules are committed (so installs need no protoc); tests/test_proto.py checks
that they match the schema.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ("proto/bitstream.proto", "proto/service.proto")


def generate(out_dir: Path = ROOT) -> None:
    from grpc_tools import protoc

    for proto in PROTOS:
        args = ["protoc", f"-I{ROOT}", f"--python_out={out_dir}", f"--pyi_out={out_dir}"]
        if proto.endswith("service.proto"):
            args.append(f"--grpc_python_out={out_dir}")
        if protoc.main([*args, str(ROOT / proto)]) != 0:
            raise RuntimeError(f"protoc failed on {proto}")


if __name__ == "__main__":
    generate()
    sys.exit(0)
