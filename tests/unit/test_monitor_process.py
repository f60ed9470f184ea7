"""The daemon's side of its monitor process (health/process.py): the mirror the daemon plans with,
and the reporter that never blocks the monitors on a daemon that does not read.

The monitors themselves are tested in test_monitor.py; the process, restarted when it dies and
ended with its daemon, on real daemons in tests/integration/test_supervision.py.
"""

from __future__ import annotations

import math
import os
import socket
import threading
from typing import Any

from daemons.config import Address, HealthConfig
from daemons.events import EventRecorder
from daemons.health import process
from daemons.health.gasp import STATUS_ENDED, Recipient
from daemons.health.monitor import NeighborMonitor
from daemons.health.process import (
    Gasper,
    RemoteMonitor,
    Reporter,
    Setup,
    decode_message,
    encode_message,
    monitor_process,
)
from daemons.health.status import Status
from daemons.health.tally import ProbeKind, ProbeTally
from daemons.rpc import airquality_pb2 as pb
from tests.unit.fakes import FakeClock, FakeNeighbor
from tests.waiting import wait_for


def view(status: Status, failures: int = 0) -> pb.NeighborHealth:
    return pb.NeighborHealth(observer="gateway_a", neighbor="leader_e", status=status.value,
                             consecutive_failures=failures)


class Mirror:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.cancelled: list[str] = []
        self.monitor = RemoteMonitor("gateway_a", "leader_e", self.sent.append, self.cancelled.append)


def test_a_neighbour_is_unknown_until_the_monitor_process_reports():
    mirror = Mirror()
    assert mirror.monitor.status() is Status.UNKNOWN
    assert mirror.monitor.view().neighbor == "leader_e"
    mirror.monitor.update(view(Status.HEALTHY), outages=0, tally=ProbeTally())
    assert mirror.monitor.status() is Status.HEALTHY


def test_an_outage_cancels_the_calls_once():
    mirror = Mirror()
    mirror.monitor.update(view(Status.HEALTHY), outages=0, tally=ProbeTally())
    mirror.monitor.update(view(Status.UNAVAILABLE, 3), outages=1, tally=ProbeTally())
    mirror.monitor.update(view(Status.UNAVAILABLE, 4), outages=1, tally=ProbeTally())  # the same outage, reported again
    assert mirror.cancelled == ["leader_e"]
    mirror.monitor.update(view(Status.HEALTHY), outages=1, tally=ProbeTally())
    mirror.monitor.update(view(Status.UNAVAILABLE, 3), outages=2, tally=ProbeTally())
    assert mirror.cancelled == ["leader_e", "leader_e"]


def test_an_outage_read_after_it_ended_leaves_the_calls_alone():
    """A daemon that read its reports late (it was stopped) must not cancel calls to a neighbour
    that is streaming again."""
    mirror = Mirror()
    mirror.monitor.update(view(Status.HEALTHY), outages=1, tally=ProbeTally())
    assert mirror.cancelled == []


def test_a_restarted_monitor_process_counts_outages_afresh():
    mirror = Mirror()
    mirror.monitor.update(view(Status.UNAVAILABLE, 3), outages=4, tally=ProbeTally())
    mirror.monitor.forget("the monitor process exited")
    assert mirror.monitor.status() is Status.UNKNOWN
    assert mirror.monitor.view().last_reason == "the monitor process exited"
    mirror.monitor.update(view(Status.UNAVAILABLE, 3), outages=1, tally=ProbeTally())
    assert mirror.cancelled == ["leader_e", "leader_e"]


def test_a_failed_query_call_is_handed_to_the_monitor_process():
    mirror = Mirror()
    mirror.monitor.query_call_failed("UNAVAILABLE: connection reset")
    assert mirror.sent == [("query_call_failed", "leader_e", "UNAVAILABLE: connection reset")]


class FullSocket:
    """A socket whose peer reads nothing until told to."""

    def __init__(self) -> None:
        self.room = False
        self.sent: list[tuple[Any, ...]] = []

    def send(self, data: bytes, flags: int = 0) -> int:
        if not self.room:
            raise BlockingIOError
        self.sent.append(decode_message(data))
        return len(data)


def test_the_reporter_keeps_only_the_latest_view_while_the_daemon_does_not_read():
    sock = FullSocket()
    reporter = Reporter(sock)  # type: ignore[arg-type]  # a socket's send is all it uses
    monitors = {name: NeighborMonitor("gateway_a", name, HealthConfig(), FakeNeighbor(FakeClock()), FakeClock(),
                                      EventRecorder()) for name in ("leader_b", "leader_e")}
    try:
        for ok in (False, False, False):
            monitors["leader_e"].observe(ProbeKind.DATAGRAM, ok, "ping: refused")
            reporter.changed(monitors["leader_e"])
        reporter.unavailable("leader_e")
        monitors["leader_b"].observe(ProbeKind.DATAGRAM, True, "ping: SERVING")
        reporter.changed(monitors["leader_b"])
        assert sock.sent == []
        sock.room = True
        wait_for(lambda: len(sock.sent) == 2, 5, "the retry to send the pending views")
    finally:
        reporter.close()
    latest = {name: (pb.NeighborHealth.FromString(data).consecutive_failures, outages, dict(tally.results))
              for _kind, name, data, outages, tally in sock.sent}
    assert latest == {"leader_e": (3, 1, {("datagram", "failure"): 3}), "leader_b": (0, 0, {("datagram", "success"): 1})}


def test_counts_never_go_back_when_the_monitor_process_is_restarted():
    mirror = Mirror()
    first = ProbeTally()
    first.probe(ProbeKind.DATAGRAM, True, 0.002)
    first.transition("unknown", "healthy")
    mirror.monitor.update(view(Status.HEALTHY), outages=0, tally=first)
    mirror.monitor.forget("the monitor process exited")
    second = ProbeTally()
    second.probe(ProbeKind.DATAGRAM, True, 0.3)
    second.transition("unknown", "healthy")
    mirror.monitor.update(view(Status.HEALTHY), outages=0, tally=second)
    counts = mirror.monitor.counts()
    assert counts.results == {("datagram", "success"): 2}
    assert counts.transitions == {("unknown", "healthy"): 2}
    assert dict(counts.latencies["datagram"].cumulative())[0.0025] == 1
    assert dict(counts.latencies["datagram"].cumulative())[math.inf] == 2


def test_the_monitor_process_reports_views_and_ends_with_its_daemon(tmp_path):
    daemon_end, monitor_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    neighbor = FakeNeighbor(FakeClock())
    neighbor.kill()  # its port refuses the first probe at once: a result, so a view
    setup = Setup("gateway_a", "gateway", HealthConfig(), (("leader_e", Address("127.0.0.1", 1)),),
                  tmp_path / "gateway_a.log")
    daemon_end.send(encode_message(("setup", setup)))
    recipients = (Recipient("leader_b", "127.0.0.1", 40000, b"token"),)
    daemon_end.send(encode_message(("gasp_to", recipients)))
    gasper = Gasper(daemon_pid=os.getpid())
    outcome: list[int] = []
    runner = threading.Thread(target=lambda: outcome.append(monitor_process(monitor_end, gasper,
                                                                            lambda _name, _address, _tls: neighbor)))
    runner.start()
    try:
        daemon_end.settimeout(10)
        kind, name, data, _outages, _tally = decode_message(daemon_end.recv(65536))
        assert (kind, name) == ("view", "leader_e")
        assert pb.NeighborHealth.FromString(data).last_reason.startswith("ping: ")
        assert gasper.recipients == recipients
    finally:
        gasper.close()
        daemon_end.shutdown(socket.SHUT_RDWR)
        runner.join(10)
        daemon_end.close()
        monitor_end.close()
    assert outcome == [0]


def test_the_gasper_sends_each_watcher_its_own_token():
    watchers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    gasper = Gasper(daemon_pid=4242)
    try:
        for watcher in watchers:
            watcher.bind(("127.0.0.1", 0))
            watcher.settimeout(5)
        gasper.daemon, gasper.role = "worker_c", "worker"
        gasper.recipients = tuple(Recipient(f"leader_{n}", "127.0.0.1", watcher.getsockname()[1], f"t{n}".encode())
                                  for n, watcher in enumerate(watchers))
        gasper.send()
        gasps = [pb.HealthResponse.FromString(watcher.recv(2048)) for watcher in watchers]
    finally:
        gasper.close()
        for watcher in watchers:
            watcher.close()
    assert [(g.status, g.process_id, g.daemon, g.gasp_token, g.healthy) for g in gasps] == [
        (STATUS_ENDED, 4242, "worker_c", b"t0", False), (STATUS_ENDED, 4242, "worker_c", b"t1", False)]


def test_a_new_status_is_reported_at_once_and_routine_changes_at_most_every_interval(monkeypatch):
    monkeypatch.setattr(process, "ROUTINE_REPORT_SECONDS", 0.2)
    sock = FullSocket()
    sock.room = True
    reporter = Reporter(sock)  # type: ignore[arg-type]  # a socket's send is all it uses
    monitor = NeighborMonitor("gateway_a", "leader_e", HealthConfig(), FakeNeighbor(FakeClock()), FakeClock(),
                              EventRecorder())
    try:
        monitor.observe(ProbeKind.DATAGRAM, True, "ping: SERVING")
        reporter.changed(monitor)  # unknown -> healthy: at once
        assert len(sock.sent) == 1
        for _ in range(5):
            monitor.observe(ProbeKind.DATAGRAM, True, "ping: SERVING")
            reporter.changed(monitor)  # the same status: only counts changed
        assert len(sock.sent) == 1
        wait_for(lambda: len(sock.sent) == 2, 5, "the routine report")
        monitor.observe(ProbeKind.DATAGRAM, False, "ping: refused")
        reporter.changed(monitor)  # healthy -> degraded: at once
        assert len(sock.sent) == 3
    finally:
        reporter.close()
    assert pb.NeighborHealth.FromString(sock.sent[1][2]).probes_in_window == 6
