"""An independent reference for query answers: the CSVs read with the csv module, filtered in plain
Python. It shares no code with the daemons, so a bug in their parser, filters or aggregates shows
up as a difference here.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

LAT, LON, DATETIME, PARAMETER, CONC, UNIT, RAW, AQI, CATEGORY, SITE, AGENCY, AQS, FULL_AQS = range(13)


def _row(f: list[str]) -> tuple:
    return (float(f[0]), float(f[1]), sys.intern(f[2]), sys.intern(f[3]), float(f[4]), sys.intern(f[5]),
            float(f[6]), int(f[7]), int(f[8]), sys.intern(f[9]), sys.intern(f[10]), sys.intern(f[11]),
            sys.intern(f[12]))


def load_rows(root: Path) -> list[tuple]:
    """Every row, in day, file and line order."""
    return [row for rows in load_rows_by_day(root).values() for row in rows]


def _bound(value: str, upper: bool) -> str:
    if len(value) == 10:
        return value + ("T23:59" if upper else "T00:00")
    return value


def row_filter(parameters=(), sites=(), agencies=(), aqs_codes=(), bbox=None, datetime_from=None,
               datetime_to=None, min_concentration=None, max_concentration=None, min_aqi=None, max_aqi=None):
    """A predicate over oracle rows with the same keyword arguments as daemons.client.make_filter."""
    parameters = {p.lower() for p in parameters}
    sites = {s.lower() for s in sites}
    agencies = {a.lower() for a in agencies}
    aqs_codes = set(aqs_codes)
    low_time = _bound(datetime_from, False) if datetime_from else None
    high_time = _bound(datetime_to, True) if datetime_to else None

    def in_range(value, low, high):
        if low is None and high is None:
            return True
        if value == -999:
            return False
        return (low is None or value >= low) and (high is None or value <= high)

    def accept(row) -> bool:
        if parameters and row[PARAMETER].lower() not in parameters:
            return False
        if sites and row[SITE].lower() not in sites:
            return False
        if agencies and row[AGENCY].lower() not in agencies:
            return False
        if aqs_codes and row[AQS] not in aqs_codes and row[FULL_AQS] not in aqs_codes:
            return False
        if bbox and not (bbox[0] <= row[LAT] <= bbox[2] and bbox[1] <= row[LON] <= bbox[3]):
            return False
        if low_time and row[DATETIME] < low_time:
            return False
        if high_time and row[DATETIME] > high_time:
            return False
        return in_range(row[CONC], min_concentration, max_concentration) and in_range(row[AQI], min_aqi, max_aqi)

    return accept


def checksum(rows: Iterable[tuple]) -> tuple[int, int]:
    """(row count, order-independent checksum) of a multiset of rows."""
    count, total = 0, 0
    for row in rows:
        count += 1
        total = (total + hash(row)) & 0xFFFFFFFFFFFFFFFF
    return count, total


def aggregate(rows: Iterable[tuple], group_by: tuple[str, ...]) -> dict[tuple, dict]:
    """{group key: {"rows": n, "concentration": [count, sum, min, max], "aqi": [...]}}"""
    def key_of(row):
        parts = {"parameter": lambda r: r[PARAMETER], "site": lambda r: r[SITE], "agency": lambda r: r[AGENCY],
                 "day": lambda r: r[DATETIME][:10], "hour": lambda r: r[DATETIME][11:13]}
        return tuple(parts[k](row) for k in group_by)

    groups: dict[tuple, dict] = defaultdict(lambda: {"rows": 0, "concentration": [0, 0.0, math.inf, -math.inf],
                                                     "aqi": [0, 0.0, math.inf, -math.inf]})
    for row in rows:
        group = groups[key_of(row)]
        group["rows"] += 1
        for name, value in (("concentration", row[CONC]), ("aqi", row[AQI])):
            if value != -999:
                stats = group[name]
                stats[0] += 1
                stats[1] += value
                stats[2] = min(stats[2], value)
                stats[3] = max(stats[3], value)
    return dict(groups)


_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9,
                 0x2545F4914F6CDD1D, 0x9FB21C651E98DF25, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB,
                 0x8EBC6AF09C88C6E3], dtype=np.uint64)


def _string_hashes(values) -> np.ndarray:
    return np.fromiter((hash(v) & 0xFFFFFFFFFFFFFFFF for v in values), np.uint64, len(values))


def column_row_hashes(columns: dict[str, np.ndarray]) -> np.ndarray:
    """A 64-bit hash per row from the 13 columns (strings as object arrays), computed with numpy.

    Summed, these give an order-independent checksum of a large answer in a fraction of a second;
    a row delivered twice or left out changes the sum."""
    parts = []
    for name in ("latitude", "longitude", "datetime", "parameter", "concentration", "unit", "raw_concentration",
                 "aqi", "category", "site_name", "agency_name", "aqs_code", "full_aqs_code"):
        values = columns[name]
        if isinstance(values, tuple):  # a dictionary-encoded string column: (distinct values or their hashes, codes)
            distinct, codes = values
            parts.append((distinct if distinct.dtype == np.uint64 else _string_hashes(distinct.tolist()))[codes])
        elif values.dtype == object:
            unique, codes = np.unique(values, return_inverse=True)
            parts.append(_string_hashes(unique.tolist())[codes])
        elif values.dtype.kind == "f":
            parts.append(values.astype(np.float64).view(np.uint64))
        else:
            parts.append(values.astype(np.int64).view(np.uint64))
    hashed = np.zeros(len(parts[0]), np.uint64)
    with np.errstate(over="ignore"):
        for part, multiplier in zip(parts, _MIX):
            hashed = (hashed ^ part) * multiplier
            hashed ^= hashed >> np.uint64(31)
    return hashed


def rows_as_columns(rows: list[tuple]) -> dict[str, np.ndarray]:
    names = ("latitude", "longitude", "datetime", "parameter", "concentration", "unit", "raw_concentration", "aqi",
             "category", "site_name", "agency_name", "aqs_code", "full_aqs_code")
    columns = {}
    for index, name in enumerate(names):
        values = [row[index] for row in rows]
        if name == "datetime":
            columns[name] = np.array(values, dtype="datetime64[m]").astype(np.int64)
        elif isinstance(values[0], str):
            columns[name] = np.array(values, dtype=object)
        else:
            columns[name] = np.array(values)
    return columns


def column_checksum(hashes: np.ndarray) -> tuple[int, int]:
    with np.errstate(over="ignore"):
        return len(hashes), int(hashes.sum(dtype=np.uint64))


def batch_row_hashes(batch) -> np.ndarray:
    """column_row_hashes of a client ColumnBatch, hashing each string of a stream's dictionary once."""
    strings = {}
    for name, dictionary in batch.dictionaries.items():
        hashes = dictionary.derive("oracle", lambda new: _string_hashes(new.tolist()),
                                   lambda earlier, later: np.concatenate([earlier, later]))
        strings[name] = (hashes, batch.codes[name])
    return column_row_hashes({**batch.numeric, **strings})


def load_rows_by_day(root: Path) -> dict[str, list[tuple]]:
    """The rows of every day folder (`YYYYMMDD`), each in file and line order: partitions are made
    of day folders, so this is what a partition's answer is checked against."""
    days: dict[str, list[tuple]] = {}
    for path in sorted(root.glob("*/*.csv")):
        rows = days.setdefault(path.parent.name, [])
        with open(path, newline="", encoding="utf-8") as handle:
            rows.extend(_row(f) for f in csv.reader(handle))
    return days


def full_scan(client: Any, on_batch: Any = lambda batch: None, request_id: str | None = None) -> tuple[Any, Any]:
    """(rows, checksum) of a full scan through a FireClient, and its completeness: what the service
    answered, in the form `column_checksum` gives the independent reading."""
    stream = client.query(chunk_size=1000, request_id=request_id)
    hashes = [np.empty(0, np.uint64)]
    for batch in stream:
        hashes.append(batch_row_hashes(batch))
        on_batch(batch)
    return column_checksum(np.concatenate(hashes)), stream.completeness
