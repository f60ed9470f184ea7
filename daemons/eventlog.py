"""Structured JSON event logging: one file per daemon, one JSON object per line.

Lines go through the standard library's WatchedFileHandler, which reopens the file when an outside
tool renames it away (and appends after a copy-truncate), so log rotation loses nothing. The
daemon's name is added by a processor rather than bound in a context, because gRPC handler threads
do not see context bound in the main thread.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, WrappedLogger

from daemons.events import COMMON_FIELDS


def configure(daemon: str, log_file: Path) -> FilteringBoundLogger:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    sink = logging.getLogger("daemons.events")
    sink.handlers[:] = [handler]
    sink.setLevel(logging.DEBUG)
    sink.propagate = False

    def add_daemon(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict["daemon"] = daemon
        return event_dict

    def common_fields_first(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        return {**{key: event_dict.pop(key) for key in COMMON_FIELDS if key in event_dict}, **event_dict}

    structlog.configure(
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.add_log_level,
            add_daemon,
            structlog.processors.format_exc_info,
            common_fields_first,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=True,
    )
    log: FilteringBoundLogger = structlog.get_logger("daemons.events")  # the wrapper_class configured above
    return log
