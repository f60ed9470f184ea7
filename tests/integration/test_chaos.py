"""The chaos soak (bin/chaos) in the suite: a short run on a real cluster must give no wrong answer
and no health transition that its faults do not explain; and the soak's own judgement is strict.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from daemons.rpc import airquality_pb2 as pb
from tests.chaos import soak
from tests.chaos.faults import Fault, FaultKind
from tests.chaos.transitions import unexplained
from tests.chaos.verdicts import Claim, Outcome, judge_aggregate, judge_rows

# 40 s of faults (six to ten of them) keeps the whole test near 75 s on two otherwise idle cores:
# the oracle's reading of the data (about 15 s of CPU) and the cluster's start take most of the rest.
SOAK_SECONDS = 40.0


def test_a_short_soak_gives_no_wrong_answer_and_no_unexplained_transition(tmp_path, data_root, cache_dir):
    settings = soak.Settings(SOAK_SECONDS, random.randrange(1 << 31), data_root)
    tally = soak.run(settings, tmp_path / "cluster", cache_dir)
    report = tally.text()
    assert tally.faults and tally.count(Outcome.EXACT), report
    assert tally.count(Outcome.WRONG) == 0, report
    assert not tally.unexplained, report
    assert tally.passed, report


EXPECTED_ROWS = {"p1": np.array([1, 2, 2, 3], np.uint64), "p2": np.array([7, 8], np.uint64)}


@pytest.mark.parametrize("delivered, claim, outcome", [
    ({"p1": [3, 2, 1, 2], "p2": [8, 7]}, Claim(True, ()), Outcome.EXACT),
    ({"p1": [3, 2, 1, 2, 2], "p2": [8, 7]}, Claim(True, ()), Outcome.WRONG),  # a row twice
    ({"p1": [3, 2, 1], "p2": [8, 7]}, Claim(True, ()), Outcome.WRONG),  # a row short, said complete
    ({"p1": [3, 2, 1, 9], "p2": [8, 7]}, Claim(True, ()), Outcome.WRONG),  # a row the data has not
    ({"p1": [2, 1], "p2": [8, 7]}, Claim(False, {"p1"}), Outcome.PARTIAL),
    ({"p1": [], "p2": [8, 7]}, Claim(False, {"p1"}), Outcome.PARTIAL),
    ({"p1": [2, 1], "p2": [8]}, Claim(False, {"p1"}), Outcome.WRONG),  # p2 short, not named missing
    ({"p1": [2, 1, 1], "p2": [8, 7]}, Claim(False, {"p1"}), Outcome.WRONG),  # a partial answer's duplicate
    ({"p1": [3, 2, 1, 2], "p2": [8, 7]}, Claim(False, ()), Outcome.WRONG),  # incomplete, names nothing
    ({"p1": [3, 2, 1, 2], "p2": [8, 7], "p3": [5]}, Claim(True, ()), Outcome.WRONG),
])
def test_row_answers_are_judged_as_multisets_per_partition(delivered, claim, outcome):
    received = {p: np.array(h, np.uint64) for p, h in delivered.items()}
    total = sum(len(h) for h in received.values())
    assert judge_rows(received, total, claim, EXPECTED_ROWS).outcome is outcome


def test_a_row_answer_whose_total_disagrees_or_that_never_ends_is_wrong():
    received = {p: h.copy() for p, h in EXPECTED_ROWS.items()}
    assert judge_rows(received, 5, Claim(True, ()), EXPECTED_ROWS).outcome is Outcome.WRONG
    assert judge_rows(received, 6, None, EXPECTED_ROWS).outcome is Outcome.WRONG


def _group(rows: int, aqi: list[float]) -> pb.AggregateGroup:
    stats = pb.ColumnStats(count=len(aqi), sum=sum(aqi), min=min(aqi), max=max(aqi), mean=sum(aqi) / len(aqi))
    return pb.AggregateGroup(key=["PM2.5"], rows=rows, concentration=pb.ColumnStats(), aqi=stats)


EXPECTED_TABLES = {p: {("PM2.5",): {"rows": len(aqi), "concentration": [0, 0.0, np.inf, -np.inf],
                                    "aqi": [len(aqi), float(sum(aqi)), min(aqi), max(aqi)]}}
                   for p, aqi in (("p1", [10, 20]), ("p2", [30]))}


@pytest.mark.parametrize("group, claim, outcome", [
    (_group(3, [10, 20, 30]), Claim(True, ()), Outcome.EXACT),
    (_group(2, [10, 20]), Claim(False, {"p2"}), Outcome.PARTIAL),
    (_group(3, [10, 20, 30]), Claim(False, {"p2"}), Outcome.WRONG),  # counts a partition it says is missing
    (_group(2, [10, 20]), Claim(True, ()), Outcome.WRONG),
    (_group(3, [10, 20, 31]), Claim(True, ()), Outcome.WRONG),
])
def test_aggregates_must_equal_the_oracle_over_the_partitions_not_named_missing(group, claim, outcome):
    assert judge_aggregate({("PM2.5",): group}, claim, EXPECTED_TABLES).outcome is outcome


def _transition(seconds: float, observer: str, neighbor: str, change: str = "healthy degraded") -> dict:
    before, after = change.split()
    return {"timestamp": f"2026-01-01T00:00:{seconds:09.6f}Z", "daemon": observer, "neighbor": neighbor,
            "from": before, "to": after, "reason": "test"}


def test_transitions_are_explained_only_by_a_fault_of_their_neighbour_or_observer_in_its_window():
    start = 1767225600.0  # 2026-01-01T00:00:00Z
    faults = [Fault(FaultKind.STOP_START, "leader_b", start + 10, serving_again=start + 12, settled=True)]
    explained = [_transition(11, "gateway_a", "leader_b"),  # the faulted daemon seen going down
                 _transition(14, "gateway_a", "leader_b", "degraded healthy"),  # and back, a little late
                 _transition(10.5, "leader_b", "worker_c"),  # the observer's own view while it stopped
                 _transition(12.1, "leader_b", "worker_c", "unknown healthy")]  # restarted, starting over
    unrelated = [_transition(9, "gateway_a", "leader_b"),  # before the fault
                 _transition(11, "leader_e", "worker_f"),  # another daemon, during the fault
                 _transition(13, "leader_b", "worker_c"),  # the restarted observer doubting a healthy child
                 _transition(30, "gateway_a", "leader_b")]  # long after it served again
    assert unexplained(explained + unrelated, faults, start) == unrelated
