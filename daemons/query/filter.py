"""Query validation and row selection.

`parse_filter` turns a client's QueryFilter into a validated `Filter` or raises `InvalidQuery`
with a message that names the offending field; `Filter.matcher` then binds it to one partition,
resolving names against the partition's dictionaries once, so that selecting rows is a handful of
vectorised comparisons over integer and float columns. Messages quote a client's values cut short
(`daemons.quoting`), so that an error is never larger than gRPC lets its details be.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from daemons.config import MAX_CHUNK_SIZE
from daemons.quoting import quoted
from daemons.rpc import airquality_pb2 as pb
from daemons.storage.columns import MINUTES_PER_DAY, MISSING, PARAMETERS
from daemons.storage.partition import Partition

GROUP_KEYS = ("parameter", "site", "agency", "day", "hour")
MAX_REQUEST_ID = 128
MAX_VALUES = 10_000  # values in one list filter
UNKNOWN_VALUES_SHOWN = 3  # an error names this many unknown values and counts the rest
SCAN_BLOCK_ROWS = 65536
# A string filter whose values hold at most this share of a partition's rows reads those rows from
# the column's row index instead of testing every row: a one-site query's scan at a worker took
# 1.1 of its 1.8 ms testing 789,146 rows (2026-11-30).
INDEXED_SHARE = 1 / 16

# ASCII digits only: \d also matches full-width digits (U+FF10..U+FF19) and other scripts' digits, which int() reads.
_DATETIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:T([0-9]{2}):([0-9]{2}))?")
_KNOWN_PARAMETERS = {p.casefold(): p for p in PARAMETERS}


class InvalidQuery(ValueError):
    """A request that can never be answered as sent; the message says what to change."""


@dataclass(frozen=True)
class Filter:
    parameters: frozenset[str] = frozenset()  # casefolded
    site_names: frozenset[str] = frozenset()  # casefolded
    agency_names: frozenset[str] = frozenset()  # casefolded
    aqs_codes: frozenset[str] = frozenset()
    bbox: tuple[float, float, float, float] | None = None  # min lat, min lon, max lat, max lon
    minutes: tuple[int | None, int | None] = (None, None)  # inclusive epoch-minute bounds
    concentration: tuple[float | None, float | None] = (None, None)
    aqi: tuple[float | None, float | None] = (None, None)

    def matcher(self, partition: Partition) -> Matcher:
        return Matcher(self, partition)


def parse_datetime(text: str, field: str, upper: bool) -> int:
    """"YYYY-MM-DDTHH:MM" or "YYYY-MM-DD" -> epoch minutes; a date as an upper bound covers the day."""
    match = _DATETIME.fullmatch(text)
    try:
        if not match:
            raise ValueError
        year, month, day, hour, minute = match.groups()
        moment = dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0))
    except ValueError:
        raise InvalidQuery(f'{field}: expected "YYYY-MM-DDTHH:MM" or "YYYY-MM-DD", got {quoted(text)}') from None
    minutes = calendar.timegm(moment.timetuple()) // 60
    return minutes + MINUTES_PER_DAY - 1 if upper and hour is None else minutes


def _names(values: Sequence[str], field: str, fold: bool) -> frozenset[str]:
    if len(values) > MAX_VALUES:
        raise InvalidQuery(f"{field}: at most {MAX_VALUES} values, got {len(values)}")
    for index, value in enumerate(values):
        if not value.strip():
            raise InvalidQuery(f"{field}[{index}]: must not be empty")
    return frozenset(v.casefold() if fold else v for v in values)


def _range(message: pb.QueryFilter, low_field: str, high_field: str, label: str) -> tuple[float | None, float | None]:
    bounds: list[float | None] = []
    for field in (low_field, high_field):
        value = getattr(message, field) if message.HasField(field) else None
        if value is not None and not math.isfinite(value):
            raise InvalidQuery(f"{field}: must be a finite number, got {value}")
        bounds.append(value)
    low, high = bounds
    if low is not None and high is not None and low > high:
        raise InvalidQuery(f"{label} range is inverted: {low_field}={low:g} is above {high_field}={high:g}")
    return low, high


def parse_filter(message: pb.QueryFilter) -> Filter:
    parameters = _names(message.parameters, "parameters", fold=True)
    unknown = sorted(p for p in parameters if p not in _KNOWN_PARAMETERS)
    if unknown:
        shown = ", ".join(quoted(p) for p in unknown[:UNKNOWN_VALUES_SHOWN])
        more = f" and {len(unknown) - UNKNOWN_VALUES_SHOWN} more" if len(unknown) > UNKNOWN_VALUES_SHOWN else ""
        raise InvalidQuery(f"parameters: unknown {shown}{more} (known: {', '.join(PARAMETERS)})")
    bbox = None
    if message.HasField("bbox"):
        box = message.bbox
        bbox = (box.min_latitude, box.min_longitude, box.max_latitude, box.max_longitude)
        if not all(math.isfinite(v) for v in bbox):
            raise InvalidQuery("bbox: every bound must be a finite number")
        if not (-90 <= box.min_latitude <= 90 and -90 <= box.max_latitude <= 90):
            raise InvalidQuery("bbox: latitudes must lie in -90..90")
        if not (-180 <= box.min_longitude <= 180 and -180 <= box.max_longitude <= 180):
            raise InvalidQuery("bbox: longitudes must lie in -180..180")
        if box.min_latitude > box.max_latitude or box.min_longitude > box.max_longitude:
            raise InvalidQuery("bbox: the minimum corner must not exceed the maximum corner")
    first = (parse_datetime(message.datetime_from, "datetime_from", upper=False)
             if message.HasField("datetime_from") else None)
    last = parse_datetime(message.datetime_to, "datetime_to", upper=True) if message.HasField("datetime_to") else None
    if first is not None and last is not None and first > last:
        raise InvalidQuery(f"datetime range is inverted: datetime_from={message.datetime_from} "
                           f"is after datetime_to={message.datetime_to}")
    return Filter(
        parameters=parameters,
        site_names=_names(message.site_names, "site_names", fold=True),
        agency_names=_names(message.agency_names, "agency_names", fold=True),
        aqs_codes=_names(message.aqs_codes, "aqs_codes", fold=False),
        bbox=bbox,
        minutes=(first, last),
        concentration=_range(message, "min_concentration", "max_concentration", "concentration"),
        aqi=_range(message, "min_aqi", "max_aqi", "AQI"),
    )


def parse_request_id(request_id: str) -> str:
    if not request_id.strip():
        raise InvalidQuery("request_id: must not be empty")
    if len(request_id) > MAX_REQUEST_ID:
        raise InvalidQuery(f"request_id: at most {MAX_REQUEST_ID} characters")
    return request_id


def parse_chunk_size(value: int | None, default: int) -> int:
    if value is None:
        return default
    if not 1 <= value <= MAX_CHUNK_SIZE:
        raise InvalidQuery(f"chunk_size: must be in 1..{MAX_CHUNK_SIZE}, got {value}")
    return value


def parse_group_by(keys: Sequence[str]) -> tuple[str, ...]:
    for index, key in enumerate(keys):
        if key not in GROUP_KEYS:
            raise InvalidQuery(f"group_by[{index}]: unknown key {quoted(key)} (known: {', '.join(GROUP_KEYS)})")
    if len(set(keys)) != len(keys):
        raise InvalidQuery("group_by: a key is repeated")
    return tuple(keys)


def _lookup(partition: Partition, column: str, wanted: frozenset[str], fold: bool) -> np.ndarray:
    """A boolean per dictionary entry: does the filter accept it."""
    accepted = np.zeros(len(partition.values[column]), bool)
    codes_by_value = partition.codes_by_value(column, fold)
    for value in wanted:
        codes = codes_by_value.get(value)
        if codes is not None:
            accepted[codes] = True
    return accepted


class Matcher:
    """A Filter bound to one partition."""

    def __init__(self, query: Filter, partition: Partition):
        self.partition = partition
        self._query = query
        # (columns, accepted-per-code for each column): a row passes when any of the columns accepts it
        self._lookups: list[tuple[tuple[str, ...], tuple[np.ndarray, ...]]] = []
        for columns, wanted, fold in ((("parameter",), query.parameters, True),
                                      (("site_name",), query.site_names, True),
                                      (("agency_name",), query.agency_names, True),
                                      (("aqs_code", "full_aqs_code"), query.aqs_codes, False)):
            if wanted:
                self._lookups.append((columns, tuple(_lookup(partition, c, wanted, fold) for c in columns)))
        # A filter that no dictionary entry satisfies selects nothing; skip the scan entirely.
        self.empty = any(not any(a.any() for a in accepted) for _, accepted in self._lookups)
        self.selects_all = not self._lookups and query.bbox is None and all(
            bound is None for bounds in (query.minutes, query.concentration, query.aqi) for bound in bounds)

    def mask(self, rows: slice | np.ndarray) -> np.ndarray:
        """Whether each of `rows` (a slice of the partition, or row numbers) matches."""
        numeric, codes, query = self.partition.numeric, self.partition.codes, self._query
        keep = np.ones(len(numeric["datetime"][rows]), bool)
        for columns, accepted in self._lookups:
            passes = accepted[0][codes[columns[0]][rows]]
            for column, table in zip(columns[1:], accepted[1:]):
                passes |= table[codes[column][rows]]
            keep &= passes
        if query.bbox is not None:
            lat, lon = numeric["latitude"][rows], numeric["longitude"][rows]
            min_lat, min_lon, max_lat, max_lon = query.bbox
            keep &= (lat >= min_lat) & (lat <= max_lat) & (lon >= min_lon) & (lon <= max_lon)
        _within(keep, numeric["datetime"][rows], query.minutes, missing_allowed=True)
        _within(keep, numeric["concentration"][rows], query.concentration)
        _within(keep, numeric["aqi"][rows], query.aqi)
        return keep

    def candidates(self) -> np.ndarray | None:
        """The rows that can match, ascending, when a string filter's values hold few of them
        (INDEXED_SHARE): read from the column's row index. None: every row is to be tested."""
        partition = self.partition
        fewest: tuple[int, tuple[str, ...], tuple[np.ndarray, ...]] | None = None
        for columns, accepted in self._lookups:
            count = sum(int(partition.code_counts(column)[table].sum()) for column, table in zip(columns, accepted))
            if fewest is None or count < fewest[0]:
                fewest = (count, columns, accepted)
        if fewest is None or fewest[0] > partition.rows * INDEXED_SHARE:
            return None
        _, columns, accepted = fewest
        slices = [rows for column, table in zip(columns, accepted)
                  for rows in partition.rows_with_codes(column, np.flatnonzero(table).tolist())]
        rows = np.concatenate(slices) if slices else np.empty(0, np.int64)
        # Rows of several codes (two sites; aqs_code or full_aqs_code) interleave, and may repeat.
        return np.unique(rows) if len(slices) > 1 else rows

    def matching(self) -> slice | np.ndarray:
        """Every matching row: slice(None) when all do, else their numbers, ascending."""
        if self.selects_all:
            return slice(None)
        candidates = self.candidates()
        if candidates is not None:
            matches: np.ndarray = candidates[self.mask(candidates)]
            return matches
        keep = self.mask(slice(None))
        return slice(None) if keep.all() else np.flatnonzero(keep)

    def _blocks(self, block_rows: int) -> Iterator[np.ndarray]:
        """Matching row numbers in partition order, a block of rows tested at a time."""
        candidates = self.candidates()
        if candidates is not None:
            for start in range(0, len(candidates), block_rows):
                rows = candidates[start:start + block_rows]
                yield rows[self.mask(rows)]
            return
        for start in range(0, self.partition.rows, block_rows):
            yield np.flatnonzero(self.mask(slice(start, min(start + block_rows, self.partition.rows)))) + start

    def selected(self, skip: int = 0, block_rows: int = SCAN_BLOCK_ROWS) -> Iterator[np.ndarray]:
        """Matching row indices in partition order, a block at a time, after skipping `skip` matches."""
        if self.empty:
            return
        for indices in self._blocks(block_rows):
            if skip >= len(indices):
                skip -= len(indices)
                continue
            yield indices[skip:]
            skip = 0


def _within(keep: np.ndarray, values: np.ndarray, bounds: tuple[float | None, float | None],
            missing_allowed: bool = False) -> None:
    low, high = bounds
    if low is None and high is None:
        return
    if not missing_allowed:
        keep &= values != MISSING
    if low is not None:
        keep &= values >= low
    if high is not None:
        keep &= values <= high
