"""Editing a department's working hours: the form's values, the one-line
summary the lists show, and saving them (the rules of the hours themselves,
and whether a department is open now, are in portal.org.hours)."""

from __future__ import annotations

from flask_babel import gettext as _

from portal.errors import ValidationError
from portal.extensions import db
from portal.localtime import time_zones
from portal.models import Account, Department
from portal.org import hours
from portal.org.service import get_department

__all__ = ["hours_form_values", "set_department_hours", "time_zones"]


def hours_form_values(department: Department) -> dict[str, str]:
    """The hours form's fields as stored: `timezone`, `hours_<day>_start`
    and `hours_<day>_end` (blank for a closed day)."""
    values = {"timezone": department.timezone or "UTC"}
    stored = department.working_hours or {}
    for day in hours.DAYS:
        start, end = stored.get(day) or ("", "")
        values[f"hours_{day}_start"] = start
        values[f"hours_{day}_end"] = end
    return values


def set_department_hours(
    account: Account,
    department_id: int,
    spans: dict[str, tuple[str, str]],
    timezone: str,
) -> Department:
    """Replace the department's working hours and time zone.

    `spans` maps a day key ("mon") to (start, end) as "HH:MM"; a day with
    both blank is closed, and every day blank means always open. Raises
    NotFound, and ValidationError naming "hours_<day>" or "timezone";
    nothing is saved then.
    """
    department = get_department(account, department_id)
    # A day with one time only is most likely a slip: say so, rather than
    # the format hint clean_hours gives for the blank one.
    half_filled = {
        f"hours_{day}": _("Give both times, or leave both blank to close the day.")
        for day, span in spans.items()
        if span and sum(1 for part in span if (part or "").strip()) == 1
    }
    try:
        # A blank zone is UTC (the model's default), spaces included.
        cleaned, zone = hours.clean_hours(spans, (timezone or "").strip())
    except ValidationError as exc:
        raise ValidationError({**exc.fields, **half_filled}) from None
    department.working_hours = cleaned
    department.timezone = zone
    db.session.commit()
    return department
