"""A daemon's neighbour monitors, in a process of their own.

Why a process: a busy daemon's threads share one interpreter lock, and the monitors waited for it
behind the query threads. Measured 2026-11-30 under the load of issue 12 (200 full scans through
the gateway, 150 never-read Node.Scan calls to leader_e, the largest aggregate): the gateway's
monitor thread waited 60-330 ms for the lock behind the burst of failovers a kill sets off, and
kill -9 -> unavailable took 251-491 ms at p99 against 100 ms. A process has a lock of its own,
and the kernel runs a process that sleeps on its sockets as soon as one of them wakes it.

The monitor process runs the same NeighborMonitors on the same MonitorLoop and writes its
transitions to the daemon's event log (one line per write, appended, as the daemon's own). Every
daemon has one, a worker too, though it watches nobody: it sends the daemon's dying gasp to the
daemon's watchers when the daemon's process ends (gasp.py). It and the daemon talk over a socket
pair (SOCK_SEQPACKET, one pickled tuple per message: only the two ends of the pair can write to it):
- daemon -> monitor process: first the `Setup`, then ("query_call_failed", neighbour, reason) and
  ("gasp_to", recipients), the watchers to gasp to, whenever they change;
- monitor process -> daemon: ("view", neighbour, NeighborHealth bytes, outages, ProbeTally): the
  neighbour's state after every change, how many times it has become unavailable, which the
  daemon's mirror turns into cancelling the calls stuck on it (`on_unavailable`), and its probe
  and transition counts (tally.py), for the daemon's metrics.
Neither end ever blocks on the other: a monitor process whose daemon does not read (it is
stopped, or very busy) keeps only the latest view of each neighbour and sends it when it can; a
daemon drops a failed-call hint its monitor process has no room for (the next one will do).

The monitor process lives and dies with its daemon: it runs in a session of its own, out of reach
of the signals supervisord sends the daemon's process group, and ends when the daemon's end of
the pair closes, which the kernel does however the daemon ends. A monitor process that dies is restarted by its daemon
(`monitor_process_exited`), its neighbours unknown until the new one has heard from them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemons import eventlog, events
from daemons.affinity import pin_threads
from daemons.companions import start_companion
from daemons.config import Address, HealthConfig, TlsConfig
from daemons.events import EventLog
from daemons.health.clock import LoopClock
from daemons.health.gasp import Recipient, gasp
from daemons.health.loop import MonitorLoop
from daemons.health.monitor import NeighborMonitor
from daemons.health.seal import UNSEALED, Kind, datagram_seal
from daemons.health.status import Status
from daemons.health.tally import ProbeTally
from daemons.health.transport import GrpcProbeTransport
from daemons.rpc import airquality_pb2 as pb

MESSAGE_BYTES = 65536  # far above any message: a view is a few hundred bytes
# Before restarting a monitor process that died, by how many died in a row soon after starting
# (one that ran RESTART_PAUSE_RESET_SECONDS died for a new reason).
RESTART_PAUSES_SECONDS = (0.05, 0.5, 2.0)
RESTART_PAUSE_RESET_SECONDS = 30.0
STOP_WAIT_SECONDS = 3.0
GASP_WAIT_SECONDS = 1.0  # how long a monitor process whose daemon died waits for the death signal
# Sent by the kernel to the monitor process when the daemon's thread that started it ends: the
# moment a killed daemon's threads die, long before its sockets close (gasp.py).
DEATH_SIGNAL = signal.SIGUSR1
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STARTING_THREAD_NICE = -10  # see raise_this_threads_priority
RESEND_SECONDS = 0.05  # how soon a monitor process retries views its daemon had no room for
ROUTINE_REPORT_SECONDS = 1.0  # how stale a view's counts may be in the daemon (its status: never)


@dataclass(frozen=True)
class Setup:
    observer: str  # the daemon's name
    role: str
    settings: HealthConfig
    neighbors: tuple[tuple[str, Address], ...]  # those it watches; none for a worker
    log_file: Path
    tls: TlsConfig | None = None  # the daemon's, for its health channels; None: plaintext
    # Where the monitor process runs: every CPU its daemon may use before the daemon keeps itself to
    # its configured ones (daemons/affinity.py), so that a probe is answered from whichever core is
    # free; None: where it was started.
    cpus: frozenset[int] | None = None


def encode_message(message: tuple[Any, ...]) -> bytes:
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def decode_message(data: bytes) -> tuple[Any, ...]:
    message = pickle.loads(data)
    if not isinstance(message, tuple) or not message:
        raise ValueError(f"not a monitor message: {type(message).__name__}")
    return message


# -- the daemon's side --------------------------------------------------------------------------------


class RemoteMonitor:
    """A neighbour as the monitor process last reported it; what the daemon reads instead of a
    NeighborMonitor (status, view) and tells it (query_call_failed). Any thread may call it."""

    def __init__(self, observer: str, neighbor: str, send: Callable[[tuple[Any, ...]], object],
                 on_unavailable: Callable[[str], None]):
        self.observer = observer
        self.neighbor = neighbor
        self._send = send
        self._on_unavailable = on_unavailable
        self._lock = threading.Lock()
        self._view = self._unknown("no word from the monitor process yet")
        self._outages = 0  # as counted by the current monitor process
        self._tally = ProbeTally()  # as counted by the current monitor process ...
        self._earlier = ProbeTally()  # ... and by those before it, so that counts never go back

    def _unknown(self, reason: str) -> pb.NeighborHealth:
        return pb.NeighborHealth(observer=self.observer, neighbor=self.neighbor, status=Status.UNKNOWN.value,
                                 last_reason=reason)

    def status(self) -> Status:
        with self._lock:
            return Status(self._view.status)

    def process_id(self) -> int:
        """The neighbour's process as its last answer named it; 0 before any."""
        with self._lock:
            return self._view.process_id

    def view(self) -> pb.NeighborHealth:
        with self._lock:
            view = pb.NeighborHealth()
            view.CopyFrom(self._view)
            return view

    def counts(self) -> ProbeTally:
        with self._lock:
            return self._earlier.plus(self._tally)

    def query_call_failed(self, reason: str) -> None:
        self._send(("query_call_failed", self.neighbor, reason))  # a hint: if dropped, the next will do

    def update(self, view: pb.NeighborHealth, outages: int, tally: ProbeTally) -> None:
        with self._lock:
            self._view = view
            self._tally = tally
            new_outage, self._outages = outages > self._outages, outages
        # An outage that is already over (the daemon read it late) leaves the calls alone: they may
        # be streaming again from the resumed neighbour.
        if new_outage and Status(view.status) is Status.UNAVAILABLE:
            self._on_unavailable(self.neighbor)

    def forget(self, reason: str) -> None:
        """The monitor process is gone: nothing is known until the next one reports."""
        with self._lock:
            self._view = self._unknown(reason)
            self._outages = 0
            self._earlier, self._tally = self._earlier.plus(self._tally), ProbeTally()


def raise_this_threads_priority() -> None:
    """Makes the calling thread, one that starts a monitor process, among the first of a killed
    daemon to end. The kernel sends a monitor process DEATH_SIGNAL when that thread ends, and a
    killed daemon's threads end in the order they get a core: a thread that ends last first
    unmaps the whole process's memory, which made a gasp as late as the closed sockets (121 and
    224 ms in 20 kills under the load of issue 12, 2026-11-30). The thread sleeps nearly always,
    so its priority costs the daemon nothing. Where not allowed (no CAP_SYS_NICE), unchanged."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), STARTING_THREAD_NICE)


class MonitorProcess:
    """Starts the monitor process, keeps its RemoteMonitors up to date, and restarts it if it dies."""

    def __init__(self, setup: Setup, log: EventLog, on_unavailable: Callable[[str], None]):
        self.setup = setup
        self.log = log
        self.monitors = [RemoteMonitor(setup.observer, name, self._send, on_unavailable)
                         for name, _address in setup.neighbors]
        self._by_name = {monitor.neighbor: monitor for monitor in self.monitors}
        self._lock = threading.Lock()  # guards _socket and _process, which restarts replace
        self._socket: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._recipients: tuple[Recipient, ...] = ()
        self.stderr: int | None = None  # where the monitor process writes its stderr; None: the daemon's
        # Also the thread that restarts the monitor process: it lives as long as the daemon, since
        # the kernel sends DEATH_SIGNAL when the thread that started the process ends.
        self._thread = threading.Thread(target=self._run, name="monitor-process", daemon=True)

    @property
    def pid(self) -> int | None:
        """The current monitor process's, if one runs."""
        with self._lock:
            return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Call from the thread that lives as long as the daemon (its main thread): the kernel
        tells the monitor process when the thread that started it ends."""
        raise_this_threads_priority()
        self._spawn()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            sock, process = self._socket, self._process
        if sock is not None:
            self._send(("stop",))  # a stop, not a death: the monitor process need not wait to gasp
            sock.shutdown(socket.SHUT_RDWR)  # the monitor process reads EOF, closes its channels and ends
        if process is not None:
            try:
                process.wait(STOP_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._thread.join(STOP_WAIT_SECONDS)
        if sock is not None:
            sock.close()

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # It ends with the daemon: when the daemon's end of the pair closes.
        process = start_companion("daemons.health", self.setup.observer, str(theirs.fileno()),
                                  pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stderr=self.stderr)
        theirs.close()
        ours.send(encode_message(("setup", self.setup)))
        ours.send(encode_message(("gasp_to", self._recipients)))
        with self._lock:
            self._socket, self._process = ours, process
        settings = self.setup.settings
        events.MONITORING_STARTED.emit(
            self.log, neighbors=[name for name, _address in self.setup.neighbors], pid=process.pid,
            interval_seconds=settings.interval_seconds, timeout_seconds=settings.timeout_seconds,
            failures_before_degraded=settings.thresholds.failures_before_degraded,
            failures_before_unavailable=settings.thresholds.failures_before_unavailable,
            successes_before_healthy=settings.thresholds.successes_before_healthy)

    def gasp_to(self, recipients: tuple[Recipient, ...]) -> bool:
        """Tells the monitor process whom to send this daemon's dying gasp; False if it had no room."""
        self._recipients = recipients  # for a monitor process started later
        return self._send(("gasp_to", recipients))

    def _send(self, message: tuple[Any, ...]) -> bool:
        with self._lock:
            sock = self._socket
        if sock is None:
            return False
        try:
            sock.send(encode_message(message), socket.MSG_DONTWAIT)
        except OSError:  # no room, or the monitor process is gone (being restarted)
            return False
        return True

    def _run(self) -> None:
        raise_this_threads_priority()  # it starts the monitor processes after the first
        attempt = 0
        while True:
            with self._lock:
                sock, process = self._socket, self._process
            assert sock is not None and process is not None
            started = time.monotonic()
            self._read(sock)
            if self._stopping.is_set():
                return
            returncode = process.wait()
            sock.close()
            attempt = 0 if time.monotonic() - started > RESTART_PAUSE_RESET_SECONDS else attempt + 1
            pause = RESTART_PAUSES_SECONDS[min(attempt, len(RESTART_PAUSES_SECONDS) - 1)]
            for monitor in self.monitors:
                monitor.forget(f"the monitor process (pid {process.pid}) exited with {returncode}; restarting")
            events.MONITOR_PROCESS_EXITED.emit(self.log, pid=process.pid, returncode=returncode,
                                               restart_in_seconds=pause)
            if self._stopping.wait(pause):
                return
            self._spawn()

    def _read(self, sock: socket.socket) -> None:
        """Applies the monitor process's reports until its end closes."""
        while True:
            try:
                data = sock.recv(MESSAGE_BYTES)
            except OSError:
                return
            if not data:
                return
            message = decode_message(data)
            if message[0] == "view" and message[1] in self._by_name:
                _kind, neighbor, view, outages, tally = message
                self._by_name[neighbor].update(pb.NeighborHealth.FromString(view), outages, tally)


# -- the monitor process's side ----------------------------------------------------------------------


class Reporter:
    """Sends each neighbour's view to the daemon, never blocking: a change of status or a new
    outage at once, the rest (counts, latencies) at most every ROUTINE_REPORT_SECONDS, so that the
    daemon wakes for what planning needs rather than for every probe. Only the latest view of a
    neighbour is kept, and what the daemon has no room for waits. Flushes that wait are made by
    one thread of its own (a timer thread per flush cost a thread's start every second)."""

    def __init__(self, sock: socket.socket):
        self._socket = sock
        self._lock = threading.Lock()
        self._pending: dict[str, NeighborMonitor] = {}  # its view is made when it is sent
        self._outages: dict[str, int] = {}
        self._reported: dict[str, tuple[str, int]] = {}  # neighbour -> (status, outages) last sent
        self._due: float | None = None  # monotonic: when the waiting views are to be flushed
        self._wake = threading.Condition(self._lock)
        self._closed = False
        threading.Thread(target=self._flush_when_due, name="reporter", daemon=True).start()

    def unavailable(self, neighbor: str) -> None:
        with self._lock:
            self._outages[neighbor] = self._outages.get(neighbor, 0) + 1

    def changed(self, monitor: NeighborMonitor) -> None:
        status = monitor.status().value
        with self._lock:
            self._pending[monitor.neighbor] = monitor
            urgent = self._reported.get(monitor.neighbor) != (status, self._outages.get(monitor.neighbor, 0))
        if urgent:
            self.flush()
        else:
            self._flush_in(ROUTINE_REPORT_SECONDS)

    def _flush_in(self, seconds: float) -> None:
        with self._lock:
            if self._due is not None:
                return  # a flush is due already
            self._due = time.monotonic() + seconds
            self._wake.notify()

    def _flush_when_due(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (self._due is None or self._due > time.monotonic()):
                    self._wake.wait(None if self._due is None else self._due - time.monotonic())
                if self._closed:
                    return
            self.flush()

    def flush(self) -> None:
        with self._lock:
            self._due = None
            while self._pending:
                neighbor, monitor = next(iter(self._pending.items()))
                view = monitor.view()
                outages = self._outages.get(neighbor, 0)
                try:
                    self._socket.send(encode_message(("view", neighbor, view.SerializeToString(), outages,
                                                      monitor.counts())), socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError:
                    return  # the daemon is gone; this process is ending
                del self._pending[neighbor]
                self._reported[neighbor] = (view.status, outages)
            else:
                return
        self._flush_in(RESEND_SECONDS)  # the daemon had no room: again soon

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()


class Gasper:
    """Sends the daemon's dying gasp (gasp.py) to its watchers, whom the daemon names."""

    def __init__(self, daemon_pid: int):
        self.daemon_pid = daemon_pid
        self.daemon = ""
        self.role = ""
        self.log: EventLog | None = None  # the daemon's, once the setup names it
        self.recipients: tuple[Recipient, ...] = ()
        self._sockets = {family: socket.socket(family, socket.SOCK_DGRAM) for family in (socket.AF_INET,
                                                                                          socket.AF_INET6)}
        self.seal = UNSEALED  # with the cluster key, once the setup names it (seal.py)
        self.stopping = False  # the daemon said it stops: its end closing is no death

    def send(self) -> None:
        now_us = int(time.time() * 1e6)
        for recipient in self.recipients:
            family = socket.AF_INET6 if ":" in recipient.host else socket.AF_INET
            with contextlib.suppress(OSError):  # that watcher is gone too; it has nobody to tell
                self._sockets[family].sendto(
                    self.seal.seal(Kind.GASP, gasp(recipient, self.daemon, self.role, self.daemon_pid, now_us)),
                    (recipient.host, recipient.port))
        if self.log is not None:  # after the gasps: they are what is urgent
            events.DYING_GASP_SENT.emit(self.log, pid=self.daemon_pid,
                                        recipients=[recipient.requester for recipient in self.recipients])

    def wait_for_death(self) -> None:
        """On a thread of its own, with DEATH_SIGNAL blocked in every thread: gasps when the kernel
        says the daemon's thread that started this process has ended. A DEATH_SIGNAL sent by
        anyone else is ignored."""
        # Real-time, where allowed: it sleeps until the one moment it has something to do, and
        # then nothing of the loaded machine should come first.
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))  # 0: this thread
        while True:
            info = signal.sigwaitinfo({DEATH_SIGNAL})
            if info.si_pid == self.daemon_pid:
                self.send()
                return

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()


def monitor_process(sock: socket.socket, gasper: Gasper,
                    make_transport: Callable[[str, Address, TlsConfig | None], Any] = GrpcProbeTransport) -> int:
    """The monitor process's life: read the setup, run the monitors, take the daemon's hints and
    its watchers, and end when the daemon's end closes."""
    kind, setup = decode_message(sock.recv(MESSAGE_BYTES))
    if kind != "setup" or not isinstance(setup, Setup):
        print(f"monitor process: expected the setup first, got {kind!r}", file=sys.stderr)
        return 2
    if setup.cpus is not None:  # one the daemon restarts inherits the CPUs the daemon keeps to
        pin_threads(setup.cpus)  # best effort: a thread that will not move only watches from where it is
    log = eventlog.configure(setup.observer, setup.log_file, echo=True)  # its daemon rotates the file
    gasper.daemon, gasper.role, gasper.log, gasper.seal = setup.observer, setup.role, log, datagram_seal(setup.tls)
    reporter = Reporter(sock)
    clock = LoopClock()
    monitors: Sequence[NeighborMonitor] = [
        NeighborMonitor(setup.observer, name, setup.settings, make_transport(name, address, setup.tls), clock, log,
                        on_unavailable=reporter.unavailable, on_change=reporter.changed)
        for name, address in setup.neighbors]
    by_name = {monitor.neighbor: monitor for monitor in monitors}
    loop = MonitorLoop(monitors)
    loop.start()
    try:
        while data := sock.recv(MESSAGE_BYTES):
            message = decode_message(data)
            if message[0] == "query_call_failed" and message[1] in by_name:
                _kind, neighbor, reason = message
                by_name[neighbor].query_call_failed(reason)
            elif message[0] == "gasp_to":
                gasper.recipients = message[1]
            elif message[0] == "stop":
                gasper.stopping = True
    finally:
        reporter.close()
        loop.stop()
    return 0


def main(argv: Sequence[str]) -> int:
    # Blocked before any thread starts, so that every thread inherits the mask and only the
    # gasper's sigwaitinfo takes the signal (with the sender's pid, which a handler is not told).
    signal.pthread_sigmask(signal.SIG_BLOCK, {DEATH_SIGNAL})
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, DEATH_SIGNAL) != 0:
        print(f"monitor process: prctl(PR_SET_PDEATHSIG): {os.strerror(ctypes.get_errno())}", file=sys.stderr)
    gasper = Gasper(daemon_pid=os.getppid())
    waiting = threading.Thread(target=gasper.wait_for_death, name="dying-gasp", daemon=True)
    waiting.start()
    _observer, fd = argv  # the observer's name is for `ps`
    try:
        with socket.socket(fileno=int(fd)) as sock:
            return monitor_process(sock, gasper)
    finally:
        # The daemon's end closed without a stop: it died. Its last thread closes that end before
        # the kernel sends the death signal, so the gasp may still be on its way; returning now
        # would end this process, gasper and all, first (it did, 1 kill in 7, with leader_e's
        # threads all on one core, 2026-12-01).
        if not gasper.stopping:
            waiting.join(GASP_WAIT_SECONDS)
        gasper.close()
