"""HTTP/2 PINGs to a real gRPC server on the loopback interface: answered by gRPC's core, even
while the server's interpreter is busy; refused and lost connections reported."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import pytest

from daemons.config import Address
from daemons.health.h2ping import SERVER_OPTIONS, PingConnection

WAIT_SECONDS = 5.0  # only ever reached when something is broken


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def serve(port: int, options: list[tuple[str, int]]) -> grpc.Server:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), options=options)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server


@pytest.fixture
def port() -> int:
    return free_port()


class Pinger:
    """A PingConnection on a loop of its own thread, with what it heard."""

    def __init__(self, port: int):
        self.answers: list[int] = []
        self.refusals: list[str] = []
        self.losses = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.connection = self.call(self._connect, port)

    async def _connect(self, port: int) -> PingConnection:
        connection = PingConnection(Address("127.0.0.1", port), self.answers.append, self.refusals.append)
        connection.start()
        asyncio.get_running_loop().create_task(self._count_losses(connection))
        return connection

    async def _count_losses(self, connection: PingConnection) -> None:
        while True:
            await connection.lost()
            self.losses += 1

    async def _cancel_the_rest(self) -> None:
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Runs `function` (a coroutine function or a plain one) on the pinger's loop; its result."""
        async def run() -> Any:
            return await function(*args) if asyncio.iscoroutinefunction(function) else function(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(WAIT_SECONDS)

    def ping_until_answered(self, stamp: int) -> float:
        """Pings until the connection is up and `stamp` is answered; returns the round trip."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            sent = time.monotonic()
            if self.call(self.connection.ping, stamp):
                while stamp not in self.answers and time.monotonic() - sent < 0.5:
                    time.sleep(0.001)
                if stamp in self.answers:
                    return time.monotonic() - sent
            assert time.monotonic() < deadline, "no answer to a PING"
            time.sleep(0.01)

    def close(self) -> None:
        self.call(self.connection.close)
        self.call(self._cancel_the_rest)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT_SECONDS)


# A daemon's gRPC server in a process of its own, which holds its interpreter lock for about two
# seconds (a regular expression that backtracks, in C) whenever a line arrives on its stdin.
BUSY_SERVER = """
import re, sys
from concurrent import futures
import grpc
from daemons.health.h2ping import SERVER_OPTIONS
server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), options=SERVER_OPTIONS)
server.add_insecure_port("127.0.0.1:" + sys.argv[1])
server.start()
print("serving", flush=True)
for line in sys.stdin:
    print("holding", flush=True)
    re.match(r"(a+)+b", "a" * 25)
    print("released", flush=True)
"""


def test_a_grpc_server_answers_pings_at_once_even_while_its_interpreter_is_held(port: int) -> None:
    server = subprocess.Popen([sys.executable, "-c", BUSY_SERVER, str(port)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdin is not None
    assert server.stdout.readline().strip() == "serving"
    pinger = Pinger(port)
    try:
        for stamp in range(1, 11):  # many PINGs on an idle connection: no GOAWAY "too_many_pings"
            pinger.ping_until_answered(stamp)
        server.stdin.write("hold\n")
        server.stdin.flush()
        assert server.stdout.readline().strip() == "holding"
        round_trips = [pinger.ping_until_answered(stamp) for stamp in range(100, 105)]
        assert server.stdout.readline().strip() == "released"  # all five were answered while it held the lock
        assert max(round_trips) < 0.5
        assert pinger.losses == 0 and pinger.refusals == []
    finally:
        pinger.close()
        server.kill()
        server.wait()


def test_a_server_without_the_options_closes_the_connection_after_a_few_pings(port: int) -> None:
    server = serve(port, [])
    pinger = Pinger(port)
    try:
        for stamp in range(1, 6):
            pinger.ping_until_answered(stamp)  # it reconnects after each GOAWAY
        assert pinger.losses >= 1
    finally:
        pinger.close()
        server.stop(0)


def test_a_server_that_goes_away_is_lost_then_refused_and_one_not_there_yet_draws_no_reports(port: int) -> None:
    pinger = Pinger(port)
    try:
        time.sleep(0.5)  # attempts to a port nobody listens on yet: not reported (no storm of failures)
        assert pinger.refusals == []
        assert not pinger.call(pinger.connection.ping, 1)  # no connection to send it on
        server = serve(port, SERVER_OPTIONS)
        pinger.ping_until_answered(2)  # it kept trying, and connects once the server is up
        server.stop(0)
        deadline = time.monotonic() + WAIT_SECONDS
        while len(pinger.refusals) < 2:  # the first attempts after the loss confirm it
            assert time.monotonic() < deadline, f"{pinger.losses} losses, refusals {pinger.refusals}"
            time.sleep(0.01)
        assert pinger.losses == 1 and "refused" in pinger.refusals[0]
        time.sleep(0.5)
        assert len(pinger.refusals) == 2  # and no more while it stays away
    finally:
        pinger.close()
