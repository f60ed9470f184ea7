"""Grouped count / min / max / mean, computed where the data lives and merged up the tree.

Each partition reduces its matching rows to one partial per group (row count, and count, sum, min
and max of concentration and AQI without missing values); partials merge exactly, so leaders and
the gateway combine small tables instead of shipping rows, and the mean is taken only at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from daemons.columns import MINUTES_PER_DAY, MISSING, format_datetime
from daemons.query import Matcher
from daemons.rpc import airquality_pb2 as pb

METRICS = ("concentration", "aqi")


@dataclass
class Stats:
    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def merge(self, count: int, total: float, low: float, high: float) -> None:
        self.count += count
        self.total += total
        self.low = min(self.low, low)
        self.high = max(self.high, high)

    def to_proto(self, with_mean: bool) -> pb.ColumnStats:
        stats = pb.ColumnStats(count=self.count, sum=self.total)
        if self.count:
            stats.min, stats.max = self.low, self.high
            if with_mean:
                stats.mean = self.total / self.count
        return stats


@dataclass
class Group:
    rows: int = 0
    stats: dict[str, Stats] = field(default_factory=lambda: {m: Stats() for m in METRICS})


def _key_column(matcher: Matcher, key: str, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per selected row, a small integer for `key`, and the label of each integer."""
    partition = matcher.partition
    column = {"parameter": "parameter", "site": "site_name", "agency": "agency_name"}.get(key)
    if column:
        present, inverse = np.unique(partition.codes[column][rows], return_inverse=True)
        return inverse, partition.values[column][present].tolist()
    minutes = partition.numeric["datetime"][rows].astype(np.int64)
    if key == "day":
        present, inverse = np.unique(minutes // MINUTES_PER_DAY, return_inverse=True)
        return inverse, [label[:10] for label in format_datetime(present * MINUTES_PER_DAY).tolist()]
    present, inverse = np.unique((minutes // 60) % 24, return_inverse=True)
    return inverse, [f"{hour:02d}" for hour in present.tolist()]


class AggregateTable:
    def __init__(self, group_by: tuple[str, ...]):
        self.group_by = group_by
        self.groups: dict[tuple[str, ...], Group] = {}

    def add_partition(self, matcher: Matcher) -> int:
        """Folds in the partition's matching rows; returns how many rows matched."""
        partition = matcher.partition
        rows = np.empty(0, np.int64) if matcher.empty else np.flatnonzero(matcher.mask(0, partition.rows))
        if not len(rows):
            return 0
        keys = [_key_column(matcher, key, rows) for key in self.group_by]
        if keys:
            combined = np.ravel_multi_index([inverse for inverse, _ in keys], [len(labels) for _, labels in keys])
            present, group_of_row = np.unique(combined, return_inverse=True)
            index_per_key = np.unravel_index(present, [len(names) for _, names in keys])
            labels = list(zip(*[np.asarray(names, dtype=object)[index] for index, (_, names) in zip(index_per_key, keys)]))
        else:
            group_of_row, labels = np.zeros(len(rows), np.int64), [()]
        counts = np.bincount(group_of_row, minlength=len(labels))
        partials = {}
        for metric in METRICS:
            values = partition.numeric[metric][rows].astype(np.float64)
            valid = values != MISSING
            groups, values = group_of_row[valid], values[valid]
            low = np.full(len(labels), math.inf)
            high = np.full(len(labels), -math.inf)
            np.minimum.at(low, groups, values)
            np.maximum.at(high, groups, values)
            partials[metric] = (np.bincount(groups, minlength=len(labels)),
                                np.bincount(groups, weights=values, minlength=len(labels)), low, high)
        for index, label in enumerate(labels):
            group = self.groups.setdefault(tuple(label), Group())
            group.rows += int(counts[index])
            for metric, (count, total, low, high) in partials.items():
                group.stats[metric].merge(int(count[index]), float(total[index]), float(low[index]), float(high[index]))
        return len(rows)

    def merge_proto(self, groups) -> None:
        for message in groups:
            group = self.groups.setdefault(tuple(message.key), Group())
            group.rows += message.rows
            for metric in METRICS:
                stats = getattr(message, metric)
                if stats.count:
                    group.stats[metric].merge(stats.count, stats.sum, stats.min, stats.max)

    def to_proto(self, final: bool) -> list[pb.AggregateGroup]:
        return [pb.AggregateGroup(key=list(key), rows=group.rows,
                                  **{m: group.stats[m].to_proto(with_mean=final) for m in METRICS})
                for key, group in sorted(self.groups.items())]
