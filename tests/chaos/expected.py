"""The oracle's answers to the soak's requests, per partition, computed once before the soak.

Everything here comes from tests/oracle.py (the CSVs read with the csv module), never from the
daemons. Row answers are kept as the sorted 64-bit hashes of every matching row of each partition,
so a streamed answer of a million rows is checked as a multiset in well under a second.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tests import oracle

# Per partition: the sorted row hashes of a row query's answer.
RowAnswer = Mapping[str, np.ndarray]
# Per partition: oracle.aggregate's table ({group key: {"rows": n, "concentration": [...], "aqi": [...]}}).
AggregateAnswer = Mapping[str, dict[tuple, dict]]


class Reference:
    """The data set as the oracle reads it, split into the deployment's partitions."""

    def __init__(self, data_root: Path, layout: Mapping[str, list[str]]):
        days = oracle.load_rows_by_day(data_root)
        self.rows = {partition: [row for day in day_names for row in days.get(day, [])]
                     for partition, day_names in layout.items()}
        self.hashes = {partition: oracle.column_row_hashes(oracle.rows_as_columns(rows)) if rows
                       else np.empty(0, np.uint64) for partition, rows in self.rows.items()}

    def sites(self) -> list[str]:
        return sorted({row[oracle.SITE] for rows in self.rows.values() for row in rows})

    def _matching(self, partition: str, filter_arguments: Mapping) -> np.ndarray:
        accept = oracle.row_filter(**filter_arguments)
        rows = self.rows[partition]
        return np.fromiter(map(accept, rows), bool, len(rows))

    def row_answer(self, filter_arguments: Mapping) -> RowAnswer:
        return {partition: np.sort(hashes[self._matching(partition, filter_arguments)])
                for partition, hashes in self.hashes.items()}

    def aggregate_answer(self, filter_arguments: Mapping, group_by: tuple[str, ...]) -> AggregateAnswer:
        accept = oracle.row_filter(**filter_arguments)
        return {partition: oracle.aggregate(filter(accept, rows), group_by) for partition, rows in self.rows.items()}
