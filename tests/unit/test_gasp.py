"""Dying gasps (health/gasp.py): whom a daemon gasps to, and which gasps a watcher believes. The
monitor acting on one is in test_monitor.py; the gasp on real daemons in test_supervision.py."""

from __future__ import annotations

from pathlib import Path

from daemons.config import load_config
from daemons.events import CUT_OFF, WATCHER_BACK, WATCHER_LOST, EventRecorder
from daemons.health.gasp import STATUS_ENDED, GaspRecipients, Recipient, believed, gasp
from daemons.rpc import airquality_pb2 as pb
from daemons.servicers.health import RECIPIENTS_HANDOVER_SECONDS, HealthEndpoints, Lifecycle

ETC = Path(__file__).resolve().parents[2] / "etc"


def probe(requester: str, port: int = 40000, token: bytes = b"secret") -> pb.HealthRequest:
    return pb.HealthRequest(requester_id=requester, timestamp=1, gasp_port=port, gasp_token=token)


def test_a_recipient_is_noted_once_and_again_when_its_port_or_token_changes() -> None:
    recipients = GaspRecipients()
    assert recipients.note("leader_e", "10.0.0.2", probe("leader_e"))
    assert not recipients.note("leader_e", "10.0.0.2", probe("leader_e"))
    assert recipients.note("leader_e", "10.0.0.2", probe("leader_e", port=40001))  # its monitor process restarted
    assert recipients.snapshot() == (Recipient("leader_e", "10.0.0.2", 40001, b"secret"),)


def test_probes_without_a_gasp_port_or_with_an_oversized_token_register_nothing() -> None:
    recipients = GaspRecipients()
    assert not recipients.note("grpc_health_probe", "10.0.0.9", pb.HealthRequest(requester_id="grpc_health_probe"))
    assert not recipients.note("tool", "10.0.0.9", probe("tool", token=b"x" * 65))
    assert recipients.snapshot() == ()


def test_a_monitor_keeps_its_place_through_a_flood_of_made_up_requesters() -> None:
    recipients = GaspRecipients(limit=4)
    for _ in range(3):
        recipients.note("leader_e", "10.0.0.2", probe("leader_e"))
    for index in range(10_000):
        recipients.note(f"made-up-{index}", "10.6.6.6", probe(f"made-up-{index}"))
    held = [recipient.requester for recipient in recipients.snapshot()]
    assert "leader_e" in held and len(held) == 4


def test_only_a_gasp_with_the_watchers_token_and_the_pid_it_knows_is_believed() -> None:
    sent = gasp(Recipient("leader_e", "10.0.0.2", 40000, b"secret"), "worker_f", "worker", 321, now_us=5)
    assert (sent.status, sent.healthy, sent.process_id, sent.gasp_token) == (STATUS_ENDED, False, 321, b"secret")
    assert believed(sent, b"secret", 321)
    assert not believed(sent, b"other", 321)
    assert not believed(sent, b"secret", 322)  # from an earlier incarnation
    assert not believed(sent, b"secret", None)  # nothing heard from it yet
    assert not believed(pb.HealthResponse(status="SERVING", process_id=321, gasp_token=b"secret"), b"secret", 321)


class Handovers:
    def __init__(self) -> None:
        self.now = 100.0
        self.room = True
        self.handed: list[tuple[Recipient, ...]] = []
        config = load_config(ETC / "worker_f.json", environ={})
        self.log = EventRecorder()
        self.endpoints = HealthEndpoints(config, Lifecycle(["airquality.v1.Node"]), [], {}, self.log, gasp_to=self.take,
                                         clock=lambda: self.now)

    def take(self, recipients: tuple[Recipient, ...]) -> bool:
        if self.room:
            self.handed.append(recipients)
        return self.room


def test_the_daemon_hands_its_watchers_to_the_monitor_process_until_it_takes_them() -> None:
    daemon = Handovers()
    daemon.room = False
    daemon.endpoints.answer(probe("leader_e"), "10.0.0.2")
    daemon.now += RECIPIENTS_HANDOVER_SECONDS
    daemon.room = True
    daemon.endpoints.answer(probe("leader_e"), "10.0.0.2")  # no change, but the last handover failed
    daemon.now += RECIPIENTS_HANDOVER_SECONDS
    daemon.endpoints.answer(probe("leader_e"), "10.0.0.2")  # nothing new: nothing handed
    assert daemon.handed == [(Recipient("leader_e", "10.0.0.2", 40000, b"secret"),)]


def test_handovers_are_spaced_however_fast_the_recipients_change() -> None:
    daemon = Handovers()
    for index in range(1000):
        daemon.endpoints.answer(probe(f"made-up-{index}"), "10.6.6.6")
    assert len(daemon.handed) == 1
    daemon.now += RECIPIENTS_HANDOVER_SECONDS
    daemon.endpoints.answer(probe("leader_e"), "10.0.0.2")
    assert len(daemon.handed) == 2 and daemon.handed[-1][-1].requester == "leader_e"


def test_a_grpc_health_check_registers_no_recipient() -> None:
    daemon = Handovers()
    daemon.endpoints.answer(probe("leader_e"))  # over gRPC: no datagram sender to gasp to
    assert daemon.handed == []


def test_a_daemon_whose_watchers_fall_silent_logs_what_it_is_cut_off_from() -> None:
    daemon = Handovers()
    for _ in range(5):
        daemon.endpoints.answer(probe("leader_e"), "10.0.0.2")
        daemon.endpoints.answer(pb.HealthRequest(requester_id="grpc_health_probe"), "10.0.0.9")  # a tool: no watcher
        daemon.now += 0.4
    daemon.endpoints.check_watchers()
    assert not daemon.log.events
    daemon.now += 3.0
    daemon.endpoints.check_watchers()
    daemon.endpoints.check_watchers()  # once each
    (lost,) = daemon.log.of(WATCHER_LOST)
    assert lost["watcher"] == "leader_e" and lost["silent_seconds"] >= 3.0
    (cut_off,) = daemon.log.of(CUT_OFF)
    assert cut_off["lost_watchers"] == ["leader_e"] and cut_off["unavailable_neighbors"] == []
    assert cut_off["partitions"], "a worker's own partitions are what nobody reads from it now"
    daemon.endpoints.answer(probe("leader_e"), "10.0.0.2")
    (back,) = daemon.log.of(WATCHER_BACK)
    assert back["watcher"] == "leader_e" and back["silent_seconds"] >= 3.0
