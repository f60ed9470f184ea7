"""Watching neighbours and feeding what is seen into their state machines.

Polling alone would need many probes a second to see a death within 100 ms, and a gRPC call
costs a Python daemon milliseconds of CPU at idle, so monitoring combines cheaper signals:
- the health channel's connectivity state, watched without polling: a killed neighbour's
  connection breaks, and a graceful stop sends GOAWAY, the moment it happens;
- frequent HealthRequest datagrams (see datagram.py), each with a deadline: the only way to
  notice a neighbour that hangs (SIGSTOP keeps its sockets open); a dead neighbour's port
  answers them with ICMP port unreachable at once;
- confirmation probes by gRPC HealthCheck right after any failure or lost connection, as many at
  once as it takes to settle the question, and a slow regular HealthCheck that proves the
  request path itself works: a dead neighbour reaches unavailable within milliseconds, a hung one
  one probe deadline after its first missed datagram;
- while a neighbour is not healthy, a standard grpc.health.v1 Watch stream, waiting for the
  channel to reconnect (backoff capped at 100 ms): a restarted daemon's SERVING, or a resumed
  one's, arrives the moment it is true; the stream is closed once the neighbour is healthy.
All monitors of a daemon share one asyncio event loop thread, asleep until something is due.
The health channel is separate from the query channel, so probes never queue behind big scans.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from datetime import datetime, timezone
from typing import Callable

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc

from daemons import events
from daemons.config import HealthConfig, Link
from daemons.health.state import NeighborState, ProbeResult, Status, Thresholds, Transition
from daemons.rpc import airquality_pb2 as pb

HEALTH_CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),  # a connection of its own, apart from the query traffic
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 100),
]
WATCH_RETRY_SECONDS = 1.0  # after a neighbour says it has no health service
WATCH_REFUSED_PAUSE_SECONDS = 0.05  # after a watch that failed before its first update


def thresholds_of(settings: HealthConfig) -> Thresholds:
    return Thresholds(settings.failures_before_degraded, settings.failures_before_unavailable,
                      settings.successes_before_healthy, settings.startup_grace_seconds, settings.window_seconds)


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def failure_reason(error: grpc.RpcError) -> str:
    if isinstance(error, (grpc.Call, grpc.aio.AioRpcError)):
        return f"{error.code().name}: {error.details()}"
    return repr(error)


class NeighborMonitor:
    """One neighbour's state machine and the probes that feed it; runs on a MonitorLoop."""

    def __init__(self, observer: str, link: Link, settings: HealthConfig, log,
                 on_unavailable: Callable[[str], None] = lambda neighbor: None,
                 clock: Callable[[], float] = time.monotonic):
        self.observer = observer
        self.on_unavailable = on_unavailable  # e.g. to cancel calls stuck on a hung neighbour
        self.link = link
        self.settings = settings
        self.log = log
        self.clock = clock
        self.state = NeighborState(link.name, thresholds_of(settings), clock())
        self._epoch_offset = time.time() - clock()  # to report `since` as wall-clock time
        self._lock = threading.Lock()  # the state is read by RPC threads and fed by the loop
        self._suspect = False  # a failure or a broken watch awaits confirmation
        self._confirmations_in_flight = 0
        self._pings_out: dict[int, float] = {}  # datagram probes awaiting a reply: timestamp -> sent
        self._last_ping = 0
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._settle: asyncio.Event | None = None  # confirmation probes may be wanted
        self._unhealthy: asyncio.Event | None = None  # set while the status is anything but healthy

    # -- feeding the state machine ---------------------------------------------------------------

    def observe(self, ok: bool, reason: str, latency_ms: float | None = None) -> None:
        """Records one result. Any thread may call it, e.g. to report a failed query passively."""
        with self._lock:
            transition = self.state.observe(ProbeResult(ok, reason, latency_ms), self.clock())
            self._suspect = not ok
            if transition is not None:
                self._log_transition(transition)  # under the lock, so lines keep the order of decisions
        if transition is not None and transition.current is Status.UNAVAILABLE:
            self.on_unavailable(self.link.name)
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

    def _suspect_now(self) -> None:
        with self._lock:
            self._suspect = True
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
            events.NEIGHBOR_RESTARTED.emit(self.log, neighbor=self.link.name, old_pid=previous,
                                           new_pid=answer.process_id)
        self.observe(answer.healthy, f"{via}: {answer.status} (pid {answer.process_id})", (self.clock() - sent) * 1000)

    # -- the coroutines ----------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._settle = asyncio.Event()
        self._unhealthy = asyncio.Event()
        self._unhealthy.set()
        channel = grpc.aio.insecure_channel(str(self.link.address), options=HEALTH_CHANNEL_OPTIONS)
        check = channel.unary_unary("/airquality.v1.Node/HealthCheck",
                                    request_serializer=pb.HealthRequest.SerializeToString,
                                    response_deserializer=pb.HealthResponse.FromString)
        probes: set[asyncio.Task] = set()

        def probe(confirming: bool) -> None:
            task = asyncio.create_task(self._probe(check, confirming))
            probes.add(task)
            task.add_done_callback(probes.discard)

        datagrams, _ = await self._loop.create_datagram_endpoint(
            lambda: _ReplyProtocol(self), remote_addr=(self.link.address.host, self.link.address.port))
        try:
            await asyncio.gather(self._pings(datagrams), self._regular_checks(probe), self._confirmations(probe),
                                 self._connectivity(channel),
                                 self._watch_while_unhealthy(health_pb2_grpc.HealthStub(channel)))
        finally:
            for task in probes:
                task.cancel()
            datagrams.close()
            await channel.close()

    def _jittered(self, seconds: float) -> float:
        return seconds * (1 + random.uniform(-self.settings.jitter_fraction, self.settings.jitter_fraction))

    async def _regular_checks(self, probe: Callable[[bool], None]) -> None:
        while True:
            probe(False)
            await asyncio.sleep(self._jittered(self.settings.check_interval_seconds))

    # -- datagram probes ---------------------------------------------------------------------------

    async def _pings(self, datagrams: asyncio.DatagramTransport) -> None:
        while True:
            stamp = max(self._last_ping + 1, int(time.time() * 1e6))  # unique: it pairs the reply
            self._last_ping = stamp
            self._pings_out[stamp] = self.clock()
            datagrams.sendto(pb.HealthRequest(requester_id=self.observer, timestamp=stamp).SerializeToString())
            self._loop.call_later(self.settings.timeout_seconds, self._ping_expired, stamp)
            await asyncio.sleep(self._jittered(self.settings.interval_seconds))

    def ping_answered(self, data: bytes) -> None:
        try:
            answer = pb.HealthResponse.FromString(data)
        except DecodeError:
            return
        sent = self._pings_out.pop(answer.request_timestamp, None)
        if sent is None:
            return  # answered after its deadline, already counted as a failure
        self._answered(answer, "ping", sent)

    def _ping_expired(self, stamp: int) -> None:
        sent = self._pings_out.pop(stamp, None)
        if sent is not None:
            self.observe(False, f"ping: no answer within {self.settings.timeout_seconds:g} s",
                         (self.clock() - sent) * 1000)

    def ping_refused(self, error: OSError) -> None:
        # Every ping still out went to a port nobody listens on; none of them can be answered.
        self._pings_out.clear()
        self.observe(False, f"ping: {error.strerror or error}")

    def _confirmations_wanted(self) -> int:
        """Confirmation probes to have in flight: enough to settle a suspicion in one round trip."""
        with self._lock:
            # Only a neighbour believed healthy or degraded has a suspicion to settle: one still
            # starting (unknown) or already unavailable is left to the regular probes and the watch.
            if not self._suspect or self.state.status in (Status.UNKNOWN, Status.UNAVAILABLE):
                return 0
            return max(1, self.state.thresholds.failures_before_unavailable - self.state.consecutive_failures)

    async def _confirmations(self, probe: Callable[[bool], None]) -> None:
        while True:
            await self._settle.wait()
            self._settle.clear()
            while self._confirmations_in_flight < self._confirmations_wanted():
                self._confirmations_in_flight += 1
                probe(True)
                await asyncio.sleep(self.settings.confirm_interval_seconds)

    async def _probe(self, check, confirming: bool) -> None:
        sent = self.clock()
        request = pb.HealthRequest(requester_id=self.observer, timestamp=int(time.time() * 1e6))
        try:
            answer: pb.HealthResponse = await check(request, timeout=self.settings.timeout_seconds)
        except grpc.aio.AioRpcError as error:
            self.observe(False, failure_reason(error), (self.clock() - sent) * 1000)
        else:
            self._answered(answer, "HealthCheck", sent)
        finally:
            if confirming:
                self._confirmations_in_flight -= 1
                self._settle.set()

    async def _connectivity(self, channel: grpc.aio.Channel) -> None:
        state = channel.get_state(try_to_connect=True)
        while True:
            await channel.wait_for_state_change(state)
            previous, state = state, channel.get_state(try_to_connect=True)
            if previous is grpc.ChannelConnectivity.READY:
                self._suspect_now()  # the connection broke or the neighbour said GOAWAY: ask it, now

    async def _watch_while_unhealthy(self, stub: health_pb2_grpc.HealthStub) -> None:
        while True:
            await self._unhealthy.wait()
            call = stub.Watch(health_pb2.HealthCheckRequest(service=""), wait_for_ready=True)
            updates = 0
            pause = 0.0
            try:
                async for update in call:
                    updates += 1
                    name = health_pb2.HealthCheckResponse.ServingStatus.Name(update.status)
                    self.observe(update.status == health_pb2.HealthCheckResponse.SERVING, f"Watch: {name}")
                    if self.status() is Status.HEALTHY:
                        call.cancel()  # an idle stream would only cost wakeups
                        break
            except grpc.aio.AioRpcError as error:
                # A neighbour that refuses the call outright (shutting down, or without the service)
                # would otherwise be asked again in a tight loop.
                pause = WATCH_RETRY_SECONDS if error.code() is grpc.StatusCode.UNIMPLEMENTED else (
                    0.0 if updates else WATCH_REFUSED_PAUSE_SECONDS)
            await asyncio.sleep(pause)

    # -- status view -------------------------------------------------------------------------------

    def view(self) -> pb.NeighborHealth:
        with self._lock:
            now = self.clock()
            rate, count = self.state.success_rate(now)
            view = pb.NeighborHealth(observer=self.observer, neighbor=self.link.name, status=self.state.status.value,
                                     since=iso_utc(self.state.since + self._epoch_offset),
                                     consecutive_failures=self.state.consecutive_failures, success_rate=rate,
                                     probes_in_window=count, window_seconds=self.settings.window_seconds,
                                     last_reason=self.state.last_reason)
            if self.state.last_latency_ms is not None:
                view.last_latency_ms = self.state.last_latency_ms
        return view


class _ReplyProtocol(asyncio.DatagramProtocol):
    def __init__(self, monitor: NeighborMonitor):
        self.monitor = monitor

    def datagram_received(self, data: bytes, addr) -> None:
        self.monitor.ping_answered(data)

    def error_received(self, exc: OSError) -> None:
        self.monitor.ping_refused(exc)


class MonitorLoop:
    """The event loop thread that runs every NeighborMonitor of a daemon."""

    def __init__(self, monitors: list[NeighborMonitor]):
        self.monitors = monitors
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="health-monitor", daemon=True)
        self._running = None
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
