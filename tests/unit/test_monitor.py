"""Failure detection and recovery timing, on a fake clock and a fake neighbour: no socket, no sleep.

Each test runs a real NeighborMonitor against a FakeNeighbor and moves a FakeClock; the figures
asserted are the README's detection targets (kill -9 -> unavailable within 100 ms, a hang ->
degraded / unavailable within 1.6 s / 3 s, a restarted daemon healthy the moment it serves), and
the absence of false alarms: a neighbour whose interpreter answers late while its process answers
PINGs is busy, not degraded, and a prober that itself ran late does not blame its neighbour.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemons import events
from daemons.config import HealthConfig
from daemons.events import EventRecorder
from daemons.health.monitor import NeighborMonitor
from daemons.health.pings import BUSY_LIMIT_SECONDS, WITNESS_AFTER_SECONDS
from daemons.health.state import Status, Thresholds
from daemons.health.tally import ProbeKind
from tests.unit.fakes import FakeClock, FakeNeighbor

SETTINGS = HealthConfig(jitter_fraction=0.0, thresholds=Thresholds(startup_grace_seconds=5.0))


class Scenario:
    def __init__(self, settings: HealthConfig = SETTINGS):
        self.clock = FakeClock()
        self.neighbor = FakeNeighbor(self.clock)
        self.log = EventRecorder()
        self.unavailable: list[str] = []
        self.monitor = NeighborMonitor("leader_b", "worker_c", settings, self.neighbor, self.clock, self.log,
                                       on_unavailable=self.unavailable.append)

    def path(self) -> list[str]:
        return [event["to"] for event in self.log.of(events.HEALTH_TRANSITION)]

    async def until(self, status: Status, limit: float, step: float = 0.001) -> float:
        """Advances the clock until the neighbour reaches `status`; returns the time it took."""
        began = self.clock.now()
        while self.monitor.status() is not status:
            assert self.clock.now() - began <= limit, f"not {status} after {limit} s: {self.path()}"
            await self.clock.advance(step)
        return self.clock.now() - began


def run(test: Callable[[Scenario], Awaitable[None]], settings: HealthConfig = SETTINGS) -> Scenario:
    scenario = Scenario(settings)

    async def main() -> None:
        monitor = asyncio.create_task(scenario.monitor.run())
        try:
            await test(scenario)
        finally:
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)

    asyncio.run(main())
    return scenario


def test_a_serving_neighbour_becomes_healthy_at_once_and_stays_so() -> None:
    async def test(s: Scenario) -> None:
        assert await s.until(Status.HEALTHY, 0.01) <= 0.01
        await s.clock.advance(60)
        assert s.path() == ["healthy"]
        assert s.neighbor.pings >= 60 / SETTINGS.interval_seconds - 1  # datagrams, every interval
        assert s.neighbor.liveness_pings <= s.neighbor.checks  # answered at once: no datagram needed a witness
        assert s.neighbor.checks <= 60 / SETTINGS.check_interval_seconds + 1  # gRPC only now and then
        assert s.neighbor.watches == 1  # closed once healthy, not reopened

    run(test)


def test_a_killed_neighbour_is_unavailable_within_100_ms_and_cancels_its_calls() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        await s.clock.advance(1.23)  # somewhere between two probes
        s.neighbor.kill()
        assert await s.until(Status.UNAVAILABLE, 0.1) <= 0.1
        assert s.path() == ["healthy", "degraded", "unavailable"]
        assert s.unavailable == ["worker_c"]

    run(test)


def test_a_dying_gasp_makes_a_killed_neighbour_unavailable_before_its_sockets_close() -> None:
    """A killed daemon's sockets stay open while the kernel unmaps its memory (52-358 ms on a
    loaded machine): meanwhile it answers nothing, like a hung one, but its gasp settles it."""
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        await s.clock.advance(0.5)
        s.neighbor.hang()  # its threads are gone; its ports are still bound
        s.neighbor.gasp()
        assert await s.until(Status.UNAVAILABLE, 0.005) <= 0.005
        assert s.path() == ["healthy", "unavailable"]
        assert s.log.of(events.HEALTH_TRANSITION)[-1]["reason"] == "dying gasp: its process (pid 100) ended"
        assert s.unavailable == ["worker_c"]

    run(test)


def test_a_gasp_without_the_probers_token_or_for_another_process_is_ignored() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        s.neighbor.gasp(token=b"forged-by-someone-else")
        s.neighbor.gasp(pid=99)  # an earlier incarnation's, arriving late
        await s.clock.advance(3.0)
        assert s.path() == ["healthy"]

    run(test)


def test_a_hung_neighbour_is_degraded_then_unavailable_within_the_targets() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        await s.clock.advance(0.05)
        s.neighbor.hang()
        degraded = await s.until(Status.DEGRADED, 1.6)
        unavailable = degraded + await s.until(Status.UNAVAILABLE, 3.0)
        # The next probe, its deadline, and its witness's (sent once it was unanswered a moment).
        assert degraded <= SETTINGS.interval_seconds + SETTINGS.timeout_seconds + WITNESS_AFTER_SECONDS + 0.01
        assert unavailable - degraded <= SETTINGS.timeout_seconds + 0.05  # the confirmations' one deadline
        reasons = [event["reason"] for event in s.log.of(events.HEALTH_TRANSITION)]
        assert reasons[1].startswith("ping: no answer within 0.6 s")
        assert "DEADLINE_EXCEEDED" in reasons[2] or reasons[2].startswith("ping: no answer")

    run(test)


def test_a_resumed_neighbour_is_healthy_at_once() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        s.neighbor.hang()
        await s.until(Status.UNAVAILABLE, 3.0)
        s.neighbor.resume()
        assert await s.until(Status.HEALTHY, 0.01) <= 0.01  # the watch sees it serving

    run(test)


def test_probes_still_in_flight_when_a_neighbour_resumes_do_not_make_it_flap() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        s.neighbor.hang()
        await s.until(Status.DEGRADED, 1.6)  # confirmation checks are now waiting on the hung neighbour
        assert s.neighbor.checks >= 2  # the first regular check, and at least one confirmation
        s.neighbor.resume()
        await s.until(Status.HEALTHY, 0.01)
        await s.clock.advance(2.0)  # the checks sent while it hung run out of time after it answered
        assert s.path() == ["healthy", "degraded", "healthy"]

    run(test)


def test_a_restarted_neighbour_is_healthy_when_it_serves_and_its_restart_is_logged() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        s.neighbor.kill()
        await s.until(Status.UNAVAILABLE, 0.1)
        await s.clock.advance(1.0)  # supervisord's restart delay
        s.neighbor.restart(pid=200)
        assert await s.until(Status.HEALTHY, 0.01) <= 0.01
        await s.clock.advance(SETTINGS.interval_seconds * 2)  # a ping or check reports the new pid
        assert s.log.of(events.NEIGHBOR_RESTARTED) == [
            {"event": "neighbor_restarted", "level": "info", "neighbor": "worker_c", "old_pid": 100, "new_pid": 200}]
        assert s.path() == ["healthy", "degraded", "unavailable", "healthy"]

    run(test)


def test_a_watch_update_overtaken_by_a_later_probe_makes_no_transition() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        s.neighbor.kill()
        await s.until(Status.UNAVAILABLE, 0.1)
        s.neighbor.watch_delay = 0.5  # the watch hears "still loading" and delivers it late...
        s.neighbor.status = "NOT_SERVING"
        s.neighbor.restart(pid=200)
        await s.clock.advance(0.1)
        s.neighbor.status = "SERVING"  # ...after the daemon serves and a ping has said so
        await s.until(Status.HEALTHY, SETTINGS.interval_seconds + 0.01)
        await s.clock.advance(1.0)
        assert s.path() == ["healthy", "degraded", "unavailable", "healthy"]

    run(test)


def test_a_neighbour_still_starting_stays_unknown_and_draws_no_probe_storm() -> None:
    async def test(s: Scenario) -> None:
        s.neighbor.kill()  # not listening yet
        await s.clock.advance(4.0)  # inside the startup grace
        assert s.monitor.status() is Status.UNKNOWN and s.path() == []
        assert s.neighbor.checks == 1  # the first regular check only: no confirmations while unknown
        await s.clock.advance(2.0)  # the grace is over
        assert s.monitor.status() is Status.UNAVAILABLE
        s.neighbor.restart(pid=101)
        await s.until(Status.HEALTHY, 0.01)

    run(test)


def test_flapping_gives_one_line_per_change_in_order() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        for round_number in range(5):
            s.neighbor.kill()
            await s.until(Status.UNAVAILABLE, 0.1)
            s.neighbor.restart(pid=300 + round_number)
            await s.until(Status.HEALTHY, 0.01)
        assert s.path() == ["healthy"] + ["degraded", "unavailable", "healthy"] * 5
        assert s.unavailable == ["worker_c"] * 5

    run(test)


def test_slow_replies_within_the_deadline_are_healthy_and_beyond_it_are_busy_not_degraded() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        s.neighbor.delay = 0.5  # slower than usual, inside the 0.6 s deadline
        await s.clock.advance(10)
        assert s.path() == ["healthy"]
        last = s.monitor.view()
        assert last.status == "healthy" and 499 <= last.last_latency_ms <= 501
        s.neighbor.delay = 2.0  # beyond it, but its process answers PINGs: its interpreter is busy
        await s.clock.advance(30)
        assert s.path() == ["healthy"]
        assert 1999 <= s.monitor.view().last_latency_ms <= 2001  # late answers still count, with their latency

    run(test)


def test_an_interpreter_stuck_past_the_busy_limit_is_degraded_then_unavailable() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        s.neighbor.delay = math.inf  # its process answers PINGs, its Python never answers again
        degraded = await s.until(Status.DEGRADED, BUSY_LIMIT_SECONDS + 1)
        assert BUSY_LIMIT_SECONDS <= degraded <= BUSY_LIMIT_SECONDS + SETTINGS.interval_seconds + 0.01
        await s.until(Status.UNAVAILABLE, 3 * SETTINGS.interval_seconds + 0.01)
        reasons = [event["reason"] for event in s.log.of(events.HEALTH_TRANSITION)]
        assert all("its interpreter is stuck" in reason for reason in reasons[1:])

    run(test)


def test_a_busy_neighbour_that_hangs_is_still_detected_within_the_targets() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        s.neighbor.delay = 2.0
        await s.clock.advance(10.03)
        s.neighbor.hang()
        degraded = await s.until(Status.DEGRADED, 1.6)
        unavailable = degraded + await s.until(Status.UNAVAILABLE, 3.0)
        # The next probe, its deadline, and its witness's (sent once it was unanswered a moment).
        assert degraded <= SETTINGS.interval_seconds + SETTINGS.timeout_seconds + WITNESS_AFTER_SECONDS + 0.01
        assert unavailable - degraded <= SETTINGS.timeout_seconds + 0.05  # the confirmations' one deadline
        assert "nor to an HTTP/2 PING" in s.log.of(events.HEALTH_TRANSITION)[1]["reason"]

    run(test)


def test_a_busy_neighbour_that_is_killed_is_unavailable_within_100_ms() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        s.neighbor.delay = 2.0
        await s.clock.advance(10.23)
        s.neighbor.kill()
        assert await s.until(Status.UNAVAILABLE, 0.1) <= 0.1

    run(test)


def test_a_suspicion_of_a_busy_neighbour_is_settled_by_its_pings_without_a_storm_of_checks() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        s.neighbor.delay = 2.0
        await s.clock.advance(3)
        checks = s.neighbor.checks
        s.monitor.observe(ProbeKind.GRPC, False, "ping: Connection refused")  # one failure: degraded, and suspected
        await s.clock.advance(3)
        assert s.path() == ["healthy", "degraded", "healthy"]  # its late datagram answers heal it
        assert s.neighbor.checks - checks <= 3  # confirmations stopped once its PINGs showed it running

    run(test)


def test_health_checks_refused_as_overloaded_are_not_failures() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        s.neighbor.overloaded = True  # "Concurrent RPC limit exceeded": it runs, it is full
        await s.clock.advance(30)
        assert s.path() == ["healthy"]

    run(test)


def test_answers_that_arrived_while_the_prober_was_not_running_are_read_before_its_deadlines_are_judged() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        await s.clock.advance(0.39)  # just before the next round
        s.neighbor.delay = s.neighbor.liveness_delay = 0.65  # its answers come just after the deadline...
        await s.clock.advance(0.02)  # (the round is sent)
        s.clock.stall(1.0)  # ...while the prober is not running; its deadline fires late, after them
        s.neighbor.delay = s.neighbor.liveness_delay = 0.001
        await s.clock.advance(1.0)
        assert s.path() == ["healthy"]

    run(test)


def test_a_prober_that_was_not_running_does_not_blame_its_neighbour_and_stretches_its_deadlines() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        for _ in range(20):
            s.clock.stall(2.0)  # this daemon's loop waited for the interpreter lock: every timer fires late
            await s.clock.advance(0.3)
        assert s.path() == ["healthy"]
        assert s.monitor.awareness.score > 0
        await s.clock.advance(10)  # on time again: the stretch wears off
        assert s.monitor.awareness.score == 0

    run(test)


def test_damped_recovery_needs_the_configured_successes() -> None:
    settings = HealthConfig(jitter_fraction=0.0, thresholds=Thresholds(successes_before_healthy=3,
                                                                          startup_grace_seconds=5.0))

    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 1.0)
        s.neighbor.hang()
        await s.until(Status.UNAVAILABLE, 3.0)
        s.monitor.observe(ProbeKind.WATCH, True, "Watch: SERVING")
        assert s.monitor.status() is Status.UNAVAILABLE  # one success is not enough
        s.neighbor.resume()
        recovered = await s.until(Status.HEALTHY, 2.0)
        assert recovered <= 2 * SETTINGS.interval_seconds + 0.01

    run(test, settings)


def test_a_failed_query_reported_from_another_thread_is_a_question_its_answers_settle() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        checks, pings = s.neighbor.checks, s.neighbor.pings
        reporter = threading.Thread(target=s.monitor.query_call_failed, args=("query call failed: UNAVAILABLE: x",))
        reporter.start()
        reporter.join()
        await s.clock.advance(0.01)
        assert s.neighbor.checks > checks and s.neighbor.pings > pings  # asked at once, on every path
        await s.clock.advance(0.1)
        assert s.path() == ["healthy"]  # it answered: the failed call said nothing about its health

    run(test)


def test_a_failed_query_call_to_a_killed_neighbour_gets_it_unavailable_within_100_ms() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        await s.clock.advance(0.2)
        s.neighbor.mode = "dead"  # gone, its connection not yet seen to break
        s.monitor.query_call_failed("query call failed: UNAVAILABLE: Socket closed")
        assert await s.until(Status.UNAVAILABLE, 0.1) <= 0.1

    run(test)


def test_the_status_view_reports_wall_clock_since_and_the_success_rate() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        await s.clock.advance(10)
        view: Any = s.monitor.view()
        assert (view.observer, view.neighbor, view.status) == ("leader_b", "worker_c", "healthy")
        assert view.success_rate == 1.0 and view.probes_in_window >= 20
        assert view.since.startswith("2020-09-13T")  # FakeClock.EPOCH, 1.6e9 s after 1970
        assert view.window_seconds == 60.0

    run(test)


# A stretch of a neighbour's life: how late its interpreter answers (under the busy limit), for
# how long, and whether the prober itself stops running meanwhile (waits for its own lock).
busy_stretch = st.tuples(st.floats(0.001, 4.0), st.floats(0.1, 3.0), st.booleans())


@settings(max_examples=20, deadline=None)
@given(st.lists(busy_stretch, min_size=1, max_size=5), st.floats(0.0, 0.4))
def test_no_busy_schedule_makes_a_transition_and_a_hang_after_it_is_still_detected_in_time(
        schedule: list[tuple[float, float, bool]], hang_after: float) -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        for delay, seconds, prober_stalls in schedule:
            s.neighbor.delay = delay
            if prober_stalls:
                s.clock.stall(min(seconds, 2.0))
            await s.clock.advance(seconds)
        assert s.path() == ["healthy"]
        await s.clock.advance(hang_after + max(delay for delay, _, _ in schedule))  # late answers in
        s.neighbor.delay = 0.001
        await s.clock.advance(1.0)
        s.neighbor.hang()
        degraded = await s.until(Status.DEGRADED, 1.6)
        assert degraded + await s.until(Status.UNAVAILABLE, 3.0) <= 3.0

    run(test)


def test_forged_icmp_errors_change_nothing_and_cost_at_most_a_health_check_per_probe_interval() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.1)
        checks = s.neighbor.checks
        for _ in range(1000):  # a flood over 2 s: one every 2 ms
            s.neighbor.forge_icmp_error()
            await s.clock.advance(0.002)
        assert s.monitor.status() is Status.HEALTHY and s.path() == ["healthy"]
        hint_checks = s.neighbor.checks - checks
        assert 1 <= hint_checks <= 2.0 / SETTINGS.interval_seconds + 1 + 1  # and a regular one, maybe

    run(test)


def test_an_icmp_error_from_a_killed_neighbour_still_leads_to_unavailable_in_time() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.1)
        s.neighbor.mode = "dead"  # its port refuses, but no connection of ours has broken yet
        assert await s.until(Status.UNAVAILABLE, 1.0) <= SETTINGS.interval_seconds + 0.1

    run(test)


def test_replayed_replies_are_counted_and_change_nothing() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.1)
        await s.clock.advance(2.0)
        s.neighbor.hang()
        s.neighbor.replay_replies()  # what a hung daemon's old answers, played again, would say
        assert await s.until(Status.DEGRADED, 1.6) > 0
        assert s.monitor.view().datagrams_dropped["replayed"] >= 5

    run(test)
