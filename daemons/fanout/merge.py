"""Fair fan-in of several streams into one, as their items arrive.

Each child's stream is pumped by its own thread into a buffer of `depth` items; the consumer
takes from the ready sources in turn, so one fast source cannot starve the others, and a slow
consumer stops every pump once its buffer is full, so memory per request stays bounded whatever
the size of the result. Closing the merge cancels every source.

The default depth is one: a child's stream already runs up to its flow-control window ahead
(daemons/channels.py), so each more item of depth adds a full chunk (500 KB) per source to every
request whose reader is slow. Measured 2026-11-30 with 32 never-read full scans on the real data,
memory per scan at the gateway / leader_e: 5.4 / 6.3 MB at depth 1; depth 2 adds 1 / 1.5 MB and
made a full scan 4 % and the PM2.5+PM10 query 2 % faster (paired runs). Before, a pump also held
one item more while it waited for room.

A source whose items cost only CPU (a scan of a partition held here) is advanced by the consumer
itself, one item at its turn (`add_inline`), and holds nothing in a buffer: a pump would add a
thread start and two handoffs per item, 0.5 of the 0.8 ms of Python a worker spent on a one-site
scan (measured 2026-12-01), and a produced item would wait in its buffer for the consumer anyway.

A pump runs on a thread kept from an earlier pump when one waits (`_PumpThreads`): starting a
thread cost 95 us of CPU, handing work to a waiting one 39 (measured 2026-12-01), and a one-site
query starts five pumps on its way.

The merge's consumer gives its work slot (slots.py) back while it waits for its sources, and
keeps it while it advances an inline source.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from daemons.fanout.slots import WorkSlots, give_back_slot


@dataclass
class SourceEnded:
    """Yielded once per source after its last item; `error` is why it stopped early, if it did."""

    error: BaseException | None = None


_END = object()  # a source's iterator is exhausted
PUMP_THREAD_IDLE_SECONDS = 10.0  # how long a pump's thread waits for the next before it ends


class _PumpThreads:
    """Threads for pumps, each kept for the next pump while it waits less than `idle_seconds`;
    as many as run at once, so a pump never waits for a thread. Locking: `_lock` guards `_idle`."""

    def __init__(self, idle_seconds: float):
        self._idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[tuple[str, Callable[[], None]]]] = []  # waiting threads' inboxes

    def run(self, name: str, work: Callable[[], None]) -> None:
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(inbox,), name=f"merge-{name}", daemon=True).start()
        inbox.put((name, work))

    def _serve(self, inbox: queue.SimpleQueue[tuple[str, Callable[[], None]]]) -> None:
        me = threading.current_thread()
        job = inbox.get()
        while True:
            name, work = job
            me.name = f"merge-{name}"  # what a thread dump shows
            work()
            del job, work  # what the pump held (its merge, its buffers) is not kept while idle
            me.name = "merge-idle"
            with self._lock:
                self._idle.append(inbox)
            try:
                job = inbox.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:
                        self._idle.remove(inbox)
                        return
                job = inbox.get()  # taken off the idle list just now: its work is on the way


_PUMPS = _PumpThreads(PUMP_THREAD_IDLE_SECONDS)


class _Source:
    def __init__(self, name: str, cancel: Callable[[], Any] | None, inline: Iterator[Any] | None = None):
        self.name = name
        self.cancel = cancel
        self.inline = inline  # advanced by the consumer; None for a pumped source
        self.buffer: deque[Any] = deque()
        self.finished = False  # the pump has stopped; SourceEnded is pending or sent
        self.error: BaseException | None = None
        self.ended_sent = False


class FairMerge:
    def __init__(self, depth: int = 1):
        self._depth = depth
        self._condition = threading.Condition()
        self._sources: list[_Source] = []
        self._closed = False
        self._turn = 0

    def add(self, name: str, items: Iterable[Any], cancel: Callable[[], Any] | None = None) -> None:
        """Starts pumping a source; on a closed merge the source is cancelled at once instead."""
        source = _Source(name, cancel)
        with self._condition:
            closed = self._closed
            if not closed:
                self._sources.append(source)
        if closed:
            if cancel:
                cancel()
            return
        _PUMPS.run(name, functools.partial(self._pump, source, items))

    def add_inline(self, name: str, items: Iterable[Any]) -> None:
        """Adds a source the consumer advances itself, one item at each of its turns; it is always
        ready until it ends, so the consumer never waits while one has items left."""
        source = _Source(name, None, iter(items))
        with self._condition:
            if not self._closed:
                self._sources.append(source)
                self._condition.notify_all()

    def _pump(self, source: _Source, items: Iterable[Any]) -> None:
        iterator: Iterator[Any] | None = None
        try:
            iterator = iter(items)
            while True:
                # Room first, then the next item: a pump never holds an item it cannot buffer, so a
                # source that is not read holds `depth` items here and nothing more (what a child
                # sends meanwhile waits within its stream's flow-control window).
                with self._condition:
                    while len(source.buffer) >= self._depth and not self._closed:
                        self._condition.wait()
                    if self._closed:
                        return
                item = next(iterator, _END)
                with self._condition:
                    if item is _END or self._closed:
                        return
                    source.buffer.append(item)
                    self._condition.notify_all()
        except BaseException as error:  # handed to the consumer, which decides what it means
            source.error = error
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:  # a generator left unfinished (the merge closed) ends here, now
                close()
            with self._condition:
                source.finished = True
                self._condition.notify_all()

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """Yields (source name, item or SourceEnded) until every source has ended. While it waits
        for its sources, the consumer's work slot (if it holds one) is someone else's."""
        while True:
            given_back: WorkSlots | None = None
            with self._condition:
                source = self._next_ready()
                while source is None and not (self._closed or all(s.ended_sent for s in self._sources)):
                    given_back = given_back or give_back_slot()
                    self._condition.wait()
                    source = self._next_ready()
                if source is not None and source.buffer:
                    item = source.buffer.popleft()
                    self._condition.notify_all()
                elif source is not None and source.inline is None:
                    source.ended_sent = True
                    item = SourceEnded(source.error)
            if given_back is not None:
                given_back.enter()  # outside the lock: the pumps must be able to go on meanwhile
            if source is None:
                return
            if source.inline is not None:
                item = self._advance(source)  # outside the lock, as a pump would
            yield source.name, item

    def _advance(self, source: _Source) -> Any:
        """The inline source's next item, or its SourceEnded once it has none or fails."""
        assert source.inline is not None
        try:
            item = next(source.inline, _END)
        except Exception as error:  # handed to the consumer, as a pump hands it
            source.error, item = error, _END
        if item is _END:
            with self._condition:
                source.finished = source.ended_sent = True
                self._condition.notify_all()
            return SourceEnded(source.error)
        return item

    def _next_ready(self) -> _Source | None:
        count = len(self._sources)
        for step in range(count):
            source = self._sources[(self._turn + step) % count]
            advanceable = source.inline is not None and not self._closed
            if source.buffer or ((source.finished or advanceable) and not source.ended_sent):
                self._turn = (self._turn + step + 1) % count
                return source
        return None

    def close(self) -> None:
        """Stops every pump and cancels every source whose end the consumer has not seen (one that
        has finished, too: its canceller may have more to undo than the call); idempotent."""
        with self._condition:
            if self._closed:
                return
            self._closed = True
            self._condition.notify_all()
            cancels = [s.cancel for s in self._sources if s.cancel and not s.ended_sent]
        for cancel in cancels:
            cancel()
