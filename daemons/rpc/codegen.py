"""Regenerates the protobuf and gRPC modules in daemons/rpc from the contracts in proto/: the
service's own (airquality.proto) and the original system's (fire_service.proto, legacy.py).

Needs grpcio-tools (a test dependency). The protos are mapped to the virtual path daemons/rpc/,
so the generated modules import each other as part of the package.
"""

from __future__ import annotations

from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parents[2] / "proto"
PROTOS = (PROTO_DIR / "airquality.proto", PROTO_DIR / "fire_service.proto")
GENERATED = tuple(f"{proto.stem}{suffix}" for proto in PROTOS for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))


def generate(out_root: Path) -> list[Path]:
    """Writes the generated modules under out_root/daemons/rpc and returns their paths."""
    from grpc_tools import protoc

    out_root.mkdir(parents=True, exist_ok=True)
    for proto in PROTOS:
        status = protoc.main(["protoc", f"-Idaemons/rpc={PROTO_DIR}", f"--python_out={out_root}",
                              f"--pyi_out={out_root}", f"--grpc_python_out={out_root}", str(proto)])
        if status != 0:
            raise RuntimeError(f"protoc failed on {proto} (exit {status})")
    return [out_root / "daemons" / "rpc" / name for name in GENERATED]


def main() -> None:
    for path in generate(PROTO_DIR.parent):
        print(path)


if __name__ == "__main__":
    main()
