"""Watching one neighbour: when to probe it, and feeding every answer into its state machine.

Polling alone would need many probes a second to see a death within 100 ms, and a gRPC call
costs a Python daemon milliseconds of CPU at idle, so monitoring combines cheaper signals:
- the state of two connections to its port, the health channel's and the one carrying HTTP/2
  PINGs, watched without polling: a killed neighbour's connections break, and a graceful stop
  sends GOAWAY, the moment it happens; a refused reconnection counts as a failed probe;
- frequent HealthRequest datagrams (see datagram.py), each with a deadline: the way to notice a
  neighbour that hangs (SIGSTOP keeps its sockets open). Sealed with the cluster key where
  configured (seal.py), so that nobody else can answer for the neighbour. A dead neighbour's
  port answers them with ICMP port unreachable at once, which anyone could send too: it is a
  hint that sets off a HealthCheck, never a failure by itself. One still unanswered a moment
  after it is sent (and every HealthCheck) is witnessed by an HTTP/2 PING, which gRPC's core
  answers without the neighbour's interpreter: a probe that runs out of time while the PING sent
  with or after it is answered was only waiting for a busy interpreter, and is no failure
  (liveness.py, pings.py), unless it waits past BUSY_LIMIT_SECONDS;
- confirmation probes by gRPC HealthCheck right after any failure, lost connection or failed
  query call (with a datagram, for the last two), as many at once as the state machine asks
  for, and a slow regular HealthCheck that proves the request path itself works: a dead
  neighbour reaches unavailable within milliseconds, a hung one one probe deadline after its
  first missed datagram;
- while a neighbour is not healthy, a standard grpc.health.v1 Watch stream, waiting for it to be
  reachable: a restarted daemon's SERVING, or a resumed one's, arrives the moment it is true;
  the stream is closed once the neighbour is healthy.
The decisions are the state machine's (state.py) and the liveness witness's (liveness.py); the
network is a ProbeTransport and time a Clock, both injected, so all of this is tested without a
socket (tests/unit/test_monitor.py). All monitors of a daemon share one asyncio event loop thread,
asleep until something is due, in a process of their own (process.py), so that the daemon's
query threads never hold them up. On a machine whose cores are all busy that process, too, runs
late, so its deadlines are stretched by how late its own timers fire (awareness.py), and a
deadline whose timer fired late is judged after the answers that came meanwhile are read
(timers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from daemons import events
from daemons.config import HealthConfig
from daemons.events import EventLog
from daemons.health.awareness import Awareness
from daemons.health.clock import Clock
from daemons.health.gasp import believed
from daemons.health.pings import PingRounds
from daemons.health.state import NeighborState, ProbeResult, Status, Transition
from daemons.health.tally import ProbeKind, ProbeTally
from daemons.health.timers import MonitorTimers
from daemons.health.transport import ProbeFailed, ProbeTransport
from daemons.rpc import airquality_pb2 as pb

WATCH_RETRY_SECONDS = 1.0  # after a neighbour says it has no health service
WATCH_REFUSED_PAUSE_SECONDS = 0.05  # after a watch that failed before its first update


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class NeighborMonitor:
    """One neighbour's state machine and the probes that feed it; runs on a MonitorLoop.

    Locking: `_lock` guards the state machine, which RPC threads read (status, view) while the
    loop feeds it; transition lines are written under it, so they keep the order of the
    decisions. Everything else (the awareness and the ping rounds included) is touched only on
    the loop: RPC threads reporting a failed query call hand it over (query_call_failed).
    """

    def __init__(self, observer: str, neighbor: str, settings: HealthConfig, transport: ProbeTransport,
                 clock: Clock, log: EventLog, on_unavailable: Callable[[str], None] = lambda neighbor: None,
                 awareness: Awareness | None = None,
                 on_change: Callable[[NeighborMonitor], None] = lambda monitor: None):
        self.observer = observer
        self.neighbor = neighbor
        self.settings = settings
        self.transport = transport
        self.clock = clock
        self.log = log
        self.on_unavailable = on_unavailable  # e.g. to cancel calls stuck on a hung neighbour
        self.on_change = on_change  # after every result: e.g. to report the view to the daemon
        self.state = NeighborState(neighbor, settings.thresholds, clock.now())
        # How slow this prober is (one per monitor: the monitors of a daemon share its loop, so
        # they see the same lateness); its datagram probes, witnessed by HTTP/2 PINGs when slow to answer.
        self.awareness = awareness if awareness is not None else Awareness()
        self.timers = MonitorTimers(clock, self.awareness)
        self.pings = PingRounds(observer, transport, clock, self.timers, self._deadline, self.observe,
                                functools.partial(self._answered, "ping", ProbeKind.DATAGRAM), self._running,
                                self._gasped,
                                self._confirm_hint)
        self._epoch_offset = clock.wall() - clock.now()  # to report `since` as wall-clock time
        self._lock = threading.Lock()
        self.tally = ProbeTally()  # under _lock, as the state machine
        self._confirmations_in_flight = 0
        self._probe_now: Callable[[bool], None] | None = None  # starts a HealthCheck, once running
        self._next_hint_check = -math.inf  # when an unauthenticated hint may set off a HealthCheck again
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._settle = asyncio.Event()  # confirmation probes may be wanted
        self._unhealthy = asyncio.Event()  # set while the status is anything but healthy
        self._unhealthy.set()

    # -- feeding the state machine ---------------------------------------------------------------

    def observe(self, kind: ProbeKind, ok: bool, reason: str, sent: float | None = None, *,
                conclusive: bool = False) -> None:
        """Records one result, of a probe of `kind` sent at `sent` (None: pushed, not probed). Any
        thread may call it."""
        with self._lock:
            now = self.clock.now()
            latency_ms = None if sent is None else (now - sent) * 1000
            transition = self.state.observe(ProbeResult(ok, reason, latency_ms, sent, conclusive), now)
            # A latency is a probe's answer's: not a timeout's deadline nor a refusal's, and not a Watch
            # update's, whose `sent` is when its stream opened.
            answered = ok and latency_ms is not None and kind is not ProbeKind.WATCH
            self.tally.probe(kind, ok, latency_ms / 1000 if answered and latency_ms is not None else None)
            if transition is not None:
                self.tally.transition(transition.previous.value, transition.current.value)
                self._log_transition(transition)
        if transition is not None and transition.current is Status.UNAVAILABLE:
            self.on_unavailable(self.neighbor)
        self.on_change(self)
        if self._loop is None:
            return
        if self._on_loop():
            self._note_result(ok)
        else:  # waking the loop costs a write to its self-pipe and a turn: only from other threads
            self._loop.call_soon_threadsafe(self._note_result, ok)

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:  # no loop runs on this thread
            return False

    def query_call_failed(self, reason: str) -> None:
        """A query call to the neighbour failed, for `reason`. Any thread may call it. It is a
        question, not an answer: the neighbour is asked at once on every path, and their answers
        decide. A dead neighbour's port refuses the connection within a
        loop turn; a neighbour that is back answers, though calls still fail
        for a moment through a query channel waiting out its reconnect backoff, or are reported
        late after breaking at its restart: as failures these made up to six healthy -> degraded
        -> healthy flaps, one reaching unavailable, after each leader restart under load
        (measured 2026-11-30)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._ask_now)

    def _ask_now(self) -> None:
        self._suspect()
        self.pings.send()

    def _confirm_hint(self, reason: str) -> None:
        """On the loop: something anyone could have sent (an ICMP error) says the neighbour may be
        gone; a HealthCheck, over TLS where configured, decides. Only a neighbour believed up has
        anything to lose (one starting or down draws an ICMP error with every datagram), and at
        most one check per probe interval: a flood of forged hints costs what the probes do, and
        changes nothing. A real death is seen sooner anyway, by its gasp or its broken connection."""
        now = self.clock.now()
        if self._probe_now is None or self.status() not in (Status.HEALTHY, Status.DEGRADED) \
                or now < self._next_hint_check:
            return
        self._next_hint_check = now + self.settings.interval_seconds
        self._probe_now(False)

    def _note_result(self, ok: bool) -> None:
        """On the loop: wakes the confirmations after a failure, the watch when not healthy."""
        if not ok:
            self._settle.set()
        if self.status() is Status.HEALTHY:
            self._unhealthy.clear()
        else:
            self._unhealthy.set()

    def status(self) -> Status:
        with self._lock:
            return self.state.status

    def _suspect(self) -> None:
        with self._lock:
            self.state.suspect()
        self._settle.set()

    def _running(self) -> None:
        with self._lock:
            self.state.running()

    def _log_transition(self, transition: Transition) -> None:
        latency = None if transition.latency_ms is None else round(transition.latency_ms, 3)
        events.HEALTH_TRANSITION.emit(self.log, **{
            "neighbor": transition.neighbor, "from": transition.previous.value, "to": transition.current.value,
            "reason": transition.reason, "consecutive_failures": transition.consecutive_failures,
            "latency_ms": latency})

    def _answered(self, via: str, kind: ProbeKind, answer: pb.HealthResponse, sent: float) -> None:
        """A HealthResponse, by datagram or by gRPC: a result, and a restart when the pid changed."""
        previous, self._pid = self._pid, answer.process_id
        if previous is not None and previous != answer.process_id:
            events.NEIGHBOR_RESTARTED.emit(self.log, neighbor=self.neighbor, old_pid=previous,
                                           new_pid=answer.process_id)
        self.observe(kind, answer.healthy, f"{via}: {answer.status} (pid {answer.process_id})", sent)

    def _gasped(self, answer: pb.HealthResponse) -> None:
        """A dying gasp (gasp.py): the neighbour's process ended, if the gasp is true."""
        if believed(answer, self.pings.gasp_token, self._pid):
            self.observe(ProbeKind.DATAGRAM, False, f"dying gasp: its process (pid {answer.process_id}) ended",
                         conclusive=True)

    # -- the coroutines ----------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        probes: set[asyncio.Task[None]] = set()

        def probe(confirming: bool) -> None:
            task = asyncio.create_task(self._probe(confirming))
            probes.add(task)
            task.add_done_callback(probes.discard)

        self._probe_now = probe
        await self.transport.start(self.pings)
        try:
            await asyncio.gather(self._pings(), self._regular_checks(probe), self._confirmations(probe),
                                 self._connectivity(), self._watch_while_unhealthy())
        finally:
            for task in probes:
                task.cancel()
            await self.transport.close()

    def _jittered(self, seconds: float) -> float:
        spread = self.settings.jitter_fraction
        return seconds * (1 + random.uniform(-spread, spread))

    def _deadline(self) -> float:
        return self.timers.deadline(self.settings.timeout_seconds)

    async def _regular_checks(self, probe: Callable[[bool], None]) -> None:
        while True:
            probe(False)
            await self.timers.sleep(self._jittered(self.settings.check_interval_seconds))

    async def _pings(self) -> None:
        while True:
            self.pings.send()
            await self.timers.sleep(self._jittered(self.settings.interval_seconds))

    def _confirmations_wanted(self) -> int:
        with self._lock:
            return self.state.confirmations_wanted()

    async def _confirmations(self, probe: Callable[[bool], None]) -> None:
        while True:
            await self._settle.wait()
            self._settle.clear()
            while self._confirmations_in_flight < self._confirmations_wanted():
                self._confirmations_in_flight += 1
                probe(True)
                await self.clock.sleep(self.settings.confirm_interval_seconds)

    async def _probe(self, confirming: bool) -> None:
        sent = self.clock.now()
        request = pb.HealthRequest(requester_id=self.observer, timestamp=int(self.clock.wall() * 1e6))
        check = self.transport.check(request, self._deadline())
        self.pings.send_witness()  # should the check run out of time
        try:
            answer = await check
        except ProbeFailed as failure:
            if failure.overloaded:
                self._running()  # it answered, only to say it has no room for the call
            elif failure.timed_out:
                self.pings.judge_timeout(sent, functools.partial(self._check_judged, failure.reason, sent))
            else:
                self.observe(ProbeKind.GRPC, False, failure.reason, sent)
        else:
            self._answered("HealthCheck", ProbeKind.GRPC, answer, sent)
        finally:
            if confirming:
                self._confirmations_in_flight -= 1
                self._settle.set()

    def _check_judged(self, reason: str, sent: float, running: bool) -> None:
        if running:
            self._running()
        else:
            self.observe(ProbeKind.GRPC, False, f"{reason}, nor to an HTTP/2 PING", sent)

    async def _connectivity(self) -> None:
        while True:
            await self.transport.connection_lost()
            # The connection broke or the neighbour said GOAWAY: ask it, now, on every path (a
            # dead neighbour's port refuses the PING connection at once, without a gRPC call's handoffs).
            self._ask_now()

    async def _watch_while_unhealthy(self) -> None:
        while True:
            await self._unhealthy.wait()
            updates = 0
            pause = 0.0
            opened = self.clock.now()
            try:
                async with contextlib.aclosing(self.transport.watch()) as statuses:
                    async for status in statuses:
                        updates += 1
                        # The first update is the status when the call reached the neighbour, which
                        # may have been overtaken: a "NOT_SERVING" from a daemon that was still
                        # loading, read after a later probe heard it serving (seen under load on
                        # 2026-11-30: healthy -> degraded -> healthy right after a restart), is
                        # outdated like any failure of a probe sent before a success.
                        stale_after = opened if updates == 1 and status != "SERVING" else None
                        self.observe(ProbeKind.WATCH, status == "SERVING", f"Watch: {status}", stale_after)
                        if self.status() is Status.HEALTHY:
                            break  # closing the stream: an idle one would only cost wakeups
            except ProbeFailed as failure:
                # A neighbour that refuses the call outright (shutting down, or without the service)
                # would otherwise be asked again in a tight loop.
                pause = WATCH_RETRY_SECONDS if failure.unimplemented else (0.0 if updates else WATCH_REFUSED_PAUSE_SECONDS)
            await self.clock.sleep(pause)

    # -- status view -------------------------------------------------------------------------------

    def counts(self) -> ProbeTally:
        """What it has seen so far, counted (a copy)."""
        with self._lock:
            return self.tally.copy()

    def view(self) -> pb.NeighborHealth:
        with self._lock:
            now = self.clock.now()
            rate, count = self.state.success_rate(now)
            view = pb.NeighborHealth(observer=self.observer, neighbor=self.neighbor, status=self.state.status.value,
                                     since=iso_utc(self.state.since + self._epoch_offset),
                                     consecutive_failures=self.state.consecutive_failures, success_rate=rate,
                                     probes_in_window=count, window_seconds=self.state.thresholds.window_seconds,
                                     last_reason=self.state.last_reason, process_id=self._pid or 0)
            if self.state.last_latency_ms is not None:
                view.last_latency_ms = self.state.last_latency_ms
        view.datagrams_dropped.update(self.pings.dropped.snapshot())
        return view
