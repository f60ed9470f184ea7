"""The columnar wire format round-trips rows exactly; aggregates equal a plain-Python group-by and merge exactly."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemons.query import aggregate
from daemons.query.aggregate import METRICS, AggregateTable
from daemons.query.filter import GROUP_KEYS, parse_filter
from daemons.query.wire import ChunkEncoder, RowDecoder
from daemons.rpc import airquality_pb2 as pb
from daemons.storage.columns import DICTIONARY, FIELDS, NUMERIC, PARAMETERS
from daemons.storage.partition import Partition
from tests.unit.helpers import (
    AGENCIES,
    AQIS,
    AQS_PAIRS,
    CONCENTRATIONS,
    CRESCENT_CITY,
    DAYS,
    LATITUDES,
    LONGITUDES,
    MISSING,
    SITES,
    TIMES,
    UNITS,
    Measurement,
    partition_from_measurements,
    pooled_measurements,
)

# --- wire format ---------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
ANY_MEASUREMENT = st.builds(
    Measurement,
    latitude=FLOATS, longitude=FLOATS,
    datetime=st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 12, 31)).map(
        lambda moment: moment.strftime("%Y-%m-%dT%H:%M")),
    parameter=TEXT, concentration=FLOATS, unit=TEXT, raw_concentration=FLOATS,
    aqi=st.integers(-2**31, 2**31 - 1), category=st.integers(-2**15, 2**15 - 1),
    site_name=TEXT, agency_name=TEXT, aqs_code=TEXT, full_aqs_code=TEXT,
)


def round_trip(partition: Partition, indices, name: str = "p", offset: int = 0):
    """Encodes the rows at `indices`, sends the message through its serialized bytes, decodes it."""
    message = pb.RowColumns()
    ChunkEncoder(partition).encode(np.asarray(indices, dtype=np.int64), message)
    received = pb.RowColumns.FromString(message.SerializeToString())
    return received, RowDecoder().decode(received, name, offset)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.one_of(pooled_measurements(), ANY_MEASUREMENT), min_size=1, max_size=25), data=st.data())
def test_every_column_round_trips_exactly(rows, data):
    partition = partition_from_measurements(rows)
    indices = data.draw(st.lists(st.integers(0, len(rows) - 1), max_size=40), label="indices")
    message, batch = round_trip(partition, indices, "aug10-17", offset=12)
    chosen = [rows[i] for i in indices]

    assert (batch.partition, batch.offset, len(batch)) == ("aug10-17", 12, len(indices))
    for name, dtype in NUMERIC.items():
        assert batch.numeric[name].dtype == dtype
        assert batch.numeric[name].tobytes() == partition.numeric[name][indices].tobytes(), name
    for name in FIELDS:
        if name != "datetime":
            assert batch.column(name).tolist() == [getattr(row, name) for row in chosen], name
    assert list(batch.rows()) == [tuple(row) for row in chosen]
    assert list(batch.to_measurements()) == [pb.FireMeasurement(**row._asdict()) for row in chosen]
    for name in DICTIONARY:  # a stream's first chunk holds exactly the values it uses, once each
        values = list(getattr(message, name).values)
        assert len(values) == len(set(values)) and set(values) == {getattr(row, name) for row in chosen}, name


def test_empty_chunk_round_trips():
    message, batch = round_trip(partition_from_measurements([CRESCENT_CITY]), [])
    assert len(batch) == 0 and list(batch.rows()) == []
    assert all(len(getattr(message, name).values) == 0 for name in DICTIONARY)


def test_datetime_rows_are_formatted_to_the_minute():
    rows = [CRESCENT_CITY._replace(datetime=moment) for moment in ("2020-08-10T00:00", "2020-12-31T23:59",
                                                                  "1970-01-01T00:00", "2020-02-29T12:34")]
    _, batch = round_trip(partition_from_measurements(rows), [3, 0, 1, 2])
    assert [row[2] for row in batch.rows()] == ["2020-02-29T12:34", "2020-08-10T00:00", "2020-12-31T23:59",
                                                "1970-01-01T00:00"]


def test_full_chunk_of_distinct_values_uses_every_uint16_code():
    count, chunk = 70_000, 65_536
    rows = partition_from_measurements([CRESCENT_CITY])
    sites = np.array([f"site {n}" for n in range(count)], dtype=object)
    numeric = {name: np.resize(column, count) for name, column in rows.numeric.items()}
    codes = {name: np.zeros(count, np.uint32) for name in DICTIONARY}
    codes["site_name"] = np.arange(count, dtype=np.uint32)[::-1].copy()
    values = dict(rows.values, site_name=sites)
    partition = Partition("big", (), numeric, codes, values, 0, (), (), "csv", 0.0)
    indices = np.arange(count - chunk, count)
    message, batch = round_trip(partition, indices)
    assert len(message.site_name.values) == chunk
    assert batch.codes["site_name"].max() == chunk - 1
    assert batch.column("site_name").tolist() == sites[codes["site_name"][indices]].tolist()


def stream(partition: Partition, chunks: list[list[int]], decoder: RowDecoder | None = None):
    """The chunks of one scan of the partition, encoded, sent as bytes and decoded in order."""
    encoder, decoder = ChunkEncoder(partition), decoder or RowDecoder()
    received = []
    for indices in chunks:
        message = pb.RowColumns()
        encoder.encode(np.asarray(indices, dtype=np.int64), message)
        received.append(pb.RowColumns.FromString(message.SerializeToString()))
    return received, [decoder.decode(message, partition.name) for message in received]


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(pooled_measurements(), min_size=1, max_size=30), data=st.data())
def test_a_stream_sends_each_string_once_and_every_chunk_decodes_exactly(rows, data):
    partition = partition_from_measurements(rows)
    chunks = data.draw(st.lists(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=10), max_size=6))
    messages, batches = stream(partition, chunks)
    for indices, batch in zip(chunks, batches):
        assert list(batch.rows()) == [tuple(rows[i]) for i in indices]
    for name in DICTIONARY:
        sent = [value for message in messages for value in getattr(message, name).values]
        assert len(sent) == len(set(sent)) == len({getattr(rows[i], name) for indices in chunks for i in indices})
        sizes = [len(getattr(message, name).values) for message in messages]
        assert [getattr(message, name).first_index for message in messages] == [sum(sizes[:i]) for i in range(len(sizes))]


def test_a_new_scan_of_the_partition_starts_its_dictionaries_again():
    """After a failover or a resume the partition's rows come from another scan, numbered afresh:
    the decoder drops what it kept, and the rows still decode exactly."""
    rows = [CRESCENT_CITY, CRESCENT_CITY._replace(site_name="Eureka"), CRESCENT_CITY._replace(site_name="Arcata")]
    partition, decoder = partition_from_measurements(rows), RowDecoder()
    _, first = stream(partition, [[0], [1]], decoder)
    _, second = stream(partition, [[2], [1]], decoder)  # the replica's scan, resumed at row 2
    assert [batch.column("site_name").tolist() for batch in first + second] == [
        ["Crescent City"], ["Eureka"], ["Arcata"], ["Eureka"]]
    assert second[0].dictionaries["site_name"] is not first[0].dictionaries["site_name"]


def test_codes_widen_once_a_stream_dictionary_passes_65536_values():
    count = 70_000
    rows = partition_from_measurements([CRESCENT_CITY])
    sites = np.array([f"site {n}" for n in range(count)], dtype=object)
    numeric = {name: np.resize(column, count) for name, column in rows.numeric.items()}
    codes = {name: np.zeros(count, np.uint32) for name in DICTIONARY}
    codes["site_name"] = np.arange(count, dtype=np.uint32)
    partition = Partition("big", (), numeric, codes, dict(rows.values, site_name=sites), 0, (), (), "csv", 0.0)
    messages, batches = stream(partition, [list(range(60_000)), list(range(60_000, count)), [5, 69_999]])
    assert [len(m.site_name.codes) // m.row_count for m in messages] == [2, 4, 4]
    assert [len(m.site_name.values) for m in messages] == [60_000, 10_000, 0]
    assert batches[2].column("site_name").tolist() == ["site 5", "site 69999"]
    assert batches[1].column("site_name").tolist() == sites[60_000:].tolist()


def encoded_sample() -> pb.RowColumns:
    rows = [CRESCENT_CITY, CRESCENT_CITY._replace(site_name="Eureka"), CRESCENT_CITY._replace(aqi=MISSING)]
    message = pb.RowColumns()
    ChunkEncoder(partition_from_measurements(rows)).encode(np.arange(3), message)
    return message


def _shorten_latitude(message):
    message.latitude = message.latitude[:-8]


def _misalign_latitude(message):
    message.latitude = message.latitude[:-3]


def _extra_aqi(message):
    message.aqi += b"\x00\x00\x00\x00"


def _extra_row(message):
    message.row_count = 4


def _missing_row(message):
    message.row_count = 2


def _code_beyond_dictionary(message):
    codes = np.frombuffer(message.site_name.codes, np.uint16).copy()
    codes[1] = len(message.site_name.values)
    message.site_name.codes = codes.tobytes()


def _short_codes(message):
    message.parameter.codes = message.parameter.codes[:-2]


def _odd_codes(message):
    message.unit.codes = message.unit.codes[:-1]


def _no_dictionary(message):
    del message.aqs_code.values[:]


def _continues_no_dictionary(message):
    message.site_name.first_index = 1


def _more_values_than_rows(message):  # never sent by the encoder: it would grow the dictionary for nothing
    message.unit.values.extend(["a", "b", "c"])


@pytest.mark.parametrize("corrupt", [_shorten_latitude, _misalign_latitude, _extra_aqi, _extra_row, _missing_row,
                                     _code_beyond_dictionary, _short_codes, _odd_codes, _no_dictionary,
                                     _continues_no_dictionary, _more_values_than_rows])
def test_corrupt_chunk_raises_value_error(corrupt):
    message = encoded_sample()
    assert len(RowDecoder().decode(message)) == 3
    corrupt(message)
    with pytest.raises(ValueError, match=r"column|buffer size"):  # ours, or numpy's for a torn buffer
        RowDecoder().decode(message)


# --- aggregates ----------------------------------------------------------------------------------

KEY_OF_ROW = {
    "parameter": lambda row: row.parameter,
    "site": lambda row: row.site_name,
    "agency": lambda row: row.agency_name,
    "day": lambda row: row.datetime[:10],
    "hour": lambda row: row.datetime[11:13],
}


def reference_aggregate(rows, group_by) -> dict[tuple, tuple]:
    """Plain-Python group-by: key -> (rows, {metric: values without -999})."""
    groups: dict[tuple, tuple] = {}
    for row in rows:
        count, values = groups.setdefault(tuple(KEY_OF_ROW[key](row) for key in group_by),
                                          ([0], {metric: [] for metric in METRICS}))
        count[0] += 1
        for metric in METRICS:
            if getattr(row, metric) != MISSING:
                values[metric].append(getattr(row, metric))
    return {key: (count[0], values) for key, (count, values) in groups.items()}


def assert_matches_reference(groups: list[pb.AggregateGroup], rows, group_by) -> None:
    expected = reference_aggregate(rows, group_by)
    keys = [tuple(group.key) for group in groups]
    assert keys == sorted(keys)
    assert set(keys) == set(expected) and len(keys) == len(expected)
    for group in groups:
        count, values = expected[tuple(group.key)]
        assert group.rows == count
        for metric in METRICS:
            stats, wanted = getattr(group, metric), values[metric]
            assert stats.count == len(wanted)
            assert stats.sum == pytest.approx(math.fsum(wanted), rel=1e-9, abs=1e-9)
            if wanted:
                assert (stats.min, stats.max) == (min(wanted), max(wanted))
                assert stats.mean == pytest.approx(math.fsum(wanted) / len(wanted), rel=1e-9, abs=1e-9)
            else:
                assert not (stats.HasField("min") or stats.HasField("max") or stats.HasField("mean"))


def sample_rows(count: int, seed: int) -> list[Measurement]:
    generator = random.Random(seed)
    rows = []
    for _ in range(count):
        parameter = generator.choice(PARAMETERS)
        aqs, full_aqs = generator.choice(AQS_PAIRS)
        rows.append(Measurement(
            generator.choice(LATITUDES), generator.choice(LONGITUDES),
            f"{generator.choice(DAYS)}T{generator.choice(TIMES)}", parameter, generator.choice(CONCENTRATIONS),
            UNITS[parameter], generator.choice(CONCENTRATIONS), generator.choice(AQIS), 1,
            generator.choice(SITES), generator.choice(AGENCIES), aqs, full_aqs))
    return rows


SAMPLE = sample_rows(300, seed=2020)
EVERY_GROUPING = [keys for size in range(len(GROUP_KEYS) + 1) for combination in
                  itertools.combinations(GROUP_KEYS, size)
                  for keys in dict.fromkeys((combination, combination[::-1]))]


@pytest.fixture(params=["counting", "sorting"])
def grouping_method(request, monkeypatch):
    """Runs a test with dense (bincount) grouping, then with the np.unique fallback for large key spaces."""
    if request.param == "sorting":
        monkeypatch.setattr(aggregate, "DENSE_GROUPS_MAX", 0)
    return request.param


@pytest.mark.parametrize("group_by", EVERY_GROUPING, ids=["-".join(keys) or "none" for keys in EVERY_GROUPING])
def test_aggregate_equals_plain_python_group_by(group_by, grouping_method):
    table = AggregateTable(group_by)
    assert table.add_partition(parse_filter(pb.QueryFilter()).matcher(partition_from_measurements(SAMPLE))) == 300
    assert_matches_reference(table.to_proto(final=True), SAMPLE, group_by)


def test_aggregate_covers_only_matching_rows():
    message = pb.QueryFilter(parameters=["pm2.5", "OZONE"], min_aqi=50)
    table = AggregateTable(("site", "hour"))
    matched = table.add_partition(parse_filter(message).matcher(partition_from_measurements(SAMPLE)))
    rows = [row for row in SAMPLE if row.parameter in ("PM2.5", "OZONE") and row.aqi != MISSING and row.aqi >= 50]
    assert matched == len(rows) > 0
    assert_matches_reference(table.to_proto(final=True), rows, ("site", "hour"))


def test_aggregate_of_nothing_is_empty():
    table = AggregateTable(("parameter",))
    matcher = parse_filter(pb.QueryFilter(site_names=["Nowhere"])).matcher(partition_from_measurements(SAMPLE))
    assert table.add_partition(matcher) == 0
    assert table.to_proto(final=True) == []


def test_group_whose_values_are_all_missing_has_counts_but_no_min_max_mean():
    rows = [CRESCENT_CITY._replace(concentration=MISSING, aqi=MISSING)] * 3
    table = AggregateTable(())
    table.add_partition(parse_filter(pb.QueryFilter()).matcher(partition_from_measurements(rows)))
    (group,) = table.to_proto(final=True)
    assert (list(group.key), group.rows, group.concentration.count, group.aqi.count) == ([], 3, 0, 0)
    assert not group.aqi.HasField("min") and not group.concentration.HasField("mean")


GROUPINGS = st.permutations(GROUP_KEYS).flatmap(lambda keys: st.integers(0, len(keys)).map(lambda n: tuple(keys[:n])))
FILTERS = st.sampled_from([pb.QueryFilter(), pb.QueryFilter(parameters=["PM2.5"]),
                           pb.QueryFilter(min_concentration=0, max_aqi=100), pb.QueryFilter(site_names=["Nowhere"])])


@settings(max_examples=100, deadline=None)
@given(first=st.lists(pooled_measurements(), max_size=30), second=st.lists(pooled_measurements(), max_size=30),
       group_by=GROUPINGS, message=FILTERS)
def test_merged_partials_equal_aggregating_both_partitions_at_once(first, second, group_by, message):
    query = parse_filter(message)
    partitions = [partition_from_measurements(rows, name) for rows, name in ((first, "a"), (second, "b"))]
    partials = []
    for partition in partitions:
        table = AggregateTable(group_by)
        table.add_partition(query.matcher(partition))
        groups = table.to_proto(final=False)
        assert not any(getattr(group, metric).HasField("mean") for group in groups for metric in METRICS)
        sent = pb.AggregateResponse(groups=groups).SerializeToString()
        partials.append(pb.AggregateResponse.FromString(sent).groups)

    merged = AggregateTable(group_by)
    for groups in partials:
        merged.merge_proto(groups)
    direct = AggregateTable(group_by)
    for partition in partitions:
        direct.add_partition(query.matcher(partition))

    assert merged.to_proto(final=True) == direct.to_proto(final=True)
    matcher_rows = [row for partition, rows in zip(partitions, (first, second))
                    for row, keep in zip(rows, query.matcher(partition).mask(slice(0, partition.rows))) if keep]
    assert_matches_reference(merged.to_proto(final=True), matcher_rows, group_by)


def test_more_groups_than_the_limit_are_refused_before_they_are_named() -> None:
    from daemons.query.aggregate import TooManyGroups

    partition = partition_from_measurements([CRESCENT_CITY._replace(site_name=f"site {i}") for i in range(50)])
    table = AggregateTable(("site",), max_groups=49)
    with pytest.raises(TooManyGroups, match="more than 49 groups"):
        table.add_partition(parse_filter(pb.QueryFilter()).matcher(partition))
    merged = AggregateTable(("site",), max_groups=60)
    merged.add_partition(parse_filter(pb.QueryFilter()).matcher(partition))
    other = AggregateTable(("site",))
    other.add_partition(parse_filter(pb.QueryFilter()).matcher(
        partition_from_measurements([CRESCENT_CITY._replace(site_name=f"other {i}") for i in range(20)])))
    with pytest.raises(TooManyGroups, match="more than 60 groups"):
        merged.merge_proto(other.to_proto(final=False))
