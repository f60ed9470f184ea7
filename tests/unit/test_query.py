"""Query validation and row selection, checked against a plain-Python filter over the same rows."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemons.query.filter import (
    Filter,
    InvalidQuery,
    parse_chunk_size,
    parse_datetime,
    parse_filter,
    parse_group_by,
    parse_request_id,
)
from daemons.quoting import quoted
from daemons.rpc import airquality_pb2 as pb
from daemons.storage.columns import PARAMETERS
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
    Measurement,
    epoch_minutes,
    partition_from_measurements,
    pooled_measurements,
)

AUG10 = epoch_minutes("2020-08-10T00:00")
FULL_WIDTH_ZERO, ARABIC_INDIC_ZERO = "\uff10", "\u0660"


def other_digits(text: str, zero: str) -> str:
    """`text` with its ASCII digits written in another script's digits, from that script's zero."""
    return text.translate(str.maketrans("0123456789", "".join(chr(ord(zero) + d) for d in range(10))))


def selected_rows(message: pb.QueryFilter, rows: list[Measurement], **selected_arguments) -> list[int]:
    matcher = parse_filter(message).matcher(partition_from_measurements(rows))
    return [int(i) for block in matcher.selected(**selected_arguments) for i in block]


def invalid_query(call, *args) -> str:
    with pytest.raises(InvalidQuery) as caught:
        call(*args)
    return str(caught.value)


# --- datetime bounds -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, upper, minutes", [
    ("2020-08-10", False, AUG10),
    ("2020-08-10", True, AUG10 + 1439),
    ("2020-08-10T05:30", False, AUG10 + 330),
    ("2020-08-10T05:30", True, AUG10 + 330),
    ("2020-08-10T00:00", True, AUG10),
    ("1970-01-01T00:00", False, 0),
    ("2020-02-29", True, epoch_minutes("2020-02-29T23:59")),
    ("2020-12-31T23:59", False, epoch_minutes("2020-12-31T23:59")),
])
def test_datetime_bounds_in_epoch_minutes(text, upper, minutes):
    assert parse_datetime(text, "datetime_from", upper=upper) == minutes


def test_date_bounds_cover_whole_days_and_minutes_are_exact():
    rows = [CRESCENT_CITY._replace(datetime=moment) for moment in
            ("2020-08-09T23:59", "2020-08-10T00:00", "2020-08-10T05:30", "2020-08-10T23:59", "2020-08-11T00:00")]
    assert selected_rows(pb.QueryFilter(datetime_from="2020-08-10", datetime_to="2020-08-10"), rows) == [1, 2, 3]
    assert selected_rows(pb.QueryFilter(datetime_to="2020-08-10"), rows) == [0, 1, 2, 3]
    assert selected_rows(pb.QueryFilter(datetime_from="2020-08-10"), rows) == [1, 2, 3, 4]
    assert selected_rows(pb.QueryFilter(datetime_from="2020-08-10T05:30", datetime_to="2020-08-10T05:30"), rows) == [2]
    assert selected_rows(pb.QueryFilter(datetime_from="2020-08-10T05:31"), rows) == [3, 4]
    assert selected_rows(pb.QueryFilter(datetime_to="2020-08-10T05:29"), rows) == [0, 1]


def test_datetime_with_a_trailing_newline_is_rejected():
    invalid_query(parse_datetime, "2020-08-10\n", "datetime_from", False)


# --- parse_filter --------------------------------------------------------------------------------

def test_empty_filter_sets_nothing():
    assert parse_filter(pb.QueryFilter()) == Filter()


def test_filter_values_are_casefolded_except_aqs_codes():
    query = parse_filter(pb.QueryFilter(parameters=["pm2.5", "OZONE"], site_names=["Straße 5"],
                                        agency_names=["Shasta County AQMD"], aqs_codes=["MX0001"]))
    assert query.parameters == {"pm2.5", "ozone"}
    assert query.site_names == {"strasse 5"}
    assert query.agency_names == {"shasta county aqmd"}
    assert query.aqs_codes == {"MX0001"}


def test_zero_bounds_are_set_and_unset_bounds_are_none():
    assert parse_filter(pb.QueryFilter(min_aqi=0)).aqi == (0.0, None)
    assert parse_filter(pb.QueryFilter(max_aqi=0)).aqi == (None, 0.0)
    assert parse_filter(pb.QueryFilter(min_concentration=0, max_concentration=0)).concentration == (0.0, 0.0)
    assert parse_filter(pb.QueryFilter()).aqi == (None, None)
    assert parse_filter(pb.QueryFilter(bbox=pb.BoundingBox())).bbox == (0.0, 0.0, 0.0, 0.0)
    assert parse_filter(pb.QueryFilter()).bbox is None


def test_zero_bound_never_matches_missing_values_but_unset_matches_everything():
    rows = [CRESCENT_CITY._replace(aqi=aqi, concentration=concentration)
            for aqi, concentration in ((MISSING, MISSING), (0, -1.5), (5, 0.0), (-3, 3.0))]
    assert selected_rows(pb.QueryFilter(), rows) == [0, 1, 2, 3]
    assert selected_rows(pb.QueryFilter(min_aqi=0), rows) == [1, 2]
    assert selected_rows(pb.QueryFilter(max_aqi=0), rows) == [1, 3]
    assert selected_rows(pb.QueryFilter(min_aqi=MISSING), rows) == [1, 2, 3]
    assert selected_rows(pb.QueryFilter(max_concentration=0), rows) == [1, 2]
    assert selected_rows(pb.QueryFilter(min_concentration=0), rows) == [2, 3]
    assert selected_rows(pb.QueryFilter(min_concentration=-2000, max_concentration=2000), rows) == [1, 2, 3]


@pytest.mark.parametrize("fields", [
    {"bbox": pb.BoundingBox(min_latitude=-90, min_longitude=-180, max_latitude=90, max_longitude=180)},
    {"bbox": pb.BoundingBox(min_latitude=41.75613, min_longitude=-124.20347, max_latitude=41.75613,
                            max_longitude=-124.20347)},
    {"datetime_from": "2020-08-10T01:00", "datetime_to": "2020-08-10T01:00"},
    {"datetime_from": "2020-08-10", "datetime_to": "2020-08-10T01:00"},
    {"min_concentration": 17.3, "max_concentration": 17.3},
    {"min_aqi": 62, "max_aqi": 62},
    {"parameters": [*list(PARAMETERS), "pm2.5", "Ozone"]},
    {"site_names": ["x"] * 10_000},
])
def test_boundary_filters_are_accepted_and_match_the_sample_row(fields):
    if "site_names" in fields:
        parse_filter(pb.QueryFilter(**fields))
    else:
        assert selected_rows(pb.QueryFilter(**fields), [CRESCENT_CITY]) == [0]


NAN, INF = float("nan"), float("inf")
INVALID_FILTERS = [
    ({"parameters": ["PM1"]}, "parameters: unknown 'pm1'"),
    ({"parameters": ["PM2.5", "co2", "nox"]}, "parameters: unknown 'co2', 'nox'"),
    ({"parameters": ["PM2.5", ""]}, "parameters[1]: must not be empty"),
    ({"parameters": ["  "]}, "parameters[0]: must not be empty"),
    ({"site_names": ["Crescent City", " "]}, "site_names[1]: must not be empty"),
    ({"agency_names": [""]}, "agency_names[0]: must not be empty"),
    ({"aqs_codes": ["840060150007", "\t"]}, "aqs_codes[1]: must not be empty"),
    ({"site_names": ["x"] * 10_001}, "site_names: at most 10000 values, got 10001"),
    ({"aqs_codes": ["1"] * 10_001}, "aqs_codes: at most 10000 values"),
    ({"bbox": pb.BoundingBox(min_latitude=NAN, max_latitude=1, max_longitude=1)},
     "bbox: every bound must be a finite number"),
    ({"bbox": pb.BoundingBox(max_latitude=1, max_longitude=INF)}, "bbox: every bound must be a finite number"),
    ({"bbox": pb.BoundingBox(min_latitude=0, max_latitude=90.5, max_longitude=1)}, "bbox: latitudes"),
    ({"bbox": pb.BoundingBox(min_latitude=-91, max_latitude=0, max_longitude=1)}, "bbox: latitudes"),
    ({"bbox": pb.BoundingBox(min_longitude=-180.01, max_latitude=1, max_longitude=1)}, "bbox: longitudes"),
    ({"bbox": pb.BoundingBox(max_latitude=1, max_longitude=181)}, "bbox: longitudes"),
    ({"bbox": pb.BoundingBox(min_latitude=2, max_latitude=1, max_longitude=1)}, "bbox: the minimum corner"),
    ({"bbox": pb.BoundingBox(min_longitude=2, max_latitude=1, max_longitude=1)}, "bbox: the minimum corner"),
    ({"datetime_from": "2020/08/10"}, 'datetime_from: expected "YYYY-MM-DDTHH:MM" or "YYYY-MM-DD", got \'2020/08/10\''),
    ({"datetime_from": "2020-08-10T01"}, "datetime_from: expected"),
    ({"datetime_from": "2020-8-10"}, "datetime_from: expected"),
    ({"datetime_from": "2020-02-30"}, "datetime_from: expected"),
    ({"datetime_from": "2020-08-10T24:00"}, "datetime_from: expected"),
    ({"datetime_from": "2020-08-10T12:60"}, "datetime_from: expected"),
    ({"datetime_from": ""}, "datetime_from: expected"),
    ({"datetime_from": "2020-08-10 01:00"}, "datetime_from: expected"),
    ({"datetime_to": "2020-08-10T01:00Z"}, "datetime_to: expected"),
    ({"datetime_to": "yesterday"}, "datetime_to: expected"),
    ({"datetime_from": "2020-08-11", "datetime_to": "2020-08-10"},
     "datetime range is inverted: datetime_from=2020-08-11 is after datetime_to=2020-08-10"),
    ({"datetime_from": "2020-08-10T12:00", "datetime_to": "2020-08-10T11:59"}, "datetime range is inverted"),
    ({"datetime_from": "2020-08-10T00:01", "datetime_to": "2020-08-09"}, "datetime range is inverted"),
    ({"min_concentration": NAN}, "min_concentration: must be a finite number"),
    ({"max_concentration": INF}, "max_concentration: must be a finite number"),
    ({"min_aqi": -INF}, "min_aqi: must be a finite number"),
    ({"max_aqi": NAN}, "max_aqi: must be a finite number"),
    ({"min_concentration": 5, "max_concentration": 4.5},
     "concentration range is inverted: min_concentration=5 is above max_concentration=4.5"),
    ({"min_aqi": 100, "max_aqi": 50}, "AQI range is inverted: min_aqi=100 is above max_aqi=50"),
    # ASCII digits only: int() would read full-width and other scripts' digits as a date
    ({"datetime_from": other_digits("2020", FULL_WIDTH_ZERO) + "-08-10"}, "datetime_from: expected"),
    ({"datetime_from": "2020-08-" + other_digits("10", ARABIC_INDIC_ZERO)}, "datetime_from: expected"),
    ({"datetime_to": "2020-08-10T" + other_digits("12", FULL_WIDTH_ZERO) + ":00"}, "datetime_to: expected"),
    # long values are quoted cut short, with their length
    ({"datetime_from": "2" * 1_000_000},
     "datetime_from: expected \"YYYY-MM-DDTHH:MM\" or \"YYYY-MM-DD\", got '" + "2" * 40 + "'… (1,000,000 characters)"),
    ({"parameters": ["p" * 50]}, "parameters: unknown '" + "p" * 40 + "'… (50 characters) (known: "),
    ({"parameters": ["co2", "nox", "so3", "h2s", "o2"]}, "parameters: unknown 'co2', 'h2s', 'nox' and 2 more (known: "),
]


@pytest.mark.parametrize("fields, message", INVALID_FILTERS,
                         ids=[f"{next(iter(fields))}-{number}" for number, (fields, _) in enumerate(INVALID_FILTERS)])
def test_invalid_filter_names_the_field(fields, message):
    assert invalid_query(parse_filter, pb.QueryFilter(**fields)).startswith(message)


# --- request id, chunk size, group by ------------------------------------------------------------

@pytest.mark.parametrize("request_id", ["r1", "x" * 128, " padded ", "ünïcode-✓"])
def test_request_id_accepted_unchanged(request_id):
    assert parse_request_id(request_id) == request_id


@pytest.mark.parametrize("request_id, message", [
    ("", "request_id: must not be empty"),
    ("   ", "request_id: must not be empty"),
    ("\t\n", "request_id: must not be empty"),
    ("x" * 129, "request_id: at most 128 characters"),
])
def test_invalid_request_id(request_id, message):
    assert invalid_query(parse_request_id, request_id) == message


@pytest.mark.parametrize("value, expected", [(None, 8192), (1, 1), (500, 500), (65536, 65536)])
def test_chunk_size_accepted(value, expected):
    assert parse_chunk_size(value, 8192) == expected


@pytest.mark.parametrize("value", [0, -1, 65537, 2**31 - 1])
def test_invalid_chunk_size(value):
    assert invalid_query(parse_chunk_size, value, 8192) == f"chunk_size: must be in 1..65536, got {value}"


@pytest.mark.parametrize("keys", [[], ["hour", "parameter"], ["parameter", "site", "agency", "day", "hour"], ["day"]])
def test_group_by_accepted_in_request_order(keys):
    assert parse_group_by(pb.AggregateRequest(group_by=keys).group_by) == tuple(keys)


@pytest.mark.parametrize("keys, message", [
    (["parameter", "month"], "group_by[1]: unknown key 'month'"),
    (["Site"], "group_by[0]: unknown key 'Site'"),
    ([""], "group_by[0]: unknown key ''"),
    (["g" * 100_000], "group_by[0]: unknown key '" + "g" * 40 + "'… (100,000 characters) (known: "),
    (["day", "hour", "day"], "group_by: a key is repeated"),
])
def test_invalid_group_by(keys, message):
    assert invalid_query(parse_group_by, keys).startswith(message)


# --- row selection vs a plain-Python reference ---------------------------------------------------

def any_case(names: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.sampled_from(names).flatmap(lambda name: st.sampled_from([name, name.lower(), name.upper(),
                                                                        name.swapcase()]))


AQS_CODES = (*tuple(code for pair in AQS_PAIRS for code in pair), "mx0001", "999")
BOUND_DAYS = ("2020-08-09", *DAYS, "2020-08-13")


def moments() -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(BOUND_DAYS), st.sampled_from((None, *TIMES, "05:17"))).map(
        lambda parts: parts[0] if parts[1] is None else f"{parts[0]}T{parts[1]}")


@st.composite
def query_filters(draw) -> pb.QueryFilter:
    """Any combination of filters, including unknown names and inverted ranges."""
    message = pb.QueryFilter()
    for field, values in (("parameters", any_case(PARAMETERS)), ("site_names", any_case((*SITES, "Nowhere"))),
                          ("agency_names", any_case(AGENCIES)), ("aqs_codes", st.sampled_from(AQS_CODES))):
        if draw(st.booleans()):
            getattr(message, field).extend(draw(st.lists(values, min_size=1, max_size=3)))
    if draw(st.booleans()):
        latitudes = sorted(draw(st.lists(st.sampled_from((*LATITUDES, 33.0, 37.0, 42.0)), min_size=2, max_size=2)))
        longitudes = sorted(draw(st.lists(st.sampled_from((*LONGITUDES, -125.0, -121.0, -117.0)),
                                          min_size=2, max_size=2)))
        message.bbox.CopyFrom(pb.BoundingBox(min_latitude=latitudes[0], min_longitude=longitudes[0],
                                             max_latitude=latitudes[1], max_longitude=longitudes[1]))
    for field, values in (("datetime_from", moments()), ("datetime_to", moments()),
                          ("min_concentration", st.sampled_from((*CONCENTRATIONS, -1000.0, 6.0))),
                          ("max_concentration", st.sampled_from((*CONCENTRATIONS, -1000.0, 6.0))),
                          ("min_aqi", st.sampled_from((*AQIS, -1000, 75.5))),
                          ("max_aqi", st.sampled_from((*AQIS, -1000, 75.5)))):
        if draw(st.booleans()):
            setattr(message, field, draw(values))
    return message


def reference_bounds(message: pb.QueryFilter) -> dict[str, tuple]:
    """Each range filter's (low, high), None where unset; datetimes as "YYYY-MM-DDTHH:MM" text."""
    def bound(field, time_of_day):
        if not message.HasField(field):
            return None
        value = getattr(message, field)
        return value + time_of_day if isinstance(value, str) and "T" not in value else value
    return {"datetime": (bound("datetime_from", "T00:00"), bound("datetime_to", "T23:59")),
            "concentration": (bound("min_concentration", None), bound("max_concentration", None)),
            "aqi": (bound("min_aqi", None), bound("max_aqi", None))}


def reference_accepts(message: pb.QueryFilter, row: Measurement) -> bool:
    """The contract in the .proto, in plain Python: lists OR'ed, filters AND'ed, ranges never match -999."""
    def folded(values):
        return {value.casefold() for value in values}
    if message.parameters and row.parameter.casefold() not in folded(message.parameters):
        return False
    if message.site_names and row.site_name.casefold() not in folded(message.site_names):
        return False
    if message.agency_names and row.agency_name.casefold() not in folded(message.agency_names):
        return False
    if message.aqs_codes and not {row.aqs_code, row.full_aqs_code} & set(message.aqs_codes):
        return False
    if message.HasField("bbox"):
        box = message.bbox
        if not (box.min_latitude <= row.latitude <= box.max_latitude
                and box.min_longitude <= row.longitude <= box.max_longitude):
            return False
    for column, (low, high) in reference_bounds(message).items():
        value = getattr(row, column)
        if column != "datetime" and (low is not None or high is not None) and value == MISSING:
            return False
        if (low is not None and value < low) or (high is not None and value > high):
            return False
    return True


def is_inverted(message: pb.QueryFilter) -> bool:
    return any(low is not None and high is not None and low > high for low, high in reference_bounds(message).values())


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(pooled_measurements(), max_size=40), message=query_filters(),
       block_rows=st.integers(1, 9), skip=st.integers(0, 45), data=st.data())
def test_selection_equals_the_reference_filter(rows, message, block_rows, skip, data):
    if is_inverted(message):
        invalid_query(parse_filter, message)
        return
    expected = [index for index, row in enumerate(rows) if reference_accepts(message, row)]
    matcher = parse_filter(message).matcher(partition_from_measurements(rows))
    # The rows are found by testing every one, or from a string column's row index (any share up to 1).
    indexed = data.draw(st.sampled_from([0.0, 1.0]), label="indexed share")

    assert np.flatnonzero(matcher.mask(slice(0, len(rows)))).tolist() == expected
    start = data.draw(st.integers(0, len(rows)), label="start")
    stop = data.draw(st.integers(start, len(rows)), label="stop")
    assert (np.flatnonzero(matcher.mask(slice(start, stop))) + start).tolist() == [i for i in expected if start <= i < stop]
    if matcher.empty:
        assert expected == []

    with mock.patch("daemons.query.filter.INDEXED_SHARE", indexed):
        blocks = list(matcher.selected(skip=skip, block_rows=block_rows))
        matching = matcher.matching()
    assert [int(i) for block in blocks for i in block] == expected[skip:]
    assert np.arange(len(rows))[matching].tolist() == expected
    for block in blocks:
        assert 0 < len(block) <= block_rows  # rows are tested a block at a time


def test_names_match_case_insensitively_and_aqs_codes_either_column_exactly():
    rows = [CRESCENT_CITY,
            CRESCENT_CITY._replace(site_name="redding HEALTH dept", aqs_code="060890004", full_aqs_code="840060890004"),
            CRESCENT_CITY._replace(site_name="Straße 5", aqs_code="MX0001", full_aqs_code="484MX0001abc")]
    assert selected_rows(pb.QueryFilter(site_names=["Redding Health Dept"]), rows) == [1]
    assert selected_rows(pb.QueryFilter(site_names=["STRASSE 5", "crescent city"]), rows) == [0, 2]
    assert selected_rows(pb.QueryFilter(site_names=["Crescent"]), rows) == []
    assert selected_rows(pb.QueryFilter(aqs_codes=["840060890004", "MX0001"]), rows) == [1, 2]
    assert selected_rows(pb.QueryFilter(aqs_codes=["060890004"]), rows) == [1]
    assert selected_rows(pb.QueryFilter(aqs_codes=["mx0001", "484mx0001ABC"]), rows) == []
    assert selected_rows(pb.QueryFilter(parameters=["pm2.5"], agency_names=[CRESCENT_CITY.agency_name.upper()]),
                         rows) == [0, 1, 2]


def test_filter_naming_nothing_in_the_partition_is_empty():
    matcher = parse_filter(pb.QueryFilter(site_names=["Nowhere"])).matcher(partition_from_measurements([CRESCENT_CITY]))
    assert matcher.empty
    assert list(matcher.selected()) == []
    assert not matcher.mask(slice(0, 1)).any()


def test_skip_past_every_match_yields_nothing():
    rows = [CRESCENT_CITY] * 10
    assert selected_rows(pb.QueryFilter(), rows, skip=10, block_rows=3) == []
    assert selected_rows(pb.QueryFilter(), rows, skip=7, block_rows=3) == [7, 8, 9]
    assert selected_rows(pb.QueryFilter(), rows, skip=0, block_rows=3) == list(range(10))


def test_no_error_message_grows_with_the_values_sent():
    """gRPC sends an error's details as metadata (8 KB by default): an echoed 1 MB value turned
    INVALID_ARGUMENT into RESOURCE_EXHAUSTED."""
    huge = "9" * 1_000_000
    messages = [invalid_query(parse_filter, pb.QueryFilter(datetime_from=huge)),
                invalid_query(parse_filter, pb.QueryFilter(datetime_to=huge)),
                invalid_query(parse_filter, pb.QueryFilter(parameters=[huge] * 100)),
                invalid_query(parse_filter, pb.QueryFilter(parameters=[f"{n}{huge}" for n in range(100)])),
                invalid_query(parse_group_by, (huge,)),
                invalid_query(parse_request_id, huge)]
    assert max(map(len, messages)) < 300, messages


def test_quoted_values_are_whole_up_to_40_characters_then_cut_with_their_length():
    assert quoted("a" * 40) == repr("a" * 40)
    assert quoted("a" * 41) == repr("a" * 40) + "… (41 characters)"
    assert quoted("line\nbreak's") == repr("line\nbreak's")  # escaped: an error stays one line
