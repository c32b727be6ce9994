"""Reading a customer CSV as spreadsheets actually write it.

Customers' exports come from Excel and LibreOffice more often than from scripts:
UTF-8 with a byte-order mark ("CSV UTF-8"), and ``;`` instead of ``,`` wherever
the comma is the decimal separator. So the BOM is dropped, and the delimiter is
sniffed (``csv.Sniffer``) from the header row alone — the header holds only our
column names, so data such as ``"Kovalenko, Olena"`` cannot mislead it. A file
that is not UTF-8 (Excel's legacy "CSV" saves in the Windows code page) is
refused with a hint rather than guessed at: a wrongly guessed code page would
import every Cyrillic name garbled.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

COLUMNS: tuple[str, ...] = ("email", "name", "organization", "timezone", "language",
                            "service_level")
REQUIRED = "email"
DELIMITERS = ",;\t"


class CsvProblem(Exception):
    """The file as a whole cannot be read (encoding, header); carries ``line`` or None."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Row:
    """One data row: the line it starts on (1 = the header) and its cells by column name.

    ``cells`` has a key for every column of the header, stripped of surrounding
    blanks; ``extra`` counts cells beyond the header's columns (an error).
    """

    line: int
    cells: dict[str, str]
    extra: int = 0


@dataclass(frozen=True)
class CsvFile:
    columns: tuple[str, ...]  # the header's columns, normalised, in file order
    delimiter: str
    rows: list[Row]


def read_csv(path: Path) -> CsvFile:
    """Decode, sniff and split ``path``; raises ``CsvProblem`` or ``OSError``."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CsvProblem(line, "not UTF-8 text (in Excel, save as \"CSV UTF-8\")") from None
    return parse_csv(text)


def parse_csv(text: str) -> CsvFile:
    text = text.removeprefix("\ufeff")
    header_line = text.split("\n", 1)[0].rstrip("\r")
    if not header_line.strip():
        raise CsvProblem(1, "the first line must be the header row: "
                            + ",".join(COLUMNS) + f" (only {REQUIRED} is required)")
    delimiter = _sniff(header_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
        columns = _check_header(header)
        rows = list(_rows(reader, columns))
    except csv.Error as exc:
        raise CsvProblem(reader.line_num or None, f"not valid CSV: {exc}") from None
    return CsvFile(columns, delimiter, rows)


def _sniff(header_line: str) -> str:
    try:
        return csv.Sniffer().sniff(header_line, delimiters=DELIMITERS).delimiter
    except csv.Error:  # one column: nothing to sniff
        return ","


def _check_header(header: list[str]) -> tuple[str, ...]:
    columns = tuple(cell.strip().lower() for cell in header)
    unknown = [header[i].strip() or f"(empty, column {i + 1})"
               for i, column in enumerate(columns) if column not in COLUMNS]
    if unknown:
        raise CsvProblem(1, f"unknown column(s): {', '.join(unknown)} "
                            f"(known: {', '.join(COLUMNS)})")
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise CsvProblem(1, f"column(s) given twice: {', '.join(duplicates)}")
    if REQUIRED not in columns:
        raise CsvProblem(1, f"the {REQUIRED} column is required")
    return columns


class _Reader(Protocol):
    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...

    def __next__(self) -> list[str]: ...


def _rows(reader: _Reader, columns: tuple[str, ...]) -> Iterator[Row]:
    """Rows with the line they start on (a quoted cell may span lines); blank rows skipped."""
    start = reader.line_num + 1
    for cells in reader:
        if any(cell.strip() for cell in cells):  # Excel writes ";;;;;" for blank lines
            values = {column: (cells[i].strip() if i < len(cells) else "")
                      for i, column in enumerate(columns)}
            # Trailing empty cells ("a@b.example;Olena;") are a spreadsheet's habit, not data.
            extra = sum(1 for cell in cells[len(columns):] if cell.strip())
            yield Row(start, values, extra)
        start = reader.line_num + 1
