"""The contact list's filters: what its query string may say, read and
checked by a form, and written back as the canonical (bookmarkable,
savable) query string.

A bad value is a ValidationError naming its field (the message is shown
next to that filter); ids are resolved within the viewer's account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any
from urllib.parse import urlencode

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from wtforms import Field, StringField
from wtforms.validators import AnyOf, Optional
from wtforms.validators import ValidationError as WTFormsValidationError

from portal.contacts.cursor import Cursor, decode_cursor
from portal.errors import ValidationError
from portal.extensions import db
from portal.ids import parse_id
from portal.models import (
    Account,
    Campaign,
    ContactStatus,
    Department,
    Origin,
    Team,
    Unit,
    User,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_QUERY = 200
SORTS = ("newest", "oldest", "last_activity")
# The dashboard's click-through filters: understood, carried along, but not
# offered in the list's form (offers to an agent; first responses).
DASHBOARD_KEYS = (
    "offer",
    "offer_agent",
    "offer_from",
    "offer_to",
    "attended_from",
    "attended_to",
    "response_from",
    "response_under",
)
# The query-string keys this list understands, in the order a canonical
# (bookmarkable, savable) query string lists them.
FILTER_KEYS = (
    "owner",
    "q",
    "status",
    "origin",
    "department",
    "campaign",
    "team",
    "unit",
    "created_from",
    "created_to",
    "active_from",
    "active_to",
    "open_too_long",
    "lead",
    *DASHBOARD_KEYS,
    "sort",
)
# `offer=` values: contacts with a lead offered (to `offer_agent`, between
# `offer_from` and `offer_to`) that ended so: the dashboard's click-through.
OFFER_FILTERS = ("accepted", "declined", "expired")
# `status=open`: any open status (new, assigned, in progress).
OPEN = "open"
# `lead=` values: "waiting" = a lead of the contact waits in the roulette's
# queue (state "queued"). Honoured only for contacts.assign.
LEAD_FILTERS = ("waiting",)
QUEUE_PERMISSION = "contacts.assign"


@dataclass(frozen=True)
class ContactFilters:
    """A parsed, validated list query. Ids are resolved within the account."""

    owner: str = ""  # "", "me", "unassigned" or a user id (as text)
    owner_id: int | None = None
    q: str = ""
    status: str = ""
    origin: str = ""
    department: str = ""  # a department key, as the URL carries it
    department_id: int | None = None
    campaign: str = ""  # a campaign key
    campaign_id: int | None = None
    team_id: int | None = None
    unit_id: int | None = None
    created_from: date | None = None
    created_to: date | None = None
    active_from: date | None = None
    active_to: date | None = None
    open_too_long: bool = False
    open_too_long_hours: int = 48
    lead: str = ""  # "" or "waiting"
    offer: str = ""  # "", or an offer's end (OFFER_FILTERS)
    offer_agent_id: int | None = None
    offer_from: date | None = None
    offer_to: date | None = None
    # First response: attended between these days, in [from, under) seconds.
    attended_from: date | None = None
    attended_to: date | None = None
    response_from: int | None = None
    response_under: int | None = None
    sort: str = "newest"
    cursor: Cursor | None = None
    limit: int = DEFAULT_LIMIT

    def query_args(self) -> dict[str, str]:
        """The filters as query-string values, empty ones left out."""
        values = {
            "owner": self.owner,
            "q": self.q,
            "status": self.status,
            "origin": self.origin,
            "department": self.department,
            "campaign": self.campaign,
            "team": str(self.team_id) if self.team_id else "",
            "unit": str(self.unit_id) if self.unit_id else "",
            "created_from": _iso(self.created_from),
            "created_to": _iso(self.created_to),
            "active_from": _iso(self.active_from),
            "active_to": _iso(self.active_to),
            "open_too_long": "1" if self.open_too_long else "",
            "lead": self.lead,
            "offer": self.offer,
            "offer_agent": str(self.offer_agent_id) if self.offer_agent_id else "",
            "offer_from": _iso(self.offer_from),
            "offer_to": _iso(self.offer_to),
            "attended_from": _iso(self.attended_from),
            "attended_to": _iso(self.attended_to),
            "response_from": _whole(self.response_from),
            "response_under": _whole(self.response_under),
            "sort": "" if self.sort == "newest" else self.sort,
        }
        return {key: values[key] for key in FILTER_KEYS if values[key]}

    def query_string(self) -> str:
        """Canonical query string of the filters (no cursor, no limit)."""
        return urlencode(self.query_args())


def _iso(value: date | None) -> str:
    return value.isoformat() if value else ""


def _whole(value: int | None) -> str:
    return "" if value is None else str(value)


_PICK = _l("Pick from the list.")


def _squash(value: str | None) -> str:
    """The value with runs of whitespace made one space, trimmed."""
    return " ".join((value or "").split())


def _newest_when_blank(value: str) -> str:
    return value or "newest"


class _IsoDate(StringField):
    """A day as 2024-12-31; a blank one is None."""

    def process_formdata(self, valuelist: list[str]) -> None:
        raw = _squash(valuelist[0] if valuelist else "")
        self.data = None
        if raw:
            try:
                self.data = date.fromisoformat(raw)
            except ValueError:
                raise ValueError(str(_l("Use a date like 2024-12-31."))) from None

    def _value(self) -> str:
        return _iso(self.data)


def _choice(values: tuple[str, ...]) -> list:
    # Blank means "any"; anything else must be one of `values`.
    return [Optional(), AnyOf(values, message=_PICK)]


class ListFilterForm(FlaskForm):
    """The list's query string (a GET form: nothing to forge, so no CSRF).

    Fields are declared in FILTER_KEYS order (then `limit`), which is the
    order errors are reported in. Lookups resolve within `account`; the ids
    they find are kept in `ids`.
    """

    class Meta:
        csrf = False

    owner = StringField(filters=[_squash])
    q = StringField(filters=[_squash])
    status = StringField(
        filters=[_squash],
        validators=_choice((OPEN, *(s.value for s in ContactStatus))),
    )
    origin = StringField(
        filters=[_squash], validators=_choice(tuple(o.value for o in Origin))
    )
    department = StringField(filters=[_squash])
    campaign = StringField(filters=[_squash])
    team = StringField(filters=[_squash])
    unit = StringField(filters=[_squash])
    created_from = _IsoDate()
    created_to = _IsoDate()
    active_from = _IsoDate()
    active_to = _IsoDate()
    open_too_long = StringField(filters=[_squash], validators=_choice(("0", "1", "on")))
    lead = StringField(filters=[_squash], validators=_choice(LEAD_FILTERS))
    offer = StringField(filters=[_squash], validators=_choice(OFFER_FILTERS))
    offer_agent = StringField(filters=[_squash])
    offer_from = _IsoDate()
    offer_to = _IsoDate()
    attended_from = _IsoDate()
    attended_to = _IsoDate()
    response_from = StringField(filters=[_squash])
    response_under = StringField(filters=[_squash])
    sort = StringField(
        filters=[_squash, _newest_when_blank],
        validators=[AnyOf(SORTS, message=_PICK)],
    )
    limit = StringField(filters=[_squash])

    def __init__(
        self, formdata: MultiDict, account: Account, *, sees_queue: bool
    ) -> None:
        super().__init__(formdata=formdata)
        self.account = account
        self.ids: dict[str, int | None] = {}
        if not sees_queue:
            # The queue is a managers' view: others' `lead` is ignored.
            del self.lead

    def validate_owner(self, field: Field) -> None:
        if field.data in ("", "me", "unassigned"):
            return
        self.ids["owner"] = _id_in_account(self.account, User, field.data)
        if self.ids["owner"] is None:
            raise WTFormsValidationError(_PICK)

    def validate_q(self, field: Field) -> None:
        if len(field.data) > MAX_QUERY:
            raise WTFormsValidationError(
                _("Use at most %(n)d characters.", n=MAX_QUERY)
            )

    def _by_key(self, field: Field, model: type[Department] | type[Campaign]) -> None:
        if field.data:
            self.ids[field.name] = _id_by_key(self.account, model, field.data)
            if self.ids[field.name] is None:
                raise WTFormsValidationError(_PICK)

    def validate_department(self, field: Field) -> None:
        self._by_key(field, Department)

    def validate_campaign(self, field: Field) -> None:
        self._by_key(field, Campaign)

    def _by_id(self, field: Field, model: type[Team] | type[Unit]) -> None:
        if field.data:
            self.ids[field.name] = _id_in_account(self.account, model, field.data)
            if self.ids[field.name] is None:
                raise WTFormsValidationError(_PICK)

    def validate_team(self, field: Field) -> None:
        self._by_id(field, Team)

    def validate_unit(self, field: Field) -> None:
        self._by_id(field, Unit)

    def _after(self, field: Field, start: Field) -> None:
        if field.data and start.data and start.data > field.data:
            raise WTFormsValidationError(_("The end comes before the start."))

    def validate_created_to(self, field: Field) -> None:
        self._after(field, self.created_from)

    def validate_active_to(self, field: Field) -> None:
        self._after(field, self.active_from)

    def validate_offer_to(self, field: Field) -> None:
        self._after(field, self.offer_from)

    def validate_attended_to(self, field: Field) -> None:
        self._after(field, self.attended_from)

    def _seconds(self, field: Field) -> None:
        if field.data and not (
            field.data.isascii() and field.data.isdigit() and len(field.data) <= 9
        ):
            raise WTFormsValidationError(_("Use a whole number of seconds."))

    def validate_response_from(self, field: Field) -> None:
        self._seconds(field)

    def validate_response_under(self, field: Field) -> None:
        self._seconds(field)

    def validate_offer_agent(self, field: Field) -> None:
        if field.data:
            self.ids["offer_agent"] = _id_in_account(self.account, User, field.data)
            if self.ids["offer_agent"] is None:
                raise WTFormsValidationError(_PICK)

    def validate_limit(self, field: Field) -> None:
        # isdigit() alone passes "²", which int() refuses.
        if field.data and not (field.data.isascii() and field.data.isdigit()):
            raise WTFormsValidationError(_("Use a whole number."))

    def filters(self) -> ContactFilters:
        """The validated form as filters (call after `validate`)."""
        values: dict[str, Any] = {
            "open_too_long_hours": self.account.open_too_long_hours,
            "owner": self.owner.data,
            "owner_id": self.ids.get("owner"),
            "q": self.q.data,
            "status": self.status.data,
            "origin": self.origin.data,
            "department": self.department.data,
            "department_id": self.ids.get("department"),
            "campaign": self.campaign.data,
            "campaign_id": self.ids.get("campaign"),
            "team_id": self.ids.get("team"),
            "unit_id": self.ids.get("unit"),
            "created_from": self.created_from.data,
            "created_to": self.created_to.data,
            "active_from": self.active_from.data,
            "active_to": self.active_to.data,
            "open_too_long": self.open_too_long.data in ("1", "on"),
            "lead": self.lead.data if "lead" in self else "",
            "offer": self.offer.data,
            "offer_agent_id": self.ids.get("offer_agent"),
            "offer_from": self.offer_from.data,
            "offer_to": self.offer_to.data,
            "attended_from": self.attended_from.data,
            "attended_to": self.attended_to.data,
            "response_from": _int_or_none(self.response_from.data),
            "response_under": _int_or_none(self.response_under.data),
            "sort": self.sort.data,
        }
        if self.limit.data:
            values["limit"] = _capped_limit(self.limit.data)
        return ContactFilters(**values)


def _int_or_none(value: str) -> int | None:
    return int(value) if value else None


def parse_filters(
    account: Account, args: Mapping[str, str], viewer: User | None = None
) -> ContactFilters:
    """Read and validate the list's query string.

    With a `viewer` who may not assign contacts, `lead` is ignored (the
    queue is a managers' view). Raises ValidationError naming each bad field
    (its message is shown next to that filter), then BadCursor for a cursor
    this list did not issue.
    """
    formdata = args if isinstance(args, MultiDict) else MultiDict(args)
    form = ListFilterForm(
        formdata,
        account,
        sees_queue=viewer is None or viewer.can(QUEUE_PERMISSION),
    )
    if not form.validate():
        raise ValidationError(
            {name: str(messages[0]) for name, messages in form.errors.items()}
        )
    filters = form.filters()
    raw_cursor = (args.get("cursor") or "").strip()
    if raw_cursor:
        filters = replace(filters, cursor=decode_cursor(raw_cursor, filters.sort))
    return filters


def _capped_limit(digits: str) -> int:
    """The page size `digits` (ASCII digits) asks for, within 1..MAX_LIMIT.

    int() refuses a number of thousands of digits; one that long is past the
    cap anyway, so only a number as short as MAX_LIMIT is read."""
    digits = digits.lstrip("0") or "0"
    wanted = int(digits) if len(digits) <= len(str(MAX_LIMIT)) else MAX_LIMIT
    return min(max(wanted, 1), MAX_LIMIT)


def _id_by_key(
    account: Account, model: type[Department] | type[Campaign], key: str
) -> int | None:
    return db.session.scalar(
        select(model.id).where(model.account_id == account.id, model.key == key)
    )


def _id_in_account(
    account: Account, model: type[User] | type[Team] | type[Unit], raw: str
) -> int | None:
    if parse_id(raw) is None:
        return None
    return db.session.scalar(
        select(model.id).where(model.id == int(raw), model.account_id == account.id)
    )
