"""Arrow's side of the CSV loader (csvload.py), imported only when CSVs are parsed.

Arrow reads the lines in C++, dictionary-encoding the strings as it reads them; the numbers are
then held to the same checks as the line-by-line path's (csvload.checked), and the times parsed
by numpy from Arrow's buffer as that path parses them, so that both make the same columns.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
from pyarrow import csv

from daemons.storage.columns import DICTIONARY, FIELDS, NUMERIC
from daemons.storage.csvload import Malformed, checked

# Freed buffers go back to malloc, whose free pages the daemon's housekeeper returns to the system:
# with Arrow's own allocator a worker kept 300 MB resident after its first parse, against 120 MB.
pa.set_memory_pool(pa.system_memory_pool())

# No header; every field may be quoted; nothing read as null (an empty number is malformed, an
# empty string is a string); strings dictionary-encoded as they are read; times as text.
_READ = csv.ReadOptions(column_names=list(FIELDS), use_threads=False)
_PARSE = csv.ParseOptions(quote_char='"', double_quote=True, newlines_in_values=False)
_STRINGS = pa.dictionary(pa.int32(), pa.string())
_CONVERT = csv.ConvertOptions(
    column_types={name: _STRINGS if name in DICTIONARY else pa.string() if name == "datetime"
                  else pa.float64() if NUMERIC[name].kind == "f" else pa.int64() for name in FIELDS},
    null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False)
TIME_LENGTH = len("2020-08-10T01:00")


def read(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, pa.Array]]:
    """(numeric columns, dictionary-encoded string columns) of CSV lines; Malformed if Arrow cannot
    read them or a number fails its checks."""
    try:
        table = csv.read_csv(io.BytesIO(data), _READ, _PARSE, _CONVERT)
    except pa.ArrowInvalid as error:
        raise Malformed(str(error)) from None
    numeric = {name: checked(name, _minutes(table.column(name).combine_chunks()) if name == "datetime"
                             else table.column(name).to_numpy()) for name in NUMERIC}
    return numeric, {name: table.column(name).combine_chunks() for name in DICTIONARY}


def encode(values: list[str]) -> pa.Array:
    """Strings read another way, dictionary-encoded as Arrow's reader would have."""
    return pa.array(values, pa.string()).dictionary_encode()


def unify(files: list[pa.Array]) -> tuple[np.ndarray, list[str]]:
    """(each row's code, the distinct values) of a string column read file by file: one dictionary,
    each file's new values appended in file order, so every value keeps the place of its first
    appearance, as in a single reading."""
    unified = pa.table({"column": pa.chunked_array(files, _STRINGS)}).unify_dictionaries().column("column")
    indices = [chunk.indices.to_numpy(zero_copy_only=False) for chunk in unified.chunks]
    return np.concatenate(indices), unified.chunk(0).dictionary.to_pylist()


def _minutes(times: pa.Array) -> np.ndarray:
    """Epoch minutes of "YYYY-MM-DDTHH:MM" strings, parsed by numpy as the line-by-line path parses
    them, from Arrow's buffer as it lies (every value TIME_LENGTH bytes long, or Malformed)."""
    count = len(times)
    if not count:
        return np.empty(0, np.int64)
    offsets = np.frombuffer(times.buffers()[1], np.int32, count + 1, times.offset * 4)
    if not (np.diff(offsets) == TIME_LENGTH).all():
        raise Malformed("a time not in the form YYYY-MM-DDTHH:MM")
    fixed = np.frombuffer(times.buffers()[2], f"S{TIME_LENGTH}", count, int(offsets[0]))
    if not (fixed.view(np.uint8).reshape(count, TIME_LENGTH)[:, 10] == ord("T")).all():
        raise Malformed("a time not in the form YYYY-MM-DDTHH:MM")
    try:
        return fixed.astype("datetime64[m]").astype(np.int64)
    except ValueError:
        raise Malformed("a time that is not a date") from None
