"""Checking import rows with the rules of manual creation, and deciding for
each row: create, update a duplicate, skip it, or report an error.

The preview and the job share this code, so the preview says exactly what the
job will do. Owners, departments and campaigns are loaded once into dicts and
duplicates are matched per batch with one IN query on phones and one on
emails, so a batch of a thousand rows costs a handful of queries.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute

from portal.contacts import normalize
from portal.contacts.cleaning import MAX_TAGS, ContactInput, clean_contact
from portal.contacts.scope import assignable_users_clause, visible_clause
from portal.errors import ValidationError
from portal.extensions import db
from portal.imports.csvfile import Record
from portal.models import (
    Account,
    Campaign,
    Contact,
    ContactImport,
    ContactStatus,
    Department,
    DuplicatePolicy,
    Origin,
    User,
)

# Fields a column may fill, each at most once; "custom" and "ignore" repeat.
SINGLE_TARGETS = (
    "name",
    "phone",
    "email",
    "owner",
    "department",
    "campaign",
    "tags",
    "status",
)
CUSTOM = "custom"
IGNORE = "ignore"
MAX_CUSTOM_KEY = 50
_TAG_SPLIT = re.compile(r"[,;|]")


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    SKIP = "skip"
    ERROR = "error"


def field_labels() -> dict[str, str]:
    return {
        "name": _("Name"),
        "phone": _("Phone"),
        "email": _("Email"),
        "owner": _("Owner (email)"),
        "department": _("Department (key)"),
        "campaign": _("Campaign (key)"),
        "tags": _("Tags"),
        "status": _("Status"),
        "custom": _("Custom fields"),
        "row": _("Row"),
    }


@dataclass
class RowPlan:
    """What happens to one record. `values` is the new contact's columns
    (create) or the columns to change (update of `contact_id`)."""

    line: int
    cells: list[str]
    action: Action
    errors: list[str] = field(default_factory=list)
    values: dict = field(default_factory=dict)
    contact_id: int | None = None
    previous_owner_id: int | None = None
    # An update of a contact this same file creates a few rows earlier.
    merged_into: RowPlan | None = None
    note: str = ""

    @property
    def error_text(self) -> str:
        return " ".join(self.errors)


@dataclass(frozen=True)
class Existing:
    id: int
    owner_id: int | None
    status: str
    tags: list
    custom: dict
    visible: bool


class RowChecker:
    """Validates and plans records for one import by one importer."""

    def __init__(self, imp: ContactImport, importer: User, account: Account) -> None:
        self.imp = imp
        self.importer = importer
        self.account = account
        self.width = len(imp.header)
        self.columns: list[str] = list(imp.mapping)
        self.policy = imp.on_duplicate
        self.may_change_others = importer.can("contacts.assign")
        self.owners, self.owner_names = self._load_owners()
        self.departments = self._load_keys(Department)
        self.campaigns = self._load_keys(Campaign)
        self.labels = field_labels()
        self.statuses = {s.value for s in ContactStatus}
        # Contacts planned for creation and not yet in the database, by phone
        # and by email: a later row of the file with the same phone or email
        # is a duplicate of that row.
        self.pending_phone: dict[str, RowPlan] = {}
        self.pending_email: dict[str, RowPlan] = {}

    def _load_owners(self) -> tuple[dict[str, int], dict[int, str]]:
        users = db.session.scalars(
            select(User).where(assignable_users_clause(self.importer))
        ).all()
        # Only people who may hold contacts (as create_contact requires).
        owners = [
            u
            for u in users
            if u.is_active
            and (u.can("contacts.view_own") or u.can("contacts.view_all"))
        ]
        return {u.email.lower(): u.id for u in owners}, {u.id: u.name for u in owners}

    def _load_keys(self, model: type[Department | Campaign]) -> dict[str, int]:
        found: dict[str, int] = {}
        rows = db.session.execute(
            select(model.id, model.key, model.name).where(
                model.account_id == self.account.id
            )
        ).all()
        for row in rows:  # a key wins over a name that happens to match it
            found.setdefault(normalize.fold(row.name), row.id)
        for row in rows:
            found[row.key.lower()] = row.id
        return found

    def _message(self, key: str, message: str) -> str:
        label = self.labels.get(key, key)
        return _("%(field)s: %(message)s", field=label, message=message)

    def check(self, record: Record) -> RowPlan:
        """One record alone, as manual creation would judge it."""
        if record.problem:
            return RowPlan(
                record.line,
                record.cells,
                Action.ERROR,
                [self._message("row", _("This row cannot be read."))],
            )
        cells = record.cells
        if len(cells) != self.width:
            message = _(
                "This row has %(n)d cells; the header has %(m)d.",
                n=len(cells),
                m=self.width,
            )
            return RowPlan(
                record.line, cells, Action.ERROR, [self._message("row", message)]
            )
        given: dict[str, str] = {}
        custom: dict[str, str] = {}
        for target, cell in zip(self.columns, cells, strict=True):
            value = cell.strip()
            if target.startswith(CUSTOM + ":"):
                if value:
                    custom[target[len(CUSTOM) + 1 :]] = value
            elif target != IGNORE:
                given[target] = value
        errors: dict[str, str] = {}
        owner_id = department_id = campaign_id = None
        if given.get("owner"):
            owner_id = self.owners.get(given["owner"].lower())
            if owner_id is None:
                errors["owner"] = _("No user with this email whom you may assign to.")
        if given.get("department"):
            department_id = self._lookup(self.departments, given["department"])
            if department_id is None:
                errors["department"] = _("No department with this key.")
        if given.get("campaign"):
            campaign_id = self._lookup(self.campaigns, given["campaign"])
            if campaign_id is None:
                errors["campaign"] = _("No campaign with this key.")
        status = None
        if given.get("status"):
            status = "_".join(normalize.fold(given["status"]).replace("-", " ").split())
            if status not in self.statuses:
                errors["status"] = _(
                    "Use one of: %(values)s.", values=", ".join(sorted(self.statuses))
                )
        tags = [t for t in _TAG_SPLIT.split(given.get("tags", "")) if t.strip()]
        try:
            cleaned = clean_contact(
                self.account,
                ContactInput(
                    name=given.get("name", ""),
                    phone=given.get("phone", ""),
                    email=given.get("email", ""),
                    tags=tags,
                    custom=custom,
                    origin=Origin.IMPORT,
                ),
            )
        except ValidationError as exc:
            errors = {**exc.fields, **errors}
        if errors:
            order = list(self.labels)
            messages = [
                self._message(key, errors[key])
                for key in sorted(
                    errors, key=lambda k: order.index(k) if k in order else 99
                )
            ]
            return RowPlan(record.line, cells, Action.ERROR, messages)
        values = {
            "name": cleaned.name,
            "name_search": normalize.fold(cleaned.name),
            "phone": cleaned.phone.display if cleaned.phone else None,
            "phone_e164": cleaned.phone.e164 if cleaned.phone else None,
            "phone_national": cleaned.phone.national if cleaned.phone else None,
            "email": cleaned.email,
            "email_normalized": cleaned.email,
            "department_id": department_id,
            "campaign_id": campaign_id,
            "tags": cleaned.tags,
            "custom": cleaned.custom,
            "owner_id": owner_id,
            "status": status,
        }
        return RowPlan(record.line, cells, Action.CREATE, values=values)

    @staticmethod
    def _lookup(table: dict[str, int], raw: str) -> int | None:
        return table.get(raw.strip().lower()) or table.get(normalize.fold(raw))

    def _existing(
        self, column: InstrumentedAttribute[str | None], keys: set[str]
    ) -> dict[str, Existing]:
        if not keys:
            return {}
        visible = visible_clause(self.importer).label("visible")
        rows = db.session.execute(
            select(
                Contact.id,
                column.label("key"),
                Contact.owner_id,
                Contact.status,
                Contact.tags,
                Contact.custom,
                visible,
            )
            .where(Contact.account_id == self.account.id, column.in_(keys))
            .order_by(Contact.id)
        ).all()
        found: dict[str, Existing] = {}
        for row in rows:
            found.setdefault(
                row.key,
                Existing(
                    row.id,
                    row.owner_id,
                    row.status,
                    list(row.tags or []),
                    dict(row.custom or {}),
                    bool(row.visible),
                ),
            )
        return found

    def plan(self, records: list[Record]) -> list[RowPlan]:
        """Check a batch and match its duplicates: against contacts in the
        account (one IN query each on phone and email) and against rows of
        this file planned earlier."""
        plans = [self.check(record) for record in records]
        fresh = [p for p in plans if p.action == Action.CREATE]
        by_phone = self._existing(
            Contact.phone_e164, {p.values["phone_e164"] for p in fresh} - {None}
        )
        by_email = self._existing(
            Contact.email_normalized,
            {p.values["email_normalized"] for p in fresh} - {None},
        )
        updates: dict[int, RowPlan] = {}
        for plan in fresh:
            phone, email = plan.values["phone_e164"], plan.values["email_normalized"]
            match = by_phone.get(phone) if phone else None
            if match is None and email:
                match = by_email.get(email)
            if match is not None:
                self._against_existing(plan, match, updates)
                continue
            earlier = (self.pending_phone.get(phone) if phone else None) or (
                self.pending_email.get(email) if email else None
            )
            if earlier is not None:
                self._against_earlier_row(plan, earlier)
                continue
            self._finish_create(plan)
        return plans

    def forget_pending(self) -> None:
        """The planned rows are in the database now; later batches find them
        with the IN queries."""
        self.pending_phone.clear()
        self.pending_email.clear()

    def _finish_create(self, plan: RowPlan) -> None:
        values = plan.values
        owner_id = values["owner_id"]
        if values["status"] is None:
            values["status"] = ContactStatus.ASSIGNED if owner_id else ContactStatus.NEW
        if values["phone_e164"]:
            self.pending_phone[values["phone_e164"]] = plan
        if values["email_normalized"]:
            self.pending_email[values["email_normalized"]] = plan

    def _against_existing(
        self, plan: RowPlan, match: Existing, updates: dict[int, RowPlan]
    ) -> None:
        if self.policy == DuplicatePolicy.SKIP:
            plan.action = Action.SKIP
            plan.note = _("Already exists: skipped.")
            return
        if not match.visible or not (
            self.may_change_others or match.owner_id == self.importer.id
        ):
            plan.action = Action.ERROR
            plan.errors = [
                self._message(
                    "row",
                    _(
                        "A contact with this phone or email already exists "
                        "and you may not change it."
                    ),
                )
            ]
            return
        plan.action = Action.UPDATE
        plan.note = _("Already exists: will be updated.")
        plan.contact_id = match.id
        earlier = updates.get(match.id)
        base_tags = earlier.values["tags"] if earlier else match.tags
        base_custom = earlier.values["custom"] if earlier else match.custom
        plan.previous_owner_id = (
            earlier.previous_owner_id if earlier else match.owner_id
        )
        changes = _changes(plan.values, base_tags, base_custom)
        if earlier is not None:
            # Two rows of one batch update the same contact: the later wins,
            # and the batch writes one UPDATE for it.
            earlier.values.update(changes)
            earlier.action = Action.UPDATE
            plan.merged_into = earlier
            plan.values = earlier.values
            return
        if changes.get("owner_id") == match.owner_id:
            del changes["owner_id"]
        if (
            "owner_id" in changes
            and "status" not in changes
            and (match.status == ContactStatus.NEW)
        ):
            changes["status"] = ContactStatus.ASSIGNED
        plan.values = changes
        updates[match.id] = plan

    def _against_earlier_row(self, plan: RowPlan, earlier: RowPlan) -> None:
        if self.policy == DuplicatePolicy.SKIP:
            plan.action = Action.SKIP
            plan.note = _(
                "Same phone or email as row %(line)d: skipped.", line=earlier.line
            )
            return
        plan.action = Action.UPDATE
        plan.note = _(
            "Same phone or email as row %(line)d: that row will be updated.",
            line=earlier.line,
        )
        changes = _changes(
            plan.values, earlier.values["tags"], earlier.values["custom"]
        )
        # The earlier row keeps its phone and email: rows planned for creation
        # in a batch must stay distinct by them.
        for key in (
            "phone",
            "phone_e164",
            "phone_national",
            "email",
            "email_normalized",
        ):
            changes.pop(key, None)
        if (
            "owner_id" in changes
            and "status" not in changes
            and earlier.values["status"] == ContactStatus.NEW
        ):
            changes["status"] = ContactStatus.ASSIGNED
        earlier.values.update(changes)
        plan.merged_into = earlier
        plan.values = earlier.values


def _changes(values: dict, base_tags: list, base_custom: dict) -> dict:
    """The columns a duplicate row changes: what it gives, leaving out what it
    leaves empty; tags are added to the contact's, custom fields merged."""
    changes = {
        key: values[key]
        for key in (
            "name",
            "name_search",
            "phone",
            "phone_e164",
            "phone_national",
            "email",
            "email_normalized",
            "department_id",
            "campaign_id",
            "owner_id",
            "status",
        )
        if values.get(key) is not None
    }
    if values["tags"]:
        merged = list(dict.fromkeys([*base_tags, *values["tags"]]))
        changes["tags"] = sorted(merged[:MAX_TAGS])
    if values["custom"]:
        changes["custom"] = {**base_custom, **values["custom"]}
    return changes
