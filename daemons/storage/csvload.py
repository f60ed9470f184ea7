"""Parses AirNow hourly CSV files into columns.

A well-formed file is parsed by Arrow's CSV reader, in C++, its strings dictionary-encoded as they
are read; that bounds a daemon's first start (the csv module, or splitting the bytes in Python,
took 4-6 s for the real set's 516 files; Arrow about 1). A file Arrow rejects, or whose values fail
the checks below, goes through the csv module line by line instead, where each malformed line is
skipped and recorded with its line number, never fatal. Both ways give the same columns: numbers
as numpy parses them, times "YYYY-MM-DDTHH:MM" only, and each string column's values in the order
they first appear, so that a partition's content fingerprint does not depend on the way taken.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyarrow import csv as arrow_csv

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


# How Arrow reads a file: no header, every field may be quoted, nothing read as null (an empty
# number is malformed, an empty string is a string), strings dictionary-encoded, numbers checked
# after (as numpy would read them: _checked_numbers).
_READ = arrow_csv.ReadOptions(column_names=list(FIELDS), use_threads=False)
_PARSE = arrow_csv.ParseOptions(quote_char='"', double_quote=True, newlines_in_values=False)
_TYPES = {name: (pa.float64() if dtype.kind == "f" else pa.int64()) for name, dtype in NUMERIC.items() if name != "datetime"}
_CONVERT = arrow_csv.ConvertOptions(
    column_types={**_TYPES, "datetime": pa.string(), **{name: pa.dictionary(pa.int32(), pa.string()) for name in DICTIONARY}},
    null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False)


class ColumnBuilder:
    """Accumulates parsed files; string columns share one dictionary per column across files."""

    def __init__(self) -> None:
        self.numeric: dict[str, list[np.ndarray]] = {name: [] for name in NUMERIC}
        self.strings: dict[str, list[pa.Array]] = {name: [] for name in DICTIONARY}  # per file, dictionary-encoded
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
            self._add(*_read_arrow(joined))
        except (pa.ArrowInvalid, _Malformed):
            for data, label in present:
                self.add_bytes(data, label)

    def add_bytes(self, data: bytes, label: str) -> None:
        """Adds one file's contents; `label` names it in the examples of skipped lines."""
        if not data.strip():
            return  # an empty file, or only blank lines
        try:
            numeric, strings = _read_arrow(data)
        except (pa.ArrowInvalid, _Malformed):
            columns, numeric = self._split_checked(data, label)
            strings = {name: pa.array([value.decode("utf-8", errors="replace") for value in columns[_INDEX[name]]],
                                      pa.string()).dictionary_encode() for name in DICTIONARY}
        self._add(numeric, strings)

    def _add(self, numeric: dict[str, np.ndarray], strings: dict[str, pa.Array]) -> None:
        for name, values in numeric.items():
            self.numeric[name].append(values)
        for name, encoded in strings.items():
            self.strings[name].append(encoded)
        self.rows += len(numeric["datetime"])

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
            # One dictionary across the files: each file's new values appended in file order, so
            # every value keeps the place of its first appearance.
            files = pa.chunked_array(self.strings[name], pa.dictionary(pa.int32(), pa.string()))
            unified = pa.table({name: files}).unify_dictionaries().column(name)
            dictionary = unified.chunk(0).dictionary if unified.num_chunks else pa.array([], pa.string())
            width = np.uint16 if len(dictionary) <= 1 << 16 else np.uint32
            indices = [chunk.indices.to_numpy(zero_copy_only=False) for chunk in unified.chunks]
            codes[name] = _concat(indices, np.dtype(width))
            values[name] = np.array(dictionary.to_pylist(), dtype=object)
        return numeric, codes, values


def _concat(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)


def _read_arrow(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, pa.Array]]:
    """(numeric columns, dictionary-encoded string columns) of CSV lines Arrow reads and whose
    numbers pass the checks; raises pa.ArrowInvalid or _Malformed otherwise."""
    table = arrow_csv.read_csv(io.BytesIO(data), _READ, _PARSE, _CONVERT)
    return _checked_numbers(table), {name: table.column(name).combine_chunks() for name in DICTIONARY}


def _checked_numbers(table: pa.Table) -> dict[str, np.ndarray]:
    """The numeric columns of a file Arrow read, held to _convert's checks (the time's exact form,
    integers in their column's range, finite floats); raises _Malformed for the line-by-line path."""
    numeric = {}
    for name, dtype in NUMERIC.items():
        values = _minutes(table.column("datetime").combine_chunks()) if name == "datetime" else table.column(name).to_numpy()
        if dtype.kind == "i" and len(values):
            limits = np.iinfo(dtype)
            if values.min() < limits.min or values.max() > limits.max:
                raise _Malformed(f"{name} out of range")
        if dtype.kind == "f" and len(values) and not np.isfinite(values).all():
            raise _Malformed(f"{name} is not a finite number")
        numeric[name] = values.astype(dtype)
    return numeric


def _minutes(times: pa.Array) -> np.ndarray:
    """Epoch minutes of "YYYY-MM-DDTHH:MM" strings, parsed by numpy as _convert parses them, from
    Arrow's buffer as it lies (every value 16 bytes long, or _Malformed)."""
    count = len(times)
    if not count:
        return np.empty(0, np.int64)
    offsets = np.frombuffer(times.buffers()[1], np.int32, count + 1, times.offset * 4)
    if not (np.diff(offsets) == 16).all():
        raise _Malformed("a time not in the form YYYY-MM-DDTHH:MM")
    fixed = np.frombuffer(times.buffers()[2], "S16", count, int(offsets[0]))
    if not (fixed.view(np.uint8).reshape(count, 16)[:, 10] == ord("T")).all():
        raise _Malformed("a time not in the form YYYY-MM-DDTHH:MM")
    try:
        return fixed.astype("datetime64[m]").astype(np.int64)
    except ValueError:
        raise _Malformed("a time that is not a date") from None


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

