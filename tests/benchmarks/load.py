"""A closed-loop load: each client thread asks, reads the whole answer, and asks again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def closed_loop(ask: Callable[[int, int], None], clients: int = 16, seconds: float = 10.0,
                cpu: Callable[[], float] = lambda: 0.0) -> tuple[float, float, float]:
    """(queries per second, p99 seconds, `cpu` seconds per query) of `clients` threads, each calling
    ask(its index, its turn) for `seconds` after a second's warm-up. Raises when any ask failed:
    a load whose answers went wrong measures nothing."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    measuring, stop = threading.Event(), threading.Event()

    def client_loop(index: int) -> None:
        turn = 0
        while not stop.is_set():
            started = time.perf_counter()
            try:
                ask(index, turn)
            except Exception as error:  # reported once the load ends
                with lock:
                    failures.append(f"{type(error).__name__}: {error}")
                return
            if measuring.is_set() and not stop.is_set():
                with lock:
                    latencies.append(time.perf_counter() - started)
            turn += 1

    threads = [threading.Thread(target=client_loop, args=(index,), daemon=True) for index in range(clients)]
    for thread in threads:
        thread.start()
    stop.wait(1.0)
    measuring.set()
    before = cpu()
    stop.wait(seconds)
    used = cpu() - before
    stop.set()
    for thread in threads:
        thread.join(30)
    if failures:
        raise RuntimeError(f"{len(failures)} of the load's queries failed, first: {failures[0]}")
    if not latencies:
        raise RuntimeError(f"no query finished within the {seconds} s measured")
    ordered = sorted(latencies)
    return len(ordered) / seconds, ordered[max(0, int(0.99 * len(ordered)) - 1)], used / max(1, len(ordered))
