"""Shared test helpers: AirNow rows as Python values, their CSV text, and small in-memory partitions.

`partition_from_measurements` builds a Partition without the CSV loader, so the query, wire and
aggregate tests check those modules against plain Python and not against daemons.storage.csvload.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st

from daemons.storage.columns import DICTIONARY, FIELDS, MISSING, NUMERIC, PARAMETERS
from daemons.storage.partition import Partition


class Measurement(NamedTuple):
    """One AirNow row as Python values, fields in CSV order; datetime as "YYYY-MM-DDTHH:MM"."""

    latitude: float
    longitude: float
    datetime: str
    parameter: str
    concentration: float
    unit: str
    raw_concentration: float
    aqi: int
    category: int
    site_name: str
    agency_name: str
    aqs_code: str
    full_aqs_code: str


assert Measurement._fields == FIELDS

CRESCENT_CITY = Measurement(
    41.75613, -124.20347, "2020-08-10T01:00", "PM2.5", 17.3, "UG/M3", 18.0, 62, 2, "Crescent City",
    "North Coast Unified Air Quality Management District", "840060150007", "840060150007")

# The same row exactly as it appears in an AirNow file.
CRESCENT_CITY_LINE = ('"41.75613","-124.20347","2020-08-10T01:00","PM2.5","17.3","UG/M3","18.0","62","2",'
                      '"Crescent City","North Coast Unified Air Quality Management District","840060150007",'
                      '"840060150007"')


def csv_fields(row: Sequence) -> list[str]:
    """A row's values as CSV field text; floats in Python's shortest round-trip form."""
    return [repr(value) if isinstance(value, float) else str(value) for value in row]


def airnow_csv(rows: Iterable[Sequence], line_end: str = "\n") -> str:
    """Rows in the AirNow layout: every field double-quoted, one row per line."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator=line_end)
    for row in rows:
        writer.writerow(csv_fields(row))
    return out.getvalue()


def write_day_file(root: Path, day: str, hour: str, content: str | bytes) -> Path:
    """Writes root/YYYYMMDD/YYYYMMDD-HH.csv, the AirNow extract's layout."""
    path = root / day / f"{day}-{hour}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def epoch_minutes(text: str) -> int:
    """"YYYY-MM-DDTHH:MM" (UTC) -> minutes since the Unix epoch."""
    moment = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M")
    return calendar.timegm(moment.timetuple()) // 60


def partition_from_measurements(rows: Sequence[Measurement], name: str = "test") -> Partition:
    """A Partition holding `rows` in order, dictionaries numbered by first appearance."""
    numeric: dict[str, np.ndarray] = {}
    for column, dtype in NUMERIC.items():
        column_values = [epoch_minutes(row.datetime) if column == "datetime" else getattr(row, column) for row in rows]
        numeric[column] = np.array(column_values, dtype=dtype)
    codes: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    for column in DICTIONARY:
        table: dict[str, int] = {}
        codes[column] = np.array([table.setdefault(getattr(row, column), len(table)) for row in rows], np.uint16)
        values[column] = np.array(list(table), dtype=object)
    return Partition(name, (), numeric, codes, values, 0, (), (), "csv", 0.0)


# Small value pools, so that random filters and group keys hit some rows and miss others.
SITES = ("Crescent City", "Eureka - Jacobs", "Weaverville, Courthouse", "redding HEALTH dept", "Straße 5")
AGENCIES = ("North Coast Unified AQMD", "Shasta County AQMD", "San Joaquin Valley APCD")
AQS_PAIRS = (("060150007", "840060150007"), ("060231004", "840060231004"), ("MX0001", "484MX0001abc"))
UNITS = {"PM2.5": "UG/M3", "PM10": "UG/M3", "OZONE": "PPB", "NO2": "PPB", "SO2": "PPB", "CO": "PPM"}
LATITUDES = (34.1, 36.5, 38.0, 40.25, 41.75613)
LONGITUDES = (-124.20347, -122.5, -120.0, -118.25)
CONCENTRATIONS = (MISSING, -1.5, 0.0, 5.5, 12.0, 35.4, 100.25)
AQIS = (MISSING, 0, 1, 50, 51, 100, 151)
DAYS = ("2020-08-10", "2020-08-11", "2020-08-12")
TIMES = ("00:00", "00:59", "01:00", "12:30", "23:00", "23:59")


@st.composite
def pooled_measurements(draw) -> Measurement:
    """A row whose every value comes from a small pool."""
    parameter = draw(st.sampled_from(PARAMETERS))
    aqs, full_aqs = draw(st.sampled_from(AQS_PAIRS))
    return Measurement(
        latitude=draw(st.sampled_from(LATITUDES)),
        longitude=draw(st.sampled_from(LONGITUDES)),
        datetime=f"{draw(st.sampled_from(DAYS))}T{draw(st.sampled_from(TIMES))}",
        parameter=parameter,
        concentration=draw(st.sampled_from(CONCENTRATIONS)),
        unit=UNITS[parameter],
        raw_concentration=draw(st.sampled_from(CONCENTRATIONS)),
        aqi=draw(st.sampled_from(AQIS)),
        category=draw(st.sampled_from((MISSING, 1, 2, 3))),
        site_name=draw(st.sampled_from(SITES)),
        agency_name=draw(st.sampled_from(AGENCIES)),
        aqs_code=aqs,
        full_aqs_code=full_aqs,
    )
