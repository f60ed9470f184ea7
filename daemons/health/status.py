"""The health status of a watched neighbour: the one definition, used by the state machine, the
events, planning, the status views and healthlog."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    UNKNOWN = "unknown"  # no decisive result yet (the neighbour may still be starting)
    HEALTHY = "healthy"
    DEGRADED = "degraded"  # failing, not yet long enough to be declared unavailable
    UNAVAILABLE = "unavailable"

    @property
    def routable(self) -> bool:
        """Queries may be routed through a daemon in this status."""
        return self is not Status.UNAVAILABLE
