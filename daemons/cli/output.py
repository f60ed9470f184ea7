"""Rows to a terminal or a pipe: CSV, JSON lines or an aligned table; shared by the command-line tools.

Query answers come as chunks of columns (`write_batch`): CSV and JSON lines turn a whole chunk into
text at once (daemons/query/text.py), the same bytes the row by row writer makes, ten times faster.
A table is for people: its floats are rounded to a readable length."""

from __future__ import annotations

import codecs
import csv
import json
import sys
from collections.abc import Iterable, Sequence
from typing import TextIO

from daemons.query.text import ChunkText
from daemons.query.wire import ColumnBatch

# A float in a table keeps its own text when it has at most this many decimals (a measurement, a
# coordinate: -124.20347); a computed one (a mean: 0.34618653069896094) is rounded to TABLE_DECIMALS.
TABLE_KEPT_DECIMALS = 6
TABLE_DECIMALS = 4


def table_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = repr(value)
        _, dot, decimals = text.partition(".")
        if "e" in text or (dot and len(decimals) > TABLE_KEPT_DECIMALS):
            return f"{value:.{TABLE_DECIMALS}f}" if 1e-4 <= abs(value) < 1e15 else f"{value:.{TABLE_DECIMALS}g}"
        return text
    return str(value)


class RowWriter:
    """Writes rows in one of the output formats, the header with the first write (even of no rows)."""

    def __init__(self, output_format: str, header: Sequence[str], out: TextIO | None = None):
        out = out or sys.stdout  # looked up now, so that redirection (and click's test runner) applies
        self.format, self.header, self.out = output_format, list(header), out
        self.widths: list[int] | None = None  # table column widths, set by the first write
        self._csv = csv.writer(out, lineterminator="\n") if output_format == "csv" else None
        self._header_written = False
        # Chunks are written as UTF-8 bytes: only where the text layer would write UTF-8 too.
        utf8 = codecs.lookup(getattr(out, "encoding", None) or "utf-8").name == "utf-8"
        self._chunks = ChunkText(output_format) if output_format in ("csv", "jsonl") and utf8 else None

    def write_batch(self, batch: ColumnBatch) -> None:
        """A chunk of a query's answer, whose columns are this writer's header."""
        if self._chunks is None:
            self.write(batch.rows())
            return
        self.write([])  # the header, before the first chunk
        text = self._chunks.render(batch)
        binary = getattr(self.out, "buffer", None)
        if binary is None:  # a text stream only (a test's StringIO)
            self.out.write(bytes(text).decode())
            return
        self.out.flush()  # what went through the text layer (the header) first
        binary.write(text)

    def write(self, rows: Iterable[Sequence[object]]) -> None:
        if self._csv is not None:
            if not self._header_written:
                self._csv.writerow(self.header)
                self._header_written = True
            self._csv.writerows(rows)
        elif self.format == "jsonl":
            self.out.writelines(json.dumps(dict(zip(self.header, row))) + "\n" for row in rows)
        else:
            lines = [[table_cell(v) for v in row] for row in rows]
            widths = self.widths
            if widths is None:  # sized by the header and the first rows; later rows may widen a cell
                widths = self.widths = [max([len(h), *(len(r[i]) for r in lines)]) for i, h in enumerate(self.header)]
                self._table_line(self.header, widths)
            for line in lines:
                self._table_line(line, widths)

    def _table_line(self, cells: Sequence[str], widths: Sequence[int]) -> None:
        self.out.write("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip() + "\n")
