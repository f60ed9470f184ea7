"""The shipped deployment (etc/) and how a daemon meets a bad config or a bad environment."""

from __future__ import annotations

import configparser
import itertools
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from daemons.channels import HEALTH_CHANNEL_OPTIONS
from daemons.config import load_config
from daemons.planning.paths import single_failure_losses
from daemons.rpc import airquality_pb2 as pb
from daemons.rpc import airquality_pb2_grpc as pb_grpc
from tests.cluster import ETC, PROGRAMS, REAL_DATA, REPO, free_ports, read_events
from tests.waiting import wait_for

DAEMON = REPO / "bin" / "fire-daemon"
DAYS = {
    "aug10-17": ["20200810", "20200814", "20200815", "20200816", "20200817"],
    "aug18-26": [f"202008{d}" for d in range(18, 27)],
    "aug27-sep04": [f"202008{d}" for d in range(27, 32)] + [f"2020090{d}" for d in range(1, 5)],
    "sep05-13": [f"202009{d:02d}" for d in range(5, 14)],
    "sep14-24": [f"202009{d}" for d in range(14, 25)],
}
PRIMARY = {"aug10-17": "leader_b", "aug18-26": "worker_c", "aug27-sep04": "worker_d", "sep05-13": "leader_e",
           "sep14-24": "worker_f"}
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
    for config in configs.values():
        for link in config.children:
            assert link.address.port == configs[link.name].listen.port
        for spec in config.data.partitions if config.data else ():
            assert list(spec.days) == DAYS[spec.name]
    holders = {p: {program for program, c in configs.items() if c.data and p in {s.name for s in c.data.partitions}}
               for p in DAYS}
    assert all(PRIMARY[p] in holders[p] and len(holders[p]) >= 2 for p in DAYS)  # a primary and a replica each
    gateway = configs["gateway_a"]
    assert gateway.role == "gateway" and gateway.data is None
    assert set(gateway.routes) == set(DAYS)
    for partition, paths in gateway.routes.items():
        assert paths[0][-1] == PRIMARY[partition]
        for path in paths:
            hops = ("gateway_a", *path)
            assert hops[-1] in holders[partition]
            assert all(edge in EDGES for edge in itertools.pairwise(hops))
        assert all(EDGES[edge] == "query" for edge in zip(("gateway_a", *paths[0]), paths[0]))
    assert single_failure_losses(gateway.routes) == {}
    # every single failure leaves a path that avoids the failed daemon
    for down in PROGRAMS[1:]:
        for partition, paths in gateway.routes.items():
            assert any(down not in path for path in paths), (down, partition)


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


def _start_daemon(config: Path) -> subprocess.Popen:
    return subprocess.Popen([str(DAEMON), str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_a_daemon_reports_not_serving_while_it_loads(tmp_path, data_root):
    port = free_ports(1)[0]
    daemon = _start_daemon(_worker_config(tmp_path, port, str(data_root)))  # empty cache: it parses CSVs
    # reconnect within 100 ms of the port opening, not after gRPC's default backoff of a second or more
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=HEALTH_CHANNEL_OPTIONS)
    seen = []
    try:
        def serving() -> bool:
            try:
                status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status
                probe = pb_grpc.NodeStub(channel).HealthCheck(pb.HealthRequest(requester_id="test"), timeout=1)
            except grpc.RpcError:
                return False  # not listening yet
            seen.append((health_pb2.HealthCheckResponse.ServingStatus.Name(status), probe.status))
            return status == health_pb2.HealthCheckResponse.SERVING
        wait_for(serving, 60, "the worker to serve", interval=0.005)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert ("NOT_SERVING", "LOADING") in seen and seen[-1] == ("SERVING", "SERVING")


def test_a_neighbour_that_never_started_stays_unknown(tmp_path):
    document = json.loads((ETC / "leader_b.json").read_text())
    own, absent_c, absent_d = free_ports(3)
    document.update(listen=f"127.0.0.1:{own}", log_file=str(tmp_path / "leader_b.log"))
    document["children"][0]["address"] = f"127.0.0.1:{absent_c}"
    document["children"][1]["address"] = f"127.0.0.1:{absent_d}"
    document["data"].update(root=str(REAL_DATA if REAL_DATA.is_dir() else tmp_path), cache_dir=str(tmp_path / "c"))
    document["data"]["partitions"][0]["days"] = ["20200810"]
    if not REAL_DATA.is_dir():
        (tmp_path / "20200810").mkdir()
    config = tmp_path / "leader_b.json"
    config.write_text(json.dumps(document))
    leader = _start_daemon(config)
    try:
        wait_for(lambda: any(e["event"] == "daemon_started" for e in read_events(tmp_path / "leader_b.log")), 60,
                 "leader_b to serve")
        stub = pb_grpc.NodeStub(grpc.insecure_channel(f"127.0.0.1:{own}"))

        def probes() -> int:
            return stub.GetHealthStatus(pb.HealthStatusRequest(), timeout=5).neighbors[0].probes_in_window

        first = wait_for(probes, 20, "a first failed probe of worker_c")
        started = time.monotonic()
        wait_for(lambda: probes() >= first + 5, 20, "five more failed probes of worker_c")
        assert time.monotonic() - started > 1.0, "a neighbour that is not there yet must not draw a storm of probes"
        (view,) = stub.GetHealthStatus(pb.HealthStatusRequest(), timeout=5).neighbors
    finally:
        leader.terminate()
        leader.wait(timeout=30)
    assert (view.neighbor, view.status, view.success_rate) == ("worker_c", "unknown", 0.0)
    assert view.consecutive_failures >= 5
    assert [e for e in read_events(tmp_path / "leader_b.log") if e["event"] == "health_transition"] == []


def test_malformed_lines_are_skipped_counted_and_reported_once(tmp_path, data_root):
    day = tmp_path / "data" / "20200914"
    day.mkdir(parents=True)
    good = sorted((data_root / "20200914").glob("*.csv"))[0]
    shutil.copy(good, day / good.name)
    rows = len(good.read_text().splitlines())
    (day / "20200914-03.csv").write_text(
        good.read_text().splitlines()[0] + "\n"
        '"41.7","-124.2","2020-09-14T03:00","PM2.5","not a number","UG/M3","1.0","5","1","S","A","1","1"\n'
        '"41.7","-124.2","2020-09-14T03:00","PM2.5"\n'
        '"41.7","-124.2","yesterday","PM2.5","1.0","UG/M3","1.0","5","1","S","A","1","1"\n')
    daemon = _start_daemon(_worker_config(tmp_path, free_ports(1)[0], str(tmp_path / "data")))
    try:
        started = wait_for(lambda: [e for e in read_events(tmp_path / "worker_f.log") if e["event"] == "daemon_started"],
                           60, "the worker to serve")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    events = read_events(tmp_path / "worker_f.log")
    (skipped,) = [e for e in events if e["event"] == "csv_lines_skipped"]
    assert skipped["count"] == 3 and len(skipped["examples"]) == 3
    assert all(example.startswith("20200914/20200914-03.csv:") for example in skipped["examples"])
    (missing,) = [e for e in events if e["event"] == "partition_days_missing"]
    assert len(missing["days"]) == 10
    assert started[0]["rows_loaded"] == rows + 1


def test_the_gateway_names_every_partition_a_single_failure_would_lose(tmp_path):
    document = json.loads((ETC / "gateway_a.json").read_text())
    document.update(listen=f"127.0.0.1:{free_ports(1)[0]}", log_file=str(tmp_path / "gateway_a.log"))
    document["routes"] = {partition: paths[:1] for partition, paths in document["routes"].items()}  # no replicas
    document["routes"]["sep05-13"] = [["leader_e"], ["leader_b", "worker_c"]]
    config = tmp_path / "gateway_a.json"
    config.write_text(json.dumps(document))
    for program in ("leader_b", "leader_e", "worker_c", "worker_d", "worker_f"):  # its routes are checked against them
        shutil.copy(ETC / f"{program}.json", tmp_path)
    gateway = _start_daemon(config)
    try:
        checked = wait_for(lambda: [e for e in read_events(tmp_path / "gateway_a.log")
                                    if e["event"] == "placement_checked"], 30, "the placement check")
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
    assert checked[0]["single_failure_safe"] is False
    (unsafe,) = [e for e in read_events(tmp_path / "gateway_a.log") if e["event"] == "placement_unsafe"]
    assert unsafe["level"] == "warning"
    assert unsafe["losses"] == {"leader_b": ["aug10-17", "aug18-26"], "worker_c": ["aug18-26"],
                                "leader_e": ["aug27-sep04", "sep14-24"], "worker_d": ["aug27-sep04"],
                                "worker_f": ["sep14-24"]}
    assert (unsafe["layout"], unsafe["host_losses"]) == ("one-host", {})


def test_the_shipped_placement_passes_the_gateway_check(cluster):
    (checked,) = cluster.events("gateway_a", "placement_checked")[-1:]
    assert checked["single_failure_safe"] is True and cluster.events("gateway_a", "placement_unsafe") == []
    assert (checked["layout"], checked["single_host_safe"]) == ("one-host", True)
