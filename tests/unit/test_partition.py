"""Partition loading: parse once, then serve from an on-disk cache that any change to the CSVs invalidates."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from daemons.config import PartitionSpec
from daemons.storage.columns import DICTIONARY, NUMERIC
from daemons.storage.partition import Partition, load_partition, read_file
from tests.unit.helpers import CRESCENT_CITY, airnow_csv, write_day_file

SPEC = PartitionSpec("aug10-12", ("20200810", "20200811", "20200812"))


def hour_rows(day: str, hour: str, sites: tuple[str, ...] = ("Crescent City", "Eureka")) -> list:
    moment = f"{day[:4]}-{day[4:6]}-{day[6:]}T{hour}:00"
    return [CRESCENT_CITY._replace(datetime=moment, site_name=site, aqi=10 * index + int(hour))
            for index, site in enumerate(sites)]


@pytest.fixture
def root(tmp_path) -> Path:
    """Days 20200810 and 20200811 with two hourly files each (one malformed line); 20200812 is absent."""
    root = tmp_path / "fire-data"
    for day in ("20200810", "20200811"):
        for hour in ("01", "03"):
            write_day_file(root, day, hour, airnow_csv(hour_rows(day, hour)))
    with (root / "20200811" / "20200811-03.csv").open("a") as out:
        out.write('"not","enough","fields"\n')
    return root


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def assert_same_contents(first: Partition, second: Partition) -> None:
    assert (first.name, first.days, first.rows) == (second.name, second.days, second.rows)
    for name in NUMERIC:
        assert first.numeric[name].dtype == second.numeric[name].dtype == NUMERIC[name], name
        assert np.array_equal(first.numeric[name], second.numeric[name]), name
    for name in DICTIONARY:
        assert first.codes[name].dtype == second.codes[name].dtype, name
        assert np.array_equal(first.codes[name], second.codes[name]), name
        assert first.values[name].tolist() == second.values[name].tolist(), name
        assert first.values[name].dtype == second.values[name].dtype == object, name
    assert (first.skipped_lines, first.skipped_examples) == (second.skipped_lines, second.skipped_examples)
    assert first.missing_days == second.missing_days


def site_and_aqi(partition: Partition) -> list[tuple[str, int]]:
    sites = partition.values["site_name"][partition.codes["site_name"]]
    return list(zip(sites.tolist(), partition.numeric["aqi"].tolist()))


def test_first_load_parses_the_csvs_in_day_and_file_order(root, cache):
    partition = load_partition(SPEC, root, cache)
    assert partition.loaded_from == "csv"
    assert (partition.name, partition.days, partition.rows) == ("aug10-12", SPEC.days, 8)
    assert site_and_aqi(partition) == [("Crescent City", 1), ("Eureka", 11), ("Crescent City", 3), ("Eureka", 13)] * 2
    assert partition.skipped_lines == 1
    assert partition.skipped_examples == ("20200811/20200811-03.csv:3: expected 13 fields, found 3",)
    assert partition.missing_days == ("20200812",)
    assert partition.load_seconds >= 0


def test_second_load_comes_from_the_cache_with_identical_arrays(root, cache):
    parsed = load_partition(SPEC, root, cache)
    cached = load_partition(SPEC, root, cache)
    assert cached.loaded_from == "cache"
    assert_same_contents(parsed, cached)
    assert len(list(cache.glob("*.npz"))) == 1


def test_changed_file_size_invalidates_the_cache(root, cache):
    load_partition(SPEC, root, cache)
    write_day_file(root, "20200810", "03", airnow_csv(hour_rows("20200810", "03", sites=("Redding",))))
    changed = load_partition(SPEC, root, cache)
    assert changed.loaded_from == "csv"
    assert changed.rows == 7
    assert ("Redding", 3) in site_and_aqi(changed)
    again = load_partition(SPEC, root, cache)
    assert again.loaded_from == "cache"
    assert_same_contents(changed, again)
    assert len(list(cache.glob("*.npz"))) == 1  # the stale entry is gone


def test_new_modification_time_invalidates_the_cache(root, cache):
    load_partition(SPEC, root, cache)
    path = root / "20200811" / "20200811-01.csv"
    # Same size, different content, and a different mtime: only the mtime can tell.
    path.write_text(path.read_text().replace('"11"', '"12"'))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = load_partition(SPEC, root, cache)
    assert changed.loaded_from == "csv"
    assert ("Eureka", 12) in site_and_aqi(changed)


def test_touching_a_file_invalidates_the_cache(root, cache):
    load_partition(SPEC, root, cache)
    path = root / "20200810" / "20200810-01.csv"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**9))
    assert load_partition(SPEC, root, cache).loaded_from == "csv"


def test_new_hour_file_invalidates_the_cache(root, cache):
    load_partition(SPEC, root, cache)
    write_day_file(root, "20200810", "05", airnow_csv(hour_rows("20200810", "05")))
    grown = load_partition(SPEC, root, cache)
    assert grown.loaded_from == "csv" and grown.rows == 10


def test_new_day_folder_invalidates_the_cache(root, cache):
    load_partition(SPEC, root, cache)
    write_day_file(root, "20200812", "01", airnow_csv(hour_rows("20200812", "01")))
    grown = load_partition(SPEC, root, cache)
    assert grown.loaded_from == "csv"
    assert grown.rows == 10
    assert grown.missing_days == ()


def test_removed_file_invalidates_the_cache(root, cache):
    load_partition(SPEC, root, cache)
    (root / "20200811" / "20200811-03.csv").unlink()
    shrunk = load_partition(SPEC, root, cache)
    assert shrunk.loaded_from == "csv"
    assert (shrunk.rows, shrunk.skipped_lines) == (6, 0)


def test_files_outside_the_day_pattern_are_ignored(root, cache):
    before = load_partition(SPEC, root, cache)
    (root / "20200810" / "notes.csv").write_text("not data\n")
    (root / "20200810" / "20200810-01.csv.bak").write_text("not data\n")
    (root / "20200813").mkdir()
    write_day_file(root, "20200813", "01", airnow_csv(hour_rows("20200813", "01")))
    after = load_partition(SPEC, root, cache)
    assert after.loaded_from == "cache"
    assert_same_contents(before, after)


def test_missing_days_are_reported_from_csv_and_from_cache(root, cache):
    spec = PartitionSpec("sparse", ("20200809", "20200810", "20200812", "20200813"))
    parsed = load_partition(spec, root, cache)
    cached = load_partition(spec, root, cache)
    assert parsed.missing_days == cached.missing_days == ("20200809", "20200812", "20200813")
    assert (parsed.rows, cached.loaded_from) == (4, "cache")


def test_partition_with_no_data_at_all_loads_empty(tmp_path, cache):
    partition = load_partition(SPEC, tmp_path / "nowhere", cache)
    assert partition.rows == 0
    assert partition.missing_days == SPEC.days
    assert load_partition(SPEC, tmp_path / "nowhere", cache).loaded_from == "cache"


def test_partitions_and_roots_keep_separate_cache_entries(tmp_path, root, cache):
    other_root = tmp_path / "other-data"
    write_day_file(other_root, "20200810", "01", airnow_csv(hour_rows("20200810", "01", sites=("Redding",))))
    other_spec = PartitionSpec("aug10", ("20200810",))
    first = load_partition(SPEC, root, cache)
    other = load_partition(SPEC, other_root, cache)
    narrow = load_partition(other_spec, root, cache)
    assert other.loaded_from == "csv" and site_and_aqi(other) == [("Redding", 1)]
    assert narrow.loaded_from == "csv" and narrow.rows == 4
    assert load_partition(SPEC, root, cache).loaded_from == "cache"
    assert_same_contents(first, load_partition(SPEC, root, cache))
    assert load_partition(SPEC, other_root, cache).loaded_from == "cache"
    assert load_partition(other_spec, root, cache).loaded_from == "cache"


def test_relative_root_uses_the_same_cache_entry(tmp_path, root, cache, monkeypatch):
    load_partition(SPEC, root, cache)
    monkeypatch.chdir(tmp_path)
    assert load_partition(SPEC, Path("fire-data"), cache).loaded_from == "cache"


def test_without_a_cache_dir_every_load_parses(root):
    assert load_partition(SPEC, root, None).loaded_from == "csv"
    assert load_partition(SPEC, root, None).loaded_from == "csv"


DAMAGE = [
    pytest.param(lambda data: b"not a cache entry at all", id="garbage"),
    pytest.param(lambda data: data[:len(data) // 2], id="truncated"),
    pytest.param(lambda data: b"", id="empty"),
    pytest.param(lambda data: data[:400] + bytes([data[400] ^ 0xFF]) + data[401:], id="flipped-byte"),
]


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_cache_entry_is_rebuilt(damage, root, cache):
    parsed = load_partition(SPEC, root, cache)
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(damage(entry.read_bytes()))
    rebuilt = load_partition(SPEC, root, cache)
    assert rebuilt.loaded_from == "csv"
    assert_same_contents(parsed, rebuilt)
    assert load_partition(SPEC, root, cache).loaded_from == "cache"


def test_unwritable_cache_still_loads_the_rows_and_says_why(tmp_path, root):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the cache folder should be")
    errors: list[str] = []
    partition = load_partition(SPEC, root, blocker / "cache", on_cache_error=errors.append)
    assert partition.loaded_from == "csv" and partition.rows == 8
    assert len(errors) == 1 and str(blocker / "cache") in errors[0]
    assert load_partition(SPEC, root, blocker / "cache", on_cache_error=errors.append).loaded_from == "csv"
    assert len(errors) == 2
    assert list(tmp_path.glob("**/.aug10-12-*")) == []  # no temporary file left behind


# -- bad data never stops a partition from loading what it can -----------------------------------------


def test_what_is_not_a_readable_regular_file_is_set_aside_and_named(root, cache):
    day = root / "20200810"
    (day / "20200810-05.csv").mkdir()
    (day / "20200810-06.csv").symlink_to(day / "gone.csv")
    os.mkfifo(day / "20200810-07.csv")
    partition = load_partition(SPEC, root, cache)
    assert partition.rows == 8  # everything readable loaded
    assert partition.skipped_files == (
        "20200810/20200810-05.csv: a directory, not a regular file",
        "20200810/20200810-06.csv: No such file or directory",
        "20200810/20200810-07.csv: a FIFO, not a regular file")
    assert partition.gaps == ("day 20200812 missing on disk", *(f"file {f}" for f in partition.skipped_files))
    cached = load_partition(SPEC, root, cache)
    assert cached.loaded_from == "cache" and cached.skipped_files == partition.skipped_files


def test_a_file_that_cannot_be_read_costs_only_itself(root, cache):
    def read(path: Path) -> bytes:
        if path.name == "20200810-03.csv":
            raise TimeoutError("read did not finish within 30 s")
        if path.name == "20200811-01.csv":
            raise PermissionError(13, "Permission denied")
        return path.read_bytes()

    partition = load_partition(SPEC, root, cache, read=read)
    assert partition.rows == 4
    assert partition.skipped_files == ("20200810/20200810-03.csv: read did not finish within 30 s",
                                       "20200811/20200811-01.csv: Permission denied")


def test_a_read_that_hangs_is_abandoned_after_its_deadline(root, monkeypatch):
    import daemons.storage.partition as storage

    never = threading.Event()
    monkeypatch.setattr(storage.os, "open", lambda *args: never.wait() and 0)  # a dead network mount
    with pytest.raises(TimeoutError, match=r"within 0\.05 s"):
        read_file(root / "20200810" / "20200810-01.csv", timeout=0.05)
    never.set()


def test_a_fifo_put_in_a_files_place_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(OSError, match="a FIFO, not a regular file"):
        read_file(tmp_path / "pipe.csv", timeout=5)


def test_copies_of_the_same_files_have_the_same_fingerprint_and_any_difference_shows(tmp_path, root, cache):
    first = load_partition(SPEC, root, cache)
    assert first.fingerprint.startswith("8:") and first.fingerprint == load_partition(SPEC, root, cache).fingerprint
    copied = tmp_path / "copy"
    shutil.copytree(root, copied)
    assert load_partition(SPEC, copied, None).fingerprint == first.fingerprint  # another host's copy
    (copied / "20200811" / "20200811-01.csv").unlink()
    assert load_partition(SPEC, copied, None).fingerprint.startswith("6:")
    edited = tmp_path / "edited"
    shutil.copytree(root, edited)
    path = edited / "20200810" / "20200810-01.csv"
    path.write_text(path.read_text().replace('"Eureka"', '"Eurekb"'))
    assert load_partition(SPEC, edited, None).fingerprint not in ("", first.fingerprint)


def _edit_cache_entry(cache: Path, edit) -> None:
    (entry,) = cache.glob("*.npz")
    with np.load(entry, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    edit(arrays)
    with entry.open("wb") as out:
        np.savez(out, allow_pickle=False, **arrays)


WELL_FORMED_EDITS = [
    pytest.param(lambda a: a.update(n_aqi=a["n_aqi"][:3]), "column aqi", id="short-column"),
    pytest.param(lambda a: a.update(c_site_name=a["c_site_name"] + 40), "codes site_name", id="codes-out-of-range"),
    pytest.param(lambda a: a.update(n_aqi=a["n_aqi"] + 1), "fingerprint", id="values-changed"),
    pytest.param(lambda a: a.update(n_datetime=a["n_datetime"].astype("<i8")), "column datetime", id="wrong-type"),
]


@pytest.mark.parametrize("edit, reason", WELL_FORMED_EDITS)
def test_a_well_formed_but_edited_cache_entry_is_rejected_named_and_rebuilt(root, cache, edit, reason):
    parsed = load_partition(SPEC, root, cache)
    _edit_cache_entry(cache, edit)
    rejected: list[tuple[Path, str]] = []
    rebuilt = load_partition(SPEC, root, cache, on_cache_rejected=lambda path, why: rejected.append((path, why)))
    assert rebuilt.loaded_from == "csv" and rebuilt.fingerprint == parsed.fingerprint
    assert_same_contents(parsed, rebuilt)
    assert len(rejected) == 1 and reason in rejected[0][1]
    assert load_partition(SPEC, root, cache).loaded_from == "cache"
