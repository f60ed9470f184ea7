"""AirNow CSV parsing: columns and dictionaries, line endings, and malformed lines skipped but counted."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemons.storage.columns import DICTIONARY, FIELDS, NUMERIC
from daemons.storage.csvload import ColumnBuilder
from tests.unit.helpers import CRESCENT_CITY, CRESCENT_CITY_LINE, Measurement, airnow_csv, epoch_minutes

EUREKA = Measurement(40.77694, -124.17806, "2020-08-10T02:00", "OZONE", 31.0, "PPB", 31.0, 29, 1,
                     "Eureka - Jacobs", "North Coast Unified Air Quality Management District", "060231004",
                     "840060231004")
WEAVERVILLE = Measurement(40.734, -122.941, "2020-08-10T03:00", "PM2.5", -999.0, "UG/M3", -999.0, -999, -999,
                          "Weaverville, Courthouse", "Trinity County APCD", "061050002", "840061050002")


class Parsed:
    """What a ColumnBuilder made of some files."""

    def __init__(self, builder: ColumnBuilder):
        self.builder = builder
        self.numeric, self.codes, self.values = builder.finish()

    @property
    def skipped(self):
        return self.builder.skipped

    def column(self, name: str) -> list:
        if name in self.numeric:
            return self.numeric[name].tolist()
        return self.values[name][self.codes[name]].tolist()

    def measurements(self) -> list[tuple]:
        """Rows with datetime as epoch minutes, for comparison with `expected`."""
        return list(zip(*(self.column(name) for name in FIELDS)))


def expected(*rows: Measurement) -> list[tuple]:
    return [row._replace(datetime=epoch_minutes(row.datetime)) for row in rows]


def parse_files(folder: Path, *contents: str | bytes) -> Parsed:
    """The files read together, as a partition's are (add_files: one by one only if that fails)."""
    builder = ColumnBuilder()
    files = []
    for number, content in enumerate(contents):
        path = folder / f"file{number}.csv"
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        files.append((path.read_bytes(), path.name))
    builder.add_files(files)
    return Parsed(builder)


def test_files_read_together_make_the_columns_they_make_one_by_one(tmp_path):
    contents = [airnow_csv([CRESCENT_CITY, EUREKA]), airnow_csv([WEAVERVILLE, CRESCENT_CITY]).rstrip("\n"),
                airnow_csv([EUREKA])]
    together = parse_files(tmp_path, *contents)
    one_by_one = ColumnBuilder()
    for number, content in enumerate(contents):
        one_by_one.add_bytes(content.encode(), f"file{number}.csv")
    alone = Parsed(one_by_one)
    assert together.measurements() == alone.measurements() == expected(CRESCENT_CITY, EUREKA, WEAVERVILLE,
                                                                        CRESCENT_CITY, EUREKA)
    for name in together.values:  # the same dictionaries, in first-appearance order: the same fingerprint
        assert together.values[name].tolist() == alone.values[name].tolist()
        assert together.codes[name].tolist() == alone.codes[name].tolist()


def test_a_bad_file_among_good_ones_loses_only_its_bad_lines_and_is_named(tmp_path):
    bad = f"{line(EUREKA)}\n{line(aqi='62.5')}\n"
    parsed = parse_files(tmp_path, airnow_csv([CRESCENT_CITY]), bad, airnow_csv([WEAVERVILLE]))
    assert parsed.measurements() == expected(CRESCENT_CITY, EUREKA, WEAVERVILLE)
    assert parsed.skipped.count == 1 and parsed.skipped.examples[0].startswith("file1.csv:2: ")


def line(row: Measurement = CRESCENT_CITY, **fields: str) -> str:
    """One quoted AirNow line, with some fields' text replaced."""
    values = [str(value) for value in row]
    for name, text in fields.items():
        values[FIELDS.index(name)] = text
    return ",".join(f'"{value}"' for value in values)


# --- well-formed files ---------------------------------------------------------------------------

def test_airnow_line_gives_typed_columns(tmp_path):
    parsed = parse_files(tmp_path, CRESCENT_CITY_LINE + "\n")
    assert parsed.builder.rows == 1
    assert parsed.skipped.count == 0
    assert parsed.measurements() == expected(CRESCENT_CITY)
    assert parsed.numeric["datetime"].tolist() == [26617020]  # 2020-08-10T01:00Z in minutes since the epoch
    for name, dtype in NUMERIC.items():
        assert parsed.numeric[name].dtype == dtype, name
    assert {name: parsed.values[name].tolist() for name in DICTIONARY} == {
        "parameter": ["PM2.5"], "unit": ["UG/M3"], "site_name": ["Crescent City"],
        "agency_name": ["North Coast Unified Air Quality Management District"],
        "aqs_code": ["840060150007"], "full_aqs_code": ["840060150007"]}


def test_dictionaries_are_shared_across_files_in_first_seen_order(tmp_path):
    parsed = parse_files(tmp_path, airnow_csv([CRESCENT_CITY, EUREKA]), airnow_csv([EUREKA, WEAVERVILLE, EUREKA]))
    assert parsed.builder.rows == 5
    assert parsed.values["site_name"].tolist() == ["Crescent City", "Eureka - Jacobs", "Weaverville, Courthouse"]
    assert parsed.codes["site_name"].tolist() == [0, 1, 1, 2, 1]
    assert parsed.values["agency_name"].tolist() == [CRESCENT_CITY.agency_name, WEAVERVILLE.agency_name]
    assert parsed.measurements() == expected(CRESCENT_CITY, EUREKA, EUREKA, WEAVERVILLE, EUREKA)


def test_site_names_with_commas_and_missing_values_are_kept(tmp_path):
    parsed = parse_files(tmp_path, airnow_csv([WEAVERVILLE]))
    assert parsed.measurements() == expected(WEAVERVILLE)
    assert parsed.column("aqi") == [-999] and parsed.column("category") == [-999]
    assert parsed.column("concentration") == [-999.0]


def test_crlf_file_reads_like_lf_file(tmp_path):
    rows = [CRESCENT_CITY, EUREKA, WEAVERVILLE]
    (tmp_path / "lf").mkdir()
    (tmp_path / "crlf").mkdir()
    lf = parse_files(tmp_path / "lf", airnow_csv(rows, "\n"))
    crlf = parse_files(tmp_path / "crlf", airnow_csv(rows, "\r\n"))
    assert crlf.measurements() == lf.measurements() == expected(*rows)
    assert crlf.skipped.count == 0


def test_file_without_final_newline_is_read(tmp_path):
    assert parse_files(tmp_path, airnow_csv([CRESCENT_CITY, EUREKA]).rstrip("\n")).measurements() == \
        expected(CRESCENT_CITY, EUREKA)


@pytest.mark.parametrize("content", ["", "\n", "\r\n\r\n", "   \n"])
def test_empty_file_gives_no_rows(content, tmp_path):
    parsed = parse_files(tmp_path, content)
    assert parsed.builder.rows == 0 and parsed.skipped.count == 0
    for name, dtype in NUMERIC.items():
        assert parsed.numeric[name].dtype == dtype and len(parsed.numeric[name]) == 0
    for name in DICTIONARY:
        assert len(parsed.codes[name]) == 0 and len(parsed.values[name]) == 0


def test_empty_file_between_others_changes_nothing(tmp_path):
    parsed = parse_files(tmp_path, airnow_csv([CRESCENT_CITY]), "", airnow_csv([EUREKA]))
    assert parsed.measurements() == expected(CRESCENT_CITY, EUREKA)


def test_blank_lines_are_ignored(tmp_path):
    parsed = parse_files(tmp_path, "\n" + airnow_csv([CRESCENT_CITY]) + "\n\n" + airnow_csv([EUREKA]) + "\n")
    assert parsed.measurements() == expected(CRESCENT_CITY, EUREKA)
    assert parsed.skipped.count == 0


def test_doubled_quote_inside_a_text_field_is_an_escaped_quote(tmp_path):
    quoted = CRESCENT_CITY._replace(site_name='Crescent "Harbor" City')
    text = line(site_name='Crescent ""Harbor"" City')
    parsed = parse_files(tmp_path, f"{text}\n{line(EUREKA)}\n")
    assert parsed.measurements() == expected(quoted, EUREKA)
    assert parsed.skipped.count == 0


def test_unquoted_line_with_valid_values_is_read_like_a_quoted_one(tmp_path):
    # The csv-module path accepts a line without quotes when its values are valid; see the report.
    unquoted = ",".join(str(value) for value in EUREKA)
    parsed = parse_files(tmp_path, f"{line()}\n{unquoted}\n")
    assert parsed.measurements() == expected(CRESCENT_CITY, EUREKA)


def test_file_that_is_not_utf8_keeps_its_rows(tmp_path):
    content = (line(site_name="Caf\xe9") + "\n").encode("latin-1")
    parsed = parse_files(tmp_path, content)
    assert parsed.column("site_name") == ["Caf\ufffd"]
    assert parsed.column("aqi") == [62]


# --- malformed lines -----------------------------------------------------------------------------

MALFORMED = [
    ("12 fields", ",".join(line().split(",")[:12]), "expected 13 fields, found 12"),
    ("14 fields", line() + ',"extra"', "expected 13 fields, found 14"),
    ("unquoted with comma in site", ",".join(str(value) for value in WEAVERVILLE), "expected 13 fields, found 14"),
    ("concentration not a number", line(concentration="abc"), "bad concentration 'abc'"),
    ("concentration empty", line(concentration=""), "bad concentration ''"),
    ("concentration in doubled quotes", line(concentration='""17.3""'), "bad concentration"),
    ("raw concentration infinite", line(raw_concentration="inf"), "raw_concentration is not a finite number"),
    ("latitude nan", line(latitude="nan"), "latitude is not a finite number"),
    ("longitude not a number", line(longitude="W124"), "bad longitude 'W124'"),
    ("datetime with a space", line(datetime="2020-08-10 01:00"), "bad datetime '2020-08-10 01:00'"),
    ("datetime without time", line(datetime="2020-08-10"), "bad datetime '2020-08-10'"),
    ("datetime one-digit hour", line(datetime="2020-08-10T1:00"), "bad datetime"),
    ("datetime impossible day", line(datetime="2020-02-30T01:00"), "bad datetime '2020-02-30T01:00'"),
    ("datetime hour 25", line(datetime="2020-08-10T25:00"), "bad datetime"),
    ("datetime beyond int32 minutes", line(datetime="9999-12-31T23:59"), "datetime out of range"),
    ("aqi above int32", line(aqi="2147483648"), "aqi out of range"),
    ("aqi below int32", line(aqi="-2147483649"), "aqi out of range"),
    ("aqi not an integer", line(aqi="62.5"), "bad aqi '62.5'"),
    ("category above int16", line(category="32768"), "category out of range"),
]


@pytest.mark.parametrize("text, reason", [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_malformed_line_is_skipped_and_the_good_lines_kept(text, reason, tmp_path):
    parsed = parse_files(tmp_path, f"{line(CRESCENT_CITY)}\n{text}\n{line(EUREKA)}\n")
    assert parsed.measurements() == expected(CRESCENT_CITY, EUREKA)
    assert parsed.skipped.count == 1
    assert len(parsed.skipped.examples) == 1
    assert parsed.skipped.examples[0].startswith(f"file0.csv:2: {reason}"), parsed.skipped.examples


def test_boundary_integers_are_kept(tmp_path):
    text = "\n".join([line(aqi="2147483647", category="32767"), line(aqi="-2147483648", category="-32768")])
    parsed = parse_files(tmp_path, text)
    assert parsed.column("aqi") == [2**31 - 1, -2**31]
    assert parsed.column("category") == [2**15 - 1, -2**15]


def test_skipped_lines_are_all_counted_but_only_five_shown(tmp_path):
    bad = [line(concentration=f"x{number}") for number in range(7)]
    parsed = parse_files(tmp_path, "\n".join([line(), *bad, line(EUREKA)]))
    assert parsed.skipped.count == 7
    assert parsed.skipped.examples == [f"file0.csv:{number + 2}: bad concentration 'x{number}'" for number in range(5)]
    assert parsed.measurements() == expected(CRESCENT_CITY, EUREKA)


def test_skips_accumulate_across_files_with_each_files_label(tmp_path):
    parsed = parse_files(tmp_path, f"{line(aqi='?')}\n{line()}\n", f"{line(EUREKA)}\n\n{line(unit='x', aqi='!')}\n")
    assert parsed.skipped.count == 2
    assert parsed.skipped.examples == ["file0.csv:1: bad aqi '?'", "file1.csv:3: bad aqi '!'"]
    assert parsed.measurements() == expected(CRESCENT_CITY, EUREKA)


def test_crlf_file_with_a_malformed_line_keeps_the_others(tmp_path):
    parsed = parse_files(tmp_path, "\r\n".join([line(), line(aqi="x"), line(EUREKA)]) + "\r\n")
    assert parsed.measurements() == expected(CRESCENT_CITY, EUREKA)
    assert parsed.skipped.examples == ["file0.csv:2: bad aqi 'x'"]


def test_aqi_beyond_int64_is_skipped_like_any_out_of_range_value(tmp_path):
    parsed = parse_files(tmp_path, f"{line()}\n{line(aqi='99999999999999999999')}\n{line(EUREKA)}\n")
    assert parsed.measurements() == expected(CRESCENT_CITY, EUREKA)
    assert parsed.skipped.examples[0].startswith("file0.csv:2:")


def test_line_numbers_count_lines_inside_multiline_fields(tmp_path):
    parsed = parse_files(tmp_path, f"{line(site_name='Crescent' + chr(10) + 'City')}\n{line(aqi='x')}\n")
    assert parsed.skipped.examples == ["file0.csv:3: bad aqi 'x'"]


def test_trailing_nul_in_a_name_is_kept(tmp_path):
    assert parse_files(tmp_path, line(site_name="City\x00") + "\n").column("site_name") == ["City\x00"]


# --- any valid values round-trip -----------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
FLOATS = st.one_of(st.just(-999.0), st.floats(allow_nan=False, allow_infinity=False))
MOMENTS = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 12, 31))

ROWS = st.builds(
    Measurement,
    latitude=FLOATS, longitude=FLOATS,
    datetime=MOMENTS.map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M")),
    parameter=TEXT, concentration=FLOATS, unit=TEXT, raw_concentration=FLOATS,
    aqi=st.integers(-2**31, 2**31 - 1), category=st.integers(-2**15, 2**15 - 1),
    site_name=TEXT, agency_name=TEXT, aqs_code=TEXT, full_aqs_code=TEXT,
)


def csv_module_rows(content: str) -> list[tuple]:
    """The reference reading: the csv module, with each field converted to its column's type."""
    converters = {name: float for name in NUMERIC if NUMERIC[name].kind == "f"}
    converters.update(aqi=int, category=int, datetime=epoch_minutes)
    rows = []
    for fields in csv.reader(io.StringIO(content, newline="")):
        if fields:
            rows.append(tuple(converters.get(name, str)(value) for name, value in zip(FIELDS, fields)))
    return rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROWS, max_size=8), line_end=st.sampled_from(["\n", "\r\n"]))
def test_any_valid_rows_written_by_the_csv_module_round_trip(rows, line_end, tmp_path):
    content = airnow_csv(rows, line_end)
    parsed = parse_files(tmp_path, content)
    assert parsed.skipped.count == 0, parsed.skipped.examples
    assert parsed.measurements() == csv_module_rows(content) == expected(*rows)


def test_a_byte_order_mark_is_no_part_of_the_first_line_either_way(tmp_path):
    bom = "\ufeff"
    assert parse_files(tmp_path, bom + airnow_csv([CRESCENT_CITY])).measurements() == expected(CRESCENT_CITY)
    # With a malformed line the file goes line by line: the first line is still read.
    parsed = parse_files(tmp_path, f"{bom}{line(CRESCENT_CITY)}\n{line(aqi='62.5')}\n")
    assert parsed.measurements() == expected(CRESCENT_CITY) and parsed.skipped.count == 1
