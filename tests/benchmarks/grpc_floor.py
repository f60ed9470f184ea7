"""What Python's gRPC alone costs a one-site query: the floor under the 16-client figure.

Six bare processes stand in for the overlay: the same daemons, the same calls (client -> gateway
-> two leaders -> three workers) and the same messages per one-site query over all days, each
of about its real size (a worker answers with one chunk that carries its status, a leader adds its
own and relays its children's, the gateway relays all five and ends with the summary). Nothing is
parsed, planned, scanned, logged or counted; each keeps to the CPUs its daemon's shipped config
names, as the daemon does once it serves. The same 16 client threads ask them in turn; what
separates this figure from the real one is our own work per query, and what separates it from
the target is the stack.

`bulk` sends a full scan's bytes the same way: each stand-in's partition as chunks of the real
answer's size, relayed up the same hops to one client that only receives them. What separates it
from DuckDB's time to make the same table in its own process is moving the bytes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import psutil

from daemons.affinity import pin_threads, usable_cpus
from daemons.channels import CHANNEL_OPTIONS, SERVER_OPTIONS
from daemons.config import load_config
from tests.benchmarks.load import closed_loop
from tests.cluster import ETC, free_ports

METHOD = "/floor.Node/Scan"
BULK = "/floor.Node/Bulk"  # the request: struct BULK_REQUEST of (chunks per partition, bytes per chunk)
BULK_REQUEST = struct.Struct("<II")
CHUNK_BYTES = 11_000  # a one-site chunk of one partition, as the workers send it (about 200 rows of 54 bytes)
HEADER_BYTES = 60  # what the gateway appends to a chunk: its number and resume token
SUMMARY_BYTES = 400  # the last message: completeness and the five partitions' statuses
# daemon -> (partitions it scans itself, its children), as the shipped routes use them
SHAPE: dict[str, tuple[int, tuple[str, ...]]] = {
    "worker_c": (1, ()), "worker_d": (1, ()), "worker_f": (1, ()),
    "leader_b": (1, ("worker_c",)), "leader_e": (1, ("worker_d", "worker_f")),
    "gateway_a": (0, ("leader_b", "leader_e")),
}
MESSAGES_TO_CLIENT = 6


def serve(port: int, local: int, child_ports: list[int], gateway: bool, cpus: set[int]) -> None:
    """One stand-in daemon: starts its children's calls, answers its own chunks, relays theirs. It
    keeps to `cpus` (all when empty) as the daemon it stands in for does (daemons/affinity.py)."""
    channels = [grpc.insecure_channel(f"127.0.0.1:{p}", options=CHANNEL_OPTIONS) for p in child_ports]
    calls = [channel.unary_stream(METHOD) for channel in channels]

    bulk_calls = [channel.unary_stream(BULK) for channel in channels]

    def answer(request: bytes, own: Iterator[bytes], children: list[Any]) -> Iterator[bytes]:
        streams = [call(request, timeout=60) for call in children]
        yield from own
        for stream in streams:
            for message in stream:
                yield message + b"h" * HEADER_BYTES if gateway else message
        if gateway:
            yield b"s" * SUMMARY_BYTES

    def scan(request: bytes, context: Any) -> Iterator[bytes]:
        return answer(request, (b"c" * CHUNK_BYTES for _ in range(local)), calls)

    def bulk(request: bytes, context: Any) -> Iterator[bytes]:
        chunks, chunk_bytes = BULK_REQUEST.unpack(request)
        chunk = b"c" * chunk_bytes  # made once: what a chunk costs to make is no part of the floor
        return answer(request, (chunk for _ in range(local * chunks)), bulk_calls)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64), options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "floor.Node", {"Scan": grpc.unary_stream_rpc_method_handler(scan),
                       "Bulk": grpc.unary_stream_rpc_method_handler(bulk)})])
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    if cpus:
        pin_threads(usable_cpus(frozenset(cpus), frozenset(os.sched_getaffinity(0)))[0])
    server.wait_for_termination()


@contextlib.contextmanager
def stand_ins() -> Iterator[tuple[str, list[psutil.Process]]]:
    """The six stand-ins, each answering: (the gateway's address, their processes)."""
    ports = dict(zip(SHAPE, free_ports(len(SHAPE))))
    processes = {}
    try:
        for daemon, (local, children) in SHAPE.items():  # children first: SHAPE lists them so
            cpus = load_config(ETC / f"{daemon}.json").cpus or ()
            processes[daemon] = subprocess.Popen(
                [sys.executable, "-m", "tests.benchmarks.grpc_floor", str(ports[daemon]), str(local),
                 ",".join(str(ports[child]) for child in children), "gateway" if daemon == "gateway_a" else "",
                 ",".join(map(str, sorted(cpus)))])
        gateway = f"127.0.0.1:{ports['gateway_a']}"
        with grpc.insecure_channel(gateway, options=CHANNEL_OPTIONS) as channel:
            call = channel.unary_stream(METHOD)
            deadline = time.monotonic() + 30
            while True:  # until every stand-in listens
                try:
                    if len(list(call(b"q" * 100, timeout=5))) == MESSAGES_TO_CLIENT:
                        break
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("the stand-ins did not all answer within 30 s")
        yield gateway, [psutil.Process(p.pid) for p in processes.values()]
    finally:
        for process in processes.values():
            process.kill()
            process.wait()


def floor(clients: int = 16, seconds: float = 10.0) -> tuple[float, float, float]:
    """(queries/s, p99 seconds, CPU seconds per query of the six processes and the clients)."""
    with stand_ins() as (gateway, processes), contextlib.ExitStack() as stack:
        # a channel per client, as the real load has
        calls = [stack.enter_context(grpc.insecure_channel(gateway, options=CHANNEL_OPTIONS)).unary_stream(METHOD)
                 for _ in range(clients)]
        watched = [*processes, psutil.Process()]
        return closed_loop(functools.partial(_ask, calls), clients, seconds,
                           lambda: sum(sum(p.cpu_times()[:2]) for p in watched))


def bulk(answer_bytes: int, chunk_bytes: int, runs: int = 3) -> float:
    """Median seconds for one client to receive `answer_bytes` through the stand-ins, each of the
    five partitions sent as chunks of `chunk_bytes`."""
    partitions = sum(local for local, _ in SHAPE.values())
    chunks = max(1, round(answer_bytes / partitions / chunk_bytes))
    request = BULK_REQUEST.pack(chunks, chunk_bytes)
    with stand_ins() as (gateway, _), grpc.insecure_channel(gateway, options=CHANNEL_OPTIONS) as channel:
        call = channel.unary_stream(BULK)

        def once() -> float:
            started = time.perf_counter()
            received = sum(len(message) for message in call(request, timeout=60))
            if received < partitions * chunks * chunk_bytes:
                raise RuntimeError(f"the stand-ins sent {received} bytes, not {partitions * chunks * chunk_bytes}")
            return time.perf_counter() - started

        once()  # connections warmed up
        return statistics.median(once() for _ in range(runs))


def _ask(calls: list[Any], index: int, turn: int) -> None:
    messages = len(list(calls[index](b"q" * 100, timeout=30)))
    if messages != MESSAGES_TO_CLIENT:
        raise RuntimeError(f"the stand-ins answered {messages} messages, not {MESSAGES_TO_CLIENT}")


if __name__ == "__main__":
    port_text, local_text, children_text, role, cpus_text = sys.argv[1:6]
    serve(int(port_text), int(local_text), [int(p) for p in children_text.split(",") if p], role == "gateway",
          {int(cpu) for cpu in cpus_text.split(",") if cpu})
