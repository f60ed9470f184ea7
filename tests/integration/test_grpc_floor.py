"""The benchmark's floor (tests/benchmarks/grpc_floor.py): six bare processes in the overlay's shape
answer every query with the gateway's six messages, relay a bulk answer whole, and the figures they
report are measured."""

from __future__ import annotations

from tests.benchmarks import grpc_floor


def test_the_bare_overlay_answers_queries_and_reports_their_rate_latency_and_cpu() -> None:
    rate, p99, cpu = grpc_floor.floor(clients=2, seconds=0.5)
    assert rate > 0 and 0 < p99 < 5 and cpu > 0


def test_the_bare_overlay_relays_a_bulk_answer_whole_and_reports_its_time() -> None:
    seconds = grpc_floor.bulk(answer_bytes=5 * 3 * 100_000, chunk_bytes=100_000, runs=1)
    assert 0 < seconds < 30  # bulk raises if fewer bytes arrive than the five partitions' chunks
