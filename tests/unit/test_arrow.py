"""A query's chunks as Arrow record batches (daemons/query/arrow.py): the same rows as the chunk's
own row view, every column typed as SCHEMA says, the numbers not copied."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from hypothesis import given, settings

from daemons.query.arrow import SCHEMA, record_batch
from daemons.storage.columns import FIELDS
from tests.unit.test_text import batches


@settings(max_examples=100, deadline=None)
@given(batches())
def test_a_record_batch_holds_the_chunks_rows(batch):
    converted = record_batch(batch)
    assert converted.schema == SCHEMA and converted.num_rows == len(batch)
    as_rows = [tuple(row[name] for name in FIELDS) for row in converted.to_pylist()]
    expected = [tuple(datetime.fromisoformat(value).replace(tzinfo=UTC) if name == "datetime" else value
                      for name, value in zip(FIELDS, row, strict=True)) for row in batch.rows()]
    assert as_rows == expected


@settings(max_examples=20, deadline=None)
@given(batches(max_rows=10))
def test_numbers_are_wrapped_not_copied(batch):
    converted = record_batch(batch)
    latitude = converted.column(FIELDS.index("latitude"))
    assert latitude.buffers()[1].address == batch.numeric["latitude"].ctypes.data or len(batch) == 0


@settings(max_examples=30, deadline=None)
@given(batches(), batches())
def test_chunks_with_other_dictionaries_make_one_table(first, second):
    table = pa.Table.from_batches([record_batch(first), record_batch(second)], schema=SCHEMA)
    assert table.num_rows == len(first) + len(second)
    assert table.column("site_name").to_pylist() == [*first.column("site_name"), *second.column("site_name")]
    assert np.array_equal(table.column("aqi").to_numpy(), np.concatenate([first.numeric["aqi"], second.numeric["aqi"]]))
