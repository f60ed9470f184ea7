"""A partition: the rows of some day folders, held column-wise in memory, cached on disk.

Loading from the on-disk cache takes milliseconds where parsing the CSVs takes seconds, and a
restarted daemon is only as quick to serve again as its load, so recovery time depends on it. The
cache key covers every CSV's name, size, mode and modification time, so any change to the files
makes the daemon parse again; entries are written atomically, so a crash never leaves a torn one,
and an entry is checked against its own content fingerprint before it is trusted.

Every copy of a partition has a content fingerprint, "rows:checksum" over its columns in scan
order: two copies with equal fingerprints answer every query with the same rows in the same
order, which is what lets one take over another's stream mid-way. A copy also knows its gaps,
the configured days missing on disk and the files it could not read: answers from it are
incomplete by exactly those.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import hashlib
import json
import os
import stat
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from daemons.config import PartitionSpec
from daemons.locking import exclusive_lock
from daemons.storage.columns import DICTIONARY, LONG_CODE, NUMERIC, SHORT_CODE
from daemons.storage.csvload import ColumnBuilder

CACHE_FORMAT = 3
# A read that takes longer than this (a hung network mount) costs its file, not the daemon.
FILE_READ_TIMEOUT_SECONDS = 30.0
_CODE_TYPES = (SHORT_CODE, LONG_CODE)


class CacheRejected(ValueError):
    """A cache entry that fails its checks; the message says which."""


@dataclass
class Partition:
    name: str
    days: tuple[str, ...]
    numeric: dict[str, np.ndarray]  # column -> values, one per row
    codes: dict[str, np.ndarray]  # dictionary column -> code per row
    values: dict[str, np.ndarray]  # dictionary column -> distinct values (object array of str)
    skipped_lines: int
    skipped_examples: tuple[str, ...]
    missing_days: tuple[str, ...]
    loaded_from: str  # "csv" or "cache"
    load_seconds: float
    skipped_files: tuple[str, ...] = ()  # "20200915/20200915-03.csv: why it could not be read"
    fingerprint: str = field(default="")  # computed from the columns when not given
    # What queries look up in the columns, made on first use (the rows never change); threads racing
    # to make one make the same.
    _indexes: dict[tuple[str, ...], Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = content_fingerprint(self.numeric, self.codes, self.values)

    @property
    def rows(self) -> int:
        return len(self.numeric["datetime"])

    @functools.cached_property
    def minutes(self) -> tuple[int, int] | None:
        """The first and last minute of its rows (epoch minutes, UTC); None when it holds none.
        Worked out once: the rows never change, and every status fetch reports it."""
        times = self.numeric["datetime"]
        return (int(times.min()), int(times.max())) if len(times) else None

    def _index(self, key: tuple[str, ...], make: Callable[[], Any]) -> Any:
        made = self._indexes.get(key)
        if made is None:
            made = self._indexes[key] = make()
        return made

    def codes_by_value(self, column: str, folded: bool) -> dict[str, np.ndarray]:
        """A string column's codes by value (casefolded, when `folded`: several values may fold
        alike): a filter finds its few values without going through the whole dictionary each
        query (casefolding 1,350 site names took 0.5 of a worker's 2.1 ms a one-site query,
        measured 2026-11-30)."""
        def make() -> dict[str, np.ndarray]:
            found: dict[str, list[int]] = {}
            for code, value in enumerate(self.values[column].tolist()):
                found.setdefault(value.casefold() if folded else value, []).append(code)
            return {value: np.array(codes, np.int64) for value, codes in found.items()}

        made: dict[str, np.ndarray] = self._index(("by value", column, "folded" if folded else ""), make)
        return made

    def code_counts(self, column: str) -> np.ndarray:
        """How many rows hold each code of a string column."""
        made: np.ndarray = self._index(("counts", column), lambda: np.bincount(
            self.codes[column], minlength=len(self.values[column])))
        return made

    def rows_with_codes(self, column: str, codes: Iterable[int]) -> list[np.ndarray]:
        """The rows holding each of `codes`, ascending, from the column's row index (4 bytes a row):
        a filter on a few sites reads their rows instead of testing every row."""
        def make() -> tuple[np.ndarray, np.ndarray]:
            order = np.argsort(self.codes[column], kind="stable").astype(np.int32 if self.rows < 1 << 31 else np.int64)
            starts = np.zeros(len(self.values[column]) + 1, np.int64)
            np.cumsum(self.code_counts(column), out=starts[1:])
            return order, starts

        order, starts = self._index(("rows", column), make)
        return [order[starts[code]:starts[code + 1]] for code in codes]

    @property
    def gaps(self) -> tuple[str, ...]:
        """What this copy lacks of its configured days, one phrase each; empty when it has it all."""
        return (*(f"day {day} missing on disk" for day in self.missing_days),
                *(f"file {entry}" for entry in self.skipped_files))


def content_fingerprint(numeric: dict[str, np.ndarray], codes: dict[str, np.ndarray],
                        values: dict[str, np.ndarray]) -> str:
    """"rows:checksum" of the columns in scan order (BLAKE2b, about 25 ms for 300,000 rows)."""
    digest = hashlib.blake2b(digest_size=16)
    for name in NUMERIC:
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(numeric[name]).data)
    for name in DICTIONARY:
        digest.update(name.encode())
        digest.update("\0".join(values[name].tolist()).encode("utf-8", "surrogatepass"))
        digest.update(str(codes[name].dtype).encode())
        digest.update(np.ascontiguousarray(codes[name]).data)
    return f"{len(numeric['datetime'])}:{digest.hexdigest()}"


@dataclass
class _Listing:
    files: list[tuple[Path, os.stat_result]] = field(default_factory=list)
    missing_days: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "day/file: why"


def _file_kind(mode: int) -> str:
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket",
             stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    return next((kind for test, kind in kinds.items() if test(mode)), "not a regular file")


def _list_files(root: Path, days: tuple[str, ...]) -> _Listing:
    """The day folders' CSVs in scan order; what is not a readable regular file is set aside, named."""
    listing = _Listing()
    for day in days:
        folder = root / day
        if not folder.is_dir():
            listing.missing_days.append(day)
            continue
        try:
            names = sorted(entry.name for entry in os.scandir(folder) if fnmatch.fnmatch(entry.name, f"{day}-*.csv"))
        except OSError as error:
            listing.skipped.append(f"{day}/: {error.strerror or error}")
            continue
        for name in names:
            path = folder / name
            try:
                status = path.stat()  # follows symlinks: a dangling one fails here
            except OSError as error:
                listing.skipped.append(f"{day}/{name}: {error.strerror or error}")
                continue
            if stat.S_ISREG(status.st_mode):
                listing.files.append((path, status))
            else:
                listing.skipped.append(f"{day}/{name}: {_file_kind(status.st_mode)}, not a regular file")
    return listing


def read_file(path: Path, timeout: float = FILE_READ_TIMEOUT_SECONDS) -> bytes:
    """A regular file's bytes, read on a thread of its own so that a read that hangs is abandoned
    after `timeout` (raising TimeoutError) instead of holding the daemon's start-up."""
    result: list[bytes] = []
    failure: list[BaseException] = []

    def read() -> None:
        try:
            # O_NONBLOCK: a FIFO put in the file's place after it was listed must not block the open.
            descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(descriptor, "rb") as handle:
                if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                    raise OSError(f"{_file_kind(os.fstat(descriptor).st_mode)}, not a regular file")
                result.append(handle.read())
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)

    reader = threading.Thread(target=read, name=f"read-{path.name}", daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        raise TimeoutError(f"read did not finish within {timeout:g} s")
    if failure:
        raise failure[0]
    return result[0]


def _cache_key(root: Path, days: tuple[str, ...], listing: _Listing) -> str:
    files = [(str(path.relative_to(root)), status.st_size, status.st_mtime_ns, status.st_mode)
             for path, status in listing.files]
    document = json.dumps({"format": CACHE_FORMAT, "root": str(root), "days": days, "files": files,
                           "set_aside": listing.skipped})
    return hashlib.sha256(document.encode()).hexdigest()


def _cache_stem(spec: PartitionSpec, root: Path) -> str:
    return f"{spec.name}-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"


def load_partition(spec: PartitionSpec, root: Path, cache_dir: Path | None,
                   on_cache_error: Callable[[str], None] = lambda error: None,
                   on_cache_rejected: Callable[[Path, str], None] = lambda path, reason: None,
                   read: Callable[[Path], bytes] = read_file) -> Partition:
    """Loads a partition from the cache when it matches the CSVs on disk, else parses and caches.

    A cache that cannot be written costs only speed: `on_cache_error` hears why, and the rows load.
    An entry that fails its checks is rebuilt; `on_cache_rejected` hears which and why.
    """
    started = time.perf_counter()
    root = root.resolve()
    listing = _list_files(root, spec.days)
    if cache_dir is None:
        return _parse(spec, root, listing, started, read)
    stem = _cache_stem(spec, root)
    cached = cache_dir / f"{stem}-{_cache_key(root, spec.days, listing)[:24]}.npz"
    # Only failing to take the lock falls back to parsing without the cache; errors under it propagate.
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(cache_dir / f".{stem}.lock"))
        except OSError as error:
            on_cache_error(f"{cache_dir}: {error.strerror or error}")
            return _parse(spec, root, listing, started, read)
        # Daemons that hold the same partition (a primary and its replicas) start together: one
        # parses while the others wait for its cache entry, instead of all parsing the same CSVs.
        if cached.exists():
            try:
                return _read_cache(cached, spec, tuple(listing.missing_days), started)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                on_cache_rejected(cached, f"{type(error).__name__}: {error}"[:200])
        partition = _parse(spec, root, listing, started, read)
        try:
            _write_cache(cached, stem, partition)
        except OSError as error:
            on_cache_error(f"{cached}: {error.strerror or error}")
    return partition


def _parse(spec: PartitionSpec, root: Path, listing: _Listing, started: float,
           read: Callable[[Path], bytes]) -> Partition:
    builder = ColumnBuilder()
    skipped = list(listing.skipped)
    files = []
    for path, _ in listing.files:
        label = str(path.relative_to(root))
        try:
            files.append((read(path), label))
        except OSError as error:  # TimeoutError included
            skipped.append(f"{label}: {error.strerror or error}")
    builder.add_files(files)
    numeric, codes, values = builder.finish()
    return Partition(spec.name, spec.days, numeric, codes, values, builder.skipped.count,
                     tuple(builder.skipped.examples), tuple(listing.missing_days), "csv",
                     time.perf_counter() - started, tuple(sorted(skipped)))


def _checked_arrays(archive: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The entry's columns, after checking that they form a partition any scan can index."""
    numeric = {name: archive[f"n_{name}"] for name in NUMERIC}
    codes = {name: archive[f"c_{name}"] for name in DICTIONARY}
    values = {}
    for name in DICTIONARY:
        listed = json.loads(str(archive[f"v_{name}"]))
        if not isinstance(listed, list) or not all(isinstance(value, str) for value in listed):
            raise CacheRejected(f"dictionary {name} is not a list of strings")
        values[name] = np.array(listed, dtype=object)
    rows = len(numeric["datetime"])
    for name, column in numeric.items():
        if column.dtype != NUMERIC[name] or column.shape != (rows,):
            raise CacheRejected(f"column {name}: {column.dtype} {column.shape}, expected {NUMERIC[name]} ({rows},)")
    for name, column in codes.items():
        if column.dtype not in _CODE_TYPES or column.shape != (rows,):
            raise CacheRejected(f"codes {name}: {column.dtype} {column.shape}, expected ({rows},)")
        if rows and int(column.max()) >= len(values[name]):
            raise CacheRejected(f"codes {name}: a code beyond the {len(values[name])} dictionary values")
    return numeric, codes, values


def _read_cache(path: Path, spec: PartitionSpec, missing: tuple[str, ...], started: float) -> Partition:
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
        numeric, codes, values = _checked_arrays(archive)
    fingerprint = content_fingerprint(numeric, codes, values)
    if meta.get("fingerprint") != fingerprint:
        raise CacheRejected(f"content fingerprint {fingerprint} differs from the recorded {meta.get('fingerprint')}")
    return Partition(spec.name, spec.days, numeric, codes, values, int(meta["skipped_lines"]),
                     tuple(map(str, meta["skipped_examples"])), missing, "cache", time.perf_counter() - started,
                     tuple(map(str, meta["skipped_files"])), fingerprint)


def _write_cache(path: Path, stem: str, partition: Partition) -> None:
    arrays = {f"n_{k}": v for k, v in partition.numeric.items()}
    arrays.update({f"c_{k}": v for k, v in partition.codes.items()})
    arrays.update({f"v_{k}": np.array(json.dumps(v.tolist())) for k, v in partition.values.items()})
    arrays["meta"] = np.array(json.dumps({"skipped_lines": partition.skipped_lines,
                                          "skipped_examples": list(partition.skipped_examples),
                                          "skipped_files": list(partition.skipped_files),
                                          "fingerprint": partition.fingerprint}))
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{stem}-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, allow_pickle=False, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    for stale in path.parent.glob(f"{stem}-*.npz"):
        if stale != path:
            stale.unlink(missing_ok=True)
