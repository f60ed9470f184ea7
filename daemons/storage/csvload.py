"""Parses AirNow hourly CSV files into columns.

A partition's files are parsed together by Arrow's CSV reader (arrowcsv.py, imported only when
CSVs are parsed), in C++, its strings dictionary-encoded as they are read; that bounds a daemon's
first start (splitting the bytes in Python took 3.9-4.8 s for the real set's five partitions,
Arrow 1.15 s). A file Arrow rejects, or whose values fail the checks, goes through the csv module
line by line instead, where each malformed line is skipped and recorded with its line number,
never fatal. Both ways give the same columns: numbers as numpy parses them, times
"YYYY-MM-DDTHH:MM" only, and each string column's values in the order they first appear, so that
a partition's content fingerprint does not depend on the way taken.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from daemons.storage.columns import DICTIONARY, FIELDS, NUMERIC, code_type

_INDEX = {name: i for i, name in enumerate(FIELDS)}
_WIDTH = len(FIELDS)
_EXAMPLES_KEPT = 5


class Malformed(ValueError):
    """A line, or a file read by Arrow, that does not hold AirNow rows; says why."""


@dataclass
class SkippedLines:
    count: int = 0
    examples: list[str] = field(default_factory=list)  # "file:line: reason", the first few

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        if len(self.examples) < _EXAMPLES_KEPT:
            self.examples.append(f"{where}: {reason}")


def _arrow() -> ModuleType:
    """The Arrow reader, imported only when a CSV is parsed: a restart loads its cache without it,
    and pyarrow's libraries hold 60 MB of a process's memory (measured 2026-11-30)."""
    from daemons.storage import arrowcsv

    return arrowcsv


class ColumnBuilder:
    """Accumulates parsed files; string columns share one dictionary per column across files."""

    def __init__(self) -> None:
        self.numeric: dict[str, list[np.ndarray]] = {name: [] for name in NUMERIC}
        self.strings: dict[str, list[Any]] = {name: [] for name in DICTIONARY}  # per file, Arrow dictionary arrays
        self.skipped = SkippedLines()
        self.rows = 0

    def add_file(self, path: Path, label: str) -> None:
        self.add_bytes(path.read_bytes(), label)

    def add_files(self, files: list[tuple[bytes, str]]) -> None:
        """Adds files' contents, in order, each with the label that names it in the examples of skipped
        lines. Arrow reads them as one (a third faster than file by file: 0.14 s against 0.21 s for
        sep14-24's 132 files); if that fails, each is read on its own, so that the bad one's lines
        are skipped and named and the others read fast."""
        present = [(data, label) for data, label in files if data.strip()]
        if not present:
            return
        joined = b"".join(data if data.endswith(b"\n") else data + b"\n" for data, _label in present)
        try:
            self._add(*_arrow().read(joined))
        except Malformed:
            for data, label in present:
                self.add_bytes(data, label)

    def add_bytes(self, data: bytes, label: str) -> None:
        """Adds one file's contents; `label` names it in the examples of skipped lines."""
        if not data.strip():
            return  # an empty file, or only blank lines
        arrow = _arrow()
        try:
            numeric, strings = arrow.read(data)
        except Malformed:
            columns, numeric = self._split_checked(data, label)
            strings = {name: arrow.encode([value.decode("utf-8", errors="replace") for value in columns[_INDEX[name]]])
                       for name in DICTIONARY}
        self._add(numeric, strings)

    def _add(self, numeric: dict[str, np.ndarray], strings: dict[str, Any]) -> None:
        for name, values in numeric.items():
            self.numeric[name].append(values)
        for name, encoded in strings.items():
            self.strings[name].append(encoded)
        self.rows += len(numeric["datetime"])

    def _split_checked(self, data: bytes, label: str) -> tuple[list[list[bytes]], dict[str, np.ndarray]]:
        good: list[list[bytes]] = []
        text = data.decode("utf-8-sig", errors="replace")  # a byte order mark is no part of the first line, as for Arrow
        reader = csv.reader(io.StringIO(text, newline=""))
        for row in reader:
            number = reader.line_num  # the line a record ends on, counting newlines inside fields
            if not row or row == [""]:
                continue
            try:
                if len(row) != _WIDTH:
                    raise Malformed(f"expected {_WIDTH} fields, found {len(row)}")
                encoded = [value.encode() for value in row]
                _convert([[value] for value in encoded])
            except Malformed as error:
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
            indices, distinct = _arrow().unify(self.strings[name]) if self.strings[name] else (np.empty(0, np.int32), [])
            codes[name] = indices.astype(code_type(len(distinct)))
            values[name] = np.array(distinct, dtype=object)
        return numeric, codes, values


def _concat(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)


def checked(name: str, values: np.ndarray) -> np.ndarray:
    """A numeric column held to its type: integers within its range, floats finite; Malformed if not."""
    dtype = NUMERIC[name]
    if dtype.kind == "i" and values.size:
        limits = np.iinfo(dtype)
        if values.min() < limits.min or values.max() > limits.max:
            raise Malformed(f"{name} out of range")
    if dtype.kind == "f" and values.size and not np.isfinite(values).all():
        raise Malformed(f"{name} is not a finite number")
    return values.astype(dtype)


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
            raise Malformed(f"bad {name}{shown}") from None
        converted[name] = checked(name, values)
    return converted

