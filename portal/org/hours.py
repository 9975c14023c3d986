"""Working hours of a department: when the roulette may offer its leads."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel.dates import get_day_names
from flask_babel import get_locale
from flask_babel import gettext as _

from portal.errors import ValidationError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def is_open(hours: dict | None, timezone: str, at: datetime) -> bool:
    """Whether `at` (aware) falls inside the hours; None means always open.

    A span whose end is before its start runs past midnight ("22:00"-"06:00"
    on Monday covers Monday night and early Tuesday); one whose end is its
    start lasts 24 hours ("00:00"-"00:00" is the whole day).
    """
    if not hours:
        return True
    try:
        local = at.astimezone(ZoneInfo(timezone or "UTC"))
    except ZoneInfoNotFoundError:
        local = at
    minute = local.hour * 60 + local.minute
    today = DAYS[local.weekday()]
    yesterday = DAYS[(local.weekday() - 1) % 7]
    span = hours.get(today)
    if span:
        start, end = _minutes(span[0]), _minutes(span[1])
        if start < end and start <= minute < end:
            return True
        if start >= end and minute >= start:
            return True
    span = hours.get(yesterday)
    if span:
        start, end = _minutes(span[0]), _minutes(span[1])
        if start >= end and minute < end:
            return True
    return False


def open_throughout(
    hours: dict | None, timezone: str, until: datetime, minutes: int
) -> bool:
    """Whether the hours were open for the whole `minutes` up to `until`,
    checked at each minute (no span is shorter than one)."""
    return all(
        is_open(hours, timezone, until - timedelta(minutes=back))
        for back in range(minutes + 1)
    )


def _minutes(hhmm: str) -> int:
    hour, minute = hhmm.split(":")
    return int(hour) * 60 + int(minute)


def clean_hours(
    raw: dict[str, tuple[str, str] | None], timezone: str
) -> tuple[dict | None, str]:
    """Validate a day -> (start, end) mapping; blank days are closed.

    Returns (hours or None when no day is set, timezone). Raises
    ValidationError naming each bad field ("hours_mon", "timezone").
    """
    errors: dict[str, str] = {}
    hours: dict[str, list[str]] = {}
    for day in DAYS:
        span = raw.get(day)
        if not span or not any(part.strip() for part in span):
            continue
        start, end = (part.strip() for part in span)
        if not (_TIME.match(start) and _TIME.match(end)):
            errors[f"hours_{day}"] = _("Use HH:MM, from 00:00 to 23:59.")
        else:
            hours[day] = [start, end]
    timezone = (timezone or "UTC").strip()
    if timezone not in available_timezones() and timezone != "UTC":
        errors["timezone"] = _("Pick a time zone from the list.")
    if errors:
        raise ValidationError(errors)
    return (hours or None), timezone


# --- How the hours read ---------------------------------------------------


def weekdays() -> tuple[str, ...]:
    """The day keys of working hours, Monday first ("mon" ... "sun")."""
    return DAYS


def weekday_names(width: str = "wide") -> list[tuple[str, str]]:
    """(day key, its name in the user's language), Monday first."""
    names = get_day_names(width, locale=get_locale() or "en")
    return [(day, names[index]) for index, day in enumerate(weekdays())]


def hours_summary(spans: dict | None, timezone: str) -> str:
    """The hours in one line: consecutive days with the same span share it
    ("Mon–Fri 08:00–18:00; Sat 09:00–13:00, UTC"); no hours is "Always
    open"."""
    if not spans:
        return _("Always open")
    names = dict(weekday_names("abbreviated"))
    days = weekdays()
    runs: list[list] = []  # [first day, last day, span]
    for index, day in enumerate(days):
        span = spans.get(day)
        if not span:
            continue
        last = runs[-1] if runs else None
        if last and days.index(last[1]) == index - 1 and last[2] == span:
            last[1] = day
        else:
            runs.append([day, day, span])
    parts = []
    for first, last, (start, end) in runs:
        named = names[first] if first == last else f"{names[first]}–{names[last]}"
        if end == start == "00:00":
            span_text = _("all day")
        elif end == start:
            span_text = _("24 h from %(start)s", start=start)
        elif end < start:
            span_text = _("%(start)s–%(end)s next day", start=start, end=end)
        else:
            span_text = f"{start}–{end}"
        parts.append(f"{named} {span_text}")
    return _("%(days)s, %(timezone)s", days="; ".join(parts), timezone=timezone)
