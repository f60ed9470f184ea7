"""Reads every daemon's event log at once, like `tail -F`, one poll at a time.

The daemons write through WatchedFileHandler, so their logs may be rotated by rename (the old file
keeps any line still in flight, the daemon reopens the path) or by copy-truncate (the file shrinks
to nothing under the reader). The follower keeps, per log path, the open handle, its inode, the
offset read so far and the bytes of a line whose newline has not been written yet, so every
complete line is returned exactly once. It does no sleeping or threading of its own: the caller
decides when to poll, which keeps it testable step by step.

A copy-truncate after which the file grows back past the old offset before the next poll looks
like an append by size alone (`tail -F` misses it); the follower also compares the file's first
bytes with those it read, and every event line starts with its own timestamp.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

SUFFIX = ".log"
SUPERVISOR_LOG = "supervisord"  # supervisord's own log sits beside the daemons' ones


HEAD_BYTES = 64


def program_of(path: Path) -> str | None:
    """The program whose event log `path` is; None for supervisord's log, the captured
    `<program>.stdout.log` / `.stderr.log` and rotated copies (`<program>.log.1`)."""
    if path.suffix != SUFFIX or "." in path.stem or path.stem == SUPERVISOR_LOG:
        return None
    return path.stem


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def _identity_at(path: Path) -> tuple[int, int] | None:
    try:
        return _identity(path.stat())
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class FilePosition:
    """How far a log has been read: the file (its inode, and its first bytes, since an inode is
    reused once a rotated file is deleted) and the bytes of the whole lines read from it."""

    file_id: int
    offset: int
    head: bytes

    def names(self, handle: BinaryIO) -> bool:
        """Whether this is a position in the open file: the same file, and a line starts at the
        offset (not a made-up position in the middle of a line or past the end)."""
        descriptor = handle.fileno()
        stat = os.fstat(descriptor)
        if stat.st_ino != self.file_id or os.pread(descriptor, len(self.head), 0) != self.head:
            return False
        return self.offset == 0 or (0 < self.offset <= stat.st_size
                                    and os.pread(descriptor, 1, self.offset - 1) == b"\n")


class _OpenLog:
    """One open log file: how far it has been read and the unfinished line at its end."""

    def __init__(self, program: str, handle: BinaryIO):
        self.program = program
        self.handle = handle
        self.identity = _identity(os.fstat(handle.fileno()))
        self.offset = 0
        self.pending = b""
        self.head = b""  # the file's first bytes as read: a rewritten file starts differently
        self.more = False  # the last read stopped at its limit, not at the end of the file

    @property
    def position(self) -> FilePosition:
        return FilePosition(self.identity[1], self.offset - len(self.pending), self.head)

    def read_lines(self, max_bytes: int | None = None) -> list[tuple[str, str]]:
        """The lines completed since the last read, from at most `max_bytes` more of the file (None:
        all of it); an unterminated tail waits for its newline."""
        self.handle.seek(self.offset)
        data = self.handle.read(-1 if max_bytes is None else max_bytes)
        self.more = max_bytes is not None and len(data) == max_bytes
        self.offset += len(data)
        if len(self.head) < HEAD_BYTES:
            self.head = os.pread(self.handle.fileno(), HEAD_BYTES, 0)
        *complete, self.pending = (self.pending + data).split(b"\n")
        return [(self.program, line.decode("utf-8", "replace")) for line in complete]

    def was_truncated(self) -> bool:
        """Shrunk, or truncated and already written past the old offset (its first bytes differ:
        every line starts with its own timestamp)."""
        descriptor = self.handle.fileno()
        if os.fstat(descriptor).st_size < self.offset:
            return True
        return bool(self.head) and os.pread(descriptor, len(self.head), 0) != self.head

    def restart(self) -> None:
        """After a copy-truncate the old bytes, a partial line included, live on in the copy."""
        self.offset = 0
        self.pending = b""
        self.head = b""

    def close(self) -> list[tuple[str, str]]:
        """Closes the file, returning its unterminated last line: nobody will finish it now."""
        self.handle.close()
        rest, self.pending = self.pending, b""
        return [(self.program, rest.decode("utf-8", "replace"))] if rest else []


class LogFollower:
    """Follows every `<program>.log` in `log_dir`: `poll()` returns the lines completed since the
    previous poll as (program, line) pairs, without their newline, oldest first per file. The first
    poll returns every line already there, so one poll is also a one-shot read of all the logs."""

    def __init__(self, log_dir: Path, programs: Collection[str] | None = None, max_read_bytes: int | None = None):
        self.log_dir = Path(log_dir)
        self.programs = None if programs is None else frozenset(programs)  # None: every program's log
        # A poll reads at most this much of each file (None: all there is), so that a reader that
        # serves others (Node.Events) holds a bounded slice of a long log; `behind` then says
        # whether there is more.
        self.max_read_bytes = max_read_bytes
        self.behind = False
        self._resume: dict[str, FilePosition] = {}
        self._open: dict[Path, _OpenLog] = {}
        # Files renamed away: a line may still land in one just after the rename, so each is read
        # again on the next poll and closed only once a poll finds nothing new in it.
        self._rotated: list[_OpenLog] = []

    def __enter__(self) -> LogFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for log in [*self._rotated, *self._open.values()]:
            log.handle.close()
        self._rotated.clear()
        self._open.clear()

    def resume(self, program: str, position: FilePosition) -> None:
        """Starts `program`'s log, when first opened, at `position` if it names that file; else from
        its start (the log was rotated since, or the position is not one a reader was given)."""
        self._resume[program] = position

    def position(self, program: str) -> FilePosition | None:
        """Where `program`'s log is read up to: the current file's position, or while a renamed one
        is still being read, that one's."""
        return next((log.position for log in [*self._open.values(), *self._rotated] if log.program == program), None)

    def poll(self) -> list[tuple[str, str]]:
        lines = self._drain_rotated()
        draining = {log.program for log in self._rotated if log.more}
        for path in sorted({*self._open, *self._event_logs()}):
            if program_of(path) not in draining:  # the renamed file to its end before the new one
                lines += self._poll_path(path)
        self.behind = any(log.more for log in [*self._rotated, *self._open.values()])
        return lines

    def _drain_rotated(self) -> list[tuple[str, str]]:
        lines: list[tuple[str, str]] = []
        still_open = []
        for log in self._rotated:
            new = log.read_lines(self.max_read_bytes)
            if new or log.more:
                lines += new
                still_open.append(log)
            else:
                lines += log.close()
        self._rotated = still_open
        return lines

    def _event_logs(self) -> list[Path]:
        try:
            return [path for path in self.log_dir.iterdir() if program_of(path) is not None
                    and (self.programs is None or program_of(path) in self.programs)]
        except FileNotFoundError:  # not created yet: the daemons make it when they start
            return []

    def _poll_path(self, path: Path) -> list[tuple[str, str]]:
        lines: list[tuple[str, str]] = []
        log = self._open.get(path)
        if log is not None and log.identity != _identity_at(path):  # renamed away, maybe replaced
            del self._open[path]
            lines += log.read_lines(self.max_read_bytes)  # the old file to its end before the new one
            self._rotated.append(log)
            if log.more:
                return lines
            log = None
        if log is None:
            log = self._open_log(path)
        elif log.was_truncated():
            log.restart()
        if log is not None:
            lines += log.read_lines(self.max_read_bytes)
        return lines

    def _open_log(self, path: Path) -> _OpenLog | None:
        program = program_of(path)
        if program is None:  # not an event log: poll never asks for one
            return None
        try:
            handle = path.open("rb")
        except FileNotFoundError:  # renamed away and not yet recreated: a later poll opens it
            return None
        log = self._open[path] = _OpenLog(program, handle)
        resume = self._resume.pop(program, None)
        if resume is not None and resume.names(handle):
            log.offset = resume.offset
        return log
