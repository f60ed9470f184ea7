"""bin/healthlog timeline (healthlog/timeline.py): links' statuses over a window, in cells."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemons.healthlog.timeline import build_timelines, log_files

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
END = START + timedelta(minutes=10)


def transition(minutes: float, observer: str, neighbor: str, previous: str, current: str) -> dict:
    when = START + timedelta(minutes=minutes)
    return {"event": "health_transition", "timestamp": when.isoformat().replace("+00:00", "Z"), "daemon": observer,
            "neighbor": neighbor, "from": previous, "to": current}


def test_each_link_starts_where_its_last_transition_before_the_window_left_it() -> None:
    links = build_timelines([transition(-5, "leader_b", "worker_c", "unknown", "healthy"),
                             transition(2, "leader_b", "worker_c", "healthy", "unavailable"),
                             transition(-1, "gateway_a", "leader_b", "unknown", "degraded"),
                             transition(11, "leader_b", "worker_c", "unavailable", "healthy")], START, END)
    assert [(link.label, link.initial, [t[2] for t in link.transitions]) for link in links] == [
        ("gateway_a -> leader_b", "degraded", []), ("leader_b -> worker_c", "healthy", ["unavailable"])]


def test_a_cell_shows_the_worst_status_of_its_slice_so_a_short_outage_still_shows() -> None:
    (link,) = build_timelines([transition(-1, "leader_e", "worker_f", "unknown", "healthy"),
                               transition(4.1, "leader_e", "worker_f", "healthy", "degraded"),
                               transition(4.2, "leader_e", "worker_f", "degraded", "unavailable"),
                               transition(4.3, "leader_e", "worker_f", "unavailable", "healthy")], START, END)
    cells = link.cells(START, END, 10)  # one a minute
    assert cells == ["healthy"] * 4 + ["unavailable"] + ["healthy"] * 5


def test_the_log_folder_is_read_with_each_daemons_backups_oldest_first(tmp_path: Path) -> None:
    for name in ("gateway_a.log", "gateway_a.log.1", "gateway_a.log.2", "gateway_a.log.10", "leader_b.log",
                 "leader_b.stdout.log", "supervisord.log", "notes.txt"):
        (tmp_path / name).write_text("")
    assert [path.name for path in log_files(tmp_path)] == ["gateway_a.log.10", "gateway_a.log.2", "gateway_a.log.1",
                                                           "gateway_a.log", "leader_b.log"]
