"""The observation steps of the extract: its days and hours, and the Timeline every array is indexed by."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

OBSERVATION_DAYS = (dt.date(2020, 8, 10), *(dt.date(2020, 8, 14) + dt.timedelta(days=n) for n in range(42)))
OBSERVATION_HOURS = tuple(range(1, 24, 2))  # the extract keeps the odd UTC hours only


@dataclass(frozen=True, eq=False)
class Timeline:
    stamps: tuple[dt.datetime, ...]
    elapsed_days: np.ndarray
    utc_hours: np.ndarray

    @classmethod
    def of_extract(cls) -> Timeline:
        stamps = tuple(
            dt.datetime.combine(day, dt.time(hour)) for day in OBSERVATION_DAYS for hour in OBSERVATION_HOURS
        )
        elapsed = np.array([(stamp - stamps[0]).total_seconds() / 86400 for stamp in stamps])
        return cls(stamps, elapsed, np.array([stamp.hour for stamp in stamps], dtype=float))

    def __len__(self) -> int:
        return len(self.stamps)
