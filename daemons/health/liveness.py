"""Whether a neighbour that does not answer is hung or only busy: the HTTP/2 PING witness.

Pure: stamps, send times and callbacks in, verdicts out; the PINGs themselves are sent by the
monitor (h2ping.py carries them). It owns the verdict on a probe that ran out of time; what that
verdict does to the neighbour's status is the state machine's (state.py).

The health probes that tell a daemon's status (datagrams, gRPC HealthCheck) are answered by its
Python code, which waits for the interpreter lock behind the query threads: under 200 concurrent
full scans a leader's datagram responder waited up to 1.2 s before it could read a request, and up
to 1.9 s while it served the largest aggregate, so a 0.6 s deadline made busy daemons look hung
(measured 2026-11-30, 2-core machine). An HTTP/2 PING is answered by gRPC's core on its own
threads, without the lock: a server whose interpreter was held for 7 s answered every PING within
20 ms, and a SIGSTOPped one answers none. So a probe that runs out of time is judged by a PING
sent at or after it: answered, the process was running after the probe left and the probe is
waiting for its interpreter (busy: not a failure); unanswered, the process is not running (a
failure). Until such a PING has an outcome the verdict waits; when none is out, the caller sends one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

Decide = Callable[[bool], None]  # called once with True (the process was running: busy) or False
UNANSWERED_REMEMBERED = 16  # a late answer is only of interest soon after its deadline


class Liveness:
    """The outcomes of one neighbour's PINGs, and the probes waiting for one.

    A PING's outcome speaks for every probe sent at or before it: the latest-sent PING with an
    outcome decides any probe sent no later than it at once.
    """

    def __init__(self) -> None:
        self._out: dict[int, float] = {}  # PINGs awaiting an answer: stamp -> when sent
        self._latest_sent = float("-inf")  # when the latest-sent PING that has an outcome was sent
        self._latest_answered = False  # ... and whether it was answered
        self._waiting: list[tuple[float, Decide]] = []  # (when the probe was sent, its verdict's callback)
        # The latest PINGs judged unanswered: stamp -> when sent, so that a late answer's delay is known.
        self._unanswered: OrderedDict[int, float] = OrderedDict()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def sent(self, stamp: int, at: float) -> None:
        self._out[stamp] = at

    def answered(self, stamp: int) -> float | None:
        """A PING was answered. Returns None, or, for an answer that came after the PING had been
        judged unanswered (too late to count), when that PING was sent."""
        sent = self._out.pop(stamp, None)
        if sent is None:
            return self._unanswered.pop(stamp, None)
        self._outcome(sent, answered=True)
        return None

    def unanswered(self, stamp: int) -> None:
        """A PING's deadline passed without an answer (or it could not be sent)."""
        sent = self._out.pop(stamp, None)
        if sent is not None:
            self._unanswered[stamp] = sent
            if len(self._unanswered) > UNANSWERED_REMEMBERED:
                self._unanswered.popitem(last=False)
            self._outcome(sent, answered=False)

    def judge(self, probe_sent: float, decide: Decide) -> bool:
        """Judges a probe sent at `probe_sent` that ran out of time: calls `decide` now when a PING
        sent at or after it has an outcome, else once one has. Returns True when no such PING is
        out, so the caller must send one for the verdict to come."""
        if self._latest_sent >= probe_sent:
            decide(self._latest_answered)
            return False
        self._waiting.append((probe_sent, decide))
        return not any(sent >= probe_sent for sent in self._out.values())

    def _outcome(self, sent: float, answered: bool) -> None:
        if sent > self._latest_sent:
            self._latest_sent, self._latest_answered = sent, answered
        decided = [decide for probe_sent, decide in self._waiting if probe_sent <= sent]
        self._waiting = [(probe_sent, decide) for probe_sent, decide in self._waiting if probe_sent > sent]
        for decide in decided:
            decide(answered)
