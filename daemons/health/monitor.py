"""Watching one neighbour over gRPC and feeding what is seen into its state machine.

Polling alone would need many probes a second to see a death within 100 ms, so three sources
are combined:
- a standard grpc.health.v1 Watch stream, which breaks the moment the neighbour's process dies
  and which a graceful shutdown turns NOT_SERVING at once; while the neighbour is down the call
  waits for the channel to reconnect (backoff capped at 100 ms), so its SERVING arrives as soon
  as a restarted daemon serves;
- regular HealthCheck probes with a deadline, issued on a fixed cadence whether or not earlier
  ones have answered: the only way to notice a neighbour that hangs (SIGSTOP keeps its sockets
  open), and what keeps a degraded neighbour moving toward unavailable at the probe interval;
- confirmation probes right after any failure or broken watch, so that a dead neighbour, which
  refuses connections instantly, reaches unavailable within milliseconds.
The health channel is separate from the query channel, so probes never queue behind big scans.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timezone
from typing import Callable

import grpc
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
    return f"{error.code().name}: {error.details()}" if isinstance(error, grpc.Call) else repr(error)


class NeighborMonitor:
    def __init__(self, observer: str, link: Link, settings: HealthConfig, log,
                 clock: Callable[[], float] = time.monotonic):
        self.observer = observer
        self.link = link
        self.settings = settings
        self.log = log
        self.clock = clock
        self.state = NeighborState(link.name, thresholds_of(settings), clock())
        self._epoch_offset = time.time() - clock()  # to report `since` as wall-clock time
        self._channel = grpc.insecure_channel(str(link.address), options=HEALTH_CHANNEL_OPTIONS)
        self._check = self._channel.unary_unary("/airquality.v1.Node/HealthCheck",
                                                request_serializer=pb.HealthRequest.SerializeToString,
                                                response_deserializer=pb.HealthResponse.FromString)
        self._watch = health_pb2_grpc.HealthStub(self._channel).Watch
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopped = False
        self._confirm_wanted = False
        self._confirm_in_flight = False
        self._watch_call = None
        self._pid: int | None = None
        self._threads = [threading.Thread(target=self._probe_loop, name=f"probe-{link.name}", daemon=True),
                         threading.Thread(target=self._watch_loop, name=f"watch-{link.name}", daemon=True)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._wake.notify_all()
            call = self._watch_call
        if call is not None:
            call.cancel()
        for thread in self._threads:
            thread.join(timeout=2)
        self._channel.close()

    # -- feeding the state machine ---------------------------------------------------------------

    def observe(self, ok: bool, reason: str, latency_ms: float | None = None) -> None:
        """Records one result; also the entry point for passive results such as failed queries."""
        with self._lock:
            if self._stopped:
                return
            transition = self.state.observe(ProbeResult(ok, reason, latency_ms), self.clock())
            if not ok and self.state.status is not Status.UNAVAILABLE:
                self._confirm_wanted = True
                self._wake.notify_all()
        if transition is not None:
            self._log_transition(transition)

    def _log_transition(self, transition: Transition) -> None:
        latency = None if transition.latency_ms is None else round(transition.latency_ms, 3)
        events.HEALTH_TRANSITION.emit(self.log, **{
            "neighbor": transition.neighbor, "from": transition.previous.value, "to": transition.current.value,
            "reason": transition.reason, "consecutive_failures": transition.consecutive_failures,
            "latency_ms": latency})

    # -- probes ------------------------------------------------------------------------------------

    def _probe_loop(self) -> None:
        next_regular = self.clock()
        next_confirm = 0.0
        while True:
            with self._lock:
                while not self._stopped:
                    now = self.clock()
                    confirm_due = self._confirm_wanted and not self._confirm_in_flight and now >= next_confirm
                    if now >= next_regular or confirm_due:
                        break
                    wake_at = next_regular
                    if self._confirm_wanted and not self._confirm_in_flight:
                        wake_at = min(wake_at, next_confirm)
                    self._wake.wait(max(0.0, wake_at - now))
                if self._stopped:
                    return
                if confirm_due:
                    self._confirm_wanted = False
                    self._confirm_in_flight = True
                    next_confirm = now + self.settings.confirm_interval_seconds
            if confirm_due:
                self._send_probe(confirming=True)
            if now >= next_regular:
                self._send_probe(confirming=False)
                jitter = random.uniform(-self.settings.jitter_fraction, self.settings.jitter_fraction)
                next_regular = now + self.settings.interval_seconds * (1 + jitter)

    def _send_probe(self, confirming: bool) -> None:
        sent = self.clock()
        request = pb.HealthRequest(requester_id=self.observer, timestamp=int(time.time() * 1e6))
        future = self._check.future(request, timeout=self.settings.timeout_seconds)
        future.add_done_callback(lambda done: self._probe_done(done, sent, confirming))

    def _probe_done(self, future: grpc.Future, sent: float, confirming: bool) -> None:
        latency_ms = (self.clock() - sent) * 1000
        if confirming:
            with self._lock:
                self._confirm_in_flight = False
                self._wake.notify_all()
        try:
            answer: pb.HealthResponse = future.result()
        except grpc.FutureCancelledError:
            return
        except grpc.RpcError as error:
            self.observe(False, failure_reason(error), latency_ms)
            return
        self._note_pid(answer.process_id)
        if answer.healthy:
            self.observe(True, f"HealthCheck: {answer.status} (pid {answer.process_id})", latency_ms)
        else:
            self.observe(False, f"HealthCheck: {answer.status} (pid {answer.process_id})", latency_ms)

    def _note_pid(self, pid: int) -> None:
        with self._lock:
            previous, self._pid = self._pid, pid
        if previous is not None and previous != pid:
            events.NEIGHBOR_RESTARTED.emit(self.log, neighbor=self.link.name, old_pid=previous, new_pid=pid)

    # -- watch stream ------------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                call = self._watch(health_pb2.HealthCheckRequest(service=""), wait_for_ready=True)
                self._watch_call = call
            updates = 0
            try:
                for update in call:
                    updates += 1
                    serving = update.status == health_pb2.HealthCheckResponse.SERVING
                    name = health_pb2.HealthCheckResponse.ServingStatus.Name(update.status)
                    self.observe(serving, f"Watch: {name}")
            except grpc.RpcError as error:
                with self._lock:
                    if self._stopped:
                        return
                    # The stream broke: the neighbour may have died. Ask it directly, now.
                    self._confirm_wanted = True
                    self._wake.notify_all()
                    # A neighbour that refuses the call outright (shutting down, or without the
                    # service) would otherwise be asked again in a tight loop.
                    pause = WATCH_RETRY_SECONDS if error.code() is grpc.StatusCode.UNIMPLEMENTED else (
                        0.0 if updates else WATCH_REFUSED_PAUSE_SECONDS)
                    self._wake.wait_for(lambda: self._stopped, pause)

    # -- status view -------------------------------------------------------------------------------

    def view(self) -> pb.NeighborHealth:
        with self._lock:
            now = self.clock()
            rate, count = self.state.success_rate(now)
            view = pb.NeighborHealth(observer=self.observer, neighbor=self.link.name,
                                     status=self.state.status.value, since=iso_utc(self.state.since + self._epoch_offset),
                                     consecutive_failures=self.state.consecutive_failures, success_rate=rate,
                                     probes_in_window=count, window_seconds=self.settings.window_seconds,
                                     last_reason=self.state.last_reason)
            if self.state.last_latency_ms is not None:
                view.last_latency_ms = self.state.last_latency_ms
        return view
