"""Regenerates the protobuf and gRPC modules in daemons/rpc from proto/airquality.proto.

Needs grpcio-tools (a test dependency). The proto is mapped to the virtual path
daemons/rpc/airquality.proto, so the generated modules import each other as part of the package.
"""

from __future__ import annotations

from pathlib import Path

PROTO = Path(__file__).resolve().parents[2] / "proto" / "airquality.proto"
GENERATED = ("airquality_pb2.py", "airquality_pb2.pyi", "airquality_pb2_grpc.py")


def generate(out_root: Path) -> list[Path]:
    """Writes the generated modules under out_root/daemons/rpc and returns their paths."""
    from grpc_tools import protoc

    out_root.mkdir(parents=True, exist_ok=True)
    status = protoc.main(["protoc", f"-Idaemons/rpc={PROTO.parent}", f"--python_out={out_root}",
                          f"--pyi_out={out_root}", f"--grpc_python_out={out_root}", str(PROTO)])
    if status != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {status})")
    return [out_root / "daemons" / "rpc" / name for name in GENERATED]


def main() -> None:
    for path in generate(PROTO.parents[1]):
        print(path)


if __name__ == "__main__":
    main()
