"""Parses AirNow hourly CSV files into columns.

AirNow files quote every field, so a well-formed file splits into fields with two C-level bytes
operations and converts column by column with numpy; that is several times faster than the csv
module, which matters because parsing bounds a daemon's first start. A file that does not pass the
fast path's checks goes through the csv module line by line instead, where each malformed line is
skipped and recorded, never fatal.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from daemons.storage.columns import DICTIONARY, FIELDS, NUMERIC

_INDEX = {name: i for i, name in enumerate(FIELDS)}
_WIDTH = len(FIELDS)
_EXAMPLES_KEPT = 5


class _Malformed(ValueError):
    pass


@dataclass
class SkippedLines:
    count: int = 0
    examples: list[str] = field(default_factory=list)  # "file:line: reason", the first few

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        if len(self.examples) < _EXAMPLES_KEPT:
            self.examples.append(f"{where}: {reason}")


class ColumnBuilder:
    """Accumulates parsed files; string columns share one dictionary per column across files."""

    def __init__(self) -> None:
        self.numeric: dict[str, list[np.ndarray]] = {name: [] for name in NUMERIC}
        self.codes: dict[str, list[np.ndarray]] = {name: [] for name in DICTIONARY}
        self.dictionaries: dict[str, dict[bytes, int]] = {name: {} for name in DICTIONARY}
        self.skipped = SkippedLines()
        self.rows = 0

    def add_file(self, path: Path, label: str) -> None:
        self.add_bytes(path.read_bytes(), label)

    def add_bytes(self, data: bytes, label: str) -> None:
        """Adds one file's contents; `label` names it in the examples of skipped lines."""
        try:
            columns = _split_fast(data)
            numeric = _convert(columns)
        except _Malformed:
            columns, numeric = self._split_checked(data, label)
        for name, values in numeric.items():
            self.numeric[name].append(values)
        for name in DICTIONARY:
            table = self.dictionaries[name]
            raw = columns[_INDEX[name]]
            self.codes[name].append(np.fromiter((table.setdefault(v, len(table)) for v in raw), np.uint32, len(raw)))
        self.rows += len(columns[0])

    def _split_checked(self, data: bytes, label: str) -> tuple[list[list[bytes]], dict[str, np.ndarray]]:
        good: list[list[bytes]] = []
        text = data.decode("utf-8", errors="replace")
        reader = csv.reader(io.StringIO(text, newline=""))
        for row in reader:
            number = reader.line_num  # the line a record ends on, counting newlines inside fields
            if not row or row == [""]:
                continue
            try:
                if len(row) != _WIDTH:
                    raise _Malformed(f"expected {_WIDTH} fields, found {len(row)}")
                encoded = [value.encode() for value in row]
                _convert([[value] for value in encoded])
            except _Malformed as error:
                self.skipped.add(f"{label}:{number}", str(error))
                continue
            good.append(encoded)
        columns = [list(column) for column in zip(*good)] if good else [[] for _ in FIELDS]
        return columns, _convert(columns)

    def finish(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Returns (numeric columns, dictionary codes, dictionary values as object arrays of str)."""
        numeric = {name: _concat(parts, dtype) for (name, parts), dtype in zip(self.numeric.items(), NUMERIC.values())}
        codes, values = {}, {}
        for name in DICTIONARY:
            table = self.dictionaries[name]
            width = np.uint16 if len(table) <= 1 << 16 else np.uint32
            codes[name] = _concat(self.codes[name], np.dtype(width))
            values[name] = np.array([v.decode("utf-8", errors="replace") for v in table], dtype=object)
        return numeric, codes, values


def _concat(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)


def _split_fast(data: bytes) -> list[list[bytes]]:
    """Splits a file whose every field is quoted; raises _Malformed for anything else."""
    data = data.replace(b"\r\n", b"\n").strip()
    if not data:
        return [[] for _ in FIELDS]
    if data[:1] != b'"' or data[-1:] != b'"' or b'""' in data:
        raise _Malformed("not a plain quoted file")
    lines = data.count(b"\n") + 1
    fields = data[1:-1].replace(b'"\n"', b'","').split(b'","')
    if len(fields) != lines * _WIDTH:
        raise _Malformed("field count")
    return [fields[i::_WIDTH] for i in range(_WIDTH)]


def _convert(columns: list[list[bytes]]) -> dict[str, np.ndarray]:
    converted = {}
    for name, dtype in NUMERIC.items():
        raw = np.array(columns[_INDEX[name]], dtype=bytes)
        try:
            if name == "datetime":
                if raw.size and not (np.all(np.char.str_len(raw) == 16) and np.all(np.char.find(raw, b"T") == 10)):
                    raise ValueError
                values = raw.astype("datetime64[m]").astype(np.int64)
            elif dtype.kind == "i":
                values = raw.astype(np.int64)
            else:
                values = raw.astype(np.float64)
        except (ValueError, OverflowError):
            shown = f" {columns[_INDEX[name]][0].decode(errors='replace')!r}" if raw.size == 1 else ""
            raise _Malformed(f"bad {name}{shown}") from None
        if dtype.kind == "i" and raw.size:
            limits = np.iinfo(dtype)
            if values.min() < limits.min or values.max() > limits.max:
                raise _Malformed(f"{name} out of range")
        if dtype.kind == "f" and raw.size and not np.isfinite(values).all():
            raise _Malformed(f"{name} is not a finite number")
        converted[name] = values.astype(dtype)
    return converted

