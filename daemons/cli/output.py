"""Rows to a terminal or a pipe: CSV, JSON lines or an aligned table; shared by the command-line tools.

Query answers come as chunks of columns (`write_batches`): CSV and JSON lines turn a whole chunk into
text at once (daemons/query/text.py), the same bytes the row by row writer makes, ten times faster,
on threads of their own while the next chunks arrive. A table is for people: its floats are rounded
to a readable length."""

from __future__ import annotations

import codecs
import csv
import json
import sys
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TextIO

from daemons.query.text import ChunkText
from daemons.query.wire import ColumnBatch

# A float in a table keeps its own text when it has at most this many decimals (a measurement, a
# coordinate: -124.20347); a computed one (a mean: 0.34618653069896094) is rounded to TABLE_DECIMALS.
TABLE_KEPT_DECIMALS = 6
TABLE_DECIMALS = 4
# Chunks made into text at once. Arrow's kernels, which do most of it, let go of the GIL, so two
# threads use both cores of a small machine while the main thread takes in the next chunks: the
# full scan as CSV took 0.51-0.59 s instead of 0.64-0.89 s (2 cores, measured 2026-12-01). At most
# one more chunk than this waits to be written, so memory stays bounded.
RENDER_THREADS = 2


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

    def write_batches(self, batches: Iterable[ColumnBatch]) -> None:
        """A query's answer, chunk by chunk, whose columns are this writer's header; the header
        first, even with no chunks. Every chunk taken from `batches` is written, in order, also
        when taking the next one fails (the answer's stream broke: what came is kept)."""
        chunks = self._chunks
        if chunks is None:
            for batch in batches:
                self.write(batch.rows())
            self.write([])  # the header, when no chunk came (a table's is sized by its first rows)
            return
        self.write([])
        rendering: deque[Future[memoryview]] = deque()
        with ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="render") as pool:
            try:
                for batch in batches:
                    rendering.append(pool.submit(chunks.render, batch))
                    while rendering and (len(rendering) > RENDER_THREADS or rendering[0].done()):
                        self._write_text(rendering.popleft().result())
            finally:
                while rendering:
                    self._write_text(rendering.popleft().result())

    def _write_text(self, text: memoryview) -> None:
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
