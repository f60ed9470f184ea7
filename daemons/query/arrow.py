"""A query's chunks as Arrow record batches, for Python users (pandas, polars, DuckDB all read Arrow).

Numbers are handed over without a copy (Arrow wraps the numpy buffers decoded from the wire), each
string column stays dictionary-encoded as it travelled (the stream's dictionary and each row's
code), and the time becomes a timestamp in seconds, UTC (the wire carries epoch minutes).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from daemons.query.wire import ColumnBatch, StreamDictionary
from daemons.storage.columns import DICTIONARY, FIELDS, NUMERIC

SECONDS_PER_MINUTE = 60
TIME = pa.timestamp("s", tz="UTC")
STRINGS = pa.dictionary(pa.int32(), pa.string())
SCHEMA = pa.schema([pa.field(name, TIME if name == "datetime" else STRINGS if name in DICTIONARY
                             else pa.from_numpy_dtype(NUMERIC[name]), nullable=False) for name in FIELDS])


def dictionary_array(dictionary: StreamDictionary) -> pa.Array:
    """The dictionary's values so far as an Arrow array, extended as it grows: each value is made
    into Arrow's form once, and the batches of one stream share the array's buffers."""
    made: pa.Array = dictionary.derive("arrow", lambda values: pa.array(values, pa.string()), concat)
    return made


def concat(earlier: pa.Array, later: pa.Array) -> pa.Array:
    return pa.concat_arrays([earlier, later])


def record_batch(batch: ColumnBatch) -> pa.RecordBatch:
    """One chunk as a record batch of SCHEMA, its strings indexing their stream's dictionary as it
    stands now (all of it, for batches converted after the answer ended)."""
    columns = []
    for field in SCHEMA:
        if field.name == "datetime":
            seconds = batch.numeric["datetime"].astype(np.int64) * SECONDS_PER_MINUTE
            columns.append(pa.array(seconds, TIME))
        elif field.name in DICTIONARY:
            codes = pa.array(batch.codes[field.name].astype(np.int32))
            columns.append(pa.DictionaryArray.from_arrays(codes, dictionary_array(batch.dictionaries[field.name])))
        else:
            columns.append(pa.array(batch.numeric[field.name]))
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)
