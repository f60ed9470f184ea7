"""The liveness witness: a probe that ran out of time is judged by a PING sent at or after it."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from daemons.health.liveness import Liveness


@dataclass
class Verdicts:
    given: list[bool] = field(default_factory=list)

    def __call__(self, running: bool) -> None:
        self.given.append(running)


def test_a_probe_is_busy_when_a_ping_sent_with_it_was_answered() -> None:
    liveness, verdict = Liveness(), Verdicts()
    liveness.sent(1, at=10.0)
    liveness.answered(1)
    assert liveness.judge(10.0, verdict) is False
    assert verdict.given == [True]


def test_a_probe_is_hung_when_a_ping_sent_with_it_went_unanswered() -> None:
    liveness, verdict = Liveness(), Verdicts()
    liveness.sent(1, at=10.0)
    liveness.unanswered(1)
    liveness.judge(10.0, verdict)
    assert verdict.given == [False]


def test_an_answer_to_a_ping_sent_before_the_probe_says_nothing_about_it() -> None:
    liveness, verdict = Liveness(), Verdicts()
    liveness.sent(1, at=9.9)
    liveness.answered(1)  # the process ran at 9.9; the probe left at 10.0
    assert liveness.judge(10.0, verdict) is True  # no PING out since: the caller must send one
    assert verdict.given == []
    liveness.sent(2, at=10.5)
    liveness.unanswered(2)
    assert verdict.given == [False]


def test_a_probe_waits_for_the_ping_already_out_and_asks_for_none() -> None:
    liveness, verdict = Liveness(), Verdicts()
    liveness.sent(1, at=10.0)
    assert liveness.judge(10.0, verdict) is False
    assert (verdict.given, liveness.waiting) == ([], 1)
    liveness.answered(1)
    assert (verdict.given, liveness.waiting) == ([True], 0)


def test_the_latest_ping_decides_for_every_probe_sent_before_it() -> None:
    liveness, early, late = Liveness(), Verdicts(), Verdicts()
    liveness.sent(1, at=10.0)
    liveness.sent(2, at=10.4)
    liveness.judge(10.0, early)
    liveness.judge(10.2, late)
    liveness.unanswered(2)  # the process stopped between the two PINGs
    assert (early.given, late.given) == ([False], [False])
    liveness.answered(1)  # an answer to the earlier PING, arriving last, changes nothing decided
    assert (early.given, late.given) == ([False], [False])


def test_an_answer_after_the_deadline_is_reported_late_with_when_its_ping_was_sent() -> None:
    liveness = Liveness()
    liveness.sent(1, at=10.0)
    liveness.unanswered(1)
    assert liveness.answered(1) == 10.0
    assert liveness.answered(1) is None  # once
    liveness.sent(2, at=10.4)
    assert liveness.answered(2) is None  # on time


# -- explored: every verdict comes from a PING sent at or after its probe, once ---------------------

step = st.one_of(
    st.tuples(st.just("ping"), st.floats(0, 0.5)),  # time passes, then a PING is sent
    st.tuples(st.just("probe"), st.floats(0, 0.5)),  # time passes, then a probe times out (sent now)
    st.tuples(st.just("answer"), st.integers(0, 20)),  # the n-th PING is answered
    st.tuples(st.just("expire"), st.integers(0, 20)),  # the n-th PING's deadline passes
)


@given(st.lists(step, max_size=60))
def test_verdicts_are_given_once_and_agree_with_a_ping_sent_no_earlier(steps: list[tuple[str, float]]) -> None:
    liveness = Liveness()
    now = 0.0
    pings: list[float] = []  # send time of PING n (stamp n)
    outcome: dict[int, bool] = {}  # stamp -> answered, for PINGs with an outcome
    probes: list[tuple[float, list[bool]]] = []
    for kind, value in steps:
        if kind in ("ping", "probe"):
            now += value
        if kind == "ping":
            pings.append(now)
            liveness.sent(len(pings) - 1, now)
        elif kind == "probe":
            verdicts: list[bool] = []
            must_ask = liveness.judge(now, verdicts.append)
            probes.append((now, verdicts))
            pending = [n for n, sent in enumerate(pings) if sent >= now and n not in outcome]
            assert must_ask == (not verdicts and not pending)
        elif int(value) < len(pings) and int(value) not in outcome:
            stamp = int(value)
            outcome[stamp] = kind == "answer"
            if kind == "answer":
                assert liveness.answered(stamp) is None
            else:
                liveness.unanswered(stamp)
    for probe_sent, verdicts in probes:
        assert len(verdicts) <= 1
        if verdicts:  # the verdict is the outcome of some PING sent no earlier than the probe
            assert any(pings[n] >= probe_sent and answered == verdicts[0] for n, answered in outcome.items())
        else:  # undecided only while no PING sent since has an outcome
            assert not any(pings[n] >= probe_sent for n in outcome)
