"""The AirNow row schema, shared by the CSV loader, the in-memory store and the wire format."""

from __future__ import annotations

from typing import Any

import numpy as np

# CSV column order, which is also the order of FireMeasurement's fields and of CSV output.
FIELDS = (
    "latitude", "longitude", "datetime", "parameter", "concentration", "unit", "raw_concentration",
    "aqi", "category", "site_name", "agency_name", "aqs_code", "full_aqs_code",
)

# Numeric columns and their little-endian storage and wire types. datetime is minutes since the
# Unix epoch (UTC), which keeps time filters integer comparisons.
NUMERIC: dict[str, np.dtype[Any]] = {
    "latitude": np.dtype("<f8"),
    "longitude": np.dtype("<f8"),
    "datetime": np.dtype("<i4"),
    "concentration": np.dtype("<f8"),
    "raw_concentration": np.dtype("<f8"),
    "aqi": np.dtype("<i4"),
    "category": np.dtype("<i2"),
}

# String columns, stored dictionary-encoded: a small table of distinct values plus a code per row.
DICTIONARY = ("parameter", "unit", "site_name", "agency_name", "aqs_code", "full_aqs_code")

MISSING = -999  # AirNow's marker for a missing value

PARAMETERS = ("PM2.5", "PM10", "OZONE", "NO2", "SO2", "CO")

MINUTES_PER_DAY = 1440

# Codes into a dictionary of strings, in memory and on the wire: uint16 while it holds at most
# 65,536 values, uint32 past that.
SHORT_CODE = np.dtype("<u2")
LONG_CODE = np.dtype("<u4")


def code_type(dictionary_size: int) -> np.dtype[Any]:
    return SHORT_CODE if dictionary_size <= 1 << 16 else LONG_CODE


def format_datetime(minutes: np.ndarray) -> np.ndarray:
    """Epoch minutes -> "YYYY-MM-DDTHH:MM" strings, vectorised."""
    return np.datetime_as_string(minutes.astype("datetime64[m]"), unit="m")
