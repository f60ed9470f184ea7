"""The event log's own rotation (eventlog.py): the daemon renames its log by size, keeps a bounded
number of old ones, and the other processes writing to it follow, losing no line."""

from __future__ import annotations

import json
import logging
import logging.handlers
from pathlib import Path

from daemons.config import LogRotation
from daemons.eventlog import RotatingLogHandler


def handler_of(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test-eventlog-{id(handler)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return logger


def test_the_owner_rotates_by_size_keeps_the_backups_and_a_second_writer_follows(tmp_path: Path) -> None:
    log = tmp_path / "worker_c.log"
    owner = handler_of(RotatingLogHandler(log, LogRotation(max_bytes=4096, backups=3)))
    other = handler_of(logging.handlers.WatchedFileHandler(log, encoding="utf-8"))  # the monitor process
    for number in range(400):
        (owner if number % 3 else other).info(json.dumps({"event": "line", "number": number, "pad": "x" * 40}))
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["worker_c.log", "worker_c.log.1", "worker_c.log.2", "worker_c.log.3"]
    assert all(f.stat().st_size <= 4096 for f in files)
    # The newest lines, in order, none lost or repeated across the files kept.
    kept = [json.loads(line)["number"] for name in ("worker_c.log.3", "worker_c.log.2", "worker_c.log.1", "worker_c.log")
            for line in (tmp_path / name).read_text().splitlines()]
    assert kept == list(range(400 - len(kept), 400))
