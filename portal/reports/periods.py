"""A report's date range, read from the query string on the reader's clock.

`from` and `to` are whole days (YYYY-MM-DD), both included; left out, the
range is the last 30 days. A range reversed, longer than two years or
malformed is an error naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import format_decimal
from flask_babel import gettext as _

from portal.errors import ValidationError

DEFAULT_DAYS = 30
MAX_DAYS = 2 * 366


@dataclass(frozen=True)
class Period:
    first: date
    last: date
    zone: ZoneInfo

    @property
    def start(self) -> datetime:
        """The first day's midnight on the reader's clock, in UTC."""
        return datetime.combine(self.first, time(), tzinfo=self.zone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The midnight after the last day, in UTC (excluded)."""
        after = self.last + timedelta(days=1)
        return datetime.combine(after, time(), tzinfo=self.zone).astimezone(UTC)

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def query_args(self) -> dict[str, str]:
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}


def _day(value: str, field: str, errors: dict[str, str]) -> date | None:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        errors[field] = _("Enter a date like 2026-12-31.")
        return None


def period_from(args: object, zone: ZoneInfo, today: date) -> Period:
    """The range the query string asks for; ValidationError naming `from`
    or `to` when it cannot be."""
    get = args.get  # type: ignore[attr-defined]
    errors: dict[str, str] = {}
    raw_from, raw_to = (get("from") or "").strip(), (get("to") or "").strip()
    last = _day(raw_to, "to", errors) if raw_to else today
    first = (
        _day(raw_from, "from", errors)
        if raw_from
        else (last or today) - timedelta(days=DEFAULT_DAYS - 1)
    )
    if first and last and not errors:
        if first > last:
            errors["to"] = _("The end comes before the start.")
        elif (last - first).days + 1 > MAX_DAYS:
            errors["to"] = _("Choose at most two years.")
    if errors:
        raise ValidationError(errors)
    return Period(first=first, last=last, zone=zone)  # type: ignore[arg-type]


def duration_text(seconds: int | None) -> str:
    """A short span as people read it: 45 s, 2.5 min, 1.2 h."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return _("%(n)d s", n=seconds)
    if seconds < 3600:
        return _("%(n)s min", n=format_decimal(seconds / 60, "#0.#"))
    return _("%(n)s h", n=format_decimal(seconds / 3600, "#0.#"))
