"""Rows to a terminal or a pipe: CSV, JSON lines or an aligned table; shared by the command-line tools."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from typing import TextIO


class RowWriter:
    """Writes rows in one of the output formats, the header with the first write (even of no rows)."""

    def __init__(self, output_format: str, header: Sequence[str], out: TextIO | None = None):
        out = out or sys.stdout  # looked up now, so that redirection (and click's test runner) applies
        self.format, self.header, self.out = output_format, list(header), out
        self.widths: list[int] | None = None  # table column widths, set by the first write
        self._csv = csv.writer(out, lineterminator="\n") if output_format == "csv" else None
        self._header_written = False

    def write(self, rows: Iterable[Sequence[object]]) -> None:
        if self._csv is not None:
            if not self._header_written:
                self._csv.writerow(self.header)
                self._header_written = True
            self._csv.writerows(rows)
        elif self.format == "jsonl":
            self.out.writelines(json.dumps(dict(zip(self.header, row))) + "\n" for row in rows)
        else:
            lines = [["" if v is None else str(v) for v in row] for row in rows]
            widths = self.widths
            if widths is None:  # sized by the header and the first rows; later rows may widen a cell
                widths = self.widths = [max([len(h), *(len(r[i]) for r in lines)]) for i, h in enumerate(self.header)]
                self._table_line(self.header, widths)
            for line in lines:
                self._table_line(line, widths)

    def _table_line(self, cells: Sequence[str], widths: Sequence[int]) -> None:
        self.out.write("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip() + "\n")
