"""One neutralising rule for every CSV the portal writes (portal/csvsafe.py):
the contact export and the import's error report both quote a cell that a
spreadsheet could run, in the ASCII and the full-width forms (issue 12)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
from flask import Flask

from portal.csvsafe import neutralise
from tests import factories
from tests.conftest import Auth, PortalClient
from tests.test_imports import csv_bytes, download, run_through

# A formula sign in each form spreadsheets fold to it.
SIGNS = ["=", "+", "-", "@", "＝", "＋", "－", "＠", "﹦", "﹢", "﹣", "﹫"]


@pytest.mark.parametrize("sign", SIGNS)
def test_a_cell_starting_with_a_formula_sign_is_quoted(sign: str) -> None:
    assert neutralise(f"{sign}1+1") == f"'{sign}1+1"


@pytest.mark.parametrize(
    ("raw", "cell"),
    [
        ("\tTAB", "'\tTAB"),
        ("\rCR", "'\rCR"),
        ("\nLF", "'\nLF"),
        ("Ana = 1", "Ana = 1"),
        ("ａｎａ", "ａｎａ"),  # full-width letters are no sign
        ("−1", "−1"),  # U+2212, the minus sign, no spreadsheet runs
        (" =1", " =1"),
        ("", ""),
        (None, ""),
        (42, "42"),
    ],
)
def test_other_cells_are_written_as_they_are(raw: object, cell: str) -> None:
    assert neutralise(raw) == cell


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


@pytest.mark.parametrize("sign", ["＝", "＋", "－", "＠", "="])
def test_the_export_quotes_full_width_formula_signs(
    client: PortalClient, auth: Auth, ctx: None, sign: str
) -> None:
    admin = factories.make_user("admin", name=f"{sign}Owner")
    factories.make_contact(admin, name=f'{sign}HYPERLINK("http://evil")', owner=admin)
    auth.login(admin)
    status, _, text = download(client, "/contacts/export.csv")
    assert status == 200
    header, row = _rows(text)
    cells = dict(zip(header, row, strict=True))
    assert cells["name"] == f'\'{sign}HYPERLINK("http://evil")'
    assert cells["owner"] == f"'{sign}Owner"


@pytest.mark.parametrize("sign", ["＝", "＋", "－", "＠", "="])
def test_the_import_error_report_quotes_full_width_formula_signs(
    app: Flask,
    client: PortalClient,
    auth: Auth,
    ctx: None,
    run_jobs: Callable[[], int],
    sign: str,
) -> None:
    auth.login(factories.make_user("admin"))
    rows = [
        ["Name", "Email", f"{sign}Notes"],
        [f"{sign}1+2", "not an email", f"{sign}SUM(A1:A9)"],
    ]
    import_id = run_through(client, csv_bytes(rows))
    assert run_jobs() == 1
    status, mimetype, text = download(
        client, f"/contacts/import/{import_id}/errors.csv"
    )
    assert status == 200 and mimetype == "text/csv"
    header, line = _rows(text)
    assert header[-2] == f"'{sign}Notes"
    assert line[1] == f"'{sign}1+2"
    assert line[3] == f"'{sign}SUM(A1:A9)"
