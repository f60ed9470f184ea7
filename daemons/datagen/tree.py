"""Putting a data set tree in place at a path: atomically, once, and one writer at a time.

A tree is written into a temporary sibling directory and renamed into place only when complete,
so whatever exists at the target path is a complete tree; `ensure_generated` relies on that.
Writers of one tree take the lock file beside it (`<root>.lock`).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from daemons.datagen.dataset import simulate, write_files
from daemons.locking import exclusive_lock

DEFAULT_SITES = 400
DEFAULT_SEED = 2020
# Sites whose generated set matches the real 2020 season in size (1.18M rows); `--scale N` asks for N times that.
REAL_SET_SITES = 1520


@dataclass(frozen=True)
class GenerationSummary:
    root: Path
    files_written: int
    rows_written: int


def _staging_prefix(root: Path) -> str:
    return f".{root.name}.partial-"


def _retired_prefix(root: Path) -> str:
    return f".{root.name}.retired-"


def _remove_leftovers(root: Path) -> None:
    """Deletes staging trees of writers that crashed; callers hold the lock, so none is in use."""
    for prefix in (_staging_prefix(root), _retired_prefix(root)):
        for leftover in root.parent.glob(prefix + "*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _swap_into_place(staging: Path, root: Path) -> None:
    if not root.exists():
        staging.rename(root)
        return
    retired = Path(tempfile.mkdtemp(prefix=_retired_prefix(root), dir=root.parent))
    root.rename(retired / root.name)
    staging.rename(root)
    shutil.rmtree(retired)


def _write_tree(root: Path, site_count: int, seed: int) -> GenerationSummary:
    if site_count < 1:
        raise ValueError(f"sites must be at least 1, got {site_count}")
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root} exists and is not a directory")
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(root), dir=root.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the tree is meant to be shared
        files, rows = write_files(simulate(site_count, seed), staging)
        _swap_into_place(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return GenerationSummary(root=root, files_written=files, rows_written=rows)


def _lock_file(root: Path) -> Path:
    """The file whose lock serialises writers of one tree across processes: next to the tree."""
    return root.with_name(root.name + ".lock")


def _holds_data_set(root: Path) -> bool:
    """Trees only ever appear at root complete (see _write_tree), so any non-empty one is done."""
    return root.is_dir() and any(root.iterdir())


def generate(root: Path, *, sites: int = DEFAULT_SITES, seed: int = DEFAULT_SEED) -> GenerationSummary:
    """Writes the data set to root, replacing whatever tree is there."""
    root = Path(root)
    with exclusive_lock(_lock_file(root)):
        return _write_tree(root, sites, seed)


def generate_if_absent(root: Path, sites: int, seed: int) -> GenerationSummary | None:
    """Writes the data set to root unless a tree is already there; what it wrote, if anything."""
    with exclusive_lock(_lock_file(root)):
        return None if _holds_data_set(root) else _write_tree(root, sites, seed)


def ensure_generated(root: Path, *, sites: int = DEFAULT_SITES, seed: int = DEFAULT_SEED) -> bool:
    """Writes the data set to root unless a tree is already there; True if it wrote one."""
    return generate_if_absent(Path(root), sites, seed) is not None
