"""`bin/healthlog --gateway`: every daemon's events through the gateway (AirQuality.Events, which
merges each daemon's Node.Events), on real supervisord. The lines it shows are checked against the
daemons' own log files: each exactly once, through the loss and return of a worker and a leader,
saying meanwhile which daemons it cannot hear.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest

from daemons.rpc import airquality_pb2 as pb
from daemons.servicers.logstream import MAX_EVENT_STREAMS
from tests.cluster import PROGRAMS, REPO, Cluster, HealthlogFollower, epoch_of, healthlog_command, start_cluster
from tests.waiting import wait_for

SHOWN = ("health_transition", "partition_failover")  # what healthlog shows (its DISPLAYED_EVENTS)


@pytest.fixture(scope="module")
def events_cluster(tmp_path_factory, data_root, cache_dir) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("events"), data_root, cache_dir)
    try:
        yield running
    finally:
        running.stop()


def _shown_lines(cluster: Cluster, since: float) -> Counter[str]:
    """The lines of every log that healthlog shows, written since `since`, as the daemons wrote them."""
    lines: Counter[str] = Counter()
    for program in PROGRAMS:
        for line in cluster.log_path(program).read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event["event"] in SHOWN and epoch_of(event) >= since:
                lines[line] += 1
    return lines


def _lose_and_get_back(cluster: Cluster, follower: HealthlogFollower, lost: str, observer: str) -> None:
    stopped_at = time.time()
    cluster.ctl("stop", lost, check=True)
    wait_for(lambda: follower.saw(observer, "health_transition", stopped_at, neighbor=lost, to="unavailable"),
             15, f"{observer}'s transition of {lost} to unavailable, through the gateway")
    wait_for(lambda: f"cannot hear from 1: {lost}: " in follower.last_note(), 15,
             f"healthlog to say it cannot hear {lost} (said: {follower.notes[-3:]})")
    cluster.ctl("start", lost, check=True)
    wait_for(lambda: follower.saw(observer, "health_transition", stopped_at, neighbor=lost, to="healthy"),
             30, f"{observer}'s transition of {lost} back to healthy")
    wait_for(lambda: "hearing all 6 daemons" in follower.last_note(), 15, f"healthlog to hear {lost} again")


def test_follow_through_the_gateway_hears_every_daemon_through_a_loss_and_return(events_cluster):
    cluster = events_cluster
    follower = HealthlogFollower(cluster.gateway)
    try:
        wait_for(lambda: "hearing all 6 daemons" in follower.last_note(), 30, "healthlog to hear all six")
        began = time.time()
        _lose_and_get_back(cluster, follower, "worker_c", "leader_b")
        _lose_and_get_back(cluster, follower, "leader_e", "gateway_a")
        # leader_e saw its own children while it was down and up again: its log's lines too, once each.
        wait_for(lambda: Counter(line for line in follower.lines if epoch_of(json.loads(line)) >= began)
                 == _shown_lines(cluster, began), 10, "every shown line of every log through the gateway, once each")
    finally:
        follower.stop()


def test_summary_through_the_gateway_is_the_summary_of_the_log_files(events_cluster):
    cluster = events_cluster
    local = subprocess.run(healthlog_command("--log-dir", str(cluster.home / "logs")), cwd=REPO, capture_output=True,
                           text=True, timeout=60)
    remote = subprocess.run(healthlog_command("--gateway", cluster.gateway), cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout


def test_summary_names_the_daemons_it_could_not_hear(events_cluster):
    cluster = events_cluster
    cluster.ctl("stop", "worker_f", check=True)
    try:
        remote = subprocess.run(healthlog_command("--gateway", cluster.gateway), cwd=REPO, capture_output=True, text=True,
                                timeout=60)
    finally:
        cluster.ctl("start", "worker_f", check=True)
    assert remote.returncode == 3, remote.stderr
    assert "could not be heard" in remote.stderr and "worker_f: UNAVAILABLE" in remote.stderr
    assert "leader_b" in remote.stdout  # the rest is summarised


def test_event_streams_are_limited_apart_from_queries(events_cluster):
    cluster = events_cluster
    address = f"127.0.0.1:{cluster.ports['worker_c']}"
    channels = [grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(3)]
    calls = [channel.unary_stream("/airquality.v1.Node/Events", request_serializer=pb.EventsRequest.SerializeToString,
                                  response_deserializer=pb.EventsResponse.FromString) for channel in channels]
    following = []
    try:
        for events in calls[:2]:  # a connection of its own each: half the limit on each
            for _ in range(MAX_EVENT_STREAMS // 2):
                following.append(events(pb.EventsRequest(follow=True)))
                next(following[-1])  # admitted: its first message came
        refused = calls[2](pb.EventsRequest(follow=True))
        with pytest.raises(grpc.RpcError) as error:
            next(refused)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"serving {MAX_EVENT_STREAMS} event streams" in error.value.details()
        count = subprocess.run([str(REPO / "bin" / "query"), "--host", cluster.gateway, "--count"],
                               capture_output=True, text=True, timeout=120)
        assert count.returncode == 0, count.stderr  # queries still run
    finally:
        for call in following:
            call.cancel()
        for channel in channels:
            channel.close()
