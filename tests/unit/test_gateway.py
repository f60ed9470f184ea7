"""Gateway failover through the seams: the shipped overlay and placement, in memory.

Every daemon is a real Fanout and NodeServicer; only the edges between them are fakes
(InProcessChild), which can die or hang mid-stream. Each answer is checked row by row against
what the partitions hold: every row exactly once, or the partition named as missing.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

import grpc
import pytest

from daemons import events
from daemons.fanout.engine import Fanout, Payload, scan_partition
from daemons.health.status import Status
from daemons.query.filter import parse_filter
from daemons.query.wire import RowDecoder
from daemons.rpc import airquality_pb2 as pb
from daemons.servicers.gateway import GatewayServicer
from daemons.servicers.node import NodeServicer
from daemons.servicers.requests import RequestRegistry
from tests.overlay import ROWS_PER_PARTITION, Overlay, build_overlay, rows_of, serving
from tests.unit.fakes import FakeContext, FakeRpcError, Unverified
from tests.unit.helpers import CRESCENT_CITY, partition_from_measurements
from tests.waiting import wait_for

CHUNK = 4  # ten chunks per partition


@dataclass
class Answer:
    rows: list[tuple[str, int, str]] = field(default_factory=list)
    last: pb.QueryResponse | None = None
    tokens: list[bytes] = field(default_factory=list)
    decoder: RowDecoder = field(default_factory=RowDecoder)  # one per answer, resumed or not, as a client keeps

    def exactly(self, partitions: list[str]) -> bool:
        expected = sorted(row for p in partitions for row in rows_of(p))
        return sorted(self.rows) == expected and len(set(self.rows)) == len(self.rows)


def read(stream: Iterator[Payload], answer: Answer | None = None, stop_after: int | None = None) -> Answer:
    answer = answer or Answer()
    for count, payload in enumerate(stream):
        message = pb.QueryResponse.FromString(payload if isinstance(payload, bytes) else payload.SerializeToString())
        answer.tokens.append(message.resume_token)
        if message.HasField("columns"):
            batch = answer.decoder.decode(message.columns, message.partition, message.partition_offset)
            answer.rows += [(message.partition, message.partition_offset + i, site)
                            for i, site in enumerate(batch.column("site_name"))]
        if message.is_last_chunk:
            answer.last = message
        else:  # a partition's status rides on its last chunk between daemons, never to the client
            assert not message.partitions
        if stop_after is not None and count + 1 >= stop_after:
            break
    return answer


def query(gateway: GatewayServicer, request_id: str = "q1", token: bytes = b"",
          context: FakeContext | None = None) -> Iterator[Payload]:
    request = pb.QueryRequest(request_id=request_id, chunk_size=CHUNK, resume_token=token)
    return gateway.Query(request, context or FakeContext(timeout=30))


ALL = ["aug10-17", "aug18-26", "aug27-sep04", "sep05-13", "sep14-24"]


@pytest.fixture
def overlay() -> Overlay:
    return build_overlay()


@pytest.mark.parametrize("rows, skip, chunks", [(10, 0, 3), (8, 0, 2), (3, 0, 1), (10, 8, 1), (10, 10, 0), (0, 0, 0)])
def test_a_partitions_status_rides_on_its_last_chunk(rows: int, skip: int, chunks: int) -> None:
    partition = partition_from_measurements([CRESCENT_CITY._replace(aqi=i) for i in range(rows)], "p")
    messages = list(scan_partition(partition, parse_filter(pb.QueryFilter()), 4, "worker_c", skip))
    assert [m.columns.row_count for m in messages if m.HasField("columns")] == \
        [min(4, rows - skip - 4 * i) for i in range(chunks)]
    assert [m.partition_offset for m in messages[:chunks]] == [skip + 4 * i for i in range(chunks)]
    # alone only when no row is left, or after a full chunk (sent before the scan knew it was the last)
    assert len(messages) == chunks + ((rows - skip) % 4 == 0)
    assert all(not m.partitions for m in messages[:-1])
    (status,) = messages[-1].partitions
    assert (status.partition, status.complete, status.rows, status.served_by) == ("p", True, rows - skip, "worker_c")


def test_a_healthy_overlay_answers_every_row_once_from_the_primaries(overlay: Overlay) -> None:
    answer = read(query(overlay.gateway()))
    assert answer.exactly(ALL) and answer.last is not None and answer.last.complete
    assert {s.partition: s.served_by for s in answer.last.partitions} == {
        "aug10-17": "leader_b", "aug18-26": "worker_c", "aug27-sep04": "worker_d", "sep05-13": "leader_e",
        "sep14-24": "worker_f"}
    assert overlay.log.of(events.PARTITION_FAILOVER) == []
    assert [e["outcome"] for e in overlay.log.of(events.QUERY_FINISHED)] == []  # until the call terminates


@pytest.mark.parametrize("parent, child, partition, replica", [
    ("leader_e", "worker_f", "sep14-24", "worker_c"),
    ("leader_b", "worker_c", "aug18-26", "worker_d"),
    ("leader_e", "worker_d", "aug27-sep04", "leader_b"),
    ("gateway_a", "leader_b", "aug10-17", "worker_d"),
])
def test_a_copy_that_dies_mid_stream_is_replaced_with_nothing_repeated_or_lost(
        overlay: Overlay, parent: str, child: str, partition: str, replica: str) -> None:
    overlay.edge(parent, child).fault.die_after_chunks = 3
    answer = read(query(overlay.gateway()))
    assert answer.exactly(ALL) and answer.last is not None and answer.last.complete
    served = {s.partition: s.served_by for s in answer.last.partitions}
    assert served[partition] == replica
    # Every partition on the failed edge moved, each skipping what it had delivered: together the
    # three chunks that crossed the edge (which partitions they came from depends on the merge).
    failovers = overlay.log.of(events.PARTITION_FAILOVER)
    assert partition in {e["partition"] for e in failovers}
    assert sum(e["skip_rows"] for e in failovers) == 3 * CHUNK
    assert all("UNAVAILABLE" in e["reason"] for e in failovers)


def test_an_answer_abandoned_mid_stream_leaves_no_call_behind_at_any_daemon(overlay: Overlay) -> None:
    """A call the fan-out kept after its request ended held the last chunk it had received: 0.3 MB
    per abandoned full scan at leader_e, for good (measured 2026-12-01)."""
    context = FakeContext(timeout=30)
    stream = query(overlay.gateway(), context=context)
    assert isinstance(stream, Generator)
    assert read(stream, stop_after=2).rows
    context.end()  # the client went away: gRPC ends the call
    stream.close()

    def forgotten(fanout: Fanout) -> bool:
        return not any(fanout._calls.values())

    for name, fanout in overlay.fanouts.items():
        wait_for(functools.partial(forgotten, fanout), 10, f"{name} to forget its calls")


def test_a_hung_copy_is_replaced_once_its_calls_are_cancelled(overlay: Overlay) -> None:
    edge = overlay.edge("leader_e", "worker_f")
    edge.fault.hang_after_chunks = 2
    answer = Answer()
    reader = threading.Thread(target=read, args=(query(overlay.gateway()), answer))
    reader.start()
    wait_for(edge.fault.hung.is_set, 10, "worker_f's stream to hang")
    # What leader_e's monitor does when it declares worker_f unavailable (on_unavailable):
    overlay.health.known["worker_f"] = Status.UNAVAILABLE
    overlay.fanouts["leader_e"].cancel_calls_to("worker_f")
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert answer.exactly(ALL) and answer.last is not None and answer.last.complete
    failover = overlay.log.of(events.PARTITION_FAILOVER)
    assert [(e["partition"], e["from"], e["to"], e["skip_rows"]) for e in failover] == [
        ("sep14-24", "worker_f", "worker_c", 2 * CHUNK)]


def test_a_leader_never_calls_a_child_its_own_monitor_declared_unavailable(overlay: Overlay) -> None:
    """The gateway's picture may be a second old. A call started after leader_e declared worker_f
    unavailable would hang as long as worker_f (a cut link: a full scan held 300 s), so leader_e
    answers for worker_f's partitions at once and the gateway fails over."""
    overlay.down_as_seen_by["leader_e"] = {"worker_f"}
    overlay.edge("leader_e", "worker_f").fault.hang_after_chunks = 0  # a call would hang at once
    answer = Answer()
    reader = threading.Thread(target=read, args=(query(overlay.gateway()), answer))
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive() and not overlay.edge("leader_e", "worker_f").fault.hung.is_set()
    assert answer.exactly(ALL) and answer.last is not None and answer.last.complete
    (failover,) = overlay.log.of(events.PARTITION_FAILOVER)
    assert (failover["partition"], failover["from"], failover["to"]) == ("sep14-24", "worker_f", "worker_c")
    assert "worker_f: unavailable, as leader_e's health monitor sees it" in failover["reason"]


def test_two_copies_lost_leave_that_partition_missing_and_the_rest_exact(overlay: Overlay) -> None:
    overlay.edge("leader_e", "worker_f").fault.die_after_chunks = 3
    overlay.edge("leader_b", "worker_c").fault.refuse = True
    answer = read(query(overlay.gateway()))
    assert answer.last is not None and not answer.last.complete
    assert list(answer.last.missing_partitions) == ["sep14-24"]  # aug18-26 moved to worker_d
    complete = [p for p in ALL if p not in answer.last.missing_partitions]
    delivered = [row for row in answer.rows if row[0] in complete]
    assert sorted(delivered) == sorted(row for p in complete for row in rows_of(p))
    assert len(set(answer.rows)) == len(answer.rows)  # nothing twice, even from the lost partition
    assert answer.last.total_results == len(answer.rows)


def test_planning_skips_daemons_known_to_be_unavailable(overlay: Overlay) -> None:
    overlay.health.known["leader_e"] = Status.UNAVAILABLE
    overlay.edge("gateway_a", "leader_e").fault.refuse = True
    answer = read(query(overlay.gateway()))
    assert answer.exactly(ALL) and answer.last is not None and answer.last.complete
    assert "leader_e" not in {s.served_by for s in answer.last.partitions}
    assert overlay.log.of(events.PARTITION_FAILOVER) == []  # planned around, not failed over


def test_an_answer_resumes_after_a_gateway_restart_with_nothing_repeated(overlay: Overlay) -> None:
    first = read(query(overlay.gateway()), stop_after=17)
    assert first.last is None and len(first.rows) == 17 * CHUNK
    restarted = overlay.gateway()
    rest = read(query(restarted, request_id="q1-again", token=first.tokens[-1]))
    combined = Answer(first.rows + rest.rows, rest.last)
    assert combined.exactly(ALL) and rest.last is not None and rest.last.complete
    assert rest.last.total_results == len(combined.rows)


def test_a_token_from_another_filter_is_refused(overlay: Overlay) -> None:
    first = read(query(overlay.gateway()), stop_after=2)
    request = pb.QueryRequest(request_id="other", filter=pb.QueryFilter(parameters=["PM10"]),
                              resume_token=first.tokens[-1])
    with pytest.raises(FakeRpcError) as refused:
        next(iter(overlay.gateway().Query(request, FakeContext())))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_cancel_by_id_stops_the_stream_and_logs_cancelled(overlay: Overlay) -> None:
    gateway = overlay.gateway()
    context = FakeContext(timeout=30)
    stream = query(gateway, "to-cancel", context=context)
    read(stream, stop_after=3)
    assert gateway.Cancel(pb.CancelRequest(request_id="to-cancel"), FakeContext()).cancelled
    with pytest.raises(FakeRpcError) as ended:
        read(stream)
    assert ended.value.code() is grpc.StatusCode.CANCELLED
    context.end()
    assert [e["outcome"] for e in overlay.log.of(events.QUERY_FINISHED)] == ["cancelled"]
    assert not gateway.Cancel(pb.CancelRequest(request_id="to-cancel"), FakeContext()).cancelled
    assert overlay.log.of(events.PARTITION_FAILOVER) == []  # the streams cut short by the cancel are not failures


def test_an_aggregate_fails_over_whole_partitions_and_counts_exactly(overlay: Overlay) -> None:
    overlay.edge("leader_e", "worker_f").fault.die_after_chunks = 0
    context = FakeContext(timeout=30)
    answer = overlay.gateway().Aggregate(pb.AggregateRequest(request_id="a1", group_by=["parameter"]), context)
    context.end()
    assert answer.complete and sum(g.rows for g in answer.groups) == len(ALL) * ROWS_PER_PARTITION
    assert {s.partition: s.served_by for s in answer.partitions}["sep14-24"] == "worker_c"
    assert [e["partition"] for e in overlay.log.of(events.PARTITION_FAILOVER)] == ["sep14-24"]
    finished = overlay.log.of(events.QUERY_FINISHED)
    assert [(e["kind"], e["outcome"], e["rows"]) for e in finished] == [
        ("aggregate", "complete", len(ALL) * ROWS_PER_PARTITION)]


def test_aggregates_are_admitted_like_queries(overlay: Overlay) -> None:
    gateway = overlay.gateway()
    running = FakeContext(timeout=30)
    stream = query(gateway, "shared-id", context=running)
    read(stream, stop_after=1)
    with pytest.raises(FakeRpcError) as refused:
        gateway.Aggregate(pb.AggregateRequest(request_id="shared-id"), FakeContext())
    assert refused.value.code() is grpc.StatusCode.ALREADY_EXISTS
    running.end()


# -- copies that differ ------------------------------------------------------------------------------


def test_a_copy_missing_a_day_is_passed_over_for_a_complete_one(overlay: Overlay) -> None:
    overlay.replace_copy("worker_f", "sep14-24", rows_of("sep14-24")[:30], missing_days=("20200914",))
    answer = read(query(overlay.gateway()))
    assert answer.exactly(ALL) and answer.last is not None and answer.last.complete
    assert {s.partition: s.served_by for s in answer.last.partitions}["sep14-24"] == "worker_c"
    assert overlay.log.of(events.PARTITION_FAILOVER) == []


def test_a_copy_the_gateway_last_heard_was_down_is_tried_before_a_partition_is_given_up(overlay: Overlay) -> None:
    """The gateway's picture of the workers may be a second old: worker_c, back already, is still
    unavailable in it when worker_f, holding the other copy of sep14-24, is found down."""
    overlay.health.known["worker_c"] = Status.UNAVAILABLE  # stale: leader_b sees it serving
    overlay.down_as_seen_by["leader_e"] = {"worker_f"}
    answer = read(query(overlay.gateway()))
    assert answer.exactly(ALL) and answer.last is not None and answer.last.complete
    (failover,) = overlay.log.of(events.PARTITION_FAILOVER)
    assert (failover["partition"], failover["from"], failover["to"]) == ("sep14-24", "worker_f", "worker_c")


def test_with_only_the_copy_missing_a_day_left_the_answer_names_the_day(overlay: Overlay) -> None:
    overlay.replace_copy("worker_f", "sep14-24", rows_of("sep14-24")[:30], missing_days=("20200914",))
    overlay.health.known["worker_c"] = Status.UNAVAILABLE
    overlay.down_as_seen_by["leader_b"] = {"worker_c"}
    answer = read(query(overlay.gateway()))
    assert answer.last is not None and list(answer.last.missing_partitions) == ["sep14-24"]
    status = {s.partition: s for s in answer.last.partitions}["sep14-24"]
    assert "day 20200914 missing on disk" in status.error and status.rows == 30
    assert len(answer.rows) == len(set(answer.rows)) == 4 * ROWS_PER_PARTITION + 30


def test_copies_that_disagree_are_logged_and_the_answer_is_not_called_complete(overlay: Overlay) -> None:
    different = [(p, i, f"{site} (edited)") for p, i, site in rows_of("sep14-24")]
    overlay.replace_copy("worker_f", "sep14-24", different)
    answer = read(query(overlay.gateway()))
    assert answer.last is not None and list(answer.last.missing_partitions) == ["sep14-24"]
    status = {s.partition: s for s in answer.last.partitions}["sep14-24"]
    assert status.served_by == "worker_f" and "copies disagree" in status.error
    (mismatch,) = overlay.log.of(events.REPLICA_MISMATCH)
    assert (mismatch["partition"], mismatch["preferred"], mismatch["other"]) == ("sep14-24", "worker_f", "worker_c")
    assert mismatch["preferred_fingerprint"] != mismatch["other_fingerprint"]


def test_a_failover_never_continues_a_stream_on_a_copy_that_differs(overlay: Overlay) -> None:
    """Even when the gateway knows nothing of the copies yet: the replica refuses the route's fingerprint."""
    different = [(p, i, f"{site} (edited)") for p, i, site in rows_of("sep14-24")]
    overlay.replace_copy("worker_f", "sep14-24", different)
    overlay.edge("leader_e", "worker_f").fault.die_after_chunks = 3
    answer = read(query(overlay.gateway(Unverified(overlay.configs["gateway_a"].routes))))
    assert answer.last is not None and list(answer.last.missing_partitions) == ["sep14-24"]
    from_f = [row for row in answer.rows if row[0] == "sep14-24"]
    assert from_f == different[:len(from_f)] and len(from_f) == 3 * CHUNK  # only worker_f's rows, once each
    assert "replica mismatch" in {s.partition: s for s in answer.last.partitions}["sep14-24"].error


# -- hostile requests --------------------------------------------------------------------------------


def test_a_forged_or_edited_resume_token_is_refused(overlay: Overlay) -> None:
    token = read(query(overlay.gateway()), stop_after=2).tokens[-1]
    state = pb.ResumeToken.FromString(token[:-32])
    state.delivered["sep14-24"] = 2**64 - 1
    for forged in (token[:-1] + bytes([token[-1] ^ 1]), state.SerializeToString(), state.SerializeToString() + token[-32:]):
        with pytest.raises(FakeRpcError) as refused:
            next(iter(query(overlay.gateway(), "forged", token=forged)))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "not a token this service issued" in refused.value.details()


def test_an_aggregate_with_too_many_groups_is_refused_naming_the_limit(overlay: Overlay) -> None:
    for fanout in overlay.fanouts.values():
        fanout.max_aggregate_groups = 10
    with pytest.raises(FakeRpcError) as refused:
        overlay.gateway().Aggregate(pb.AggregateRequest(request_id="a", group_by=["site"]), FakeContext(timeout=30))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "more than 10 groups" in refused.value.details() and "max_aggregate_groups" in refused.value.details()
    assert overlay.log.of(events.PARTITION_FAILOVER) == []


@pytest.mark.parametrize("routes, problem", [
    ([("sep05-13", ["leader_e"])] * 2, "routed more than once"),
    ([("sep05-13", ["leader_e", "worker_d", "leader_e"])], "at most once"),
    ([("sep05-13", ["gateway_a", "leader_e"])], "must start at leader_e"),
    ([(f"p{i}", ["leader_e"]) for i in range(300)], "at most 256"),
])
def test_internal_requests_that_would_multiply_work_are_refused(overlay: Overlay, routes, problem) -> None:
    node = NodeServicer(overlay.configs["leader_e"], overlay.fanouts["leader_e"],
                        RequestRegistry("leader_e", serving(), 64, overlay.log), 0.0, lambda: True, dict)
    request = pb.ScanRequest(request_id="r", routes=[pb.PartitionRoute(partition=p, path=path) for p, path in routes])
    for call in (lambda: next(iter(node.Scan(request, FakeContext()))), lambda: node.ScanAggregate(request, FakeContext())):
        with pytest.raises(FakeRpcError) as refused:
            call()
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and problem in refused.value.details()
