"""Watching one neighbour: when to probe it, and feeding every answer into its state machine.

Polling alone would need many probes a second to see a death within 100 ms, and a gRPC call
costs a Python daemon milliseconds of CPU at idle, so monitoring combines cheaper signals:
- the health connection's state, watched without polling: a killed neighbour's connection
  breaks, and a graceful stop sends GOAWAY, the moment it happens;
- frequent HealthRequest datagrams (see datagram.py), each with a deadline: the only way to
  notice a neighbour that hangs (SIGSTOP keeps its sockets open); a dead neighbour's port
  answers them with ICMP port unreachable at once;
- confirmation probes by gRPC HealthCheck right after any failure or lost connection, as many at
  once as the state machine asks for, and a slow regular HealthCheck that proves the request
  path itself works: a dead neighbour reaches unavailable within milliseconds, a hung one one
  probe deadline after its first missed datagram;
- while a neighbour is not healthy, a standard grpc.health.v1 Watch stream, waiting for it to be
  reachable: a restarted daemon's SERVING, or a resumed one's, arrives the moment it is true;
  the stream is closed once the neighbour is healthy.
The decisions are the state machine's (state.py); the network is a ProbeTransport and time a
Clock, both injected, so all of this is tested without a socket (tests/unit/test_monitor.py).
All monitors of a daemon share one asyncio event loop thread, asleep until something is due.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from daemons import events
from daemons.config import HealthConfig
from daemons.events import EventLog
from daemons.health.clock import Clock
from daemons.health.state import NeighborState, ProbeResult, Status, Transition
from daemons.health.transport import ProbeFailed, ProbeTransport
from daemons.rpc import airquality_pb2 as pb

WATCH_RETRY_SECONDS = 1.0  # after a neighbour says it has no health service
WATCH_REFUSED_PAUSE_SECONDS = 0.05  # after a watch that failed before its first update


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class NeighborMonitor:
    """One neighbour's state machine and the probes that feed it; runs on a MonitorLoop.

    Locking: `_lock` guards the state machine, which RPC threads read (status, view) and report
    to (passive detection) while the loop feeds it; transition lines are written under it, so
    they keep the order of the decisions. Everything else is touched only on the loop.
    """

    def __init__(self, observer: str, neighbor: str, settings: HealthConfig, transport: ProbeTransport,
                 clock: Clock, log: EventLog, on_unavailable: Callable[[str], None] = lambda neighbor: None):
        self.observer = observer
        self.neighbor = neighbor
        self.settings = settings
        self.transport = transport
        self.clock = clock
        self.log = log
        self.on_unavailable = on_unavailable  # e.g. to cancel calls stuck on a hung neighbour
        self.state = NeighborState(neighbor, settings.thresholds, clock.now())
        self._epoch_offset = clock.wall() - clock.now()  # to report `since` as wall-clock time
        self._lock = threading.Lock()
        self._confirmations_in_flight = 0
        self._pings_out: dict[int, float] = {}  # datagram probes awaiting a reply: timestamp -> sent
        self._last_ping = 0
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._settle = asyncio.Event()  # confirmation probes may be wanted
        self._unhealthy = asyncio.Event()  # set while the status is anything but healthy
        self._unhealthy.set()

    # -- feeding the state machine ---------------------------------------------------------------

    def observe(self, ok: bool, reason: str, sent: float | None = None) -> None:
        """Records one result, of a probe sent at `sent` (None: pushed, not probed). Any thread may
        call it, e.g. to report a failed query passively."""
        with self._lock:
            now = self.clock.now()
            latency_ms = None if sent is None else (now - sent) * 1000
            transition = self.state.observe(ProbeResult(ok, reason, latency_ms, sent), now)
            if transition is not None:
                self._log_transition(transition)
        if transition is not None and transition.current is Status.UNAVAILABLE:
            self.on_unavailable(self.neighbor)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._note_result, ok)

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

    def _log_transition(self, transition: Transition) -> None:
        latency = None if transition.latency_ms is None else round(transition.latency_ms, 3)
        events.HEALTH_TRANSITION.emit(self.log, **{
            "neighbor": transition.neighbor, "from": transition.previous.value, "to": transition.current.value,
            "reason": transition.reason, "consecutive_failures": transition.consecutive_failures,
            "latency_ms": latency})

    def _answered(self, answer: pb.HealthResponse, via: str, sent: float) -> None:
        """A HealthResponse, by datagram or by gRPC: a result, and a restart when the pid changed."""
        previous, self._pid = self._pid, answer.process_id
        if previous is not None and previous != answer.process_id:
            events.NEIGHBOR_RESTARTED.emit(self.log, neighbor=self.neighbor, old_pid=previous,
                                           new_pid=answer.process_id)
        self.observe(answer.healthy, f"{via}: {answer.status} (pid {answer.process_id})", sent)

    # -- the coroutines ----------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        probes: set[asyncio.Task[None]] = set()

        def probe(confirming: bool) -> None:
            task = asyncio.create_task(self._probe(confirming))
            probes.add(task)
            task.add_done_callback(probes.discard)

        await self.transport.start(self._ping_answered, self._ping_refused)
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

    async def _regular_checks(self, probe: Callable[[bool], None]) -> None:
        while True:
            probe(False)
            await self.clock.sleep(self._jittered(self.settings.check_interval_seconds))

    async def _pings(self) -> None:
        while True:
            stamp = max(self._last_ping + 1, int(self.clock.wall() * 1e6))  # unique: it pairs the reply
            self._last_ping = stamp
            self._pings_out[stamp] = self.clock.now()
            self.transport.ping(pb.HealthRequest(requester_id=self.observer, timestamp=stamp))
            self.clock.call_later(self.settings.timeout_seconds, functools.partial(self._ping_expired, stamp))
            await self.clock.sleep(self._jittered(self.settings.interval_seconds))

    def _ping_answered(self, answer: pb.HealthResponse) -> None:
        sent = self._pings_out.pop(answer.request_timestamp, None)
        if sent is None:
            return  # answered after its deadline, already counted as a failure
        self._answered(answer, "ping", sent)

    def _ping_expired(self, stamp: int) -> None:
        sent = self._pings_out.pop(stamp, None)
        if sent is not None:
            self.observe(False, f"ping: no answer within {self.settings.timeout_seconds:g} s", sent)

    def _ping_refused(self, why: str) -> None:
        # Every ping still out went to a port nobody listens on; none of them can be answered.
        self._pings_out.clear()
        self.observe(False, f"ping: {why}")

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
        try:
            answer = await self.transport.check(request, self.settings.timeout_seconds)
        except ProbeFailed as failure:
            self.observe(False, failure.reason, sent)
        else:
            self._answered(answer, "HealthCheck", sent)
        finally:
            if confirming:
                self._confirmations_in_flight -= 1
                self._settle.set()

    async def _connectivity(self) -> None:
        while True:
            await self.transport.connection_lost()
            self._suspect()  # the connection broke or the neighbour said GOAWAY: ask it, now

    async def _watch_while_unhealthy(self) -> None:
        while True:
            await self._unhealthy.wait()
            updates = 0
            pause = 0.0
            try:
                async with contextlib.aclosing(self.transport.watch()) as statuses:
                    async for status in statuses:
                        updates += 1
                        self.observe(status == "SERVING", f"Watch: {status}")
                        if self.status() is Status.HEALTHY:
                            break  # closing the stream: an idle one would only cost wakeups
            except ProbeFailed as failure:
                # A neighbour that refuses the call outright (shutting down, or without the service)
                # would otherwise be asked again in a tight loop.
                pause = WATCH_RETRY_SECONDS if failure.unimplemented else (0.0 if updates else WATCH_REFUSED_PAUSE_SECONDS)
            await self.clock.sleep(pause)

    # -- status view -------------------------------------------------------------------------------

    def view(self) -> pb.NeighborHealth:
        with self._lock:
            now = self.clock.now()
            rate, count = self.state.success_rate(now)
            view = pb.NeighborHealth(observer=self.observer, neighbor=self.neighbor, status=self.state.status.value,
                                     since=iso_utc(self.state.since + self._epoch_offset),
                                     consecutive_failures=self.state.consecutive_failures, success_rate=rate,
                                     probes_in_window=count, window_seconds=self.state.thresholds.window_seconds,
                                     last_reason=self.state.last_reason)
            if self.state.last_latency_ms is not None:
                view.last_latency_ms = self.state.last_latency_ms
        return view


class MonitorLoop:
    """The event loop thread that runs every NeighborMonitor of a daemon."""

    def __init__(self, monitors: list[NeighborMonitor]):
        self.monitors = monitors
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="health-monitor", daemon=True)
        self._running: concurrent.futures.Future[None] | None = None
        self._finished = threading.Event()

    async def _run_all(self) -> None:
        tasks = [asyncio.create_task(monitor.run()) for monitor in self.monitors]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # their cleanup: channels, sockets
            self._finished.set()

    def start(self) -> None:
        self._thread.start()
        self._running = asyncio.run_coroutine_threadsafe(self._run_all(), self._loop)

    def stop(self) -> None:
        """Cancels the monitors, lets them close their channels and sockets, and ends the loop."""
        if self._running is None:
            return
        self._running.cancel()
        self._finished.wait(timeout=3)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=3)
        if not self._thread.is_alive():
            self._loop.close()
        self._running = None
