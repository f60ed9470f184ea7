"""The columnar wire format: partition rows -> RowColumns -> numpy columns at the client.

Numeric columns travel as raw little-endian buffers and string columns as a chunk-local
dictionary plus uint16 codes, so encoding is a gather per column and decoding is `np.frombuffer`:
no per-row Python work on either side, and a leader can forward a chunk as the bytes it received.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from daemons.rpc import airquality_pb2 as pb
from daemons.storage.columns import DICTIONARY, FIELDS, NUMERIC, WIRE_CODE, format_datetime
from daemons.storage.partition import Partition

M = TypeVar("M")


def encode_rows(partition: Partition, indices: np.ndarray, columns: pb.RowColumns) -> None:
    """Writes the rows at `indices` (at most 65536 of them) into an empty RowColumns message."""
    columns.row_count = len(indices)
    for name in NUMERIC:
        setattr(columns, name, partition.numeric[name][indices].tobytes())
    for name in DICTIONARY:
        codes = partition.codes[name][indices]
        values = partition.values[name]
        used = np.zeros(len(values), bool)
        used[codes] = True
        present = np.flatnonzero(used)
        renumber = np.zeros(len(values), WIRE_CODE)
        renumber[present] = np.arange(len(present), dtype=WIRE_CODE)
        column = getattr(columns, name)
        column.values.extend(values[present].tolist())
        column.codes = renumber[codes].tobytes()


@dataclass
class ColumnBatch:
    """A decoded chunk: numpy arrays per column, strings kept dictionary-encoded until asked for."""

    partition: str
    offset: int  # position of the first row within the partition's answer
    numeric: dict[str, np.ndarray]
    codes: dict[str, np.ndarray]
    values: dict[str, np.ndarray]  # object arrays of str

    def __len__(self) -> int:
        return len(self.numeric["datetime"])

    def column(self, name: str) -> np.ndarray:
        """One column by its FireMeasurement name: numbers as numbers, strings as an object array."""
        if name in self.numeric:
            return self.numeric[name]
        strings: np.ndarray = self.values[name][self.codes[name]]
        return strings

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """Rows as tuples in FIELDS order, with datetime as "YYYY-MM-DDTHH:MM"."""
        columns = [format_datetime(self.numeric[name]).tolist() if name == "datetime" else self.column(name).tolist()
                   for name in FIELDS]
        return zip(*columns)

    def to_measurements(self, kind: type[M] = pb.FireMeasurement) -> list[M]:  # type: ignore[assignment]
        """Rows as messages of `kind`: this contract's FireMeasurement, or the old one's (the same fields)."""
        return [kind(**dict(zip(FIELDS, row))) for row in self.rows()]


def decode_rows(columns: pb.RowColumns, partition: str = "", offset: int = 0) -> ColumnBatch:
    count = columns.row_count
    numeric = {}
    for name, dtype in NUMERIC.items():
        numeric[name] = np.frombuffer(getattr(columns, name), dtype)
        if len(numeric[name]) != count:
            raise ValueError(f"column {name} holds {len(numeric[name])} values for {count} rows")
    codes, values = {}, {}
    for name in DICTIONARY:
        column = getattr(columns, name)
        codes[name] = np.frombuffer(column.codes, WIRE_CODE)
        values[name] = np.array(column.values, dtype=object)
        if len(codes[name]) != count or (count and codes[name].max() >= len(values[name])):
            raise ValueError(f"column {name} does not decode to {count} rows")
    return ColumnBatch(partition, offset, numeric, codes, values)
