"""One neighbour's datagram probes, and the HTTP/2 PINGs that witness every probe that times out.

It owns sending a round (a datagram, and its PING if the datagram is still unanswered after
WITNESS_AFTER_SECONDS), pairing the replies, and judging a probe
that goes unanswered in time: a failure when its witness went unanswered too (hung), busy when
the witness was answered (the probe keeps waiting, and its late answer still counts), and a
failure again when it waits past BUSY_LIMIT_SECONDS (the interpreter is stuck). Replies are
sealed (seal.py) and must echo a probe still out: one that echoes a probe already answered is a
replay, dropped and counted, as the transport counts those whose seal fails. The verdict is
the liveness witness's (liveness.py); what a result does to the neighbour's status is the
monitor's (monitor.py). Runs on the monitor's loop only.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections import OrderedDict
from collections.abc import Callable

from daemons.health.clock import Clock
from daemons.health.gasp import STATUS_ENDED, TOKEN_BYTES
from daemons.health.liveness import Decide, Liveness
from daemons.health.seal import REPLAYED, DropCounts
from daemons.health.tally import ProbeKind
from daemons.health.timers import MonitorTimers
from daemons.health.transport import ProbeTransport
from daemons.rpc import airquality_pb2 as pb

# How long a running neighbour (it answers HTTP/2 PINGs) may leave a datagram unanswered before
# that counts as a failure: its interpreter is stuck, not busy. Above the longest wait for the
# interpreter measured on a loaded daemon (1.9 s, a leader serving the largest aggregate,
# 2026-11-30); a deadlocked daemon is degraded this long after its last answer.
BUSY_LIMIT_SECONDS = 5.0
RECENT_PROBES = 256  # settled probes remembered, to tell a late reply from a replayed one
WITNESS_AFTER_SECONDS = 0.1  # how long a probe waits for its answer before a PING witnesses it

Observe = Callable[[ProbeKind, bool, str, float | None], None]  # the monitor's observe(kind, ok, reason, sent)


class PingRounds:
    def __init__(self, observer: str, transport: ProbeTransport, clock: Clock, timers: MonitorTimers,
                 deadline: Callable[[], float], observe: Observe,
                 answered: Callable[[pb.HealthResponse, float], None], running: Callable[[], None],
                 gasped: Callable[[pb.HealthResponse], None] = lambda gasp: None,
                 confirm: Callable[[str], None] = lambda reason: None):
        self.observer = observer
        self.transport = transport
        self.clock = clock
        self.timers = timers
        self.deadline = deadline  # a probe's deadline now, stretched while this prober is slow
        self._observe = observe
        self._answered = answered  # a reply to a probe sent at the given time
        self._running = running  # a probe timed out, but the process was seen running: busy
        self._gasped = gasped  # a dying gasp came (gasp.py), to be checked against this token
        self._confirm = confirm  # something unauthenticated hinted at a failure: ask over a path that is not
        self.gasp_token = os.urandom(TOKEN_BYTES)
        self.liveness = Liveness()
        self._out: dict[int, float] = {}  # datagram probes awaiting a reply: timestamp -> sent
        # Probes no longer out, timestamp -> whether a reply came: a reply echoing one that was
        # answered is a replay; the first to echo one that timed out is late, and ignored.
        self._settled: OrderedDict[int, bool] = OrderedDict()
        self.dropped = DropCounts()  # replies and gasps dropped, by reason (seal.py)
        self._last_stamp = 0
        self._witness_stamps = itertools.count(1)

    def send(self) -> None:
        stamp = max(self._last_stamp + 1, int(self.clock.wall() * 1e6))  # unique: it pairs the reply
        self._last_stamp = stamp
        self._out[stamp] = self.clock.now()
        self.transport.ping(pb.HealthRequest(requester_id=self.observer, timestamp=stamp, gasp_token=self.gasp_token))
        deadline = self.deadline()
        # Its witness goes only if it is still unanswered a moment later (a witness must be sent no
        # earlier than its probe): answers come in a millisecond or two, and a PING with every probe
        # was most of an idle daemon's CPU, in gRPC's threads (measured 2026-11-30). The verdict on
        # a hang comes WITNESS_AFTER_SECONDS later than the probe's deadline.
        self.timers.at(min(WITNESS_AFTER_SECONDS, deadline / 2), functools.partial(self._witness_if_unanswered, stamp))
        self.timers.at(deadline, functools.partial(self._expired, stamp, deadline))

    def _witness_if_unanswered(self, stamp: int) -> None:
        if stamp in self._out:
            self.send_witness()

    def reply(self, answer: pb.HealthResponse) -> None:
        if answer.status == STATUS_ENDED:
            self._gasped(answer)
            return
        stamp = answer.request_timestamp
        sent = self._out.pop(stamp, None)
        if sent is not None:
            self._settle(stamp, answered=True)
            self._answered(answer, sent)
        elif self._settled.get(stamp) is False:
            self._settle(stamp, answered=True)  # answered after it was counted as a failure
        else:
            self.drop(REPLAYED)  # an answer heard before, or to a probe this prober never sent

    def drop(self, reason: str) -> None:
        """A datagram that came for this prober was not believed (seal.py names the reasons)."""
        self.dropped.add(reason)

    def _settle(self, stamp: int, answered: bool) -> None:
        self._settled[stamp] = answered
        while len(self._settled) > RECENT_PROBES:
            self._settled.popitem(last=False)

    def refused(self, reason: str) -> None:
        """The neighbour's port refused a connection: nobody listens on it. (A connection, unlike a
        datagram, cannot be refused by a stranger: the refusal must echo the connection's sequence
        number, which only the two ends know.)"""
        for stamp in self._out:  # every ping still out went there; none of them can be answered
            self._settle(stamp, answered=False)
        self._out.clear()
        self._observe(ProbeKind.GRPC, False, reason, None)  # the PING connection's: HTTP/2

    def icmp_error(self, reason: str) -> None:
        """An ICMP error came back for a datagram (port unreachable, most often): the neighbour may be
        gone, or anyone may have sent it. Only a hint, so it is asked over gRPC, with TLS."""
        self._confirm(f"ping: {reason}")

    def _expired(self, stamp: int, deadline: float) -> None:
        sent = self._out.get(stamp)
        if sent is not None:
            self.judge_timeout(sent, functools.partial(self._judged, stamp, deadline))

    def _judged(self, stamp: int, deadline: float, running: bool) -> None:
        sent = self._out.get(stamp)
        if sent is None:
            return  # answered, or refused, while the verdict was awaited
        if running:
            self._running()
            self.timers.at(sent + BUSY_LIMIT_SECONDS - self.clock.now(), functools.partial(self._overdue, stamp))
            return
        del self._out[stamp]
        self._settle(stamp, answered=False)
        self._observe(ProbeKind.DATAGRAM, False, f"ping: no answer within {deadline:.3g} s, nor to an HTTP/2 PING",
                      sent)

    def _overdue(self, stamp: int) -> None:
        sent = self._out.pop(stamp, None)
        if sent is not None:
            self._settle(stamp, answered=False)
            self._observe(ProbeKind.DATAGRAM, False,
                          f"ping: no answer within {BUSY_LIMIT_SECONDS:g} s, though its process runs "
                          f"(it answers HTTP/2 PINGs): its interpreter is stuck", sent)

    # -- the witnesses -------------------------------------------------------------------------------

    def send_witness(self) -> None:
        """Sends a PING, which speaks for every probe sent no later than it."""
        stamp = next(self._witness_stamps)
        self.liveness.sent(stamp, self.clock.now())
        if not self.transport.liveness_ping(stamp):
            self.liveness.unanswered(stamp)  # no connection to send it on: nothing will answer it
            return
        self.timers.at(self.deadline(), functools.partial(self.liveness.unanswered, stamp))

    def witness_answered(self, stamp: int) -> None:
        late_since = self.liveness.answered(stamp)
        # gRPC's core answers a PING in milliseconds, so one read just after its deadline most
        # likely waited on this prober; one much later is a neighbour resuming from a hang (it
        # answers every PING it was sent at once), which says nothing of this prober.
        if late_since is not None and self.clock.now() - late_since <= 2 * self.deadline():
            self.timers.awareness.late_answer()

    def judge_timeout(self, sent: float, decide: Decide) -> None:
        """A probe sent at `sent` went unanswered in time; `decide` learns whether the process was
        running after it (busy) or not (hung), from a PING sent no earlier than the probe."""
        if self.liveness.judge(sent, decide):
            self.send_witness()
