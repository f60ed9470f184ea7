"""bin/healthlog's computations and its CLI over hand-written logs: the summary's numbers, the
filters, skipped lines, exact --json passthrough, the follow display and the status table."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import daemons
from daemons import events
from daemons.healthlog import cli
from daemons.healthlog.summary import (
    DEGRADED,
    HEALTHY,
    UNAVAILABLE,
    UNKNOWN,
    EventFilter,
    cluster_health,
    parse_event,
    parse_since,
    select_events,
    summarize,
)
from daemons.rpc import airquality_pb2 as pb

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
TRANSITIONS = (events.HEALTH_TRANSITION.name,)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def transition(at: datetime, observer: str, neighbor: str, source: str, target: str, reason: str = "ok",
               failures: int = 0, latency_ms: float | None = 0.5) -> dict:
    common = dict(zip(events.COMMON_FIELDS, (iso(at), "info", events.HEALTH_TRANSITION.name, observer)))
    fields = dict(zip(events.HEALTH_TRANSITION.fields, (neighbor, source, target, reason, failures, latency_ms)))
    return {**common, **fields}


def other_event(at: datetime, daemon: str) -> dict:
    common = dict(zip(events.COMMON_FIELDS, (iso(at), "info", events.DAEMON_STOPPED.name, daemon)))
    return {**common, **dict.fromkeys(events.DAEMON_STOPPED.fields, 0.1)}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# leader_b watches worker_c through two outages: one detected in 2.5 s and recovered, then one
# that went straight to unavailable and is still open. gateway_a saw leader_b degrade and recover.
HISTORY = [
    transition(at(0), "leader_b", "worker_c", UNKNOWN, HEALTHY),
    transition(at(1), "leader_b", "worker_c", HEALTHY, DEGRADED, "UNAVAILABLE: refused", 1, 0.8),
    transition(at(1) + timedelta(seconds=2.5), "leader_b", "worker_c", DEGRADED, UNAVAILABLE,
               "UNAVAILABLE: refused again", 3, None),
    transition(at(4), "leader_b", "worker_c", UNAVAILABLE, HEALTHY),
    transition(at(10), "leader_b", "worker_c", HEALTHY, UNAVAILABLE, "DEADLINE_EXCEEDED: slow", 3, 2000.0),
    transition(at(0), "gateway_a", "leader_b", UNKNOWN, HEALTHY),
    transition(at(5), "gateway_a", "leader_b", HEALTHY, DEGRADED, "UNAVAILABLE: blip", 1, 1.0),
    transition(at(5.1), "gateway_a", "leader_b", DEGRADED, HEALTHY),
    other_event(at(6), "worker_c"),
]


def test_summary_numbers():
    gateway, leader = summarize(HISTORY, now=at(12))
    assert (gateway.observer, gateway.neighbor, gateway.status, gateway.transitions) == (
        "gateway_a", "leader_b", HEALTHY, 3)
    assert gateway.unavailable_seconds == 0
    assert gateway.last_failure_reason == "UNAVAILABLE: blip"
    assert gateway.last_outage is None  # it never became unavailable

    assert (leader.observer, leader.neighbor, leader.status, leader.transitions) == (
        "leader_b", "worker_c", UNAVAILABLE, 5)
    assert leader.unavailable_seconds == pytest.approx(177.5 + 120)  # closed interval + open one up to now
    assert leader.last_failure_reason == "DEADLINE_EXCEEDED: slow"
    assert leader.last_outage.detect_seconds == 0  # straight into unavailable
    assert leader.last_outage.recover_seconds is None  # still down


def test_summary_of_the_last_recovered_outage_in_any_order():
    recovered = [event for event in HISTORY if event["daemon"] == "leader_b"][:4]
    (link,) = summarize(reversed(recovered), now=at(60))
    assert link.last_outage.detect_seconds == pytest.approx(2.5)
    assert link.last_outage.recover_seconds == pytest.approx(177.5)
    assert link.unavailable_seconds == pytest.approx(177.5)
    assert link.last_failure_reason == "UNAVAILABLE: refused again"


def test_an_outage_begun_before_the_events_considered_has_no_detect_time():
    (link,) = summarize([transition(at(0), "leader_e", "worker_f", DEGRADED, UNAVAILABLE),
                         transition(at(1), "leader_e", "worker_f", UNAVAILABLE, HEALTHY)], now=at(2))
    assert link.last_outage.detect_seconds is None
    assert link.last_outage.recover_seconds == 60


@pytest.mark.parametrize("seconds, text", [
    (None, "-"), (0, "0 ms"), (0.0008, "0.8 ms"), (0.085, "85 ms"), (2.4, "2.4 s"), (59.96, "1m00s"),
    (192, "3m12s"), (3900, "1h05m"), (2 * 86400 + 3 * 3600, "2d03h")])
def test_format_duration(seconds, text):
    assert cli.format_duration(seconds) == text


def test_parse_since():
    now = at(60)
    assert parse_since("15m", now) == at(45)
    assert parse_since("2h", now) == at(-60)
    assert parse_since("30s", now) == now - timedelta(seconds=30)
    assert parse_since("1d", now) == now - timedelta(days=1)
    assert parse_since("2026-11-28T08:05:00", now) == at(5)  # no zone: UTC
    assert parse_since("2026-11-28T10:05:00+02:00", now) == at(5)
    with pytest.raises(ValueError, match="yesterday"):
        parse_since("yesterday", now)


GARBAGE = [
    "not json at all",
    "[1, 2, 3]",
    "",
    json.dumps({"event": events.HEALTH_TRANSITION.name, "daemon": "leader_b"}),  # no timestamp, no level
    json.dumps({**transition(at(0), "leader_b", "worker_c", UNKNOWN, HEALTHY), "timestamp": "yesterday"}),
    json.dumps({key: value for key, value in transition(at(0), "leader_b", "worker_c", UNKNOWN, HEALTHY).items()
                if key != events.HEALTH_TRANSITION.fields[2]}),  # a health_transition without its target
]


def test_parse_event_rejects_what_is_not_an_event():
    assert all(parse_event(line) is None for line in GARBAGE)
    assert parse_event(json.dumps(HISTORY[0])) == HISTORY[0]


def test_select_events_counts_unreadable_lines_and_orders_by_time():
    lines = [json.dumps(event) for event in reversed(HISTORY)] + GARBAGE
    selected, skipped = select_events(lines, EventFilter(TRANSITIONS))
    assert skipped == len(GARBAGE)
    times = [event["timestamp"] for _, event in selected]
    assert times == sorted(event["timestamp"] for event in HISTORY[:-1])


def write_logs(log_dir: Path, history: list[dict], garbage: list[str] = ()) -> dict[str, list[str]]:
    """One <daemon>.log per observer, as the daemons would write them; returns each file's lines."""
    log_dir.mkdir(exist_ok=True)
    files: dict[str, list[str]] = {}
    for event in history:
        files.setdefault(event["daemon"], []).append(json.dumps(event))
    files.setdefault("worker_c", []).extend(garbage)
    for daemon, lines in files.items():
        (log_dir / f"{daemon}.log").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    (log_dir / "worker_c.stderr.log").write_text("Traceback (most recent call last):\n", encoding="utf-8")
    (log_dir / "supervisord.log").write_text("2026-11-28 08:12:24,710 CRIT Supervisor is running\n")
    return files


def run(*args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


def test_summary_table_and_skipped_lines(tmp_path):
    write_logs(tmp_path, HISTORY, GARBAGE)
    result = run("--log-dir", str(tmp_path))
    assert result.exit_code == 0
    header, gateway, leader = result.stdout.splitlines()
    assert header.split()[:3] == ["observer", "neighbor", "status"]
    assert gateway.split()[:4] == ["gateway_a", "leader_b", HEALTHY, "3"]
    assert leader.split()[:4] == ["leader_b", "worker_c", UNAVAILABLE, "5"]
    assert leader.endswith("DEADLINE_EXCEEDED: slow")
    assert result.stderr == f"skipped {len(GARBAGE)} lines that are not events\n"


def json_lines(*args: str) -> list[dict]:
    result = run(*args, "--json")
    assert result.exit_code == 0
    return [json.loads(line) for line in result.stdout.splitlines()]


def shown(log_dir: Path, *args: str) -> list[tuple[str, str, str]]:
    return [(event["daemon"], event["neighbor"], event["to"]) for event in json_lines("--log-dir", str(log_dir), *args)]


def test_filters_by_observer_neighbour_and_target(tmp_path):
    write_logs(tmp_path, HISTORY)
    assert {observer for observer, _, _ in shown(tmp_path, "--daemon", "gateway_a")} == {"gateway_a"}
    assert shown(tmp_path, "--neighbor", "leader_b", "--to", DEGRADED) == [("gateway_a", "leader_b", DEGRADED)]
    assert shown(tmp_path, "--to", UNAVAILABLE, "--to", DEGRADED, "--daemon", "leader_b") == [
        ("leader_b", "worker_c", DEGRADED), ("leader_b", "worker_c", UNAVAILABLE),
        ("leader_b", "worker_c", UNAVAILABLE)]
    assert shown(tmp_path, "--daemon", "leader_e") == []


def test_since_iso_and_relative(tmp_path):
    write_logs(tmp_path, HISTORY)
    assert shown(tmp_path, "--since", "2026-11-28T08:05:00Z") == [  # inclusive
        ("gateway_a", "leader_b", DEGRADED), ("gateway_a", "leader_b", HEALTHY), ("leader_b", "worker_c", UNAVAILABLE)]
    assert shown(tmp_path, "--since", "2026-11-28T09:05:00+01:00") == shown(tmp_path, "--since", "2026-11-28T08:05")

    now = datetime.now(UTC)
    recent = tmp_path / "recent"
    write_logs(recent, [transition(now - timedelta(hours=3), "leader_e", "worker_d", UNKNOWN, HEALTHY),
                        transition(now - timedelta(minutes=20), "leader_e", "worker_d", HEALTHY, DEGRADED),
                        transition(now - timedelta(minutes=5), "leader_e", "worker_d", DEGRADED, UNAVAILABLE)])
    assert [to for _, _, to in shown(recent, "--since", "15m")] == [UNAVAILABLE]
    assert [to for _, _, to in shown(recent, "--since", "2h")] == [DEGRADED, UNAVAILABLE]
    assert [to for _, _, to in shown(recent, "--since", "1d")] == [HEALTHY, DEGRADED, UNAVAILABLE]


def test_filters_select_what_the_summary_considers(tmp_path):
    write_logs(tmp_path, HISTORY)
    result = run("--log-dir", str(tmp_path), "--neighbor", "worker_c", "--since", "2026-11-28T08:02")
    rows = result.stdout.splitlines()[1:]
    assert [row.split()[:4] for row in rows] == [["leader_b", "worker_c", UNAVAILABLE, "2"]]


def test_to_picks_the_summary_rows_by_current_status_and_keeps_their_history(tmp_path):
    write_logs(tmp_path, HISTORY)
    rows = run("--log-dir", str(tmp_path), "--to", UNAVAILABLE).stdout.splitlines()[1:]
    assert [row.split()[:4] for row in rows] == [["leader_b", "worker_c", UNAVAILABLE, "5"]]
    rows = run("--log-dir", str(tmp_path), "--to", HEALTHY).stdout.splitlines()[1:]
    assert [row.split()[:4] for row in rows] == [["gateway_a", "leader_b", HEALTHY, "3"]]


def test_bad_since_and_bad_status_are_usage_errors(tmp_path):
    assert run("--log-dir", str(tmp_path), "--since", "soon").exit_code == 2
    assert run("--log-dir", str(tmp_path), "--to", "sleepy").exit_code == 2
    assert run("--log-dir", str(tmp_path / "missing")).exit_code == 2


def test_json_passes_lines_through_exactly(tmp_path):
    first = transition(at(1), "leader_b", "worker_c", HEALTHY, DEGRADED, "UNAVAILABLE: ünïcode", 1, 0.8)
    second = transition(at(2), "gateway_a", "leader_b", HEALTHY, DEGRADED)
    # Spacing, key order and escapes the tool must not normalise.
    odd_first = json.dumps(dict(reversed(list(first.items()))), separators=(",", ":"), ensure_ascii=False)
    odd_second = json.dumps(second, indent=None, separators=(" ,  ", " : "))
    tmp_path.joinpath("leader_b.log").write_text(odd_first + "\n" + json.dumps(other_event(at(1), "leader_b")) + "\n",
                                                 encoding="utf-8")
    tmp_path.joinpath("gateway_a.log").write_text(odd_second + "\n", encoding="utf-8")
    result = run("--log-dir", str(tmp_path), "--json")
    assert result.stdout == odd_first + "\n" + odd_second + "\n"


def follow_once(monkeypatch, *args: str, color: bool = False) -> Result:
    """--follow for one poll: the sleep after it stands in for the user's Ctrl-C."""
    def interrupt(_seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.time, "sleep", interrupt)
    return CliRunner().invoke(cli.main, ["--follow", *args], color=color, catch_exceptions=False)


def test_follow_shows_one_readable_line_per_event_and_exits_0_on_ctrl_c(tmp_path, monkeypatch):
    write_logs(tmp_path, HISTORY[:3], ["garbage"])
    result = follow_once(monkeypatch, "--log-dir", str(tmp_path))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "08:00:00.000 leader_b   worker_c   unknown -> healthy  (0 failures, 0.5 ms) ok",
        "08:01:00.000 leader_b   worker_c   healthy -> degraded  (1 failure, 0.8 ms) UNAVAILABLE: refused",
        "08:01:02.500 leader_b   worker_c   degraded -> unavailable  (3 failures) UNAVAILABLE: refused again",
    ]
    assert result.stderr == "skipped 1 line that are not events\n"


def test_follow_colours_by_target_status_only_on_a_terminal(tmp_path, monkeypatch):
    write_logs(tmp_path, HISTORY[2:3])
    coloured = follow_once(monkeypatch, "--log-dir", str(tmp_path), color=True).stdout
    assert coloured.startswith("\x1b[31m08:01:02.500 leader_b")  # red: unavailable
    assert "\x1b" not in follow_once(monkeypatch, "--log-dir", str(tmp_path)).stdout


def test_follow_json_passes_lines_through(tmp_path, monkeypatch):
    files = write_logs(tmp_path, HISTORY[5:8])
    assert follow_once(monkeypatch, "--log-dir", str(tmp_path), "--json").stdout.splitlines() == files["gateway_a"]


def test_default_log_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.default_log_dir() == Path(daemons.__file__).resolve().parents[1] / "logs"
    (tmp_path / "logs").mkdir()
    assert cli.default_log_dir() == Path("logs")


def view(observer: str, neighbor: str, status: str, failures: int = 0, latency: float | None = 1.25,
         rate: float = 1.0) -> pb.NeighborHealth:
    message = pb.NeighborHealth(observer=observer, neighbor=neighbor, status=status, since=iso(at(1)),
                                consecutive_failures=failures, success_rate=rate)
    if latency is not None:
        message.last_latency_ms = latency
    return message


HEALTHY_CLUSTER = pb.HealthStatusResponse(daemon="gateway_a", neighbors=[
    view("gateway_a", "leader_b", HEALTHY), view("gateway_a", "leader_e", HEALTHY),
    view("leader_b", "worker_c", HEALTHY), view("leader_e", "worker_d", HEALTHY),
    view("leader_e", "worker_f", HEALTHY)])


def test_status_table_of_a_healthy_cluster():
    health = cluster_health(HEALTHY_CLUSTER)
    assert (health.healthy, health.total, health.all_healthy) == (6, 6, True)
    assert cli.status_rows(health)[0] == ["gateway_a", "leader_b", HEALTHY, "2026-11-28 08:01:00", "0", "1.2", "100"]


def test_status_table_counts_a_daemon_healthy_only_if_every_view_says_so():
    response = pb.HealthStatusResponse()
    response.CopyFrom(HEALTHY_CLUSTER)
    response.neighbors.append(view("leader_b", "worker_d", DEGRADED, failures=2, latency=None, rate=0.25))
    response.neighbors[2].status = UNAVAILABLE
    response.unreachable_observers.append("worker_c: UNAVAILABLE: failed to connect to all addresses")
    health = cluster_health(response)
    assert (health.healthy, health.total) == (4, 6)
    assert health.unhealthy == ["worker_c", "worker_d"]
    assert health.unreachable_observers == ["worker_c: UNAVAILABLE: failed to connect to all addresses"]
    assert not health.all_healthy
    assert cli.status_rows(health)[-1] == ["leader_b", "worker_d", DEGRADED, "2026-11-28 08:01:00", "2", "-", "25"]


def test_an_unreachable_observer_alone_makes_the_cluster_not_healthy():
    response = pb.HealthStatusResponse()
    response.CopyFrom(HEALTHY_CLUSTER)
    response.unreachable_observers.append("leader_e: DEADLINE_EXCEEDED: slow")
    health = cluster_health(response)
    assert (health.healthy, health.total, health.all_healthy) == (6, 6, False)


class FakeAirQualityStub:
    answer: pb.HealthStatusResponse

    def __init__(self, _channel):
        pass

    def GetHealthStatus(self, request: pb.HealthStatusRequest, timeout: float) -> pb.HealthStatusResponse:
        assert request.cluster
        return self.answer


@pytest.mark.parametrize("unreachable, exit_code", [((), 0), (("leader_e: DEADLINE_EXCEEDED: slow",), 1)])
def test_status_command(monkeypatch, unreachable, exit_code):
    answer = pb.HealthStatusResponse()
    answer.CopyFrom(HEALTHY_CLUSTER)
    answer.unreachable_observers.extend(unreachable)
    monkeypatch.setattr(FakeAirQualityStub, "answer", answer, raising=False)
    monkeypatch.setattr(cli.pb_grpc, "AirQualityStub", FakeAirQualityStub)
    result = run("status")
    assert result.exit_code == exit_code
    assert len(result.stdout.splitlines()) == 1 + 5 + 1
    assert result.stdout.splitlines()[-1] == "6/6 daemons healthy"
    assert result.stderr == "".join(f"warning: observer not reachable: {entry}\n" for entry in unreachable)


def test_status_exits_2_when_the_gateway_does_not_answer():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        result = run("status", "--host", f"127.0.0.1:{port}", "--timeout", "2")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: the gateway at 127.0.0.1:{port} did not answer: UNAVAILABLE")


def test_showing_one_more_event_type_is_adding_it_to_the_displayed_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "DISPLAYED_EVENTS", (events.HEALTH_TRANSITION, events.DAEMON_STOPPED))
    write_logs(tmp_path, [HISTORY[0], other_event(at(6), "worker_c")])
    assert follow_once(monkeypatch, "--log-dir", str(tmp_path)).stdout.splitlines() == [
        "08:00:00.000 leader_b   worker_c   unknown -> healthy  (0 failures, 0.5 ms) ok",
        "08:06:00.000 worker_c   daemon_stopped  seconds=0.1",
    ]
