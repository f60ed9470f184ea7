"""The requests the soak's clients send through the gateway, and the client loops that send them.

Full-scan clients stream the whole table again and again (the heavy load); mixed clients pick
filtered queries, counts and aggregates at random. Every answer is judged against the oracle's
as it completes and handed to `record`.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np

from daemons.client import FireClient, make_filter
from daemons.errors import describe_error
from tests import oracle
from tests.chaos.expected import AggregateAnswer, Reference, RowAnswer
from tests.chaos.verdicts import Claim, Outcome, Verdict, judge_aggregate, judge_rows

# A request outliving this is an error, not a slow answer: with one fault at a time, a full scan
# takes seconds even while the gateway restarts; the bound also keeps the end of a soak short.
ANSWER_DEADLINE_SECONDS = 60.0
ROW_KINDS = ("full scan", "query")  # answered as streamed rows; the other kinds as an aggregate


@dataclass(frozen=True)
class Request:
    name: str
    kind: str  # "full scan", "query", "count" or "aggregate": how the tally groups answers
    filter: Mapping = field(default_factory=dict)  # make_filter's (and oracle.row_filter's) keyword arguments
    group_by: tuple[str, ...] = ()


def catalogue(site: str) -> list[Request]:
    """Small and large answers over every filter kind; `site` is one the data set has."""
    return [
        Request("full scan", "full scan"),
        Request("PM2.5+PM10, AQI 0-100", "query", dict(parameters=["PM2.5", "PM10"], min_aqi=0, max_aqi=100)),
        Request("ozone in a box", "query", dict(parameters=["OZONE"], bbox=(36, -123, 39.5, -119.5))),
        Request(f"site {site}", "query", dict(sites=[site])),
        Request("a week, concentration 5-50", "query", dict(datetime_from="2020-09-08", datetime_to="2020-09-14",
                                                            min_concentration=5, max_concentration=50)),
        Request("count AQI >= 151", "count", dict(min_aqi=151)),
        Request("count CO and SO2", "count", dict(parameters=["co", "SO2"])),
        Request("count two weeks", "count", dict(datetime_from="2020-09-01T06:00", datetime_to="2020-09-15")),
        Request("aggregate by parameter", "aggregate", group_by=("parameter",)),
        Request("aggregate by agency and day", "aggregate",
                dict(datetime_from="2020-08-16", datetime_to="2020-09-20", max_aqi=400), ("agency", "day")),
        Request("aggregate PM2.5 by hour", "aggregate", dict(parameters=["PM2.5"]), ("hour",)),
    ]


def expectations(reference: Reference, requests: Sequence[Request]) -> dict[str, RowAnswer | AggregateAnswer]:
    """The oracle's answer to each request, by request name."""
    return {request.name: reference.row_answer(request.filter) if request.kind in ROW_KINDS
            else reference.aggregate_answer(request.filter, request.group_by) for request in requests}


def ask(client: FireClient, request: Request, expected: RowAnswer | AggregateAnswer) -> Verdict:
    """Sends one request and judges its answer; an RPC error the client library gave up on is an error."""
    if request.kind in ROW_KINDS:
        return _ask_rows(client, request, expected)
    try:
        answer = client.aggregate(make_filter(**request.filter), request.group_by)
    except grpc.RpcError as error:
        return Verdict(Outcome.ERROR, describe_error(error))
    groups = {tuple(group.key): group for group in answer.groups if group.rows}  # an empty group says nothing
    return judge_aggregate(groups, Claim(answer.complete, set(answer.missing_partitions)), expected)


def _ask_rows(client: FireClient, request: Request, expected: RowAnswer) -> Verdict:
    stream = client.query(make_filter(**request.filter))
    hashes: dict[str, list[np.ndarray]] = defaultdict(list)
    try:
        for batch in stream:
            hashes[batch.partition].append(oracle.batch_row_hashes(batch))
    except (grpc.RpcError, ValueError) as error:  # ValueError: a chunk the library could not decode
        return Verdict(Outcome.ERROR, describe_error(error))
    delivered = {partition: np.concatenate(parts) for partition, parts in hashes.items()}
    completeness = stream.completeness
    if completeness is None:
        return judge_rows(delivered, 0, None, expected)
    claim = Claim(completeness.complete, set(completeness.missing_partitions))
    return judge_rows(delivered, completeness.total_results, claim, expected)


Record = Callable[[Request, Verdict], None]


@contextlib.contextmanager
def running_clients(gateway: str, requests: Sequence[Request], expected: Mapping[str, RowAnswer | AggregateAnswer],
                    record: Record, scanning: int, mixed: int, seed: int) -> Iterator[None]:
    """Keeps `scanning` full-scan clients and `mixed` clients of the other requests busy for the
    length of the block. On leaving it normally, each finishes (and records) the request in hand."""
    stop = threading.Event()
    full_scans = [r for r in requests if r.kind == "full scan"]
    others = [r for r in requests if r.kind != "full scan"]
    in_hand: dict[int, Request] = {}  # client index -> the request it is waiting on
    crashes: list[BaseException] = []  # the soak's own failures, raised in the caller's thread below

    def serve(index: int, choices: Sequence[Request]) -> None:
        rng = random.Random(f"{seed}/{index}")
        try:
            with FireClient(gateway, deadline_seconds=ANSWER_DEADLINE_SECONDS) as client:
                while not stop.is_set():
                    request = in_hand[index] = rng.choice(choices)
                    record(request, ask(client, request, expected[request.name]))
        except BaseException as crash:
            crashes.append(crash)
        in_hand.pop(index, None)

    threads = [threading.Thread(target=serve, args=(index, full_scans if index < scanning else others),
                                name=f"chaos-client-{index}", daemon=True) for index in range(scanning + mixed)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
    for thread in threads:
        thread.join(timeout=ANSWER_DEADLINE_SECONDS + 10)
    if crashes:
        raise crashes[0]
    for index, request in list(in_hand.items()):  # a copy: a thread past its deadline may still change it
        record(request, Verdict(Outcome.ERROR, f"client {index} still waiting long past its deadline"))
