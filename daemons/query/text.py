"""Rows as text, a whole chunk at a time: CSV and JSON lines for `bin/query`, byte for byte what
Python's csv module and json.dumps make of each row, at the speed of Arrow's compute kernels.

Formatting row by row in Python took 2.5-2.8 s for the 420,920-row PM query (DuckDB's COPY: 0.3 s).
Here each column becomes an Arrow string array with no per-row Python work, and one kernel joins
them into lines, whose bytes are written as they lie in the array's buffer:
- a float's text is Python's repr (what the csv module and json write), made once per distinct
  value of the chunk: a chunk's rows share their sites' coordinates and many measurements, so
  a chunk of 8,192 rows has about 700 distinct latitudes. (Arrow's own float to text takes
  0.27 s a million values, no faster than repr, and writes 9.0 as "9" and 1e-05 as "0.00001".)
- integers and times alike: once per distinct value of the chunk;
- a string column is already dictionary-encoded, with a dictionary per partition's stream
  (wire.py): each value is quoted (CSV) or escaped (JSON) once an answer, by the csv module and
  json.dumps themselves, as the dictionary grows;
- what goes around a value (JSON's key, the line's end) is part of its distinct texts, so that a
  single join makes the lines;
- columns whose values go together are made into text together (GROUPS), their combinations
  too by Arrow's kernels.
bin/query asks for the largest chunks (65,536 rows): each chunk's distinct values are made into
text once, and a larger chunk has fewer of them per row.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from daemons.query.arrow import concat
from daemons.query.wire import ColumnBatch, StreamDictionary
from daemons.storage.columns import DICTIONARY, FIELDS, format_datetime

# What may make the csv module quote a field (its delimiter, its quote, a line's end): a value with
# none of them is written as it is, and only the others go through the module (1.6 us a value,
# against 0.2 us for the check; a full scan's streams bring about 20,000 values).
_MAY_NEED_QUOTES = re.compile('[,"\r\n]')


def csv_field(value: str) -> str:
    """A string as the csv module writes it in a row of several fields (quoted only if needed)."""
    if not value:
        return value  # alone in a row the module would write '""'; among others, nothing
    if _MAY_NEED_QUOTES.search(value) is None:
        return value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([value])
    return out.getvalue()[:-1]


# Columns that are a site's (its coordinates): each chunk holds about every site again, 15,200 of
# them in a chunk of a generated set ten times the real one, so their texts are kept across chunks
# rather than made per chunk (at 15,200 sites, 30,000 float reprs a chunk, superlinear in the data).
KEPT_ACROSS_CHUNKS = ("latitude", "longitude")
MAX_KEPT_TEXTS = 1 << 20  # past this many values, a column's kept texts start afresh


class _KeptTexts:
    """A numeric column's texts kept across chunks, looked up by the value's bits in sorted order
    (bits, not values: -0.0 and 0.0 have different texts, and a NaN equals no value)."""

    def __init__(self) -> None:
        self.bits = np.empty(0, np.uint64)
        self.texts = pa.array([], pa.string())
        self._lock = threading.Lock()  # chunks are made into text on several threads at once

    def of(self, distinct: np.ndarray, make: Callable[[np.ndarray], pa.Array]) -> pa.Array:
        """The texts of `distinct` (a chunk's distinct values), made with `make` for those new."""
        with self._lock:
            return self._of(distinct, make)

    def _of(self, distinct: np.ndarray, make: Callable[[np.ndarray], pa.Array]) -> pa.Array:
        bits = distinct.astype(np.float64).view(np.uint64)
        positions = np.searchsorted(self.bits, bits)
        known = positions < len(self.bits)
        known[known] = self.bits[positions[known]] == bits[known]
        if not known.all():
            if len(self.bits) > MAX_KEPT_TEXTS:
                self.bits, self.texts = np.empty(0, np.uint64), pa.array([], pa.string())
                known[:] = False
            every = np.concatenate([self.bits, bits[~known]])
            order = np.argsort(every, kind="stable")
            self.bits = every[order]
            self.texts = concat(self.texts, make(distinct[~known])).take(order)
            positions = np.searchsorted(self.bits, bits)
        return self.texts.take(positions)


# Neighbouring columns that take few combinations of values in a chunk (a site's coordinates; its
# name, agency and codes; an hour and a parameter; a measurement and its unit) are made into text
# together, once per combination, so that fewer and longer pieces are taken and joined: the full
# scan's 1.17M rows took 0.61 s column by column, 0.32 s in these five groups.
GROUPS = (("latitude", "longitude"), ("datetime", "parameter"), ("concentration", "unit"),
          ("raw_concentration", "aqi", "category"), ("site_name", "agency_name", "aqs_code", "full_aqs_code"))
assert tuple(name for group in GROUPS for name in group) == FIELDS


class ChunkText:
    """Turns ColumnBatches into the bytes of their rows, as CSV or as JSON lines (`output_format`).
    `render` may run on several threads at once, for chunks of the same answer."""

    def __init__(self, output_format: str):
        if output_format not in ("csv", "jsonl"):
            raise ValueError(f"no vectorised form for {output_format!r}")
        self.json = output_format == "jsonl"
        self._form: Callable[[str], str] = json.dumps if self.json else csv_field
        self._derived = f"text:{output_format}"  # where a dictionary keeps its values' text
        # Each value's text carries what comes before it (JSON: its key, as json.dumps writes a dict
        # of the row; CSV: nothing, the joins put the commas) and, in the last column, the line's end,
        # so that one join makes the lines (a second pass for the newlines took 19 of 240 ms).
        last = len(FIELDS) - 1
        if self.json:
            self._around = {name: (("{" if index == 0 else ", ") + json.dumps(name) + ": ", "}\n" if index == last else "")
                            for index, name in enumerate(FIELDS)}
        else:
            self._around = {name: ("", "\n" if index == last else "") for index, name in enumerate(FIELDS)}
        self._separator = "" if self.json else ","
        self._kept = {name: _KeptTexts() for name in KEPT_ACROSS_CHUNKS}

    def _dictionary_texts(self, name: str, dictionary: StreamDictionary) -> pa.Array:
        """The text of each of the dictionary's values, made for the values new since the last chunk."""
        before, after = self._around[name]
        form = self._form
        texts: pa.Array = dictionary.derive(
            self._derived, lambda new: pa.array([before + form(value) + after for value in new.tolist()], pa.string()),
            concat)
        return texts

    def _distinct(self, batch: ColumnBatch, name: str) -> tuple[np.ndarray, pa.Array]:
        """(each row's index into the column's distinct values, their texts)."""
        if name in DICTIONARY:
            return batch.codes[name], self._dictionary_texts(name, batch.dictionaries[name])
        before, after = self._around[name]
        encoded = pa.array(batch.numeric[name]).dictionary_encode()
        indices = encoded.indices.to_numpy()
        distinct = encoded.dictionary.to_numpy()
        if name == "datetime":
            quote = '"' if self.json else ""
            return indices, self._texts([f"{quote}{text}{quote}" for text in format_datetime(distinct).tolist()],
                                        before, after)
        if name in self._kept:
            return indices, self._kept[name].of(distinct, lambda new: self._texts(
                [repr(value) for value in new.tolist()], before, after))
        # A float's text is its repr, an int's its str (what the csv module and json.dumps write).
        return indices, self._texts([repr(value) for value in distinct.tolist()], before, after)

    @staticmethod
    def _texts(texts: list[str], before: str, after: str) -> pa.Array:
        return pa.array([before + text + after for text in texts] if before or after else texts, pa.string())

    def _group(self, batch: ColumnBatch, names: tuple[str, ...]) -> pa.Array:
        """The text of neighbouring columns, row by row, made once per combination of their values."""
        if len(names) == 1:
            indices, texts = self._distinct(batch, names[0])
            return texts.take(indices)
        # Each row's combination as one number, its columns' indices as digits. The digits' range is
        # the product of the columns' distinct counts; where that could pass int64's, the number so
        # far is first renumbered by its distinct values (fewer than the rows).
        key = np.zeros(len(batch), np.int64)
        bound = 1
        parts: list[Any] = []  # each column's texts, or (a renumbering, the parts before it)
        for name in names:
            indices, texts = self._distinct(batch, name)
            if bound * len(texts) >= 1 << 62:
                parts = [(pa.array(key).dictionary_encode(), parts)]
                key = parts[0][0].indices.to_numpy().astype(np.int64)
                bound = len(parts[0][0].dictionary)
            key = key * len(texts) + indices
            bound *= len(texts)
            parts.append(texts)
        encoded = pa.array(key).dictionary_encode()
        return self._combined(encoded.dictionary.to_numpy(), parts).take(encoded.indices)

    def _combined(self, combinations: np.ndarray, parts: list[Any]) -> pa.Array:
        """The text of each combination, from its digits: each part a column's texts, or (the
        renumbering of the combinations of earlier parts, those parts)."""
        pieces = []
        for part in reversed(parts):  # the last column's digit first
            if isinstance(part, tuple):
                renumbered, earlier = part
                pieces.append(self._combined(renumbered.dictionary.to_numpy()[combinations], earlier))
                break
            pieces.append(part.take(combinations % len(part)))
            combinations = combinations // len(part)
        return pieces[0] if len(pieces) == 1 else pc.binary_join_element_wise(*reversed(pieces), self._separator)

    def render(self, batch: ColumnBatch) -> memoryview:
        """The rows of `batch`, each ending in a newline, as bytes (a view of Arrow's buffer)."""
        if not len(batch):
            return memoryview(b"")
        groups = [self._group(batch, names) for names in GROUPS]
        return _text_bytes(pc.binary_join_element_wise(*groups, self._separator))


def _text_bytes(strings: pa.Array) -> memoryview:
    """The characters of a string array, one value after the other, without copying them."""
    offsets = np.frombuffer(strings.buffers()[1], np.int32, len(strings) + 1, strings.offset * 4)
    data = strings.buffers()[2]
    return memoryview(data)[offsets[0]:offsets[-1]]
