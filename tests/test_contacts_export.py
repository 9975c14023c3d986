"""GET /contacts/export.csv: the filtered list as a streamed CSV that
respects visibility and cannot smuggle formulas into a spreadsheet."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pytest
from sqlalchemy import update

from portal.contacts import export, list_filters
from portal.extensions import db
from portal.models import Contact
from portal.org import structure
from portal.settings.service import current_account
from tests import factories

HEADER = [
    "id",
    "name",
    "phone",
    "email",
    "owner",
    "status",
    "origin",
    "department",
    "campaign",
    "created_at",
    "last_activity_at",
]


def read_csv(response) -> list[dict[str, str]]:
    raw = response.get_data()
    assert raw.startswith("\ufeff".encode())  # UTF-8 BOM
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == HEADER
    return [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]


def test_export_is_a_streamed_dated_utf8_csv(client, auth, ctx):
    admin = factories.make_user("admin")
    agent = factories.make_user("attendant", name="Ágata Ñandú")
    contact = factories.make_contact(
        agent,
        name="José Açaí",
        phone="(11) 91234-5678",
        email="jose@example.com",
        department="vendas",
        campaign="verao",
        origin="web",
    )
    auth.login(admin)
    response = client.get("/contacts/export.csv")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    today = date.today().isoformat()
    assert (
        response.headers["Content-Disposition"]
        == f'attachment; filename="contacts-{today}.csv"'
    )
    (row,) = read_csv(response)
    assert row["id"] == str(contact.id)
    assert row["name"] == "José Açaí"
    assert row["phone"] == "(11) 91234-5678"
    assert row["email"] == "jose@example.com"
    assert row["owner"] == "Ágata Ñandú"
    assert (row["status"], row["origin"]) == ("assigned", "web")
    assert (row["department"], row["campaign"]) == ("vendas", "Verao")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", row["created_at"])
    assert row["last_activity_at"].endswith("+00:00")


def test_export_follows_the_filters_and_sort(client, auth, ctx):
    admin = factories.make_user("admin")
    first = factories.make_contact(admin, name="Primeiro")
    second = factories.make_contact(admin, name="Segundo")
    free = factories.make_contact(unassigned=True, name="Livre")
    auth.login(admin)
    mine = read_csv(client.get("/contacts/export.csv?owner=me&sort=oldest"))
    assert [r["id"] for r in mine] == [str(first.id), str(second.id)]
    newest = read_csv(client.get("/contacts/export.csv?owner=me"))
    assert [r["id"] for r in newest] == [str(second.id), str(first.id)]
    waiting = read_csv(client.get("/contacts/export.csv?owner=unassigned"))
    assert [r["name"] for r in waiting] == ["Livre"]
    assert [r["id"] for r in read_csv(client.get("/contacts/export.csv?q=liv"))] == [
        str(free.id)
    ]


def test_export_respects_visibility(client, auth, ctx):
    coordinator = factories.make_user("coordinator", teams=["north"])
    member = factories.make_user("attendant", teams=["north"])
    stranger = factories.make_user("attendant", teams=["south"])
    inside = factories.make_contact(member, name="Dentro", email="dentro@example.com")
    factories.make_contact(stranger, name="Fora", email="fora@example.com")
    auth.login(coordinator)
    rows = read_csv(client.get("/contacts/export.csv"))
    assert [r["id"] for r in rows] == [str(inside.id)]
    text = client.get(
        "/contacts/export.csv", query_string={"q": "fora@example.com"}
    ).get_data(as_text=True)
    assert "Fora" not in text and "fora@example.com" not in text


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("admin", 200),
        ("coordinator", 200),
        ("manager", 200),
        ("attendant", 403),
        ("seller", 403),
        ("callcenter", 403),
        ("reception", 403),
        ("media", 403),
        ("ranking", 403),
    ],
)
def test_export_needs_the_export_permission(client, auth, ctx, role, status):
    auth.login(factories.make_user(role))
    assert client.get("/contacts/export.csv").status_code == status


@pytest.mark.parametrize(
    ("raw", "cell"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\tTAB", "'\tTAB"),
        ("\rCR", "'\rCR"),
        ("＝1+1", "'＝1+1"),
        ("Ana = 1", "Ana = 1"),
        ("", ""),
        (None, ""),
        (42, "42"),
    ],
)
def test_neutralise(raw, cell):
    assert export.neutralise(raw) == cell


def test_formula_cells_are_neutralised_and_markup_written_raw(client, auth, ctx):
    account = current_account()
    admin = factories.make_user("admin")
    owner = factories.make_user("attendant", name="-2+3 Owner")
    structure.get_or_create_department(account, "evil", "@SUM(1+1)")
    db.session.commit()
    names = ["=cmd|' /C calc'!A0", "+1", "-1", "@SUM(A1)", "<script>alert(1)</script>"]
    for name in names:
        factories.make_contact(owner, name=name, department="evil")
    factories.make_contact(owner, name="Plain", phone="+55 11 91234-5678")
    auth.login(admin)
    rows = {r["name"]: r for r in read_csv(client.get("/contacts/export.csv"))}
    assert set(rows) == {
        "'=cmd|' /C calc'!A0",
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "<script>alert(1)</script>",
        "Plain",
    }
    assert rows["'+1"]["owner"] == "'-2+3 Owner"
    assert rows["'+1"]["department"] == "'@SUM(1+1)"
    assert rows["Plain"]["phone"] == "'+55 11 91234-5678"


def test_export_reads_in_keyset_chunks(ctx):
    admin = factories.make_user("admin")
    made = [factories.make_contact(admin, name=f"Chunk {n}").id for n in range(10)]
    # Ties on the sort value must neither repeat nor drop a row between chunks.
    db.session.execute(
        update(Contact).values(last_activity_at=Contact.__table__.c.created_at)
    )
    db.session.execute(
        update(Contact)
        .where(Contact.id.in_(made[2:8]))
        .values(last_activity_at=db.session.get(Contact, made[2]).created_at)
    )
    db.session.commit()
    for sort in list_filters.SORTS:
        filters = list_filters.parse_filters(current_account(), {"sort": sort})
        chunks = list(export.csv_chunks(admin, filters, chunk=3))
        assert len(chunks) == 1 + 4  # header, then 3 + 3 + 3 + 1 rows
        rows = list(csv.reader(io.StringIO("".join(chunks).lstrip("\ufeff"))))[1:]
        ids = [int(row[0]) for row in rows]
        assert sorted(ids) == sorted(made) and len(ids) == len(set(ids)), sort


def test_bad_filters_are_422_and_a_cursor_is_ignored(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    factories.make_contact(name="Someone")
    bad = client.get("/contacts/export.csv?status=bogus")
    assert bad.status_code == 422
    assert "status: Pick from the list." in bad.get_data(as_text=True)
    assert client.get("/contacts/export.csv?cursor=tampered").status_code == 200
