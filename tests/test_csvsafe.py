"""The one CSV rule both writers use: a text cell a spreadsheet would run as a formula gets a leading
quote (OWASP), numbers stay numbers, and the escaping can be undone exactly (for --resume)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from fer_core import csvsafe

FORMULA_NAMES = [
    "=SUM(1+1)*cmd|calc.jpg",
    "+cmd.jpg",
    "-x.jpg",
    "@x.jpg",
    "\tx.jpg",
    "\rx.jpg",
    '=HYPERLINK("http://evil.example","click").png',
    "-2+3",
    "-inf",
    "+",
]


@pytest.mark.parametrize("name", FORMULA_NAMES)
def test_formula_cells_get_a_leading_quote(name):
    cell = csvsafe.safe_cell(name)
    assert cell == "'" + name
    assert csvsafe.unescape_cell(cell) == name


@pytest.mark.parametrize("value", [0, 3, -0.0, -1.5, 1e-5, np.float32(-0.25), np.int64(-7), True, None])
def test_numbers_stay_numbers(value):
    assert csvsafe.safe_cell(value) is value


@pytest.mark.parametrize("text", ["-0.0", "-1", "+2.5", "-1e-05", ".5", "0.0001"])
def test_numeric_strings_are_left_alone(text):
    assert csvsafe.safe_cell(text) == text


@pytest.mark.parametrize("text", ["a.jpg", "photos/=x.jpg", "", " =x.jpg", "x=1"])
def test_harmless_text_is_unchanged(text):
    assert csvsafe.safe_cell(text) == text
    assert csvsafe.unescape_cell(text) == text


def test_escaping_is_reversible_and_injective():
    names = ["=x.jpg", "'=x.jpg", "''=x.jpg", "'plain.jpg", "plain.jpg", "-1", "'-1"]
    cells = [csvsafe.safe_cell(n) for n in names]
    assert len(set(cells)) == len(names)  # two files never share a cell, so --resume tells them apart
    assert [csvsafe.unescape_cell(c) for c in cells] == names


def test_writer_neutralises_every_cell_of_every_row():
    buf = io.StringIO(newline="")
    w = csvsafe.writer(buf)
    w.writerow(["=a", 1, -0.0, "@b"])
    w.writerows([["+c", "-0.5"], ["\td", None], ["a.jpg\r=cmd|calc.jpg", "b\n@c"]])
    raw = buf.getvalue()
    rows = list(csv.reader(io.StringIO(raw, newline="")))
    assert rows == [["'=a", "1", "-0.0", "'@b"], ["'+c", "-0.5"], ["'\td", ""], ["a.jpg\r=cmd|calc.jpg", "b\n@c"]]
    # a line break inside a cell is quoted, so no spreadsheet starts a row (and a formula) there
    assert '"a.jpg\r=cmd|calc.jpg","b\n@c"\r\n' in raw
    assert raw.count("\r\n") == 4


def test_writer_refuses_line_endings_that_leave_breaks_unquoted():
    with pytest.raises(ValueError, match="quoted"):
        csvsafe.writer(io.StringIO(), lineterminator="\n")
