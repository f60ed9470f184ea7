"""FairMerge: every item once and in order per source, round-robin between ready sources, bounded buffers, close."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemons.fanout.merge import FairMerge, SourceEnded, _PumpThreads
from daemons.fanout.slots import WorkSlots, give_back_slot
from tests.waiting import wait_for

TIMEOUT = 10.0


class Boom(Exception):
    pass


class Consumer:
    """Iterates a merge (or an iterator over one) on its own thread, so one that never ends fails the test
    instead of hanging it."""

    def __init__(self, merge: Iterable):
        self.received: list[tuple[str, object]] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(merge,), daemon=True)
        self._thread.start()

    def _run(self, merge: Iterable) -> None:
        try:
            for pair in merge:
                self.received.append(pair)
        except BaseException as error:  # reported by finish()
            self.error = error

    def finish(self) -> list[tuple[str, object]]:
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "the merge did not end"
        assert self.error is None, self.error
        return self.received


def numbered(name: str, count: int, fail: bool = False):
    for index in range(count):
        yield f"{name}:{index}"
    if fail:
        raise Boom(name)


def items_of(received, name):
    return [item for source, item in received if source == name and not isinstance(item, SourceEnded)]


def ends_of(received, name):
    return [item for source, item in received if source == name and isinstance(item, SourceEnded)]


SOURCES = st.lists(st.tuples(st.integers(0, 12), st.booleans(), st.booleans()), max_size=5)  # count, fail, inline


@settings(max_examples=80, deadline=None)
@given(sources=SOURCES, depth=st.integers(1, 3))
def test_every_item_arrives_once_in_source_order_then_one_end(sources, depth):
    merge = FairMerge(depth=depth)
    for number, (count, fail, inline) in enumerate(sources):
        items = numbered(f"s{number}", count, fail)
        if inline:
            merge.add_inline(f"s{number}", items)
        else:
            merge.add(f"s{number}", items)
    received = Consumer(merge).finish()

    assert len(received) == sum(count for count, _, _ in sources) + len(sources)
    for number, (count, fail, _) in enumerate(sources):
        name = f"s{number}"
        assert items_of(received, name) == [f"{name}:{index}" for index in range(count)]
        (end,) = ends_of(received, name)
        assert [pair for pair in received if pair[0] == name][-1][1] is end  # nothing after the end
        if fail:
            assert isinstance(end.error, Boom) and end.error.args == (name,)
        else:
            assert end.error is None


def test_no_sources_ends_at_once():
    assert Consumer(FairMerge()).finish() == []


def test_source_failing_before_its_first_item_still_ends_once():
    def broken():
        raise Boom("at start")
        yield  # a generator that fails on first use

    merge = FairMerge()
    merge.add("broken", broken())
    merge.add("fine", numbered("fine", 2))
    received = Consumer(merge).finish()
    assert items_of(received, "broken") == []
    (end,) = ends_of(received, "broken")
    assert isinstance(end.error, Boom)
    assert items_of(received, "fine") == ["fine:0", "fine:1"]


def test_inline_sources_are_advanced_by_the_consumer_in_turn_while_a_pumped_one_is_silent():
    release = threading.Event()
    producers: list[str] = []

    def recorded(name: str, count: int):
        for index in range(count):
            producers.append(threading.current_thread().name)
            yield f"{name}:{index}"

    def silent():
        assert release.wait(TIMEOUT)
        yield "late"

    merge = FairMerge()
    merge.add("silent", silent(), cancel=release.set)
    merge.add_inline("a", recorded("a", 3))
    merge.add_inline("b", recorded("b", 2))
    stream = iter(merge)
    received = [next(stream) for _ in range(7)]  # never waits for the silent source
    assert [item for _, item in received if not isinstance(item, SourceEnded)] == \
        ["a:0", "b:0", "a:1", "b:1", "a:2"]
    assert ends_of(received, "a") and ends_of(received, "b")
    assert set(producers) == {threading.current_thread().name}  # no thread of their own
    release.set()
    rest = list(stream)
    assert items_of(rest, "silent") == ["late"] and ends_of(rest, "silent")


def test_an_inline_source_failing_ends_once_with_its_error_and_is_not_advanced_after_close():
    def failing():
        yield "one"
        raise Boom("inline")

    advanced: list[int] = []

    def endless():
        for index in itertools.count():
            advanced.append(index)
            yield index

    merge = FairMerge()
    merge.add_inline("failing", failing())
    merge.add_inline("endless", endless())
    stream = iter(merge)
    received = [next(stream) for _ in range(4)]
    assert items_of(received, "failing") == ["one"]
    (end,) = ends_of(received, "failing")
    assert isinstance(end.error, Boom)
    merge.close()
    assert list(stream) == []
    assert advanced == [0, 1]  # nothing asked of it once the merge closed


def drained_then_set(items, event: threading.Event):
    """Yields `items`; sets `event` once asked for more, by which time the pump has buffered them all."""
    yield from items
    event.set()


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(0, 6), min_size=1, max_size=5))
def test_ready_sources_are_served_in_turn(counts):
    merge = FairMerge(depth=max(counts) + 1)  # room for every item, so each pump asks for one more
    drained = []
    for number, count in enumerate(counts):
        drained.append(threading.Event())
        merge.add(f"s{number}", drained_then_set(numbered(f"s{number}", count), drained[-1]))
    for event in drained:
        assert event.wait(TIMEOUT)
    received = Consumer(merge).finish()
    expected = [f"s{number}:{turn}" for turn in range(max(counts)) for number, count in enumerate(counts)
                if turn < count]
    assert [item for _, item in received if not isinstance(item, SourceEnded)] == expected


def test_fast_source_cannot_starve_a_slow_one():
    allowed = [threading.Event() for _ in range(3)]
    buffered = [threading.Event() for _ in range(3)]

    def slow():
        for index in range(3):
            assert allowed[index].wait(TIMEOUT)
            yield f"slow:{index}"
            buffered[index].set()  # the pump asked for the next item, so this one is in its buffer

    merge = FairMerge(depth=2)
    merge.add("fast", numbered("fast", 1000))
    merge.add("slow", slow())
    stream = iter(merge)
    fast_seen = 0
    for index in range(3):
        for _ in range(4):
            assert next(stream) == ("fast", f"fast:{fast_seen}")
            fast_seen += 1
        allowed[index].set()
        assert buffered[index].wait(TIMEOUT)
        assert next(stream) == ("slow", f"slow:{index}")  # served on the very next turn
    merge.close()


class CountingSource:
    """An endless source that records how many items it has produced."""

    def __init__(self):
        self.produced = 0
        self.condition = threading.Condition()

    def __iter__(self):
        for index in itertools.count():
            with self.condition:
                self.produced += 1
                self.condition.notify_all()
            yield index

    def wait_for(self, count: int) -> None:
        with self.condition:
            assert self.condition.wait_for(lambda: self.produced >= count, TIMEOUT), (self.produced, count)


@pytest.mark.parametrize("depth", [None, 1, 2, 5])
def test_producer_stays_within_depth_of_the_consumer(depth):
    """A producer runs ahead by at most `depth` buffered items (one by default): its pump waits for room
    before it asks for the next item, so it never holds one it cannot buffer."""
    sources = [CountingSource(), CountingSource()]
    merge = FairMerge() if depth is None else FairMerge(depth=depth)
    depth = depth or 1
    for number, source in enumerate(sources):
        merge.add(f"bounded{number}", source)
    stream = iter(merge)
    consumed = [0, 0]
    for _ in range(40):
        for source, taken in zip(sources, consumed):
            source.wait_for(taken + depth)  # it gets as far ahead as it may...
            assert source.produced == taken + depth  # ...and no further
        name, item = next(stream)
        number = int(name[-1])
        assert item == consumed[number]
        consumed[number] += 1
    assert min(consumed) >= 19  # the turns alternated
    merge.close()


def test_close_cancels_unfinished_sources_and_ends_iteration():
    release = threading.Event()
    cancelled: list[str] = []

    def blocked():
        yield "first"
        assert release.wait(TIMEOUT)  # a stream that only ends once cancelled

    merge = FairMerge(depth=2)
    merge.add("close-done", iter(["only"]), cancel=lambda: cancelled.append("close-done"))
    merge.add("close-blocked", blocked(), cancel=lambda: (cancelled.append("close-blocked"), release.set()))
    merge.add("close-endless", itertools.count(), cancel=lambda: cancelled.append("close-endless"))
    stream = iter(merge)
    received = []
    while not (("close-blocked", "first") in received and ends_of(received, "close-done")):
        received.append(next(stream))

    merge.close()
    merge.close()  # idempotent: cancels only once
    assert sorted(cancelled) == ["close-blocked", "close-endless"]

    rest = Consumer(stream).finish()
    assert len(items_of(rest, "close-endless")) <= 2  # at most what was already buffered
    assert items_of(rest, "close-blocked") == []
    wait_for(lambda: not any(thread.name.startswith("merge-close-") for thread in threading.enumerate()),
             TIMEOUT, "the pumps to stop")


def test_close_from_another_thread_wakes_a_waiting_consumer():
    release = threading.Event()

    def silent():
        assert release.wait(TIMEOUT)
        return
        yield

    merge = FairMerge()
    merge.add("silent", silent(), cancel=release.set)
    consumer = Consumer(merge)
    merge.close()
    assert all(isinstance(item, SourceEnded) for _, item in consumer.finish())
    assert release.is_set()


# -- pump threads ----------------------------------------------------------------------------------------


def test_a_pumps_thread_serves_the_next_pump_and_ends_once_idle_long_enough():
    threads = _PumpThreads(idle_seconds=3.0)
    ran: list[threading.Thread] = []
    done = [threading.Event() for _ in range(2)]
    for index, event in enumerate(done):
        threads.run(f"reused-{index}", lambda event=event: (ran.append(threading.current_thread()), event.set()))
        assert event.wait(TIMEOUT)
        wait_for(lambda: len(threads._idle) == 1, TIMEOUT, "the pump's thread to wait for more")
        assert ran[-1].name == "merge-idle"
    assert ran[0] is ran[1]  # no second thread started
    ran[0].join(TIMEOUT)  # and none kept beyond its idle time
    assert not ran[0].is_alive()


def test_a_pumped_generator_left_unfinished_by_a_close_is_closed_by_its_pump():
    closed = threading.Event()

    def stream():
        try:
            yield from itertools.count()
        finally:
            closed.set()  # where a gRPC stream is cancelled and what it is due is taken

    merge = FairMerge()
    merge.add("unfinished", stream())
    stream_of = iter(merge)
    assert next(stream_of) == ("unfinished", 0)
    merge.close()
    assert closed.wait(TIMEOUT)


def test_pumps_running_at_once_each_get_a_thread_of_their_own():
    threads = _PumpThreads(idle_seconds=TIMEOUT)
    release = threading.Event()
    running: list[str] = []
    for index in range(5):  # each holds its thread until released: none may wait for another's
        threads.run(f"blocking-{index}", lambda: (running.append(threading.current_thread().name), release.wait(TIMEOUT)))
    wait_for(lambda: len(running) == 5, TIMEOUT, "five pumps to run at once")
    assert sorted(running) == [f"merge-blocking-{index}" for index in range(5)]
    release.set()


# -- work slots ----------------------------------------------------------------------------------------


def test_work_slots_admit_at_most_their_limit_and_hand_over_in_arrival_order():
    slots = WorkSlots(2)
    entered: list[str] = []
    gates = {name: threading.Event() for name in ("a", "b", "c", "d")}

    def work(name: str) -> None:
        slots.enter()
        entered.append(name)
        assert gates[name].wait(TIMEOUT)
        slots.leave()

    threads = {}
    for name in gates:
        threads[name] = threading.Thread(target=work, args=(name,), daemon=True)
        threads[name].start()
        if name in ("a", "b"):
            wait_for(lambda n=name: n in entered, TIMEOUT, f"{name} to enter")
        else:  # queued behind the first two, in this order
            queued = len(threads) - 2
            wait_for(lambda n=queued: slots.waiting == n, TIMEOUT, f"{name} to wait")
    assert entered == ["a", "b"] and slots.free == 0
    gates["b"].set()
    wait_for(lambda: entered == ["a", "b", "c"], TIMEOUT, "c to get b's slot")
    gates["a"].set()
    wait_for(lambda: entered == ["a", "b", "c", "d"], TIMEOUT, "d to get a's slot")
    gates["c"].set()
    gates["d"].set()
    for thread in threads.values():
        thread.join(TIMEOUT)
    assert slots.free == 2


def test_entering_twice_takes_one_slot_and_leaving_without_one_gives_nothing():
    slots = WorkSlots(2)
    slots.enter()
    slots.enter()
    assert slots.free == 1
    slots.leave()
    slots.leave()
    assert slots.free == 2
    assert give_back_slot() is None


def test_a_consumer_gives_its_slot_back_while_it_waits_for_its_sources():
    slots = WorkSlots(1)
    release = threading.Event()
    free_while_waiting: list[int] = []
    held_with_item: list[int] = []

    def late():
        assert release.wait(TIMEOUT)
        yield "late"

    merge = FairMerge()
    merge.add("late", late())

    def consume():
        slots.enter()
        for _, item in merge:
            if not isinstance(item, SourceEnded):
                held_with_item.append(slots.free)
        slots.leave()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    wait_for(lambda: slots.free == 1, TIMEOUT, "the waiting consumer to give its slot back")
    slots.enter()  # another stream works meanwhile
    free_while_waiting.append(slots.free)
    release.set()
    slots.leave()
    consumer.join(TIMEOUT)
    assert not consumer.is_alive()
    assert free_while_waiting == [0] and held_with_item == [0]  # it had its slot again for the item
    assert slots.free == 1
