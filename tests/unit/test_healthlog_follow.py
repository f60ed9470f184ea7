"""LogFollower, polled step by step: every complete line once, across appends, partial lines,
rotation by rename, copy-truncate and logs that appear later; no sleeps, no threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemons.healthlog.follow import LogFollower, program_of


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(text)


@pytest.fixture
def follower(tmp_path):
    with LogFollower(tmp_path) as following:
        yield following


def test_lines_appended_across_polls(tmp_path, follower):
    log = tmp_path / "leader_b.log"
    append(log, "one\ntwo\n")
    assert follower.poll() == [("leader_b", "one"), ("leader_b", "two")]
    assert follower.poll() == []
    append(log, "three\n")
    assert follower.poll() == [("leader_b", "three")]


def test_partial_line_is_held_until_its_newline(tmp_path, follower):
    log = tmp_path / "worker_c.log"
    append(log, 'first\n{"event": "hea')
    assert follower.poll() == [("worker_c", "first")]
    append(log, 'lth')
    assert follower.poll() == []
    append(log, '_transition"}\nnext\n')
    assert follower.poll() == [("worker_c", '{"event": "health_transition"}'), ("worker_c", "next")]


def test_rotation_by_rename_loses_and_duplicates_nothing(tmp_path, follower):
    log = tmp_path / "leader_e.log"
    append(log, "a\nb\n")
    assert follower.poll() == [("leader_e", "a"), ("leader_e", "b")]
    append(log, "c\nd")  # written, not yet read, when the file is renamed away; d still unfinished
    os.rename(log, tmp_path / "leader_e.log.1")
    append(log, "e\n")
    assert follower.poll() == [("leader_e", "c"), ("leader_e", "e")]
    append(tmp_path / "leader_e.log.1", "\n")  # a write in flight at the rename lands in the old file
    append(log, "f\n")
    assert follower.poll() == [("leader_e", "d"), ("leader_e", "f")]
    assert follower.poll() == []
    append(log, "g\n")
    assert follower.poll() == [("leader_e", "g")]


def test_renamed_away_before_the_new_file_exists(tmp_path, follower):
    log = tmp_path / "worker_f.log"
    append(log, "a\n")
    follower.poll()
    append(log, "b\n")
    os.rename(log, tmp_path / "worker_f.log.1")
    assert follower.poll() == [("worker_f", "b")]
    append(log, "c\n")
    assert follower.poll() == [("worker_f", "c")]


def test_rotated_file_left_with_an_unfinished_line_gives_it_up_when_closed(tmp_path, follower):
    log = tmp_path / "worker_d.log"
    append(log, "a\ncut short")
    assert follower.poll() == [("worker_d", "a")]
    os.rename(log, tmp_path / "worker_d.log.1")
    assert follower.poll() == []
    assert follower.poll() == [("worker_d", "cut short")]


def test_copy_truncate_rereads_from_the_start(tmp_path, follower):
    log = tmp_path / "gateway_a.log"
    append(log, "old 1\nold 2\npartial")
    assert follower.poll() == [("gateway_a", "old 1"), ("gateway_a", "old 2")]
    with log.open("r+") as handle:
        handle.truncate(0)
    append(log, "new 1\n")
    assert follower.poll() == [("gateway_a", "new 1")]
    append(log, "new 2\n")
    assert follower.poll() == [("gateway_a", "new 2")]


def test_a_log_that_appears_later_is_read_from_its_start(tmp_path, follower):
    append(tmp_path / "leader_b.log", "b\n")
    assert follower.poll() == [("leader_b", "b")]
    append(tmp_path / "worker_c.log", "c1\nc2\n")
    assert follower.poll() == [("worker_c", "c1"), ("worker_c", "c2")]


def test_a_log_folder_that_appears_later(tmp_path):
    folder = tmp_path / "logs"
    with LogFollower(folder) as follower:
        assert follower.poll() == []
        folder.mkdir()
        append(folder / "leader_b.log", "b\n")
        assert follower.poll() == [("leader_b", "b")]


def test_only_event_logs_are_read(tmp_path, follower):
    for name in ("supervisord.log", "worker_c.stdout.log", "worker_c.stderr.log", "worker_c.log.1", "notes.txt"):
        append(tmp_path / name, "not an event log\n")
    append(tmp_path / "worker_c.log", "event\n")
    assert follower.poll() == [("worker_c", "event")]


@pytest.mark.parametrize("name, program", [
    ("leader_b.log", "leader_b"), ("leader_b.stdout.log", None), ("leader_b.stderr.log", None),
    ("supervisord.log", None), ("leader_b.log.1", None), ("leader_b.txt", None)])
def test_program_of(name, program):
    assert program_of(Path(name)) == program



def test_copy_truncate_is_seen_even_when_the_file_grows_back_past_the_old_offset(tmp_path):
    log = tmp_path / "leader_b.log"
    log.write_text('{"timestamp": "2026-11-28T08:00:00.000001Z"} first\n')
    with LogFollower(tmp_path) as follower:
        assert [line for _, line in follower.poll()] == ['{"timestamp": "2026-11-28T08:00:00.000001Z"} first']
        with open(log, "r+") as handle:
            handle.truncate(0)
        with open(log, "a") as handle:
            handle.write('{"timestamp": "2026-11-28T08:00:09.000002Z"} second, longer than the first line was\n')
        assert [line for _, line in follower.poll()] == [
            '{"timestamp": "2026-11-28T08:00:09.000002Z"} second, longer than the first line was']
