"""The shipped deployment (etc/) and how a daemon meets a bad config or a bad environment."""

from __future__ import annotations

import configparser
import json
import socket
import subprocess
from pathlib import Path

import pytest

from daemons.config import load_config
from tests.cluster import ETC, PROGRAMS, REPO, free_ports, read_events

DAEMON = REPO / "bin" / "fire-daemon"
EXPECTED_PARTITIONS = {
    "leader_b": {"aug10-17": ["20200810", "20200814", "20200815", "20200816", "20200817"]},
    "worker_c": {"aug18-26": [f"202008{d}" for d in range(18, 27)]},
    "worker_d": {"aug27-sep04": [f"202008{d}" for d in range(27, 32)] + [f"2020090{d}" for d in range(1, 5)]},
    "leader_e": {"sep05-13": [f"202009{d:02d}" for d in range(5, 14)]},
    "worker_f": {"sep14-24": [f"202009{d}" for d in range(14, 25)]},
}
EDGES = {("gateway_a", "leader_b"): "query", ("gateway_a", "leader_e"): "query", ("leader_b", "worker_c"): "query",
         ("leader_b", "worker_d"): "control", ("leader_e", "worker_f"): "query", ("leader_e", "worker_d"): "query"}


def test_supervisord_conf_runs_the_six_programs_from_their_configs():
    parser = configparser.RawConfigParser()
    parser.read(ETC / "supervisord.conf")
    programs = [s.split(":", 1)[1] for s in parser.sections() if s.startswith("program:")]
    assert programs == list(PROGRAMS)
    for program in programs:
        section = parser[f"program:{program}"]
        assert section["command"] == "%(here)s/../bin/fire-daemon %(here)s/%(program_name)s.json"
        assert section["autorestart"] == "true"
        assert section["stopasgroup"] == section["killasgroup"] == "true"
        assert "%(program_name)s.log" not in section["stdout_logfile"]  # the event log is the daemon's own


def test_shipped_topology_and_partitions():
    configs = {program: load_config(ETC / f"{program}.json", environ={}) for program in PROGRAMS}
    assert {p: c.listen.port for p, c in configs.items()} == dict(zip(PROGRAMS, [50051, 50052, 50053, 50054, 50055, 50056]))
    edges = {(p, link.name): link.kind for p, c in configs.items() for link in c.children}
    assert edges == EDGES
    for program, config in configs.items():
        for link in config.children:
            assert link.address.port == configs[link.name].listen.port
        held = {spec.name: list(spec.days) for spec in config.data.partitions} if config.data else {}
        assert held == EXPECTED_PARTITIONS.get(program, {})
    gateway = configs["gateway_a"]
    assert gateway.role == "gateway" and gateway.data is None
    owners = {name: program for program, parts in EXPECTED_PARTITIONS.items() for name in parts}
    assert set(gateway.routes) == set(owners)
    for partition, paths in gateway.routes.items():
        hops = ("gateway_a", *paths[0])
        assert hops[-1] == owners[partition]
        assert all(EDGES.get(edge) == "query" for edge in zip(hops, hops[1:]))


def _run_daemon(config: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([str(DAEMON), str(config)], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("change, field", [
    (lambda d: d.update(listen="localhost"), "listen"),
    (lambda d: d.update(role="boss"), "role"),
    (lambda d: d["data"]["partitions"][0].update(days=["2020-09-14"]), "data.partitions[0].days[0]"),
    (lambda d: d.update(children=[{"name": "worker_x", "address": "127.0.0.1:1"}]), "children[0].link"),
    (lambda d: d.update(colour="red"), "colour"),
    (lambda d: d.update(query={"default_chunk_size": 0}), "query.default_chunk_size"),
])
def test_a_bad_config_exits_2_with_one_line_naming_file_and_field(tmp_path, change, field):
    document = json.loads((ETC / "worker_f.json").read_text())
    change(document)
    config = tmp_path / "worker_f.json"
    config.write_text(json.dumps(document))
    result = _run_daemon(config)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(config) in lines[0] and f": {field}: " in lines[0]


def test_invalid_json_and_a_missing_file_exit_2(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "worker_f",')
    for config in (broken, tmp_path / "absent.json"):
        result = _run_daemon(config)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
        assert str(config) in result.stderr


def _worker_config(tmp_path: Path, port: int, data_root: str) -> Path:
    document = json.loads((ETC / "worker_f.json").read_text())
    document.update(listen=f"127.0.0.1:{port}", log_file=str(tmp_path / "worker_f.log"))
    document["data"].update(root=data_root, cache_dir=str(tmp_path / "cache"))
    config = tmp_path / "worker_f.json"
    config.write_text(json.dumps(document))
    return config


def test_a_taken_port_exits_1_and_logs_why(tmp_path, data_root):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _run_daemon(_worker_config(tmp_path, port, str(data_root)))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert [e["event"] for e in read_events(tmp_path / "worker_f.log")] == ["daemon_failed"]


def test_a_missing_data_root_exits_1_and_says_what_to_do(tmp_path):
    result = _run_daemon(_worker_config(tmp_path, free_ports(1)[0], str(tmp_path / "nowhere")))
    assert result.returncode == 1
    assert "nowhere" in result.stderr and "FIRE_DATA_DIR" in result.stderr
