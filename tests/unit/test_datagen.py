"""The synthetic AirNow data set: layout, file format, internal consistency, determinism, atomic writes."""

from __future__ import annotations

import csv
import hashlib
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from daemons import datagen
from daemons.datagen.tree import DEFAULT_SITES, REAL_SET_SITES

SITES = 40
SEED = 2020
FIELD_COUNT = 13
UNITS = {"PM2.5": "UG/M3", "PM10": "UG/M3", "OZONE": "PPB", "NO2": "PPB", "SO2": "PPB", "CO": "PPM"}
EXPECTED_DAYS = ["20200810"] + [f"202008{day}" for day in range(14, 32)] + [f"202009{day:02d}" for day in range(1, 25)]
EXPECTED_HOURS = [f"{hour:02d}" for hour in range(1, 24, 2)]

LATITUDE, LONGITUDE, DATETIME, PARAMETER, CONCENTRATION, UNIT, RAW, AQI, CATEGORY, SITE, AGENCY, AQS, FULL_AQS = range(13)


def expected_category(aqi: int) -> int:
    for category, upper in enumerate((50, 100, 150, 200, 300), start=1):
        if aqi <= upper:
            return category
    return 6


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file()
    }


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, datagen.GenerationSummary]:
    root = tmp_path_factory.mktemp("generated") / "fire-data"
    return root, datagen.generate(root, sites=SITES, seed=SEED)


@pytest.fixture(scope="module")
def files(tree) -> dict[Path, list[list[str]]]:
    root, _ = tree
    parsed = {}
    for path in sorted(root.rglob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            parsed[path] = list(csv.reader(handle))
    return parsed


@pytest.fixture(scope="module")
def rows(files) -> list[list[str]]:
    return [row for file_rows in files.values() for row in file_rows]


def test_same_arguments_give_byte_identical_trees(tree, tmp_path):
    root, _ = tree
    again = tmp_path / "again"
    datagen.generate(again, sites=SITES, seed=SEED)
    assert tree_digest(again) == tree_digest(root)


def test_another_seed_gives_another_data_set(tree, tmp_path):
    root, _ = tree
    other = tmp_path / "other"
    datagen.generate(other, sites=SITES, seed=SEED + 1)
    assert tree_digest(other) != tree_digest(root)


def test_layout_matches_the_airnow_extract(tree):
    root, summary = tree
    assert sorted(path.name for path in root.iterdir()) == EXPECTED_DAYS
    for day in EXPECTED_DAYS:
        assert sorted(path.name for path in (root / day).iterdir()) == [f"{day}-{hour}.csv" for hour in EXPECTED_HOURS]
    assert summary.files_written == 516
    assert summary.root == root


def test_summary_counts_the_rows_written(tree, rows):
    _, summary = tree
    assert summary.rows_written == len(rows)
    assert 20_000 < len(rows) < 45_000  # about 40 sites x 1.5 parameters x 516 hours, minus gaps


def test_every_line_is_thirteen_quoted_fields_ending_in_lf(files):
    for path in files:
        data = path.read_bytes()
        assert b"\r" not in data and data.endswith(b'"\n')
        for line in data.decode("utf-8").splitlines():
            assert line.startswith('"') and line.endswith('"')
            assert line.count('","') == FIELD_COUNT - 1
    for path, file_rows in files.items():
        assert file_rows, path
        assert all(len(row) == FIELD_COUNT for row in file_rows)


def test_datetime_is_the_hour_of_the_file(files):
    for path, file_rows in files.items():
        day, hour = path.stem.split("-")
        expected = f"{day[:4]}-{day[4:6]}-{day[6:]}T{hour}:00"
        assert {row[DATETIME] for row in file_rows} == {expected}


def test_units_match_parameters(rows):
    assert {row[PARAMETER] for row in rows} == set(UNITS)
    assert all(row[UNIT] == UNITS[row[PARAMETER]] for row in rows)


def test_category_follows_the_aqi_breakpoints(rows):
    for row in rows:
        aqi, category = int(row[AQI]), int(row[CATEGORY])
        if aqi == -999:
            assert category == -999
        else:
            assert aqi >= 0 and category == expected_category(aqi)


def test_aqi_is_missing_for_co_and_missing_concentrations(rows):
    for row in rows:
        if row[PARAMETER] == "CO" or row[CONCENTRATION] == "-999.0":
            assert row[AQI] == "-999"


def test_missing_markers_appear_where_the_real_set_has_them(rows):
    for column, marker in ((CONCENTRATION, "-999.0"), (RAW, "-999.0"), (AQI, "-999"), (CATEGORY, "-999")):
        share = sum(row[column] == marker for row in rows) / len(rows)
        assert 0 < share < 0.1, column
    assert not any(row[column].startswith("-999") for row in rows for column in (LATITUDE, LONGITUDE))


def test_numbers_are_formatted_like_airnow(rows):
    for row in rows:
        for column in (CONCENTRATION, RAW):
            whole, _, tenths = row[column].partition(".")
            assert len(tenths) == 1 and whole.lstrip("-").isdigit(), row
        for column in (LATITUDE, LONGITUDE):
            assert 1 <= len(row[column].partition(".")[2]) <= 6, row
        assert 29 < float(row[LATITUDE]) < 49 and -124 < float(row[LONGITUDE]) < -90, row


def test_aqs_codes(rows):
    for row in rows:
        assert len(row[FULL_AQS]) == 12 and row[FULL_AQS].startswith("840"), row
        assert row[AQS] in (row[FULL_AQS], row[FULL_AQS][3:]), row


def test_site_names_with_commas_survive_quoting(rows):
    names = {row[SITE] for row in rows}
    assert any(", " in name for name in names)
    assert not any('"' in name for name in names)


def test_rows_run_west_to_east_with_each_sites_rows_together(files):
    for file_rows in files.values():
        longitudes = [float(row[LONGITUDE]) for row in file_rows]
        assert longitudes == sorted(longitudes)
        sites = [row[AQS] for row in file_rows]
        seen_runs = [code for index, code in enumerate(sites) if index == 0 or sites[index - 1] != code]
        assert len(seen_runs) == len(set(seen_runs))


def test_sites_report_several_parameters_and_sometimes_skip_hours(rows):
    parameters: dict[str, set[str]] = {}
    hours: dict[tuple[str, str], int] = {}
    for row in rows:
        parameters.setdefault(row[AQS], set()).add(row[PARAMETER])
        hours[row[AQS], row[PARAMETER]] = hours.get((row[AQS], row[PARAMETER]), 0) + 1
    assert len(parameters) == SITES
    assert {len(found) for found in parameters.values()} == {1, 2, 3}
    assert min(hours.values()) < 516  # gaps, as in the real set ...
    assert sum(hours.values()) / (516 * len(hours)) > 0.85  # ... but most hours are there


@pytest.mark.parametrize(
    "parameter, concentration, aqi",
    [
        ("PM2.5", 17.3, 62),  # values as published in the real 2020 extract
        ("PM2.5", 5.2, 22),
        ("PM2.5", 12.0, 50),
        ("PM2.5", 12.1, 51),
        ("PM2.5", 809.8, 704),  # beyond the table: the top segment continues
        ("PM10", 48.0, 44),
        ("PM10", 721.0, 617),
        ("OZONE", 31.0, 29),
        ("OZONE", 40.0, 37),
        ("NO2", 6.6, 6),
        ("NO2", -0.4, 0),
        ("SO2", 1.9, 1),
        ("CO", 0.2, -999),
    ],
)
def test_air_quality_index(parameter, concentration, aqi):
    tenths = np.array([round(concentration * 10)])
    assert datagen.air_quality_index(datagen.POLLUTANTS[parameter], tenths).tolist() == [aqi]


def test_air_quality_index_of_a_missing_concentration_is_missing():
    missing = np.array([datagen.MISSING * 10])
    assert datagen.air_quality_index(datagen.POLLUTANTS["PM2.5"], missing).tolist() == [datagen.MISSING]


def test_ensure_generated_writes_once(tmp_path):
    root = tmp_path / "fire-data"
    assert datagen.ensure_generated(root, sites=5, seed=1) is True
    before = tree_digest(root)
    assert datagen.ensure_generated(root, sites=5, seed=1) is False
    assert tree_digest(root) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fire-data", "fire-data.lock"]


def test_ensure_generated_fills_an_empty_directory(tmp_path):
    root = tmp_path / "fire-data"
    root.mkdir()
    assert datagen.ensure_generated(root, sites=5, seed=1) is True
    assert len(list(root.iterdir())) == 43


def test_generate_replaces_an_existing_tree(tmp_path):
    root = tmp_path / "fire-data"
    datagen.generate(root, sites=5, seed=1)
    (root / "stray.txt").write_text("left over")
    datagen.generate(root, sites=5, seed=2)
    fresh = tmp_path / "fresh"
    datagen.generate(fresh, sites=5, seed=2)
    assert tree_digest(root) == tree_digest(fresh)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fire-data", "fire-data.lock", "fresh", "fresh.lock"]


def test_a_failed_write_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def fail_midway(data, directory):
        (directory / "20200810").mkdir()
        raise OSError("disk full")

    monkeypatch.setattr(datagen.tree, "write_files", fail_midway)  # where _write_tree looks it up
    root = tmp_path / "fire-data"
    with pytest.raises(OSError, match="disk full"):
        datagen.ensure_generated(root, sites=5, seed=1)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fire-data.lock"]


def _ensure_in_child(root: Path) -> bool:
    return datagen.ensure_generated(root, sites=5, seed=1)


def test_concurrent_ensure_generated_writes_once(tmp_path):
    root = tmp_path / "fire-data"
    with multiprocessing.get_context("fork").Pool(2) as pool:
        wrote = pool.map(_ensure_in_child, [root, root])
    assert sorted(wrote) == [False, True]
    assert len(list(root.rglob("*.csv"))) == 516


def test_command_line(tmp_path):
    root = tmp_path / "fire-data"
    runner = CliRunner()
    first = runner.invoke(datagen.main, ["--sites", "5", "--seed", "3", str(root)])
    assert first.exit_code == 0, first.output
    assert "wrote 516 files" in first.output and len(first.output.splitlines()) == 1
    second = runner.invoke(datagen.main, ["--sites", "5", "--seed", "3", str(root)])
    assert second.exit_code == 0 and "nothing written" in second.output
    forced = runner.invoke(datagen.main, ["--sites", "5", "--seed", "4", "--force", str(root)])
    assert forced.exit_code == 0 and "wrote 516 files" in forced.output
    rejected = runner.invoke(datagen.main, ["--sites", "0", str(root)])
    assert rejected.exit_code != 0


def test_scale_asks_for_that_many_times_the_real_seasons_sites(tmp_path, monkeypatch):
    asked: list[int] = []
    monkeypatch.setattr("daemons.datagen.cli.generate_if_absent", lambda root, sites, seed: asked.append(sites))
    runner = CliRunner()
    assert runner.invoke(datagen.main, ["--scale", "10", str(tmp_path)]).exit_code == 0
    assert runner.invoke(datagen.main, [str(tmp_path)]).exit_code == 0
    assert asked == [10 * REAL_SET_SITES, DEFAULT_SITES]
    both = runner.invoke(datagen.main, ["--scale", "2", "--sites", "5", str(tmp_path)])
    assert both.exit_code == 2 and "give --sites or --scale, not both" in both.output
    assert runner.invoke(datagen.main, ["--scale", "0", str(tmp_path)]).exit_code == 2
