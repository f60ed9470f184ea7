"""The committed protobuf modules are exactly what the pinned compiler makes of the contracts in proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemons.rpc import codegen

RPC = Path(codegen.__file__).resolve().parent
REPO = RPC.parents[1]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> list[Path]:
    return codegen.generate(tmp_path_factory.mktemp("generated"))


def test_generate_writes_every_module(generated):
    assert [path.name for path in generated] == list(codegen.GENERATED)
    assert all(path.parent.parts[-2:] == ("daemons", "rpc") and path.is_file() for path in generated)


@pytest.mark.parametrize("name", codegen.GENERATED)
def test_committed_module_matches_the_proto(name, generated):
    fresh = next(path for path in generated if path.name == name).read_bytes()
    assert (RPC / name).read_bytes() == fresh, (
        f"daemons/rpc/{name} is out of date with proto/: run bin/generate-proto and commit the result")


def test_grpc_module_imports_as_part_of_the_package_without_path_changes():
    script = (
        "import sys\n"
        "import daemons.rpc.airquality_pb2_grpc as services\n"
        "from daemons.rpc import airquality_pb2\n"
        "assert 'airquality_pb2' not in sys.modules, 'imported as a top-level module'\n"
        "assert not any(entry.rstrip('/').endswith('daemons/rpc') for entry in sys.path)\n"
        "assert services.daemons_dot_rpc_dot_airquality__pb2 is airquality_pb2\n"
        "assert services.AirQualityStub and services.NodeServicer and services.add_AirQualityServicer_to_server\n"
        "print(services.__file__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == RPC / "airquality_pb2_grpc.py"
