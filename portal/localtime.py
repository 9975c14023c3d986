"""A person's clock: the time zone dates are entered and shown in.

A user's own zone when they chose one, else UTC. Flask-Babel formats every
date in it (the app's timezone selector), and forms read "YYYY-MM-DDTHH:MM"
(an `<input type="datetime-local">`) in it.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask import has_request_context
from flask_login import current_user

LOCAL_INPUT = "%Y-%m-%dT%H:%M"
DEFAULT_ZONE = "UTC"


def time_zones() -> list[str]:
    """Every zone a person may choose, sorted."""
    return sorted(available_timezones() | {DEFAULT_ZONE})


def valid_zone(name: str) -> bool:
    if not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zone_name_of(user: object) -> str:
    name = getattr(user, "time_zone", None) or DEFAULT_ZONE
    return name if valid_zone(name) else DEFAULT_ZONE


def zone_of(user: object) -> ZoneInfo:
    return ZoneInfo(zone_name_of(user))


def select_timezone() -> str:
    """Flask-Babel's timezone selector: the signed-in user's zone."""
    if not has_request_context():
        return DEFAULT_ZONE  # jobs and commands: UTC unless they say
    if current_user and current_user.is_authenticated:
        return zone_name_of(current_user)
    return DEFAULT_ZONE


def parse_local(value: str, zone: ZoneInfo) -> datetime | None:
    """A "YYYY-MM-DDTHH:MM" in `zone` as an aware UTC datetime, or None
    when it is not one. A time a clock change skips or repeats reads as
    the zone's first meaning of it (fold 0)."""
    try:
        naive = datetime.strptime(value.strip(), LOCAL_INPUT)
    except ValueError:
        return None
    return naive.replace(tzinfo=zone).astimezone(UTC)


def local_input(moment: datetime | None, zone: ZoneInfo) -> str:
    """The value of a datetime-local input showing `moment` in `zone`."""
    return moment.astimezone(zone).strftime(LOCAL_INPUT) if moment else ""


def day_bounds(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The start and end (UTC) of the day `now` falls in, on `zone`'s clock."""
    local = now.astimezone(zone).date()
    start = datetime.combine(local, time(), tzinfo=zone)
    end = datetime.combine(local + timedelta(days=1), time(), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)
