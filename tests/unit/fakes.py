"""In-memory stand-ins for the network, time and gRPC, so failure detection and failover are
tested in milliseconds without a socket (as memberlist's MockTransport and trio's MockClock).

- FakeClock: the health monitor's Clock; time moves only when a test calls `advance`.
- FakeNeighbor: a ProbeTransport whose neighbour a test can kill, hang, slow down (busy: its
  interpreter answers late while its process answers PINGs at once) and restart.
- FakeContext and FakeRpcError: a gRPC servicer context and the errors a call fails with.
- InProcessChild: a Child whose calls are served by a real NodeServicer in the same process, so
  a whole overlay of real fan-outs runs in memory, with faults injected on any edge.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc

from daemons.cancel import Cancellation
from daemons.health.gasp import STATUS_ENDED
from daemons.health.transport import ProbeFailed, ProbeListener
from daemons.planning.replicas import PartitionChoice, unverified_choices
from daemons.rpc import airquality_pb2 as pb
from daemons.servicers.node import NodeServicer

# -- time --------------------------------------------------------------------------------------------


@dataclass(order=True)
class _Timer:
    when: float
    order: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A Clock whose time only moves in `advance`, firing due timers in order as it goes."""

    EPOCH = 1_600_000_000.0

    def __init__(self, start: float = 1000.0):
        self._now = start
        self._timers: list[_Timer] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self.EPOCH + self._now

    def call_later(self, seconds: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self._now + max(0.0, seconds), next(self._order), callback)
        heapq.heappush(self._timers, timer)
        return timer

    async def sleep(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        self.call_later(seconds, wake)
        await woken

    async def advance(self, seconds: float) -> None:
        """Moves time forward by `seconds`, letting every task run at each due timer."""
        target = self._now + seconds
        await settle()
        while self._timers and self._timers[0].when <= target:
            timer = heapq.heappop(self._timers)
            self._now = max(self._now, timer.when)
            if not timer.cancelled:
                timer.callback()
                await settle()
        self._now = target
        await settle()

    def stall(self, seconds: float) -> None:
        """Time passes while the prober does not run (it waits for the interpreter lock): nothing
        fires now; the next `advance` fires what came due meanwhile, late, in order."""
        self._now += seconds


async def settle() -> None:
    """Lets every task that is ready run until all wait again (no time passes)."""
    for _ in range(50):
        await asyncio.sleep(0)


# -- a neighbour, as probes see it ---------------------------------------------------------------


class FakeNeighbor:
    """A ProbeTransport to a scripted neighbour: up (answering after `delay` seconds), dead (its
    port refuses at once, its connection breaks) or hung (it accepts and never answers).

    `delay` is how long its interpreter takes to answer datagrams, HealthChecks and the watch; a
    large one makes it busy. HTTP/2 PINGs (liveness pings) are answered by gRPC's core, after
    `liveness_delay`, whatever the interpreter does; a hung process answers none until it resumes.
    With `overloaded` set, HealthChecks are refused with RESOURCE_EXHAUSTED.
    """

    def __init__(self, clock: FakeClock, pid: int = 100, status: str = "SERVING"):
        self.clock = clock
        self.pid = pid
        self.status = status
        self.mode = "up"
        self.delay = 0.001
        self.liveness_delay = 0.0002
        self.watch_delay: float | None = None  # how late a watch's first update arrives (None: `delay`)
        self.overloaded = False
        self.liveness_pings = 0
        self.gasp_token = b""  # the prober's, from its latest datagram probe
        self.pings = 0
        self.checks = 0
        self.watches = 0
        self._listener: ProbeListener | None = None
        self.replies: list[pb.HealthResponse] = []  # datagram replies sent, for a replay
        self._changed = asyncio.Event()
        self._lost = asyncio.Event()
        self._queued: list[pb.HealthRequest] = []  # datagrams a hung neighbour's socket holds
        self._queued_liveness: list[int] = []  # PINGs its connection holds

    # what a test does to the neighbour
    def kill(self) -> None:
        self._become("dead", lost=self.mode == "up")

    def hang(self) -> None:
        self._become("hung")

    def resume(self) -> None:
        self._become("up")
        queued, self._queued = self._queued, []
        for request in queued:  # answered late, as a resumed process reads its socket buffer
            self.ping(request)
        stamps, self._queued_liveness = self._queued_liveness, []
        for stamp in stamps:
            self._answer_liveness(stamp)

    def gasp(self, pid: int | None = None, token: bytes | None = None) -> None:
        """Its monitor process sends its dying gasp, as the kernel tears the process down: by default
        for its own pid, with the token its prober gave in the latest datagram probe."""
        answer = pb.HealthResponse(healthy=False, status=STATUS_ENDED, process_id=self.pid if pid is None else pid,
                                   gasp_token=self.gasp_token if token is None else token)
        self.clock.call_later(0.0002, lambda: self.listener.reply(answer))

    def forge_icmp_error(self) -> None:
        """Anyone sends the prober's datagram socket an ICMP port unreachable."""
        self.listener.icmp_error("Connection refused")

    def replay_replies(self) -> None:
        """Anyone sends the prober again every reply it was sent (their seals are good)."""
        for answer in list(self.replies):
            self.listener.reply(answer)

    def restart(self, pid: int) -> None:
        self.pid = pid
        self._become("up")

    def _become(self, mode: str, lost: bool = False) -> None:
        self.mode = mode
        if lost:
            self._lost.set()
        self._changed.set()

    def _answer(self, request: pb.HealthRequest) -> pb.HealthResponse:
        return pb.HealthResponse(healthy=self.status == "SERVING", status=self.status, process_id=self.pid,
                                 daemon="fake", request_timestamp=request.timestamp)

    # ProbeTransport
    @property
    def listener(self) -> ProbeListener:
        assert self._listener is not None, "start() first"
        return self._listener

    async def start(self, listener: ProbeListener) -> None:
        self._listener = listener

    def liveness_ping(self, stamp: int) -> bool:
        self.liveness_pings += 1
        if self.mode == "dead":
            return False  # its connection is gone, and a new one is refused
        if self.mode == "hung":
            self._queued_liveness.append(stamp)
        else:
            self._answer_liveness(stamp)
        return True

    def _answer_liveness(self, stamp: int) -> None:
        self.clock.call_later(self.liveness_delay, lambda: self.listener.witness_answered(stamp) if self.mode == "up" else None)

    def ping(self, request: pb.HealthRequest) -> None:
        self.pings += 1
        self.gasp_token = request.gasp_token
        if self.mode == "dead":
            self.clock.call_later(0.0002, lambda: self.listener.icmp_error("Connection refused"))
        elif self.mode == "up":
            answer = self._answer(request)
            self.replies.append(answer)
            self.clock.call_later(self.delay, lambda: self.listener.reply(answer) if self.mode == "up" else None)
        else:
            self._queued.append(request)

    async def check(self, request: pb.HealthRequest, timeout: float) -> pb.HealthResponse:
        self.checks += 1
        if self.mode == "dead":
            await self.clock.sleep(0.0005)
            raise ProbeFailed("UNAVAILABLE: failed to connect to all addresses")
        if self.mode == "up" and self.overloaded:
            await self.clock.sleep(self.liveness_delay)
            raise ProbeFailed("RESOURCE_EXHAUSTED: Concurrent RPC limit exceeded!", overloaded=True)
        if self.mode == "hung" or self.delay >= timeout:
            await self.clock.sleep(timeout)
            raise ProbeFailed("DEADLINE_EXCEEDED: Deadline Exceeded", timed_out=True)
        await self.clock.sleep(self.delay)
        if self.mode != "up":
            raise ProbeFailed("UNAVAILABLE: the connection broke")
        return self._answer(request)

    async def connection_lost(self) -> None:
        await self._lost.wait()
        self._lost.clear()

    async def watch(self) -> AsyncGenerator[str, None]:
        self.watches += 1
        while self.mode != "up":  # wait_for_ready: the call waits until the neighbour is reachable
            await self._wait_for_change()
        first = self.status  # the status when the call reached it, delivered after `watch_delay`
        await self.clock.sleep(self.delay if self.watch_delay is None else self.watch_delay)
        yield first
        while True:
            await self._wait_for_change()
            if self.mode == "dead":
                raise ProbeFailed("UNAVAILABLE: the connection broke")
            if self.mode == "up":
                yield self.status

    async def _wait_for_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    async def close(self) -> None:
        pass


# -- gRPC calls -----------------------------------------------------------------------------------


class FakeRpcError(grpc.RpcError):
    """What a failed call raises: it has a code and details, as grpc's errors do."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class FakeContext:
    """A servicer context: a deadline, termination callbacks, and abort as gRPC does it (raising)."""

    def __init__(self, timeout: float | None = None, peer: str = "ipv4:127.0.0.1:40000"):
        self._timeout = timeout
        self._peer = peer
        self._terminated = Cancellation()  # runs the termination callbacks, once

    def peer(self) -> str:
        return self._peer

    def auth_context(self) -> dict[str, list[bytes]]:
        return self.identity  # gRPC's, without TLS: nothing

    identity: dict[str, list[bytes]] = {}  # noqa: RUF012  # replaced whole by a test, never mutated

    @property
    def ended(self) -> bool:
        return self._terminated.cancelled

    def time_remaining(self) -> float | None:
        return self._timeout

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise FakeRpcError(code, details)

    def add_callback(self, callback: Callable[[], None]) -> bool:
        if self.ended:
            return False  # as gRPC: the call is over, the callback is not registered
        self._terminated.on_cancel(callback)
        return True

    def end(self) -> None:
        """The call terminated (answered, failed or cancelled): runs the termination callbacks once."""
        self._terminated.cancel()

    cancelled_here: bool = False  # the server's side cancelled the call

    def cancel(self) -> None:
        """The server's side ends the call (ServicerContext.cancel): it terminates, as with gRPC."""
        self.cancelled_here = True
        self.end()


@dataclass
class Fault:
    """What happens to calls on one edge: die or hang after so many chunks of a Scan; fail at once."""

    die_after_chunks: int | None = None
    hang_after_chunks: int | None = None
    refuse: bool = False  # UNAVAILABLE before anything (the child is down)
    hung: threading.Event = field(default_factory=threading.Event)  # set once a call hangs


class _InProcessScan:
    """A Scan call served in this process; chunks cross as bytes, as on the wire."""

    def __init__(self, servicer: NodeServicer, request: pb.ScanRequest, timeout: float, fault: Fault):
        self._context = FakeContext(timeout)
        self._servicer = servicer
        self._request = request
        self._fault = fault
        self._cancelled = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        fault = self._fault
        try:
            if fault.refuse:
                raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
            for chunks, payload in enumerate(self._servicer.Scan(self._request, self._context)):
                if self._cancelled.is_set():
                    raise FakeRpcError(grpc.StatusCode.CANCELLED, "Locally cancelled by application!")
                if chunks == fault.die_after_chunks:
                    raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "Socket closed")
                if chunks == fault.hang_after_chunks:
                    fault.hung.set()
                    self._cancelled.wait()
                    raise FakeRpcError(grpc.StatusCode.CANCELLED, "Locally cancelled by application!")
                yield payload if isinstance(payload, bytes) else payload.SerializeToString()
        finally:
            self._context.end()

    def cancel(self) -> bool:
        self._cancelled.set()
        self._context.end()  # the server side sees the call terminate, as with gRPC
        return True


class PendingCall(concurrent.futures.Future[Any]):
    """A unary call still in flight, which the test finishes later with `answer` or `fail`."""

    def __init__(self) -> None:
        super().__init__()
        self._error: FakeRpcError | None = None

    def answer(self, response: Any) -> None:
        self.set_result(response)

    def fail(self, error: FakeRpcError) -> None:
        self._error = error
        self.set_exception(error)

    def code(self) -> grpc.StatusCode:
        return self._error.code() if self._error else grpc.StatusCode.OK

    def details(self) -> str:
        return self._error.details() if self._error else ""


def finished_call(answer: Any = None, error: FakeRpcError | None = None) -> PendingCall:
    """A unary call that has already finished, with `answer` or failed with `error`."""
    call = PendingCall()
    if error is None:
        call.answer(answer)
    else:
        call.fail(error)
    return call


class InProcessChild:
    """A Child served by a real NodeServicer in this process, with a Fault on the edge to it."""

    def __init__(self, name: str, servicer: NodeServicer, health: pb.HealthStatusResponse | None = None):
        self.name = name
        self.servicer = servicer
        self.fault = Fault()
        self.health = health or pb.HealthStatusResponse(daemon=name)

    def scan(self, request: pb.ScanRequest, timeout: float) -> _InProcessScan:
        return _InProcessScan(self.servicer, request, timeout, self.fault)

    def aggregate(self, request: pb.ScanRequest, timeout: float) -> PendingCall:
        if self.fault.refuse or self.fault.die_after_chunks is not None:
            return finished_call(error=FakeRpcError(grpc.StatusCode.UNAVAILABLE, "Socket closed"))
        context = FakeContext(timeout)
        try:
            return finished_call(self.servicer.ScanAggregate(request, context))
        finally:
            context.end()

    def health_status(self, request: pb.HealthStatusRequest, timeout: float) -> PendingCall:
        if self.fault.refuse:
            return finished_call(error=FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"))
        return finished_call(self.health)

    def status(self, request: pb.StatusRequest, timeout: float) -> PendingCall:
        if self.fault.refuse:
            return finished_call(error=FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"))
        context = FakeContext(timeout)
        try:
            return finished_call(self.servicer.GetStatus(request, context))
        finally:
            context.end()

    def close(self) -> None:
        pass


# -- a leader's health view, as the gateway asks for it -------------------------------------------


class HealthLeader:
    """A Child that serves only GetHealthStatus: `answer`, or `error` when set; with `hold` set,
    every call stays in flight (a PendingCall appended to `held`) until the test finishes it."""

    def __init__(self, name: str, answer: pb.HealthStatusResponse | None = None):
        self.name = name
        self.answer = answer or pb.HealthStatusResponse(daemon=name)
        self.error: FakeRpcError | None = None
        self.hold = False
        self.held: list[PendingCall] = []
        self.timeouts: list[float] = []  # the timeout of every call started, in order

    @property
    def asked(self) -> int:
        return len(self.timeouts)

    def health_status(self, request: pb.HealthStatusRequest, timeout: float) -> PendingCall:
        self.timeouts.append(timeout)
        if self.hold:
            self.held.append(PendingCall())
            return self.held[-1]
        return finished_call(self.answer) if self.error is None else finished_call(error=self.error)

    def scan(self, request: pb.ScanRequest, timeout: float) -> NoReturn:
        raise AssertionError(f"{self.name}: HealthLeader serves only GetHealthStatus")

    def aggregate(self, request: pb.ScanRequest, timeout: float) -> NoReturn:
        raise AssertionError(f"{self.name}: HealthLeader serves only GetHealthStatus")

    def status(self, request: pb.StatusRequest, timeout: float) -> NoReturn:
        raise AssertionError(f"{self.name}: HealthLeader serves only GetHealthStatus")

    def close(self) -> None:
        pass


class Unverified:
    """The gateway's Replicas when nothing is known of the copies' contents: every copy is a
    candidate, and only the scanners' fingerprint checks keep a failover on the same rows."""

    def __init__(self, routes: Mapping[str, Sequence[tuple[str, ...]]]):
        self._choices = unverified_choices(routes)

    def choices(self) -> dict[str, PartitionChoice]:
        return self._choices

    def learn_status(self, status: pb.PartitionStatus) -> None:
        pass
