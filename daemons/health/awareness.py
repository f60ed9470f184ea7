"""How slow this prober itself is: Lifeguard's local health awareness, and how it stretches deadlines.

Pure: fed with numbers, no clock of its own. It owns the score and the stretch; it does not own
deadlines (monitor.py sets them) or the judging of a neighbour (liveness.py, state.py).

A probe's deadline is judged by the prober's own timers, and a prober that competes for the
interpreter lock with its query threads runs them late: on the gateway under 200 concurrent full
scans its monitor loop woke p90 70 ms, p99 240 ms and at worst 294 ms after it was due, and
leader_e's at worst 1.9 s while it served the largest aggregate (measured 2026-11-30, 2-core
machine). As memberlist's awareness.go (after the Lifeguard paper), a score in 0..max_score rises
with evidence that this daemon is slow and falls with evidence that it is not, and every deadline
is stretched by it. The evidence here is measured rather than inferred: how late each monitor timer
fires, and HTTP/2 PING answers that arrive after their deadline (gRPC's core answers those within
milliseconds, so a late one was most likely late here).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Awareness:
    # Upper bound of the score. With `stretch_per_point` it caps the stretch (1.5x by default):
    # memberlist allows 8x, but a hung neighbour must still be degraded within 1.6 s, which a
    # 0.4 s probe interval and a 0.6 s deadline stretched beyond about 1.7x would no longer meet.
    max_score: int = 4
    # How much one point lengthens a deadline, as a fraction of it.
    stretch_per_point: float = 0.125
    # A timer that fires later than this counts as evidence of a slow prober. Below it is the
    # ordinary wake-up noise of an idle loop (p99 2.5 ms, at worst 23 ms in the same measurements);
    # set it too low and an idle daemon stretches its deadlines for nothing, too high and a
    # starved one is not noticed.
    late_after_seconds: float = 0.05
    score: int = 0

    def timer_fired(self, lateness_seconds: float) -> None:
        """One of the monitor's timers fired `lateness_seconds` after it was due."""
        self.apply_delta(1 if lateness_seconds > self.late_after_seconds else -1)

    def late_answer(self) -> None:
        """An answer arrived after its deadline had been judged."""
        self.apply_delta(1)

    def apply_delta(self, delta: int) -> None:
        self.score = min(max(self.score + delta, 0), self.max_score)

    @property
    def multiplier(self) -> float:
        return 1 + self.score * self.stretch_per_point

    def scale(self, timeout_seconds: float) -> float:
        """A deadline of `timeout_seconds`, stretched for how slow this prober currently is."""
        return timeout_seconds * self.multiplier

    def is_late(self, lateness_seconds: float) -> bool:
        return lateness_seconds > self.late_after_seconds
