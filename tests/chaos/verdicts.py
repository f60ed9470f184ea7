"""One answer classified against the oracle's: pure functions of plain values.

An answer is `exact` when it says it is complete and equals the oracle's; `flagged partial` when
it says it is incomplete (naming the missing partitions) and everything it does deliver is right:
no row twice, none the oracle does not have, and every partition it does not name as missing is
whole; `wrong` otherwise. An RPC error that reached the client is an `error`, judged elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from daemons.rpc import airquality_pb2 as pb
from tests.chaos.expected import AggregateAnswer, RowAnswer


class Outcome(StrEnum):
    EXACT = "exact"
    PARTIAL = "flagged partial"
    WRONG = "wrong"
    ERROR = "errors"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    detail: str = ""  # what was wrong, or the error


@dataclass(frozen=True)
class Claim:
    """What an answer says about itself."""

    complete: bool
    missing: Collection[str]  # partitions it names as not delivered in full

    def whole(self, partition: str) -> bool:
        return self.complete or partition not in self.missing


def _outcome(claim: Claim, faults: list[str]) -> Verdict:
    if faults:
        return Verdict(Outcome.WRONG, "; ".join(faults))
    if claim.complete:
        return Verdict(Outcome.EXACT)
    return Verdict(Outcome.PARTIAL)


def _claim_faults(claim: Claim, partitions: Collection[str]) -> list[str]:
    if claim.complete and claim.missing:
        return [f"says complete yet names missing partitions {sorted(claim.missing)}"]
    if not claim.complete and not claim.missing:
        return ["says incomplete but names no missing partition"]
    if unknown := set(claim.missing) - set(partitions):
        return [f"names unknown partitions {sorted(unknown)} as missing"]
    return []


def shared_rows(delivered: np.ndarray, expected_sorted: np.ndarray) -> int:
    """How many delivered row hashes the oracle's (sorted) multiset accounts for; the rest are
    duplicates or rows the data does not have."""
    values, counts = np.unique(delivered, return_counts=True)
    available = np.searchsorted(expected_sorted, values, "right") - np.searchsorted(expected_sorted, values, "left")
    return int(np.minimum(counts, available).sum())


def judge_rows(delivered: Mapping[str, np.ndarray], total_results: int, claim: Claim | None,
               expected: RowAnswer) -> Verdict:
    """A streamed answer: `delivered` holds the row hashes received per partition, `total_results`
    and `claim` come from its last chunk (None when the stream ended without one)."""
    if claim is None:
        return Verdict(Outcome.WRONG, "the stream ended without its last chunk")
    faults = _claim_faults(claim, expected.keys())
    received = sum(len(hashes) for hashes in delivered.values())
    if total_results != received:
        faults.append(f"total_results says {total_results:,} but {received:,} rows arrived")
    if foreign := set(delivered) - set(expected):
        faults.append(f"rows of unknown partitions {sorted(foreign)}")
    for partition, want in expected.items():
        got = delivered.get(partition, np.empty(0, np.uint64))
        shared = shared_rows(got, want)
        extra, short = len(got) - shared, len(want) - shared
        if extra:
            faults.append(f"{partition}: {extra:,} of {len(got):,} rows duplicated or not in the data")
        if short and claim.whole(partition):
            faults.append(f"{partition}: {short:,} of {len(want):,} rows missing, yet not named missing")
    return _outcome(claim, faults)


def merged(tables: Collection[dict[tuple, dict]]) -> dict[tuple, dict]:
    """oracle.aggregate tables of several partitions as one."""
    total: dict[tuple, dict] = {}
    for table in tables:
        for key, group in table.items():
            into = total.setdefault(key, {"rows": 0, "concentration": [0, 0.0, math.inf, -math.inf],
                                          "aqi": [0, 0.0, math.inf, -math.inf]})
            into["rows"] += group["rows"]
            for metric in ("concentration", "aqi"):
                count, value_sum, low, high = group[metric]
                stats = into[metric]
                stats[0] += count
                stats[1] += value_sum
                stats[2] = min(stats[2], low)
                stats[3] = max(stats[3], high)
    return total


def _close(a: float, b: float) -> bool:
    # Sums are added up in another order by the daemons; 1e-9 relative is far below any real error.
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _group_faults(key: tuple, group: pb.AggregateGroup, want: dict) -> list[str]:
    if group.rows != want["rows"]:
        return [f"group {key}: {group.rows:,} rows, oracle {want['rows']:,}"]
    faults = []
    for metric in ("concentration", "aqi"):
        count, value_sum, low, high = want[metric]
        stats = getattr(group, metric)
        if stats.count != count:
            faults.append(f"group {key}: {metric} count {stats.count:,}, oracle {count:,}")
        elif count and not (_close(stats.sum, value_sum) and _close(stats.min, low) and _close(stats.max, high)
                            and _close(stats.mean, value_sum / count)):
            faults.append(f"group {key}: {metric} sum/min/max/mean {stats.sum}/{stats.min}/{stats.max}/{stats.mean}, "
                          f"oracle {value_sum}/{low}/{high}/{value_sum / count}")
        elif not count and stats.HasField("mean"):
            faults.append(f"group {key}: {metric} has a mean over no values")
    return faults


def judge_aggregate(groups: Mapping[tuple, pb.AggregateGroup], claim: Claim, expected: AggregateAnswer) -> Verdict:
    """An aggregate (or count): `groups` maps each group key to its AggregateGroup. A partition is
    counted whole or not at all, so the answer must equal the oracle's over the partitions it does
    not name as missing: rows of a missing partition counted in, or any counted twice, show up."""
    faults = _claim_faults(claim, expected.keys())
    want = merged([table for partition, table in expected.items() if claim.whole(partition)])
    if extra := groups.keys() - want.keys():
        faults.append(f"{len(extra)} groups the oracle has not, e.g. {sorted(extra)[:3]}")
    if lacking := want.keys() - groups.keys():
        faults.append(f"{len(lacking)} groups left out, e.g. {sorted(lacking)[:3]}")
    for key in sorted(groups.keys() & want.keys()):
        faults += _group_faults(key, groups[key], want[key])
    return _outcome(claim, faults[:5] + ([f"... {len(faults) - 5} more"] if len(faults) > 5 else []))
