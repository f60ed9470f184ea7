"""An independent reference for query answers: the CSVs read with the csv module, filtered in plain
Python. It shares no code with the daemons, so a bug in their parser, filters or aggregates shows
up as a difference here.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Iterable

LAT, LON, DATETIME, PARAMETER, CONC, UNIT, RAW, AQI, CATEGORY, SITE, AGENCY, AQS, FULL_AQS = range(13)


def load_rows(root: Path) -> list[tuple]:
    rows = []
    for path in sorted(root.glob("*/*.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            for f in csv.reader(handle):
                rows.append((float(f[0]), float(f[1]), sys.intern(f[2]), sys.intern(f[3]), float(f[4]),
                             sys.intern(f[5]), float(f[6]), int(f[7]), int(f[8]), sys.intern(f[9]),
                             sys.intern(f[10]), sys.intern(f[11]), sys.intern(f[12])))
    return rows


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
