"""The gateway's ClusterHealthView on a hand-moved clock, fake monitors and fake leaders: when it
asks the leaders, that it never waits for them, and whose statuses reach the planner."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import grpc
import pytest

from daemons.health.status import Status
from daemons.health.view import FETCH_TIMEOUT_SECONDS, MAX_AGE_SECONDS, ClusterHealthView
from daemons.rpc import airquality_pb2 as pb
from tests.unit.fakes import FakeRpcError, HealthLeader

HEALTHY, DEGRADED, UNAVAILABLE = Status.HEALTHY, Status.DEGRADED, Status.UNAVAILABLE


class Now:
    """The view's clock: time moves only when a test says so."""

    def __init__(self, start: float = 0.0):  # monotonic clocks may start near zero
        self.time = start

    def __call__(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds


class Monitor:
    """A neighbour the gateway watches itself, in whatever status the test sets."""

    def __init__(self, status: Status = HEALTHY):
        self.current = status

    def status(self) -> Status:
        return self.current

    def process_id(self) -> int:
        return 0  # not heard yet


def view_of(leader: str, **workers: str) -> pb.HealthStatusResponse:
    """A leader's GetHealthStatus answer: what it sees of each neighbour."""
    return pb.HealthStatusResponse(daemon=leader, neighbors=[
        pb.NeighborHealth(observer=leader, neighbor=name, status=status) for name, status in workers.items()])


class Gateway:
    """gateway_a's view over leader_b (watching worker_c) and leader_e (watching worker_f, worker_d)."""

    def __init__(self) -> None:
        self.now = Now()
        self.monitors = {"leader_b": Monitor(), "leader_e": Monitor()}
        self.leaders = {"leader_b": HealthLeader("leader_b", view_of("leader_b", worker_c="healthy")),
                        "leader_e": HealthLeader("leader_e", view_of("leader_e", worker_f="healthy",
                                                                     worker_d="degraded"))}
        self.view = ClusterHealthView(self.monitors, self.leaders, clock=self.now)

    def statuses(self) -> dict[str, Status]:
        """What a plan sees; fails (instead of hanging the test) if the view waits for a leader."""
        outcome: list[dict[str, Status] | Exception] = []

        def plan() -> None:
            try:
                outcome.append(self.view.statuses())
            except Exception as error:  # raised again on the test's thread
                outcome.append(error)

        thread = threading.Thread(target=plan, daemon=True)  # a daemon: one stuck waiting is left behind
        thread.start()
        thread.join(timeout=5.0)
        assert outcome, "statuses() waited for a leader's answer"
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        return outcome[0]

    def asked(self) -> dict[str, int]:
        return {name: leader.asked for name, leader in self.leaders.items()}


EVERYONE = {"leader_b": HEALTHY, "leader_e": HEALTHY, "worker_c": HEALTHY, "worker_f": HEALTHY,
            "worker_d": DEGRADED}


def without(statuses: Mapping[str, Status], *names: str) -> dict[str, Status]:
    return {name: status for name, status in statuses.items() if name not in names}


def test_the_first_plan_asks_every_leader_and_sees_their_views_from_the_next() -> None:
    gateway = Gateway()
    assert gateway.statuses() == {"leader_b": HEALTHY, "leader_e": HEALTHY}  # never waits for the answers
    assert {name: leader.timeouts for name, leader in gateway.leaders.items()} == {
        "leader_b": [FETCH_TIMEOUT_SECONDS], "leader_e": [FETCH_TIMEOUT_SECONDS]}
    statuses = gateway.statuses()
    assert statuses == EVERYONE
    assert all(type(status) is Status for status in statuses.values())


@pytest.mark.parametrize("elapsed", [0.0, MAX_AGE_SECONDS / 2, MAX_AGE_SECONDS])
def test_within_max_age_the_stored_copy_is_used_without_asking(elapsed: float) -> None:
    gateway = Gateway()
    gateway.statuses()
    gateway.leaders["leader_b"].answer = view_of("leader_b", worker_c="unavailable")
    gateway.now.advance(elapsed)
    assert gateway.statuses() == EVERYONE
    assert gateway.asked() == {"leader_b": 1, "leader_e": 1}


def test_after_max_age_it_asks_again_and_the_new_copy_is_used_once_it_is_in() -> None:
    gateway = Gateway()
    gateway.statuses()
    gateway.leaders["leader_b"].answer = view_of("leader_b", worker_c="unavailable")
    gateway.now.advance(MAX_AGE_SECONDS + 0.001)
    assert gateway.statuses() == EVERYONE  # the copy it had when the plan started
    assert gateway.asked() == {"leader_b": 2, "leader_e": 2}
    assert gateway.statuses() == {**EVERYONE, "worker_c": UNAVAILABLE}
    assert gateway.asked() == {"leader_b": 2, "leader_e": 2}


def test_a_refresh_in_flight_does_not_hold_up_plans_which_use_the_old_copy_until_it_answers() -> None:
    gateway = Gateway()
    gateway.statuses()
    leader_b = gateway.leaders["leader_b"]
    leader_b.hold = True
    gateway.now.advance(MAX_AGE_SECONDS + 0.5)
    assert gateway.statuses() == EVERYONE
    [in_flight] = leader_b.held
    assert not in_flight.done()
    gateway.now.advance(MAX_AGE_SECONDS / 2)
    assert gateway.statuses() == EVERYONE  # still the old copy, and not asked twice
    assert gateway.asked() == {"leader_b": 2, "leader_e": 2}
    in_flight.answer(view_of("leader_b", worker_c="degraded"))
    assert gateway.statuses() == {**EVERYONE, "worker_c": DEGRADED}


def test_a_leader_whose_call_fails_at_once_drops_its_workers_until_it_answers_again() -> None:
    gateway = Gateway()
    gateway.statuses()
    leader_b = gateway.leaders["leader_b"]
    leader_b.error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
    gateway.now.advance(MAX_AGE_SECONDS + 0.1)
    gateway.statuses()
    assert gateway.statuses() == without(EVERYONE, "worker_c")  # unknown to the planner, leader_e's stay
    leader_b.error = None
    gateway.now.advance(MAX_AGE_SECONDS + 0.1)
    gateway.statuses()
    assert gateway.statuses() == EVERYONE


def test_a_leader_whose_call_in_flight_fails_later_drops_its_workers_then() -> None:
    gateway = Gateway()
    gateway.statuses()
    leader_e = gateway.leaders["leader_e"]
    leader_e.hold = True
    gateway.now.advance(MAX_AGE_SECONDS + 0.1)
    gateway.statuses()
    assert gateway.statuses() == EVERYONE
    leader_e.held[0].fail(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
    assert gateway.statuses() == without(EVERYONE, "worker_f", "worker_d")


def test_a_leader_the_gateway_sees_unavailable_is_not_asked_and_its_workers_are_dropped() -> None:
    gateway = Gateway()
    gateway.statuses()
    gateway.monitors["leader_e"].current = UNAVAILABLE
    gateway.now.advance(MAX_AGE_SECONDS + 0.1)
    gateway.statuses()
    assert gateway.asked() == {"leader_b": 2, "leader_e": 1}
    assert gateway.statuses() == {**without(EVERYONE, "worker_f", "worker_d"), "leader_e": UNAVAILABLE}
    gateway.monitors["leader_e"].current = HEALTHY  # back: asked again at the next refresh
    gateway.now.advance(MAX_AGE_SECONDS + 0.1)
    gateway.statuses()
    assert gateway.asked() == {"leader_b": 3, "leader_e": 2}
    assert gateway.statuses() == EVERYONE


@pytest.mark.parametrize("elapsed", [0.0, MAX_AGE_SECONDS + 0.1])
def test_the_workers_of_an_unavailable_leader_are_dropped_from_the_first_plan_that_sees_it_so(
        elapsed: float) -> None:
    gateway = Gateway()
    gateway.statuses()
    gateway.monitors["leader_e"].current = UNAVAILABLE
    gateway.now.advance(elapsed)
    assert gateway.statuses() == {**without(EVERYONE, "worker_f", "worker_d"), "leader_e": UNAVAILABLE}


def test_own_statuses_override_what_a_leader_says_of_the_same_daemon() -> None:
    gateway = Gateway()
    gateway.leaders["leader_e"].answer = view_of("leader_e", leader_b="unavailable", worker_f="healthy")
    gateway.monitors["leader_b"].current = DEGRADED
    gateway.statuses()
    assert gateway.statuses() == {"leader_b": DEGRADED, "leader_e": HEALTHY, "worker_c": HEALTHY,
                                  "worker_f": HEALTHY}


def test_an_answer_with_a_status_this_version_does_not_know_counts_as_no_answer() -> None:
    gateway = Gateway()
    gateway.statuses()
    gateway.leaders["leader_e"].answer = view_of("leader_e", worker_f="healthy", worker_d="rebooting")
    gateway.now.advance(MAX_AGE_SECONDS + 0.1)
    gateway.statuses()
    assert gateway.statuses() == without(EVERYONE, "worker_f", "worker_d")  # the old copy is gone too


def test_the_processes_are_each_watchers_word_and_none_behind_an_unavailable_leader() -> None:
    gateway = Gateway()
    gateway.leaders["leader_e"].answer = pb.HealthStatusResponse(daemon="leader_e", neighbors=[
        pb.NeighborHealth(observer="leader_e", neighbor="worker_f", status="healthy", process_id=4242)])
    gateway.statuses()  # the first plan asks the leaders
    assert gateway.view.process_ids() == {"worker_c": 0, "worker_f": 4242, "leader_b": 0, "leader_e": 0}
    gateway.monitors["leader_e"].current = UNAVAILABLE
    assert "worker_f" not in gateway.view.process_ids()
