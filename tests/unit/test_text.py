"""Chunks as text (daemons/query/text.py): byte for byte what the csv module and json.dumps make of
the same rows one at a time, for any values the columns can hold; and a table's rounded floats."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemons.cli.output import RENDER_THREADS, RowWriter, table_cell
from daemons.query.text import ChunkText, csv_field
from daemons.query.wire import ChunkEncoder, ColumnBatch, RowDecoder, StreamDictionary
from daemons.rpc import airquality_pb2 as pb
from daemons.storage.columns import DICTIONARY, FIELDS, NUMERIC, SHORT_CODE
from tests.unit.helpers import Measurement, partition_from_measurements, pooled_measurements

finite = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
MINUTES_2020 = (26_000_000, 27_000_000)  # epoch minutes around the fire season


def column_batch(numeric: dict[str, np.ndarray], codes: dict[str, np.ndarray],
                 values: dict[str, np.ndarray]) -> ColumnBatch:
    """A chunk that opens its stream: each string column's dictionary holds `values`."""
    dictionaries = {name: StreamDictionary() for name in values}
    for name, dictionary in dictionaries.items():
        dictionary.extend(list(values[name]))
    return ColumnBatch("p", 0, numeric, codes, {name: d.values for name, d in dictionaries.items()}, dictionaries)


@st.composite
def batches(draw, max_rows: int = 40) -> ColumnBatch:
    rows = draw(st.integers(0, max_rows))
    numeric = {}
    for name, dtype in NUMERIC.items():
        if name == "datetime":
            values = draw(st.lists(st.integers(*MINUTES_2020), min_size=rows, max_size=rows))
        elif dtype.kind == "f":
            # Few distinct values, as in real chunks, and any double: exponents, -0.0, -999.0.
            pool = draw(st.lists(finite, min_size=1, max_size=5))
            values = draw(st.lists(st.sampled_from(pool), min_size=rows, max_size=rows))
        else:
            limits = np.iinfo(dtype)
            values = draw(st.lists(st.integers(int(limits.min), int(limits.max)), min_size=rows, max_size=rows))
        numeric[name] = np.array(values, dtype)
    codes, values = {}, {}
    for name in DICTIONARY:
        dictionary = draw(st.lists(text, min_size=1, max_size=6, unique=True))
        values[name] = np.array(dictionary, dtype=object)
        codes[name] = np.array(draw(st.lists(st.integers(0, len(dictionary) - 1), min_size=rows, max_size=rows)),
                               SHORT_CODE)
    return column_batch(numeric, codes, values)


def row_by_row(chunks: list[ColumnBatch], output_format: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for batch in chunks:
        for row in batch.rows():
            if output_format == "csv":
                writer.writerow(row)
            else:
                out.write(json.dumps(dict(zip(FIELDS, row))) + "\n")
    return out.getvalue()


@settings(max_examples=200, deadline=None)
@given(st.lists(batches(), min_size=1, max_size=3), st.sampled_from(["csv", "jsonl"]))
def test_a_chunk_at_a_time_is_what_row_by_row_makes(chunks, output_format):
    text_of = ChunkText(output_format)  # one writer for all chunks: its caches carry over
    assert b"".join(bytes(text_of.render(batch)) for batch in chunks).decode() == row_by_row(chunks, output_format)


def test_a_value_needing_quotes_is_quoted_as_the_csv_module_does():
    batch = column_batch({name: np.zeros(2, dtype) for name, dtype in NUMERIC.items()},
                        {name: np.array([0, 1], SHORT_CODE) for name in DICTIONARY},
                        {name: np.array(['Say "hi", then\nleave', ""], dtype=object) for name in DICTIONARY})
    assert bytes(ChunkText("csv").render(batch)).decode() == row_by_row([batch], "csv")


def test_every_character_anywhere_in_a_string_is_written_as_the_csv_module_writes_it():
    """csv_field asks the module only about values holding a character that may need quotes: every
    other character, alone or inside or at either end of a value, is left as the module leaves it.
    Past U+3000 nothing new could differ: the module's dialect names only ASCII characters."""
    def module_row(values: list[str]) -> str:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(values)
        return out.getvalue()

    for code_point in range(0x3000):
        character = chr(code_point)
        for value in (character, f"a{character}b", f"{character}a", f"a{character}"):
            assert csv_field(value) + ",x\n" == module_row([value, "x"]), repr(value)


def test_the_writer_puts_the_header_first_then_the_chunks():
    out = io.StringIO()
    writer = RowWriter("csv", FIELDS, out)
    batch = column_batch({name: np.ones(1, dtype) for name, dtype in NUMERIC.items()},
                        {name: np.zeros(1, SHORT_CODE) for name in DICTIONARY},
                        {name: np.array(["x"], dtype=object) for name in DICTIONARY})
    writer.write_batches([batch, batch])
    assert out.getvalue() == ",".join(FIELDS) + "\n" + row_by_row([batch, batch], "csv")


def test_a_table_rounds_computed_floats_and_keeps_measured_ones():
    assert table_cell(0.34618653069896094) == "0.3462"
    assert table_cell(12.3456789) == "12.3457"
    assert table_cell(40.776943) == "40.776943"
    assert table_cell(-124.20347) == "-124.20347"  # a coordinate as the source wrote it
    assert table_cell(9.0) == "9.0"
    assert table_cell(1e-05) == "1e-05"
    assert table_cell(3) == "3"
    assert table_cell(None) == ""


def test_a_chunk_with_tens_of_thousands_of_distinct_strings_per_column_is_still_right():
    """Four string columns of 60,000 distinct values each: their combinations' numbering would pass
    int64's range unless renumbered on the way."""
    rows, distinct = 65536, 60000
    rng = np.random.default_rng(7)
    numeric = {name: (rng.integers(*MINUTES_2020, rows) if name == "datetime" else rng.integers(0, 5, rows)).astype(dtype)
               for name, dtype in NUMERIC.items()}
    batch = column_batch(numeric, {name: rng.integers(0, distinct, rows).astype(SHORT_CODE) for name in DICTIONARY},
                        {name: np.array([f"{name} {index}" for index in range(distinct)], dtype=object)
                         for name in DICTIONARY})
    assert bytes(ChunkText("csv").render(batch)).decode() == row_by_row([batch], "csv")


@settings(max_examples=60, deadline=None)
@given(st.lists(pooled_measurements(), min_size=1, max_size=60), st.integers(1, 7), st.sampled_from(["csv", "jsonl"]))
def test_a_stream_whose_dictionaries_grow_chunk_by_chunk_is_what_row_by_row_makes(rows: list[Measurement],
                                                                                  chunk: int, output_format: str):
    """Through the real encoder and decoder: later chunks carry only their new strings, and each
    value's text is made once, as the dictionary grows."""
    partition = partition_from_measurements(rows)
    encoder, decoder = ChunkEncoder(partition), RowDecoder()
    chunks = []

    def decoded() -> Iterator[ColumnBatch]:
        """Decoded as they are asked for, as bin/query does: a dictionary grows while the writer's
        threads make earlier chunks into text."""
        for start in range(0, len(rows), chunk):
            message = pb.RowColumns()
            encoder.encode(np.arange(start, min(start + chunk, len(rows))), message)
            chunks.append(decoder.decode(pb.RowColumns.FromString(message.SerializeToString()), "p", start))
            yield chunks[-1]

    out = binary_text_stream()
    RowWriter(output_format, FIELDS, out).write_batches(decoded())
    header = ",".join(FIELDS) + "\n" if output_format == "csv" else ""
    assert written(out) == header + row_by_row(chunks, output_format)
    assert [row for batch in chunks for row in batch.rows()] == [tuple(row) for row in rows]


def binary_text_stream() -> io.TextIOWrapper:
    """A text stream with a binary buffer below it, as stdout is: the writer puts chunks there."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")


def written(out: io.TextIOWrapper) -> str:
    out.flush()
    buffer = out.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode()


def one_row_chunks(count: int) -> list[ColumnBatch]:
    """Chunks of one row each, told apart by their aqi (0, 1, ...)."""
    return [column_batch({name: np.full(1, index if name == "aqi" else 1, dtype) for name, dtype in NUMERIC.items()},
                         {name: np.zeros(1, SHORT_CODE) for name in DICTIONARY},
                         {name: np.array(["x"], dtype=object) for name in DICTIONARY}) for index in range(count)]


def test_chunks_made_into_text_on_threads_are_written_in_order_with_few_taken_ahead(monkeypatch):
    """The first chunk's text is held back: the later ones, made meanwhile, wait for it, and the
    writer takes no more than RENDER_THREADS + 1 chunks ahead of what it has written."""
    chunks = one_row_chunks(12)
    release = threading.Event()
    render = ChunkText.render

    def slow_first(self: ChunkText, batch: ColumnBatch) -> memoryview:
        if batch is chunks[0]:
            assert release.wait(10)
        return render(self, batch)

    monkeypatch.setattr(ChunkText, "render", slow_first)
    out = binary_text_stream()
    taken = []

    def given() -> Iterator[ColumnBatch]:
        for batch in chunks:
            if len(taken) == RENDER_THREADS:  # the last that may be taken before the first is written
                threading.Timer(0.2, release.set).start()
            taken.append(batch)
            assert len(taken) <= RENDER_THREADS + 1 or release.is_set(), "taken ahead of the first chunk's text"
            yield batch

    RowWriter("csv", FIELDS, out).write_batches(given())
    assert written(out) == ",".join(FIELDS) + "\n" + row_by_row(chunks, "csv")


def test_chunks_that_came_before_the_stream_broke_are_all_written():
    chunks = one_row_chunks(5)

    def breaking() -> Iterator[ColumnBatch]:
        yield from chunks
        raise ConnectionError("the answer's stream broke")

    out = binary_text_stream()
    with pytest.raises(ConnectionError):
        RowWriter("jsonl", FIELDS, out).write_batches(breaking())
    assert written(out) == row_by_row(chunks, "jsonl")


def test_a_table_of_chunks_is_sized_by_its_first_rows_and_an_empty_answer_has_its_header():
    out = io.StringIO()
    RowWriter("table", FIELDS, out).write_batches(one_row_chunks(2))
    header, first, second = out.getvalue().splitlines()
    assert header.split() == list(FIELDS) and len(first) == len(second)
    for output_format, expected in (("csv", ",".join(FIELDS) + "\n"), ("jsonl", ""), ("table", "  ".join(FIELDS) + "\n")):
        out = binary_text_stream()
        RowWriter(output_format, FIELDS, out).write_batches([])
        assert written(out) == expected


def test_coordinates_texts_kept_across_chunks_stay_exact(monkeypatch):
    """The coordinates' texts are kept across chunks by the value's bits: -0.0 is not 0.0, a NaN
    is found again, and the kept texts starting afresh (made small here) changes nothing."""
    monkeypatch.setattr("daemons.query.text.MAX_KEPT_TEXTS", 3)
    text_of = ChunkText("csv")
    chunks = []
    for latitudes in ([0.0, -0.0, 1.5], [1.5, 2.25, -0.0, float("nan")], [float("nan"), 0.0, 7.0, 8.0, 1.5]):
        rows = len(latitudes)
        numeric = {name: np.array(latitudes, dtype) if name in ("latitude", "longitude") else np.zeros(rows, dtype)
                   for name, dtype in NUMERIC.items()}
        chunks.append(column_batch(numeric, {name: np.zeros(rows, SHORT_CODE) for name in DICTIONARY},
                                   {name: np.array(["x"], dtype=object) for name in DICTIONARY}))
    assert b"".join(bytes(text_of.render(batch)) for batch in chunks).decode() == row_by_row(chunks, "csv")
