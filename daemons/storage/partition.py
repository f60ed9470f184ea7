"""A partition: the rows of some day folders, held column-wise in memory, cached on disk.

Loading from the on-disk cache takes milliseconds where parsing the CSVs takes seconds, and a
restarted daemon is only as quick to serve again as its load, so recovery time depends on it. The
cache key covers every CSV's name, size and modification time, so any change to the files makes
the daemon parse again; entries are written atomically, so a crash never leaves a torn one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemons.config import PartitionSpec
from daemons.locking import exclusive_lock
from daemons.storage.columns import DICTIONARY, NUMERIC
from daemons.storage.csvload import ColumnBuilder

CACHE_FORMAT = 2


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

    @property
    def rows(self) -> int:
        return len(self.numeric["datetime"])


def _csv_files(root: Path, days: tuple[str, ...]) -> tuple[list[Path], list[str]]:
    files, missing = [], []
    for day in days:
        folder = root / day
        if folder.is_dir():
            files.extend(sorted(folder.glob(f"{day}-*.csv")))
        else:
            missing.append(day)
    return files, missing


def _fingerprint(root: Path, days: tuple[str, ...], files: list[Path]) -> str:
    listing = []
    for path in files:
        stat = path.stat()
        listing.append((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    document = json.dumps({"format": CACHE_FORMAT, "root": str(root), "days": days, "files": listing})
    return hashlib.sha256(document.encode()).hexdigest()


def _cache_stem(spec: PartitionSpec, root: Path) -> str:
    return f"{spec.name}-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"


def load_partition(spec: PartitionSpec, root: Path, cache_dir: Path | None,
                   on_cache_error: Callable[[str], None] = lambda error: None) -> Partition:
    """Loads a partition from the cache when it matches the CSVs on disk, else parses and caches.

    A cache that cannot be written costs only speed: `on_cache_error` hears why, and the rows load.
    """
    started = time.perf_counter()
    root = root.resolve()
    files, missing = _csv_files(root, spec.days)
    key = _fingerprint(root, spec.days, files)
    stem = _cache_stem(spec, root)
    if cache_dir is None:
        return _parse(spec, root, files, missing, started)
    cached = cache_dir / f"{stem}-{key[:24]}.npz"
    # Only failing to take the lock falls back to parsing without the cache; errors under it propagate.
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(cache_dir / f".{stem}.lock"))
        except OSError as error:
            on_cache_error(f"{cache_dir}: {error.strerror or error}")
            return _parse(spec, root, files, missing, started)
        # Daemons that hold the same partition (a primary and its replicas) start together: one
        # parses while the others wait for its cache entry, instead of all parsing the same CSVs.
        if cached.exists():
            try:
                return _read_cache(cached, spec, tuple(missing), started)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                pass  # a damaged entry is rebuilt below
        partition = _parse(spec, root, files, missing, started)
        try:
            _write_cache(cached, stem, partition)
        except OSError as error:
            on_cache_error(f"{cached}: {error.strerror or error}")
    return partition


def _parse(spec: PartitionSpec, root: Path, files: list[Path], missing: list[str], started: float) -> Partition:
    builder = ColumnBuilder()
    for path in files:
        builder.add_file(path, str(path.relative_to(root)))
    numeric, codes, values = builder.finish()
    return Partition(spec.name, spec.days, numeric, codes, values, builder.skipped.count,
                     tuple(builder.skipped.examples), tuple(missing), "csv", time.perf_counter() - started)


def _read_cache(path: Path, spec: PartitionSpec, missing: tuple[str, ...], started: float) -> Partition:
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
        numeric = {name: archive[f"n_{name}"] for name in NUMERIC}
        codes = {name: archive[f"c_{name}"] for name in DICTIONARY}
        values = {name: np.array(json.loads(str(archive[f"v_{name}"])), dtype=object) for name in DICTIONARY}
    return Partition(spec.name, spec.days, numeric, codes, values, meta["skipped_lines"],
                     tuple(meta["skipped_examples"]), missing, "cache", time.perf_counter() - started)


def _write_cache(path: Path, stem: str, partition: Partition) -> None:
    arrays = {f"n_{k}": v for k, v in partition.numeric.items()}
    arrays.update({f"c_{k}": v for k, v in partition.codes.items()})
    arrays.update({f"v_{k}": np.array(json.dumps(v.tolist())) for k, v in partition.values.items()})
    arrays["meta"] = np.array(json.dumps({"skipped_lines": partition.skipped_lines,
                                          "skipped_examples": list(partition.skipped_examples)}))
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
