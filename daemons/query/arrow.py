"""A query's chunks as Arrow record batches, for Python users (pandas, polars, DuckDB all read Arrow).

Numbers are handed over without a copy (Arrow wraps the numpy buffers decoded from the wire), each
string column stays dictionary-encoded as it travelled (the chunk's values and each row's code),
and the time becomes a timestamp in seconds, UTC (the wire carries epoch minutes).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from daemons.query.wire import ColumnBatch
from daemons.storage.columns import DICTIONARY, FIELDS, NUMERIC

SECONDS_PER_MINUTE = 60
TIME = pa.timestamp("s", tz="UTC")
STRINGS = pa.dictionary(pa.int32(), pa.string())
SCHEMA = pa.schema([pa.field(name, TIME if name == "datetime" else STRINGS if name in DICTIONARY
                             else pa.from_numpy_dtype(NUMERIC[name]), nullable=False) for name in FIELDS])


def record_batch(batch: ColumnBatch) -> pa.RecordBatch:
    """One chunk as a record batch of SCHEMA."""
    columns = []
    for field in SCHEMA:
        if field.name == "datetime":
            seconds = batch.numeric["datetime"].astype(np.int64) * SECONDS_PER_MINUTE
            columns.append(pa.array(seconds, TIME))
        elif field.name in DICTIONARY:
            codes = pa.array(batch.codes[field.name].astype(np.int32))
            columns.append(pa.DictionaryArray.from_arrays(codes, pa.array(batch.values[field.name], pa.string())))
        else:
            columns.append(pa.array(batch.numeric[field.name]))
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)
