"""CSV cells a spreadsheet cannot execute: the one rule both CSV writers (batch CLI, app download) use.

A file named `=HYPERLINK("http://evil",...).jpg` or `@SUM(1+1)*cmd|' /C calc'!A0.jpg` lands in a CSV
cell; Excel, LibreOffice and Google Sheets read a cell that starts with `=`, `+`, `-` or `@` (and,
after a leading tab or carriage return, the same) as a formula. OWASP's rule is applied to every
text cell: such a cell gets a leading `'`, which spreadsheets show as text. Numbers stay numbers:
a real number (int, float, numpy scalar) and a string that is a plain decimal number ("-0.25",
"1e-05") are left alone, since a spreadsheet only reads them as the number they are.

One addition keeps the escaping reversible: a text cell that already starts with `'` gets one more,
so `unescape_cell` gives back exactly the original text (`--resume` reads file names back from its
CSV output this way). JSON output needs none of this: it is not a spreadsheet format.
"""

from __future__ import annotations

import csv
import numbers
import re
from collections.abc import Iterable
from typing import IO, Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """`value` as a CSV cell no spreadsheet runs as a formula (see the module docstring)."""
    if value is None or isinstance(value, (bool, numbers.Number)):
        return value
    text = value if isinstance(value, str) else str(value)
    if text.startswith(QUOTE) or (text.startswith(FORMULA_PREFIXES) and not _NUMBER.fullmatch(text)):
        return QUOTE + text
    return text


def unescape_cell(cell: str) -> str:
    """The text `safe_cell` was given, from the cell it wrote (as read back by csv.reader)."""
    return cell[1:] if cell.startswith(QUOTE) else cell


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in row]


class SafeWriter:
    """csv.writer whose every cell goes through `safe_cell`; the only way fer_core writes CSV.

    Rows end in CRLF (RFC 4180), and no other line ending is accepted: csv quotes a cell only for
    the characters of its line terminator, so with "\n" a lone CR inside a file name would be left
    unquoted, a spreadsheet would start a new row there, and `a.jpg\r=cmd|calc.jpg` would put the
    formula at the start of a cell after all.
    """

    def __init__(self, fh: IO[str], **fmtparams: Any) -> None:
        if fmtparams.setdefault("lineterminator", "\r\n") != "\r\n":
            raise ValueError("fer_core CSV rows end in \\r\\n, so line breaks inside cells are always quoted")
        self._writer = csv.writer(fh, **fmtparams)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(fh: IO[str], **fmtparams: Any) -> SafeWriter:
    """Like csv.writer(fh, ...), with formula cells neutralised."""
    return SafeWriter(fh, **fmtparams)
