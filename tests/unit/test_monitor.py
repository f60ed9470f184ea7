"""Failure detection and recovery timing, on a fake clock and a fake neighbour: no socket, no sleep.

Each test runs a real NeighborMonitor against a FakeNeighbor and moves a FakeClock; the figures
asserted are the README's detection targets (kill -9 -> unavailable within 100 ms, a hang ->
degraded / unavailable within 1.6 s / 3 s, a restarted daemon healthy the moment it serves).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from daemons import events
from daemons.config import HealthConfig
from daemons.events import EventRecorder
from daemons.health.monitor import NeighborMonitor
from daemons.health.state import Status, Thresholds
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


def test_a_hung_neighbour_is_degraded_then_unavailable_within_the_targets() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        await s.clock.advance(0.05)
        s.neighbor.hang()
        degraded = await s.until(Status.DEGRADED, 1.6)
        unavailable = degraded + await s.until(Status.UNAVAILABLE, 3.0)
        assert degraded <= SETTINGS.interval_seconds + SETTINGS.timeout_seconds + 0.01
        assert unavailable <= 1.6
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


def test_slow_replies_within_the_deadline_are_healthy_and_beyond_it_are_not() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        s.neighbor.delay = 0.5  # slower than usual, inside the 0.6 s deadline
        await s.clock.advance(10)
        assert s.path() == ["healthy"]
        last = s.monitor.view()
        assert last.status == "healthy" and 499 <= last.last_latency_ms <= 501
        s.neighbor.delay = 0.7  # beyond it: every probe fails, though the watch still hears SERVING
        assert await s.until(Status.DEGRADED, 1.1) <= SETTINGS.interval_seconds + SETTINGS.timeout_seconds + 0.01
        await s.clock.advance(10)
        degraded = [e for e in s.log.of(events.HEALTH_TRANSITION) if e["to"] == "degraded"]
        assert degraded and all("no answer within" in e["reason"] or "DEADLINE_EXCEEDED" in e["reason"]
                                for e in degraded)

    run(test)


def test_damped_recovery_needs_the_configured_successes() -> None:
    settings = HealthConfig(jitter_fraction=0.0, thresholds=Thresholds(successes_before_healthy=3,
                                                                          startup_grace_seconds=5.0))

    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 1.0)
        s.neighbor.hang()
        await s.until(Status.UNAVAILABLE, 3.0)
        s.monitor.observe(True, "Watch: SERVING")
        assert s.monitor.status() is Status.UNAVAILABLE  # one success is not enough
        s.neighbor.resume()
        recovered = await s.until(Status.HEALTHY, 2.0)
        assert recovered <= 2 * SETTINGS.interval_seconds + 0.01

    run(test, settings)


def test_a_failed_query_reported_from_another_thread_starts_confirmations() -> None:
    async def test(s: Scenario) -> None:
        await s.until(Status.HEALTHY, 0.01)
        checks = s.neighbor.checks
        reporter = threading.Thread(target=s.monitor.observe, args=(False, "query call failed: UNAVAILABLE: x"))
        reporter.start()
        reporter.join()
        await s.clock.advance(0.1)
        assert s.path() == ["healthy", "degraded", "healthy"]  # suspected, then confirmed alive
        assert s.neighbor.checks > checks

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
