"""CSV import of contacts: upload, mapping, preview, the RQ job, the error
report, bad files, duplicates, idempotence and access."""

from __future__ import annotations

import csv
import io
import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.background import runs
from portal.background.lease import Cancelled, Lease, jobs_table
from portal.extensions import db
from portal.imports import runner
from portal.imports.service import guess_mapping
from portal.models import (
    AssignmentLog,
    BackgroundJob,
    Campaign,
    Contact,
    ContactImport,
    HistoryEntry,
    JobKind,
    Notification,
)
from portal.models.base import utcnow
from portal.org import structure
from portal.settings.service import current_account
from tests import factories

HX = {"HX-Request": "true"}


def imports_dir(app) -> Path:
    return Path(app.instance_path) / "imports"


def stored_files(app) -> set[str]:
    folder = imports_dir(app)
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def csv_bytes(rows: list[list[str]], delimiter: str = ",", encoding="utf-8") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode(encoding)


def upload(client, data: bytes, filename: str = "contacts.csv"):
    response = client.post(
        "/contacts/import",
        data={"file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )
    response.get_data()
    response.close()  # also closes the request body the test client spooled
    return response


def import_id_from(response) -> int:
    assert response.status_code == 303, response.get_data(as_text=True)
    parts = response.headers["Location"].rstrip("/").split("/")
    return int(parts[parts.index("import") + 1])


def download(client, url: str) -> tuple[int, str, str]:
    """Status, mimetype and text of a file download (closing the file)."""
    with client.get(url) as response:
        return response.status_code, response.mimetype, response.get_data(as_text=True)


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def mapping_form(imp: ContactImport, on_duplicate: str = "skip", **override) -> dict:
    form = {}
    for index, target in enumerate(imp.mapping):
        form[f"column-{index}"] = "custom" if target.startswith("custom:") else target
    form.update(override)
    form["on_duplicate"] = on_duplicate
    return form


def run_through(client, data: bytes, on_duplicate: str = "skip", **override) -> int:
    """Upload, keep the guessed mapping, start; returns the import id."""
    import_id = import_id_from(upload(client, data))
    imp = db.session.get(ContactImport, import_id)
    response = client.post(
        f"/contacts/import/{import_id}/mapping",
        data=mapping_form(imp, on_duplicate, **override),
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    assert client.get(f"/contacts/import/{import_id}/preview").status_code == 200
    assert client.post(f"/contacts/import/{import_id}/start").status_code == 303
    return import_id


@pytest.fixture
def manager(ctx):
    return factories.make_user(
        "manager", email="manager@example.com", name="Mara Manager", units=["north"]
    )


@pytest.fixture
def seller(ctx):
    return factories.make_user(
        "seller", email="sam@example.com", name="Sam Seller", units=["north"]
    )


# --- the whole flow ----------------------------------------------------------


def test_whole_flow_over_http(app, client, auth, manager, seller, run_jobs):
    account = current_account()
    structure.get_or_create_department(account, "sales", "Sales")
    db.session.add(Campaign(account_id=account.id, key="bf", name="Black Friday"))
    db.session.commit()
    outsider = factories.make_user("seller", email="out@example.com", units=["south"])
    rows = [
        [
            "Nome",
            "Telefone",
            "E-mail",
            "Responsável",
            "Departamento",
            "Campanha",
            "Tags",
            "Orçamento",
        ],
        [
            "Ana Souza",
            "(11) 91234-5678",
            "ana@example.com",
            "SAM@example.com",
            "sales",
            "bf",
            "vip; novo",
            "500k",
        ],
        ["Bruno Lima", "+55 21 99876-5432", "", "", "", "", "", ""],
        ["Carla Dias", "", "not-an-email", "", "", "", "", ""],
        ["", "+55 31 98888-7777", "", "", "", "", "", ""],
        ["Dora Reis", "+55 41 97777-6666", "", "nobody@example.com", "", "", "", ""],
        ["Eva", "+55 51 96666-5555", "", out_email := outsider.email, "", "", "", ""],
        ["Only", "two cells"],
        ["<script>alert(1)</script>", "+55 61 95555-4444", "", "", "", "", "", ""],
        ['=HYPERLINK("http://evil")', "", "bad@", "", "", "", "", "=1+2"],
    ]
    auth.login(manager)

    response = upload(client, csv_bytes(rows, delimiter=";"), "leads.csv")
    import_id = import_id_from(response)
    assert response.headers["Location"].endswith(
        f"/contacts/import/{import_id}/mapping"
    )

    page = client.get(f"/contacts/import/{import_id}/mapping").get_data(as_text=True)
    assert "semicolon" in page and "UTF-8" in page
    imp = db.session.get(ContactImport, import_id)
    assert imp.mapping == [
        "name",
        "phone",
        "email",
        "owner",
        "department",
        "campaign",
        "tags",
        "custom:Orçamento",
    ]
    response = client.post(
        f"/contacts/import/{import_id}/mapping", data=mapping_form(imp, "skip")
    )
    assert response.headers["Location"].endswith(
        f"/contacts/import/{import_id}/preview"
    )

    page = client.get(f"/contacts/import/{import_id}/preview").get_data(as_text=True)
    assert "Every one of the 9 rows was checked." in page
    assert "Email: Not a valid email address." in page
    assert "Name: Required." in page
    assert "Owner (email): No user with this email whom you may assign to." in page
    assert "This row has 2 cells; the header has 8." in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'data-count="create">3<' in page and 'data-count="error">6<' in page
    assert count(Contact) == 0  # the preview writes nothing

    response = client.post(f"/contacts/import/{import_id}/start")
    assert response.headers["Location"].endswith(f"/contacts/import/{import_id}")
    waiting = client.hx_get(f"/contacts/import/{import_id}/progress")
    html = waiting.get_data(as_text=True)
    assert waiting.status_code == 200 and "<html" not in html
    assert 'hx-trigger="every 1s"' in html and 'data-status="queued"' in html

    assert run_jobs() == 1
    db.session.expire_all()  # the worker wrote through its own session

    done = client.hx_get(f"/contacts/import/{import_id}/progress")
    html = done.get_data(as_text=True)
    assert "<html" not in html and "hx-trigger" not in html
    assert 'data-status="done"' in html and "Import finished." in html
    assert 'data-count="create">3<' in html and 'data-count="error">6<' in html

    db.session.expire_all()
    ana = db.session.scalar(select(Contact).where(Contact.name == "Ana Souza"))
    assert ana.owner_id == seller.id and ana.status == "assigned"
    assert ana.origin == "import" and ana.created_by_id == manager.id
    assert ana.phone_e164 == "+5511912345678" and ana.phone_national == "11912345678"
    assert ana.email_normalized == "ana@example.com" and ana.name_search == "ana souza"
    assert ana.department.key == "sales" and ana.campaign.key == "bf"
    assert ana.tags == ["novo", "vip"] and ana.custom == {"Orçamento": "500k"}
    bruno = db.session.scalar(select(Contact).where(Contact.name == "Bruno Lima"))
    assert bruno.owner_id is None and bruno.status == "new"
    script = db.session.scalar(
        select(Contact).where(Contact.phone_e164 == "+5561955554444")
    )
    assert script.name == "<script>alert(1)</script>"  # kept as text
    assert count(Contact) == 3
    logs = db.session.scalars(select(AssignmentLog)).all()
    assert [
        (log.contact_id, log.to_user_id, log.by_user_id, log.how) for log in logs
    ] == [(ana.id, seller.id, manager.id, "import")]
    entry = db.session.scalar(
        select(HistoryEntry).where(HistoryEntry.contact_id == ana.id)
    )
    assert entry.kind == "assignment" and entry.data["to"] == "Sam Seller"
    note = db.session.scalar(
        select(Notification).where(Notification.user_id == seller.id)
    )
    assert note.kind == "import" and note.data["count"] == 1

    status, mimetype, text = download(
        client, f"/contacts/import/{import_id}/errors.csv"
    )
    assert status == 200 and mimetype == "text/csv"
    report = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert report[0] == ["Row", *rows[0], "Error"]
    by_line = {line[0]: line for line in report[1:]}
    assert set(by_line) == {"4", "5", "6", "7", "8", "10"}
    assert by_line["4"][-1] == "Email: Not a valid email address."
    assert by_line["5"][-1] == "Name: Required."
    assert "No user with this email" in by_line["6"][-1]
    assert "No user with this email" in by_line["7"][-1]  # not the manager's unit
    assert by_line["8"][1:3] == ["Only", "two cells"]
    assert by_line["8"][-1] == "Row: This row has 2 cells; the header has 8."
    # Formula-looking cells come back as text, never as formulas.
    assert by_line["10"][1] == '\'=HYPERLINK("http://evil")'
    assert by_line["10"][8] == "'=1+2"
    assert out_email in by_line["7"]


def test_guessing_column_names_in_four_languages():
    assert guess_mapping(
        ["Full name", "Mobile", "Email address", "Owner email", "Tags", "Budget"]
    ) == ["name", "phone", "email", "owner", "tags", "custom:Budget"]
    assert guess_mapping(["Nome completo", "Celular", "E-mail", "Situação"]) == [
        "name",
        "phone",
        "email",
        "status",
    ]
    assert guess_mapping(["Nombre", "Teléfono", "Correo electrónico", "Campaña"]) == [
        "name",
        "phone",
        "email",
        "campaign",
    ]
    assert guess_mapping(["Имя", "Телефон", "Электронная почта", "Ответственный"]) == [
        "name",
        "phone",
        "email",
        "owner",
    ]
    # A field is guessed once; a second "phone" column becomes a custom
    # field, named apart from the first.
    assert guess_mapping(["name", "phone", "phone"]) == [
        "name",
        "phone",
        "custom:phone (2)",
    ]


def test_preview_lists_errors_beyond_the_first_rows(client, auth, manager):
    auth.login(manager)
    rows = [["name", "email"]] + [[f"P{n}", f"p{n}@example.com"] for n in range(30)]
    rows[27][1] = "broken"
    import_id = import_id_from(upload(client, csv_bytes(rows)))
    imp = db.session.get(ContactImport, import_id)
    client.post(f"/contacts/import/{import_id}/mapping", data=mapping_form(imp))
    page = client.get(f"/contacts/import/{import_id}/preview").get_data(as_text=True)
    assert "The first 20 rows" in page and '<h2 id="later-errors">Errors</h2>' in page
    assert 'data-line="28"' in page and "Email: Not a valid email address." in page
    assert 'data-count="create">29<' in page and 'data-count="error">1<' in page


def test_windows_1252_file_with_tabs_is_read_and_said_so(client, auth, manager):
    auth.login(manager)
    data = "name\tphone\nJoão Ñúñez\t+55 11 91111-2222\n".encode("cp1252")
    import_id = import_id_from(upload(client, data))
    page = client.get(f"/contacts/import/{import_id}/mapping").get_data(as_text=True)
    assert "Windows-1252" in page and "tab separated" in page
    assert "João Ñúñez" in page


# --- duplicates ---------------------------------------------------------------


def existing_contact(owner):
    return factories.make_contact(
        owner, name="Old Name", phone="+55 11 95555-0000", email="old@example.com"
    )


def test_duplicates_are_skipped(client, auth, manager, seller, run_jobs):
    contact = existing_contact(seller)
    auth.login(manager)
    rows = [
        ["name", "phone", "email", "tags"],
        ["New Name", "(11) 95555-0000", "", "fresh"],  # same phone, other format
        ["Other", "", "OLD@example.com", ""],  # same email
        ["Twin A", "+55 11 94444-0000", "", ""],
        ["Twin B", "11 94444-0000", "", ""],  # same as a row above
    ]
    import_id = run_through(client, csv_bytes(rows), "skip")
    run_jobs()
    db.session.expire_all()
    imp = db.session.get(ContactImport, import_id)
    assert (imp.created, imp.updated, imp.skipped, imp.failed) == (1, 0, 3, 0)
    kept = db.session.get(Contact, contact.id)
    assert kept.name == "Old Name" and kept.tags == []
    assert count(Contact) == 2


def test_duplicates_update_the_existing_contact(
    client, auth, manager, seller, run_jobs
):
    contact = existing_contact(seller)
    other = factories.make_user("seller", units=["north"], email="other@example.com")
    auth.login(manager)
    rows = [
        ["name", "phone", "email", "tags", "owner", "source"],
        ["New Name", "(11) 95555-0000", "", "fresh", "", "fair"],
        ["", "", "old@example.com", "", "", ""],  # no name: an error, not an update
        ["Newest Name", "", "OLD@example.com", "again", "other@example.com", ""],
        ["Twin A", "+55 11 94444-0000", "", "", "", ""],
        ["Twin B", "11 94444-0000", "", "t", "", ""],
    ]
    import_id = run_through(client, csv_bytes(rows), "update")
    run_jobs()
    db.session.expire_all()
    imp = db.session.get(ContactImport, import_id)
    assert (imp.created, imp.updated, imp.skipped, imp.failed) == (1, 3, 0, 1)
    updated = db.session.get(Contact, contact.id)
    assert updated.name == "Newest Name" and updated.email == "old@example.com"
    assert updated.tags == ["again", "fresh"] and updated.custom == {"source": "fair"}
    assert updated.owner_id == other.id and updated.origin == "manual"
    twin = db.session.scalar(
        select(Contact).where(Contact.phone_e164 == "+5511944440000")
    )
    assert twin.name == "Twin B" and twin.tags == ["t"]
    assert count(Contact) == 2
    log = db.session.scalar(
        select(AssignmentLog).where(
            AssignmentLog.contact_id == contact.id, AssignmentLog.how == "import"
        )
    )
    assert (log.from_user_id, log.to_user_id, log.by_user_id) == (
        seller.id,
        other.id,
        manager.id,
    )


def test_update_never_touches_a_contact_outside_the_importers_scope(
    client, auth, manager, run_jobs
):
    stranger = factories.make_user("seller", units=["south"])
    contact = existing_contact(stranger)
    auth.login(manager)
    rows = [["name", "phone"], ["Taken Over", "+55 11 95555-0000"]]
    import_id = run_through(client, csv_bytes(rows), "update")
    run_jobs()
    db.session.expire_all()
    imp = db.session.get(ContactImport, import_id)
    assert (imp.created, imp.updated, imp.failed) == (0, 0, 1)
    assert db.session.get(Contact, contact.id).name == "Old Name"
    report = download(client, f"/contacts/import/{import_id}/errors.csv")[2]
    assert "already exists and you may not change it" in report
    assert "Old Name" not in report


# --- the job is safe to run twice ----------------------------------------------


def _job_of(import_id: int) -> BackgroundJob:
    db.session.expire_all()
    return runs.latest_for(JobKind.IMPORT, import_id)


def test_the_job_run_twice_creates_nothing_twice(client, auth, manager, run_jobs, app):
    auth.login(manager)
    rows = [["name", "phone"]] + [
        [f"Person {n}", f"+55 11 9{n:04d}-0000"] for n in range(30)
    ]
    import_id = run_through(client, csv_bytes(rows))
    job_id = _job_of(import_id).id
    with app.app_context():
        from portal.queue import enqueue

        enqueue("jobs.background.run", job_id)
    assert run_jobs() == 2
    from jobs.background import run

    assert run(job_id) is None  # ended: nothing to do
    db.session.expire_all()
    assert count(Contact) == 30
    imp = db.session.get(ContactImport, import_id)
    assert (imp.status, imp.processed, imp.created) == ("done", 30, 30)
    assert _job_of(import_id).status == "done"
    # A second "start" queues nothing.
    assert client.post(f"/contacts/import/{import_id}/start").status_code == 303
    assert run_jobs() == 0


def test_a_run_finding_another_at_work_on_the_import_leaves_it(
    client, auth, manager, app
):
    auth.login(manager)
    import_id = run_through(
        client, csv_bytes([["name", "phone"], ["A", "+5511912345678"]])
    )
    job = _job_of(import_id)
    other_run = Lease.take(job)
    assert other_run is not None
    assert runs.perform(job.id) is None
    db.session.expire_all()
    assert count(Contact) == 0
    assert _job_of(import_id).holder == other_run.holder
    # The other run's worker vanished: once its lease lapses, a run goes on.
    job = _job_of(import_id)
    job.lease_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert runs.perform(job.id)["status"] == "done"
    db.session.expire_all()
    assert count(Contact) == 1
    assert db.session.get(ContactImport, import_id).created == 1


class Crash(Exception):
    pass


def test_a_run_that_stops_is_resumed_after_its_last_batch(
    client, auth, manager, monkeypatch
):
    auth.login(manager)
    rows = [["name", "phone", "email"]] + [
        [f"Person {n}", f"+55 11 9{n:04d}-0000", "broken" if n % 4 == 0 else ""]
        for n in range(10)
    ]
    import_id = run_through(client, csv_bytes(rows))
    monkeypatch.setattr(runner, "BATCH_SIZE", 3)
    batches = []
    refresh = runner._refresh_statistics

    def crash_after_two_batches(done: int) -> None:
        batches.append(done)
        if len(batches) == 2:
            raise Crash()
        refresh(done)

    monkeypatch.setattr(runner, "_refresh_statistics", crash_after_two_batches)
    job = _job_of(import_id)
    with pytest.raises(Crash):
        runs.perform(job.id)
    db.session.expire_all()
    imp = db.session.get(ContactImport, import_id)
    assert imp.processed == 6
    job = _job_of(import_id)
    # One try spent; the job waits for RQ's retry, nobody holds it.
    assert (job.status, job.errors, job.holder, job.processed) == ("queued", 1, None, 6)
    assert "Crash" in job.detail
    # The next run goes on from row 7.
    assert runs.perform(job.id)["status"] == "done"
    db.session.expire_all()
    imp = db.session.get(ContactImport, import_id)
    assert imp.status == "done" and imp.processed == 10
    assert (imp.created, imp.failed) == (7, 3)
    assert count(Contact) == 7
    report = download(client, f"/contacts/import/{import_id}/errors.csv")[2]
    lines = report.strip().splitlines()
    assert len(lines) == 1 + 3  # header + the three broken rows, none twice
    assert not Path(imports_dir(client.application), imp.stored_name).exists()


# --- bad input: a clear message, nothing written ---------------------------------


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"", "empty.csv", "The file is empty."),
        (b"\xef\xbb\xbf \r\n\r\n", "blank.csv", "The file is empty."),
        (b"name,phone,email\r\n", "header.csv", "names its columns but has no rows"),
        (
            b"Ana,+55 11 91234-5678,ana@example.com\r\n",
            "noheader.csv",
            "looks like a contact, not column names",
        ),
        ("name,phone\nAna,1\n".encode("utf-16"), "utf16.csv", "UTF-16"),
        (os.urandom(2048), "random.csv", "not a text CSV file"),
        (b"PK\x03\x04" + os.urandom(200), "book.csv", "Excel workbook"),
        (b"name,phone\nAna,1\n", "contacts.xlsx", "Upload a .csv file"),
        (b"\x89PNG\r\n\x1a\n" + os.urandom(100), "photo.png", "Upload a .csv file"),
    ],
)
def test_bad_files_are_refused_with_a_message(
    app, client, auth, manager, data, filename, message
):
    auth.login(manager)
    before = stored_files(app)
    response = upload(client, data, filename)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert count(ContactImport) == 0
    assert stored_files(app) == before


def test_no_file_chosen(client, auth, manager):
    auth.login(manager)
    response = client.post(
        "/contacts/import", data={}, content_type="multipart/form-data"
    )
    assert response.status_code == 422
    assert "Choose a CSV file." in response.get_data(as_text=True)


def test_a_file_over_the_limit_gets_413_with_the_limit(app, client, auth, manager):
    auth.login(manager)
    limit = app.config["MAX_CONTENT_LENGTH"]
    # The multipart body a browser would send, built by hand: the test
    # client's own builder would spool it to a temporary file it never closes
    # when the app refuses to read it.
    boundary = "roleta-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="huge.csv"\r\nContent-Type: text/csv\r\n\r\n'.encode()
        + b"name,phone\n"
        + b"x" * limit
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        "/contacts/import",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert f"The file is larger than {limit // (1024 * 1024)} MB" in html
    assert count(ContactImport) == 0


def test_mapping_without_a_name_column_is_refused(client, auth, manager):
    auth.login(manager)
    rows = [["Cliente", "Telefone"], ["Ana", "+55 11 91234-5678"]]
    import_id = import_id_from(upload(client, csv_bytes(rows)))
    imp = db.session.get(ContactImport, import_id)
    response = client.post(
        f"/contacts/import/{import_id}/mapping",
        data=mapping_form(imp, **{"column-0": "ignore"}),
    )
    assert response.status_code == 422
    assert "Choose the column that holds the name." in response.get_data(as_text=True)
    response = client.post(
        f"/contacts/import/{import_id}/mapping",
        data=mapping_form(imp, **{"column-1": "name"}),
    )
    assert response.status_code == 422
    assert "Name is already the column “Cliente”." in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(ContactImport, import_id).status == "uploaded"
    # Without a mapping there is nothing to start.
    client.post(f"/contacts/import/{import_id}/start")
    db.session.expire_all()
    assert db.session.get(ContactImport, import_id).status == "uploaded"


def test_long_cells_are_row_errors_not_crashes(client, auth, manager, run_jobs):
    auth.login(manager)
    rows = [
        ["name", "phone", "notes"],
        ["x" * 10_000, "+55 11 91234-5678", ""],
        ["Fine", "+55 11 91234-0000", "y" * 10_000],
        ["Huge", "+55 11 91234-1111", "z" * 200_000],
        ["Last", "+55 11 91234-2222", ""],
    ]
    import_id = run_through(client, csv_bytes(rows))
    run_jobs()
    db.session.expire_all()
    imp = db.session.get(ContactImport, import_id)
    assert (imp.created, imp.failed) == (1, 3)
    assert db.session.scalar(select(Contact.name)) == "Last"
    report = download(client, f"/contacts/import/{import_id}/errors.csv")[2]
    assert "Name: Use at most 200 characters." in report
    assert "Custom fields: Too many or too long custom fields." in report
    assert "Row: This row cannot be read." in report


# --- access --------------------------------------------------------------------

IMPORT_PAGES = [
    ("get", "/contacts/import"),
    ("post", "/contacts/import"),
    ("get", "/contacts/import/{id}/mapping"),
    ("post", "/contacts/import/{id}/mapping"),
    ("get", "/contacts/import/{id}/preview"),
    ("post", "/contacts/import/{id}/start"),
    ("get", "/contacts/import/{id}"),
    ("get", "/contacts/import/{id}/progress"),
    ("post", "/contacts/import/{id}/cancel"),
    ("get", "/contacts/import/{id}/errors.csv"),
]


def make_import(owner) -> ContactImport:
    imp = ContactImport(
        account_id=owner.account_id,
        user_id=owner.id,
        filename="x.csv",
        stored_name="missing.csv",
        encoding="utf-8",
        delimiter=",",
        header=["name", "phone"],
        mapping=["name", "phone"],
        status="done",
        total=1,
        processed=1,
        failed=1,
        report_name="missing-errors.csv",
    )
    db.session.add(imp)
    db.session.commit()
    return imp


ROLES_WITHOUT_IMPORT = [
    "coordinator",
    "attendant",
    "seller",
    "reception",
    "media",
    "ranking",
    "callcenter",
]


@pytest.mark.parametrize("role", ROLES_WITHOUT_IMPORT)
@pytest.mark.parametrize(("method", "url"), IMPORT_PAGES[:2])
def test_roles_without_contacts_import_get_403(client, auth, ctx, role, method, url):
    auth.login(factories.make_user(role))
    assert getattr(client, method)(url).status_code == 403
    assert count(ContactImport) == 0


@pytest.mark.parametrize(("method", "url"), IMPORT_PAGES[2:])
def test_every_import_page_needs_contacts_import(client, auth, ctx, method, url):
    imp = make_import(factories.make_user("manager", password=None))
    auth.login(factories.make_user("coordinator"))
    response = getattr(client, method)(url.format(id=imp.id))
    assert response.status_code == 403
    db.session.expire_all()
    assert db.session.get(ContactImport, imp.id).status == "done"


@pytest.mark.parametrize("role", ["admin", "manager"])
def test_roles_with_contacts_import_see_the_upload_page(client, auth, ctx, role):
    auth.login(factories.make_user(role))
    response = client.get("/contacts/import")
    assert response.status_code == 200
    assert 'enctype="multipart/form-data"' in response.get_data(as_text=True)


@pytest.mark.parametrize(("method", "url"), IMPORT_PAGES[2:])
def test_another_managers_import_is_404(client, auth, ctx, method, url):
    imp = make_import(factories.make_user("manager", password=None))
    auth.login(factories.make_user("manager"))
    assert getattr(client, method)(url.format(id=imp.id)).status_code == 404


def test_only_the_importer_or_an_admin_downloads_the_report(
    client, auth, manager, run_jobs
):
    auth.login(manager)
    import_id = run_through(
        client, csv_bytes([["name", "email"], ["Bad", "nope"], ["Good", "g@x.org"]])
    )
    run_jobs()
    url = f"/contacts/import/{import_id}/errors.csv"
    assert download(client, url)[0] == 200
    auth.logout()
    auth.login(factories.make_user("manager", units=["north"]))
    assert download(client, url)[0] == 404
    assert client.hx_get(f"/contacts/import/{import_id}/progress").status_code == 404
    auth.logout()
    auth.login(factories.make_user("admin"))
    status, _mimetype, text = download(client, url)
    assert status == 200 and "nope" in text


def test_signed_out_visitors_are_sent_to_sign_in(client, ctx):
    assert client.get("/contacts/import").status_code in (302, 303)


def test_an_import_whose_file_is_gone_fails_asking_to_upload_it_again(
    client, auth, manager, run_jobs
):
    auth.login(manager)
    import_id = run_through(
        client, csv_bytes([["name", "phone"], ["A", "+5511912345678"]])
    )
    imp = db.session.get(ContactImport, import_id)
    Path(imports_dir(client.application), imp.stored_name).unlink()
    run_jobs()
    db.session.expire_all()
    imp = db.session.get(ContactImport, import_id)
    job = _job_of(import_id)
    assert (imp.status, job.status, job.reason) == ("failed", "failed", "file_gone")
    assert job.errors == 0  # no retry brings a file back
    page = client.get(f"/contacts/import/{import_id}").get_data(as_text=True)
    assert "Upload it again" in page
    assert count(Contact) == 0


# --- cancel --------------------------------------------------------------------


def _progress(client, import_id: int) -> str:
    return client.get(f"/contacts/import/{import_id}/progress").get_data(as_text=True)


def test_cancel_before_a_worker_starts_stops_it_with_nothing_written(
    client, auth, manager, run_jobs
):
    auth.login(manager)
    rows = [["name", "phone"]] + [[f"P {n}", f"+55 11 9{n:04d}-1111"] for n in range(5)]
    import_id = run_through(client, csv_bytes(rows))
    cancel_url = f"/contacts/import/{import_id}/cancel"
    assert f'action="{cancel_url}"' in _progress(client, import_id)
    response = client.post(f"/contacts/import/{import_id}/cancel")
    assert response.status_code == 303
    run_jobs()  # RQ's job was cancelled with it: nothing runs
    db.session.expire_all()
    imp = db.session.get(ContactImport, import_id)
    assert (imp.status, imp.processed, imp.created) == ("cancelled", 0, 0)
    assert _job_of(import_id).status == "cancelled"
    assert count(Contact) == 0
    html = _progress(client, import_id)
    assert 'data-status="cancelled"' in html
    assert "Stopped at 0 of 5 rows; what was imported stays." in html
    assert "/cancel" not in html  # ended: nothing to cancel, nothing polls
    assert "hx-trigger" not in html
    # Cancelling again, or starting again, changes nothing.
    again = client.post(f"/contacts/import/{import_id}/cancel")
    assert again.status_code == 409
    assert "nothing to cancel" in again.get_data(as_text=True)
    assert client.post(f"/contacts/import/{import_id}/start").status_code == 303
    assert run_jobs() == 0
    assert db.session.get(ContactImport, import_id).status == "cancelled"


def test_cancel_while_running_is_asked_of_the_run(client, auth, manager):
    auth.login(manager)
    import_id = run_through(
        client, csv_bytes([["name", "phone"], ["A", "+5511912345678"]])
    )
    worker_run = Lease.take(_job_of(import_id))  # a worker took it
    response = client.hx_post(f"/contacts/import/{import_id}/cancel")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="import-progress"' in html
    assert "Stopping after the rows being written now" in html
    assert "/cancel" not in html  # asked once
    assert _job_of(import_id).cancel_requested
    # The run hears it at its next batch and rolls that batch back.
    with pytest.raises(Cancelled):
        worker_run.checkpoint(1)
    db.session.rollback()


def test_cancel_while_running_stops_after_the_batch_and_keeps_it(
    client, auth, manager, monkeypatch
):
    auth.login(manager)
    rows = [["name", "phone"]] + [[f"P {n}", f"+55 11 9{n:04d}-2222"] for n in range(9)]
    import_id = run_through(client, csv_bytes(rows))
    monkeypatch.setattr(runner, "BATCH_SIZE", 3)
    job_id = _job_of(import_id).id
    original = Lease.checkpoint

    def cancel_during_the_second_batch(lease, processed, total=None):
        if processed == 6:
            # Cancel arrives while the second batch is being written (a
            # person's request would block on SQLite's write lock here, so
            # the flag is set in the batch's own transaction).
            db.session.execute(
                jobs_table.update()
                .where(jobs_table.c.id == job_id)
                .values(cancel_requested=True)
            )
        return original(lease, processed, total)

    monkeypatch.setattr(Lease, "checkpoint", cancel_during_the_second_batch)
    summary = runs.perform(job_id)
    assert summary["status"] == "cancelled"
    db.session.expire_all()
    imp = db.session.get(ContactImport, import_id)
    # The first batch stays; the one being written when Cancel came is undone.
    assert (imp.status, imp.processed, imp.created) == ("cancelled", 3, 3)
    assert count(Contact) == imp.created
    assert "Stopped at 3 of 9 rows" in _progress(client, import_id)
