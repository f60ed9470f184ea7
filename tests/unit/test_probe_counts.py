"""The per-requester count of health probes a daemon answered stays bounded whatever probers send."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemons.rpc import airquality_pb2 as pb
from daemons.servicers.health import ProbeCounts


def test_a_newcomer_takes_the_place_of_the_requester_with_fewest_probes() -> None:
    counts = ProbeCounts(limit=2)
    for requester in ["leader_e", "leader_e", "tool-1", "tool-2", "leader_e", "tool-3"]:
        counts.add(requester)
    # tool-2 made room for tool-3, tool-1 for tool-2 (fewest probes, least recent among equals).
    assert counts.snapshot() == {"leader_e": 3, "tool-3": 1, ProbeCounts.OTHERS: 2}


def test_a_monitor_that_keeps_probing_keeps_its_count_through_a_flood_of_made_up_ids() -> None:
    counts = ProbeCounts(limit=4)
    counts.add("leader_e")
    for index in range(50_000):
        counts.add(f"made-up-{index}")
        if index % 100 == 0:
            counts.add("leader_e")
    snapshot = counts.snapshot()
    assert snapshot["leader_e"] == 501
    assert len(snapshot) == 5  # four named requesters and the others
    assert sum(snapshot.values()) == 50_501


def test_fifty_thousand_requester_ids_make_a_small_status_reply() -> None:
    counts = ProbeCounts()
    for index in range(50_000):
        counts.add(f"requester-{index:05d}-" + "x" * 64)
    reply = pb.StatusResponse(daemon="worker_d", health_checks_by_requester=counts.snapshot())
    assert len(reply.SerializeToString()) < 2_000  # it was 10.2 MB unbounded


@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e", ProbeCounts.OTHERS]), max_size=60), st.integers(1, 4))
def test_no_probe_is_lost_and_the_map_stays_within_its_limit(requesters: list[str], limit: int) -> None:
    counts = ProbeCounts(limit)
    for requester in requesters:
        counts.add(requester)
    snapshot = counts.snapshot()
    assert sum(snapshot.values()) == len(requesters)
    assert len(snapshot) <= limit + 1
    assert all(snapshot[r] >= 1 for r in snapshot)
