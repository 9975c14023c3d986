"""Reading an uploaded CSV safely (encoding, delimiter, header, ragged rows) and
writing the error report so that a spreadsheet never runs a cell as a formula."""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flask_babel import gettext as _

from portal.csvsafe import neutralise
from portal.errors import ValidationError

DELIMITERS = ",;\t"
MAX_COLUMNS = 100
MAX_ROWS = 200_000
SNIFF_CHARS = 64 * 1024

_EMAIL_LIKE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_LIKE = re.compile(r"^[\d\s().+\-/]{7,}$")
# Control characters never found in a real text CSV (tab, CR, LF are fine).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class CsvFormat:
    """How to open a stored upload: a Python codec name and the delimiter."""

    encoding: str
    delimiter: str

    def encoding_label(self) -> str:
        return {
            "utf-8": "UTF-8",
            "utf-8-sig": _("UTF-8 with BOM"),
            "cp1252": "Windows-1252",
            "latin-1": "ISO-8859-1 (Latin-1)",
        }.get(self.encoding, self.encoding)

    def delimiter_label(self) -> str:
        return {
            ",": _("comma"),
            ";": _("semicolon"),
            "\t": _("tab"),
        }.get(self.delimiter, self.delimiter)


@dataclass(frozen=True)
class Record:
    """One CSV record: the line it starts on, its cells, or why it is unreadable."""

    line: int
    cells: list[str]
    problem: str | None = None


def _refuse(message: str) -> ValidationError:
    return ValidationError({"file": message})


def decode(raw: bytes) -> tuple[str, str]:
    """The text of an upload and the codec that read it: UTF-8 (with or
    without BOM) first, Windows-1252 or Latin-1 only when UTF-8 fails.

    Raises ValidationError for an empty, UTF-16, spreadsheet or binary file.
    """
    body = raw[len(codecs.BOM_UTF8) :] if raw.startswith(codecs.BOM_UTF8) else raw
    if not body.strip():
        raise _refuse(_("The file is empty."))
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
        len(raw) > 3 and (raw[1:2] == b"\x00" or raw[0:1] == b"\x00")
    ):
        raise _refuse(
            _(
                "This file is in UTF-16, which we cannot read. Save it as "
                "“CSV UTF-8” and upload it again."
            )
        )
    if raw.startswith(b"PK\x03\x04") or raw.startswith(b"\xd0\xcf\x11\xe0"):
        raise _refuse(
            _(
                "This looks like an Excel workbook, not a CSV file. Save it as "
                "“CSV UTF-8” and upload it again."
            )
        )
    if b"\x00" in raw:
        raise _refuse(_("This is not a text CSV file."))
    encoding = "utf-8-sig" if raw.startswith(codecs.BOM_UTF8) else "utf-8"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        try:
            encoding, text = "cp1252", raw.decode("cp1252")
        except UnicodeDecodeError:
            encoding, text = "latin-1", raw.decode("latin-1")
    sample = text[:SNIFF_CHARS]
    # Random bytes decode as Latin-1 too; real text has almost no controls.
    if len(_CONTROL.findall(sample)) > max(2, len(sample) // 200):
        raise _refuse(_("This is not a text CSV file."))
    return text, encoding


def sniff_delimiter(text: str) -> str:
    """Comma, semicolon or tab: csv.Sniffer on whole lines, else the candidate
    the header line holds most of, else a comma."""
    sample = text[:SNIFF_CHARS]
    if len(text) > SNIFF_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        found = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        found = ""
    if found in DELIMITERS and found:
        return found
    first_line = sample.splitlines()[0] if sample else ""
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def iter_records(
    lines: Iterator[str] | io.TextIOBase, delimiter: str
) -> Iterator[Record]:
    """Every non-blank record with the line it starts on. A record the csv
    module cannot read (an over-long cell, say) comes with `problem` set
    instead of stopping the file."""
    reader = csv.reader(lines, delimiter=delimiter)
    next_line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Record(next_line, [], str(exc))
            next_line = reader.line_num + 1
            continue
        start, next_line = next_line, reader.line_num + 1
        if any(cell.strip() for cell in cells):
            yield Record(start, cells)


def open_records(path: Path, fmt: CsvFormat) -> Iterator[Record]:
    """The records of a stored upload (header first), read as a stream."""
    with path.open(encoding=fmt.encoding, newline="") as fh:
        yield from iter_records(fh, fmt.delimiter)


def check_header(cells: list[str]) -> list[str]:
    """The column names of the first record; raises ValidationError when
    there are none, too many, or the row is plainly a contact."""
    header = [" ".join(cell.split()) for cell in cells]
    if not any(header):
        raise _refuse(_("The first row must name the columns."))
    if len(header) > MAX_COLUMNS:
        raise _refuse(
            _(
                "The file has %(n)d columns; at most %(max)d are allowed.",
                n=len(header),
                max=MAX_COLUMNS,
            )
        )
    if any(_EMAIL_LIKE.match(cell) or _PHONE_LIKE.match(cell) for cell in header):
        raise _refuse(
            _(
                "The first row looks like a contact, not column names. Add a "
                "header row, for example: name, phone, email."
            )
        )
    return [
        cell[:100] or _("Column %(n)d", n=index + 1)
        for index, cell in enumerate(header)
    ]


def inspect(text: str, delimiter: str) -> tuple[list[str], int]:
    """The header and the number of data rows; raises ValidationError."""
    records = iter_records(io.StringIO(text, newline=""), delimiter)
    first = next(records, None)
    if first is None:
        raise _refuse(_("The file is empty."))
    if first.problem:
        raise _refuse(
            _("The first row cannot be read: %(problem)s", problem=first.problem)
        )
    header = check_header(first.cells)
    total = sum(1 for _record in records)
    if total == 0:
        raise _refuse(_("The file names its columns but has no rows."))
    if total > MAX_ROWS:
        raise _refuse(
            _(
                "Import at most %(max)d rows at a time; this file has %(n)d.",
                max=MAX_ROWS,
                n=total,
            )
        )
    return header, total


class ErrorReport:
    """The CSV of rows that were not imported: line, the row's cells, the error.

    It grows batch by batch; `size` is committed with each batch, and a job
    that runs again first cuts the file back to the committed size, so a
    batch interrupted after writing its lines never lists them twice.
    """

    def __init__(self, path: Path, header: list[str], committed_bytes: int) -> None:
        self.path = path
        self.width = len(header)
        if committed_bytes and path.exists():
            os.truncate(path, committed_bytes)
            self.size = committed_bytes
        else:
            first = [_("Row"), *header, _("Error")]
            data = ("\ufeff" + self._lines([first])).encode("utf-8")
            path.write_bytes(data)
            self.size = len(data)

    @staticmethod
    def _lines(rows: list[list[str]]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer).writerows([[neutralise(v) for v in row] for row in rows])
        return buffer.getvalue()

    def add(self, rows: list[tuple[int, list[str], str]]) -> None:
        """Append (line, cells, error) rows."""
        if not rows:
            return
        lines = []
        for line, cells, error in rows:
            # The error stays in its column; cells beyond the header follow it.
            fitted = (list(cells) + [""] * self.width)[: self.width]
            lines.append([str(line), *fitted, error, *cells[self.width :]])
        data = self._lines(lines).encode("utf-8")
        with self.path.open("ab") as fh:
            fh.write(data)
        self.size += len(data)
