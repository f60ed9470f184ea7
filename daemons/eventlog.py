"""Structured JSON event logging: one file per daemon, one JSON object per line.

Lines go through a WatchedFileHandler, which reopens the file when an outside tool renames it
away (and appends after a copy-truncate), so log rotation loses nothing. The daemon rotates its
own log by size too (RotatingLogHandler, with the limits of its config's `log_rotation`): the
other processes writing to it (its monitor process, its TLS handshake tap) only follow the
renames. With `echo`, every line is also written on stdout, which supervisord keeps (and rotates)
as the program's output: `supervisorctl tail -f worker_c` shows worker_c's events. The daemon's
name is added by a processor rather than bound in a context, because gRPC handler threads do not
see context bound in the main thread.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, WrappedLogger

from daemons.config import LogRotation
from daemons.events import COMMON_FIELDS


class RotatingLogHandler(logging.handlers.WatchedFileHandler):
    """A WatchedFileHandler that also renames its file `<name>.1` (and `.1` to `.2`, up to `backups`)
    before a line would take it past `max_bytes`, counting every writer's lines."""

    def __init__(self, path: Path, rotation: LogRotation):
        super().__init__(path, encoding="utf-8")
        self.rotation = rotation

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.reopenIfNeeded()  # renamed away by someone else: a new file
            line = self.format(record) + self.terminator
            if self.stream is not None:
                size = self.stream.seek(0, os.SEEK_END)  # the other writers' lines count too
                if size and size + len(line.encode("utf-8")) > self.rotation.max_bytes:
                    self._rotate()
        except Exception:  # an event is never worth an exception in the code that logs it
            self.handleError(record)
        logging.FileHandler.emit(self, record)  # which opens the file again if it is closed

    def _rotate(self) -> None:
        """Renames the file and its backups one step older; a rename that fails (the folder is not
        writable, say) leaves the file growing, never logging stopped."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None  # type: ignore[assignment]  # FileHandler.emit opens it again
        base = Path(self.baseFilename)
        try:
            for number in range(self.rotation.backups - 1, 0, -1):
                older = base.with_name(f"{base.name}.{number}")
                if older.exists():
                    older.replace(base.with_name(f"{base.name}.{number + 1}"))
            base.replace(base.with_name(f"{base.name}.1"))
        finally:
            self.stream = self._open()
            self._statstream()


class StdoutEcho(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines on stdout, for supervisord; one that cannot be written there (supervisord is gone and
    the pipe closed) stops the echo, instead of a traceback on stderr for every event."""

    def handleError(self, record: logging.LogRecord) -> None:
        self.setLevel(logging.CRITICAL + 1)


def configure(daemon: str, log_file: Path, rotation: LogRotation | None = None,
              echo: bool = False, observe: Callable[[Mapping[str, Any]], None] | None = None) -> FilteringBoundLogger:
    """The event log of `daemon`; with `rotation`, this process rotates the file (the daemon's own);
    with `echo`, lines go to stdout too; `observe` sees every event as it is written (the metrics
    count from them)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
                                       if rotation is None else RotatingLogHandler(log_file, rotation)]
    if echo:
        handlers.append(StdoutEcho(sys.stdout))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(message)s"))
    sink = logging.getLogger("daemons.events")
    sink.handlers[:] = handlers
    sink.setLevel(logging.DEBUG)
    sink.propagate = False

    def add_daemon(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict["daemon"] = daemon
        return event_dict

    def common_fields_first(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        return {**{key: event_dict.pop(key) for key in COMMON_FIELDS if key in event_dict}, **event_dict}

    def observed(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        assert observe is not None  # only in the chain with one
        observe(event_dict)
        return event_dict

    structlog.configure(
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.add_log_level,
            add_daemon,
            structlog.processors.format_exc_info,
            common_fields_first,
            *([observed] if observe is not None else []),
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=True,
    )
    log: FilteringBoundLogger = structlog.get_logger("daemons.events")  # the wrapper_class configured above
    return log
