"""Working hours per department: the admin form, its validation, the list's
summary, and `hours.is_open`, which the roulette asks before offering."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from portal.errors import NotFound, ValidationError
from portal.extensions import db
from portal.models import Account, Department, Lead
from portal.models.permissions import PRESETS_BY_KEY, ROLE_PRESETS
from portal.org import department_hours, hours
from portal.org import service as org
from portal.roulette import routing
from portal.settings.service import current_account
from tests import factories

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _form(timezone: str = "America/Sao_Paulo", **spans: tuple[str, str]) -> dict:
    """The hours form: every day blank unless named in `spans`."""
    data = {"timezone": timezone}
    for day in DAYS:
        start, end = spans.get(day, ("", ""))
        data[f"hours_{day}_start"] = start
        data[f"hours_{day}_end"] = end
    return data


WEEKDAYS_8_TO_18 = {day: ("08:00", "18:00") for day in DAYS[:5]}


def _department() -> Department:
    return org.create_department(current_account(), "sales", "Sales")


def _stored(department_id: int) -> tuple[dict | None, str]:
    db.session.expire_all()
    department = db.session.get(Department, department_id)
    return department.working_hours, department.timezone


# --- Access -----------------------------------------------------------------


@pytest.mark.parametrize("role", [preset.key for preset in ROLE_PRESETS])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_only_those_who_manage_departments_edit_hours(client, auth, ctx, role, method):
    department = _department()
    auth.login(factories.make_user(role))
    url = f"/admin/departments/{department.id}/hours"
    if method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, data=_form(**WEEKDAYS_8_TO_18))
    if "departments.manage" in PRESETS_BY_KEY[role].permissions:
        assert response.status_code in (200, 303)
    else:
        assert response.status_code == 403
        assert _stored(department.id) == (None, "UTC")


def test_another_accounts_department_is_not_found(client, auth, ctx):
    other = Account(name="Other")
    db.session.add(other)
    db.session.flush()
    theirs = Department(account_id=other.id, key="theirs", name="Theirs")
    db.session.add(theirs)
    db.session.commit()
    auth.login(factories.make_user("admin"))
    url = f"/admin/departments/{theirs.id}/hours"
    assert client.get(url).status_code == 404
    assert client.hx_post(url, data=_form(**WEEKDAYS_8_TO_18)).status_code == 404
    assert _stored(theirs.id) == (None, "UTC")
    with pytest.raises(NotFound):
        department_hours.set_department_hours(current_account(), theirs.id, {}, "UTC")


# --- The form -----------------------------------------------------------------


def test_the_form_opens_in_the_row_with_the_stored_hours(client, auth, ctx):
    department = _department()
    department_hours.set_department_hours(
        current_account(), department.id, {"mon": ("09:00", "17:30")}, "Europe/Madrid"
    )
    auth.login(factories.make_user("admin"))
    response = client.hx_get(f"/admin/departments/{department.id}/hours")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert html.strip().startswith(f'<tr id="department-{department.id}"')
    assert 'name="timezone" value="Europe/Madrid"' in html
    assert 'type="time" name="hours_mon_start" value="09:00"' in html
    assert 'type="time" name="hours_mon_end" value="17:30"' in html
    assert 'type="time" name="hours_tue_start" value=""' in html
    # The zone is picked from the IANA names; the form says what blanks mean.
    assert '<option value="America/Sao_Paulo">' in html
    assert "every day blank and the department is always open" in html
    assert "Monday" in html and "Sunday" in html


def test_without_javascript_the_form_is_the_page_with_that_row_open(client, auth, ctx):
    department = _department()
    org.create_department(current_account(), "rent", "Rentals")
    auth.login(factories.make_user("admin"))
    html = client.get(f"/admin/departments/{department.id}/hours").get_data(
        as_text=True
    )
    assert "<html" in html
    assert f'action="/admin/departments/{department.id}/hours"' in html
    assert html.count('name="timezone"') == 1  # only the row asked for


def test_save_with_htmx_stores_the_hours_and_shows_the_summary(client, auth, ctx):
    department = _department()
    auth.login(factories.make_user("admin"))
    response = client.hx_post(
        f"/admin/departments/{department.id}/hours",
        data=_form(**WEEKDAYS_8_TO_18, sat=("09:00", "13:00")),
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert html.strip().startswith(f'<tr id="department-{department.id}">')
    assert "Mon–Fri 08:00–18:00; Sat 09:00–13:00, America/Sao_Paulo" in html
    assert "Working hours of Sales saved." in html
    assert '<hx-partial hx-target="#flash"' in html
    assert _stored(department.id) == (
        {**{d: ["08:00", "18:00"] for d in DAYS[:5]}, "sat": ["09:00", "13:00"]},
        "America/Sao_Paulo",
    )


def test_save_without_javascript_redirects_to_the_list(client, auth, ctx):
    department = _department()
    auth.login(factories.make_user("admin"))
    response = client.post(
        f"/admin/departments/{department.id}/hours", data=_form(**WEEKDAYS_8_TO_18)
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/departments"
    page = client.get("/admin/departments").get_data(as_text=True)
    assert "Working hours of Sales saved." in page
    assert "Mon–Fri 08:00–18:00, America/Sao_Paulo" in page


def test_every_day_blank_means_always_open(client, auth, ctx):
    department = _department()
    account = current_account()
    department_hours.set_department_hours(
        account, department.id, {"mon": ("08:00", "18:00")}, "Asia/Tokyo"
    )
    auth.login(factories.make_user("admin"))
    response = client.hx_post(
        f"/admin/departments/{department.id}/hours", data=_form(timezone="Asia/Tokyo")
    )
    assert response.status_code == 200
    assert "Always open" in response.get_data(as_text=True)
    assert _stored(department.id) == (None, "Asia/Tokyo")


def _saved_by_an_admin(client, auth, **spans: tuple[str, str]) -> tuple[int, str]:
    """A new department's hours (UTC) saved through the form with htmx: its
    id and the answer."""
    department = _department()
    auth.login(factories.make_user("admin"))
    response = client.hx_post(
        f"/admin/departments/{department.id}/hours",
        data=_form(timezone="UTC", **spans),
    )
    assert response.status_code == 200
    return department.id, response.get_data(as_text=True)


def test_an_overnight_span_is_stored_and_read_as_running_past_midnight(
    client, auth, ctx
):
    department_id, html = _saved_by_an_admin(client, auth, fri=("22:00", "06:00"))
    assert "Fri 22:00–06:00 next day, UTC" in html
    stored, zone = _stored(department_id)
    assert stored == {"fri": ["22:00", "06:00"]}
    friday_night = datetime(2024, 1, 12, 23, 30, tzinfo=UTC)  # a Friday
    saturday_dawn = datetime(2024, 1, 13, 5, 59, tzinfo=UTC)
    saturday_morning = datetime(2024, 1, 13, 6, 0, tzinfo=UTC)
    assert hours.is_open(stored, zone, friday_night)
    assert hours.is_open(stored, zone, saturday_dawn)
    assert not hours.is_open(stored, zone, saturday_morning)


def test_an_end_equal_to_the_start_keeps_the_department_open_24_hours(
    client, auth, ctx
):
    department_id, html = _saved_by_an_admin(
        client, auth, mon=("00:00", "00:00"), fri=("08:00", "08:00")
    )
    assert "Mon all day; Fri 24 h from 08:00, UTC" in html
    stored, zone = _stored(department_id)
    assert stored == {"mon": ["00:00", "00:00"], "fri": ["08:00", "08:00"]}

    def at(day: int, hour: int, minute: int = 0) -> bool:
        # 2024-01-08 is a Monday.
        return hours.is_open(
            stored, zone, datetime(2024, 1, day, hour, minute, tzinfo=UTC)
        )

    assert at(8, 0) and at(8, 12) and at(8, 23, 59)  # the whole Monday
    assert not at(7, 23, 59) and not at(9, 0)  # Sunday night, Tuesday
    assert not at(12, 7, 59) and at(12, 8) and at(12, 23, 59)  # Friday from 8
    assert at(13, 0) and at(13, 7, 59) and not at(13, 8)  # until Saturday 8


@pytest.mark.parametrize(
    ("spans", "timezone", "field", "message"),
    [
        ({"mon": ("8", "18:00")}, "UTC", "hours_mon", "Use HH:MM"),
        ({"tue": ("08:00", "")}, "UTC", "hours_tue", "Give both times"),
        ({"wed": ("", "18:00")}, "UTC", "hours_wed", "Give both times"),
        ({"thu": ("24:00", "18:00")}, "UTC", "hours_thu", "Use HH:MM"),
        ({"sat": ("08:00:00", "12:00")}, "UTC", "hours_sat", "Use HH:MM"),
        ({"sun": ("noon", "18:00")}, "UTC", "hours_sun", "Use HH:MM"),
        ({"mon": ("08:00", "18:00")}, "Mars/Olympus", "timezone", "time zone"),
    ],
)
def test_each_invalid_input_names_its_field_and_saves_nothing(
    client, auth, ctx, spans, timezone, field, message
):
    department = _department()
    account = current_account()
    department_hours.set_department_hours(
        account, department.id, {"sun": ("10:00", "14:00")}, "UTC"
    )
    before = _stored(department.id)
    auth.login(factories.make_user("admin"))
    # Valid days go along: all or nothing.
    data = _form(timezone=timezone, **{"mon": ("07:00", "19:00"), **spans})
    response = client.hx_post(f"/admin/departments/{department.id}/hours", data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" not in html
    assert html.strip().startswith(
        f'<tr id="department-{department.id}" class="editing"'
    )
    error = html[html.index(f'id="error-{field}"') :]
    assert message in error[: error.index("</small>")]
    assert html.count('class="field-error"') == 1
    # What was typed stays, to be corrected.
    for name, value in data.items():
        assert f'name="{name}" value="{value}"' in html
    assert _stored(department.id) == before


def test_a_blank_time_zone_means_utc(ctx):
    department = _department()
    department_hours.set_department_hours(
        current_account(), department.id, {"mon": ("08:00", "18:00")}, "  "
    )
    assert _stored(department.id) == ({"mon": ["08:00", "18:00"]}, "UTC")


def test_errors_on_several_fields_are_all_named(client, auth, ctx):
    department = _department()
    auth.login(factories.make_user("admin"))
    data = _form(timezone="Nowhere", mon=("9", "17:00"), sun=("10:00", ""))
    response = client.post(f"/admin/departments/{department.id}/hours", data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" in html  # without htmx: the whole page, that row open
    for field in ("timezone", "hours_mon", "hours_sun"):
        assert f'id="error-{field}"' in html
    assert 'id="error-hours_tue"' not in html
    assert _stored(department.id) == (None, "UTC")


def test_the_service_refuses_with_field_names(ctx):
    department = _department()
    with pytest.raises(ValidationError) as refused:
        department_hours.set_department_hours(
            current_account(),
            department.id,
            {"mon": ("08:00", "8pm"), "tue": ("09:00", "17:00")},
            "Europe/Atlantis",
        )
    assert set(refused.value.fields) == {"hours_mon", "timezone"}
    assert _stored(department.id) == (None, "UTC")


# --- The summary --------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "zone", "expected"),
    [
        (None, "UTC", "Always open"),
        ({}, "UTC", "Always open"),
        (
            {d: ["08:00", "18:00"] for d in DAYS[:5]},
            "America/Sao_Paulo",
            "Mon–Fri 08:00–18:00, America/Sao_Paulo",
        ),
        (
            {"mon": ["08:00", "12:00"], "wed": ["08:00", "12:00"]},
            "UTC",
            "Mon 08:00–12:00; Wed 08:00–12:00, UTC",
        ),
        (
            {
                "mon": ["08:00", "18:00"],
                "tue": ["08:00", "18:00"],
                "wed": ["10:00", "18:00"],
                "sat": ["22:00", "04:00"],
                "sun": ["22:00", "04:00"],
            },
            "Europe/Lisbon",
            "Mon–Tue 08:00–18:00; Wed 10:00–18:00; "
            "Sat–Sun 22:00–04:00 next day, Europe/Lisbon",
        ),
    ],
)
def test_summary_text(ctx, stored, zone, expected):
    assert hours.hours_summary(stored, zone) == expected


def test_the_department_list_shows_each_summary(client, auth, ctx):
    account = current_account()
    sales = _department()
    org.create_department(account, "rent", "Rentals")
    department_hours.set_department_hours(
        account,
        sales.id,
        {d: ("08:00", "18:00") for d in DAYS[:5]},
        "America/Sao_Paulo",
    )
    auth.login(factories.make_user("admin"))
    html = client.get("/admin/departments").get_data(as_text=True)
    assert "<th>Working hours</th>" in html
    sales_row = html[html.index(f'<tr id="department-{sales.id}">') :]
    sales_row = sales_row[: sales_row.index("</tr>")]
    assert "Mon–Fri 08:00–18:00, America/Sao_Paulo" in sales_row
    assert f'href="/admin/departments/{sales.id}/hours"' in sales_row
    rent = db.session.scalar(select(Department).where(Department.key == "rent"))
    rent_row = html[html.index(f'<tr id="department-{rent.id}">') :]
    assert "Always open" in rent_row[: rent_row.index("</tr>")]


# --- hours.is_open --------------------------------------------------------------

OFFICE = {d: ["08:00", "18:00"] for d in DAYS[:5]}


def at(text: str) -> datetime:
    """An aware UTC moment from "2024-01-08 10:30" (2024-01-08 is a Monday)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2024-01-08 08:00", True),  # Monday, opening minute
        ("2024-01-08 07:59", False),
        ("2024-01-08 17:59", True),
        ("2024-01-08 18:00", False),  # the end is exclusive
        ("2024-01-10 12:00", True),  # Wednesday
        ("2024-01-12 12:00", True),  # Friday
        ("2024-01-13 12:00", False),  # Saturday: closed
        ("2024-01-14 12:00", False),  # Sunday: closed
    ],
)
def test_is_open_across_weekdays(moment, expected):
    assert hours.is_open(OFFICE, "UTC", at(moment)) is expected


@pytest.mark.parametrize(
    ("zone", "moment", "expected"),
    [
        # São Paulo is UTC-3: 10:30 UTC is 07:30 there, 11:30 UTC is 08:30.
        ("America/Sao_Paulo", "2024-01-08 10:30", False),
        ("America/Sao_Paulo", "2024-01-08 11:30", True),
        # 22:00 UTC on Friday is 19:00 in São Paulo: closed.
        ("America/Sao_Paulo", "2024-01-12 22:00", False),
        # 23:30 UTC on Sunday is already Monday 08:30 in Tokyo (UTC+9).
        ("Asia/Tokyo", "2024-01-07 23:30", True),
        # 10:00 UTC on Friday is 19:00 in Tokyo: closed.
        ("Asia/Tokyo", "2024-01-12 10:00", False),
        # Daylight saving: New York opens at 13:00 UTC in winter (EST) ...
        ("America/New_York", "2024-03-04 12:30", False),
        ("America/New_York", "2024-03-04 13:30", True),
        # ... and at 12:00 UTC after the clocks moved on 10 March (EDT).
        ("America/New_York", "2024-03-11 12:30", True),
        # An unknown zone is read as UTC rather than closing the department.
        ("Nowhere/Atall", "2024-01-08 12:00", True),
    ],
)
def test_is_open_in_time_zones(zone, moment, expected):
    assert hours.is_open(OFFICE, zone, at(moment)) is expected


NIGHTS = {"mon": ["22:00", "06:00"], "sun": ["23:00", "02:00"]}


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2024-01-08 21:59", False),  # Monday evening, before the shift
        ("2024-01-08 22:00", True),
        ("2024-01-08 23:59", True),
        ("2024-01-09 00:00", True),  # Tuesday: Monday's span goes on
        ("2024-01-09 05:59", True),
        ("2024-01-09 06:00", False),
        ("2024-01-09 22:30", False),  # Tuesday night has no span of its own
        ("2024-01-14 23:30", True),  # Sunday night ...
        ("2024-01-08 01:59", True),  # ... runs into Monday (the week wraps)
        ("2024-01-08 02:00", False),
        ("2024-01-07 01:00", False),  # Sunday early: Saturday had no span
    ],
)
def test_is_open_with_overnight_spans(moment, expected):
    assert hours.is_open(NIGHTS, "UTC", at(moment)) is expected


def test_overnight_span_in_a_time_zone():
    # Friday 22:00-06:00 in São Paulo is Saturday 01:00-09:00 UTC.
    night = {"fri": ["22:00", "06:00"]}
    zone = "America/Sao_Paulo"
    assert not hours.is_open(night, zone, at("2024-01-13 00:59"))
    assert hours.is_open(night, zone, at("2024-01-13 01:00"))
    assert hours.is_open(night, zone, at("2024-01-13 08:59"))
    assert not hours.is_open(night, zone, at("2024-01-13 09:00"))


def test_no_hours_is_always_open():
    assert hours.is_open(None, "UTC", at("2024-01-13 03:00"))
    assert hours.is_open({}, "Asia/Tokyo", at("2024-01-14 23:59"))


# --- The roulette honours them ----------------------------------------------------


def test_a_closed_department_keeps_its_leads_waiting_with_the_reason(ctx):
    factories.enable_roulette()
    agent = factories.make_user("attendant", departments=["sales"])
    factories.go_online(agent)
    sales = db.session.scalar(select(Department).where(Department.key == "sales"))
    # Open one minute a week, at a time the test is not running.
    now = datetime.now(UTC)
    closed_day = DAYS[(now.weekday() + 3) % 7]
    department_hours.set_department_hours(
        current_account(), sales.id, {closed_day: ("03:00", "03:01")}, "UTC"
    )
    lead = factories.make_lead(department="sales")
    assert routing.route_lead(lead.id) is None
    waiting = db.session.get(Lead, lead.id, populate_existing=True)
    assert waiting.state == "queued"
    assert [(c["id"], c["reason"]) for c in waiting.routing] == [(agent.id, "hours")]
    # Always open again: the same lead is offered.
    department_hours.set_department_hours(current_account(), sales.id, {}, "UTC")
    placed = routing.route_lead(lead.id)
    assert placed is not None and placed.agent_id == agent.id
