"""Reading the contact forms into service inputs.

Field names are the service's error keys, so each message lands next to its
field: name, phone, email, department, campaign, tags, custom, owner (the
create form), status and reason (the status form), kind and body (the
timeline form).
"""

from __future__ import annotations

from collections.abc import Mapping

from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from portal.contacts.cleaning import MAX_TAGS, ContactInput
from portal.ids import parse_id
from portal.models import Contact, ContactStatus

# What a person may set by hand; "new" and "assigned" follow from ownership.
STATUS_CHOICES = (
    ContactStatus.IN_PROGRESS,
    ContactStatus.SCHEDULED,
    ContactStatus.WON,
    ContactStatus.LOST,
)
HISTORY_KINDS = ("note", "call")
MAX_TAG_LENGTH = 50
# Longer than MAX_TAGS tags of MAX_TAG_LENGTH each with separators: refused
# before splitting, so a pasted essay is not silently cut into tags.
MAX_TAGS_TEXT = MAX_TAGS * (MAX_TAG_LENGTH + 2)
MAX_CUSTOM_FIELDS = 50
TEXT_FIELDS = ("name", "phone", "email", "tags")


def _optional_id(
    form: Mapping[str, str], name: str, errors: dict[str, str]
) -> int | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    if parse_id(raw) is None:
        errors[name] = _("Pick from the list.")
    return parse_id(raw)


def _tags(raw: str, errors: dict[str, str]) -> list[str]:
    if len(raw) > MAX_TAGS_TEXT:
        errors["tags"] = _("Use at most %(n)d characters.", n=MAX_TAGS_TEXT)
        return []
    tags = [" ".join(tag.split()) for tag in raw.split(",")]
    tags = [tag for tag in tags if tag]
    if any(len(tag) > MAX_TAG_LENGTH for tag in tags):
        errors["tags"] = _("Keep each tag under %(n)d characters.", n=MAX_TAG_LENGTH)
    return tags


def _custom(form: MultiDict, errors: dict[str, str]) -> dict[str, str]:
    """Custom fields come as parallel custom_key/custom_value lists; a pair
    with an empty value is dropped (that is how a field is removed)."""
    keys = form.getlist("custom_key")
    values = form.getlist("custom_value")
    if len(keys) != len(values) or len(keys) > MAX_CUSTOM_FIELDS + 1:
        errors["custom"] = _("Too many or too long custom fields.")
        return {}
    custom: dict[str, str] = {}
    for raw_key, raw_value in zip(keys, values, strict=True):
        key = " ".join(raw_key.split())
        value = raw_value.strip()
        if not value:
            continue
        if not key:
            errors["custom"] = _("Name each custom field.")
            continue
        custom[key] = value
    return custom


def contact_input_from_form(
    form: MultiDict, *, with_owner: bool = False, with_custom: bool = False
) -> tuple[ContactInput, dict[str, str]]:
    """The form as a ContactInput, plus errors for values no form could send
    (ids that are not numbers, tag lists too long to be tags).

    `with_owner`: read the owner select (only offered to those who assign).
    `with_custom`: read custom fields (the edit form; creation keeps none).
    """
    errors: dict[str, str] = {}
    data = ContactInput(
        name=form.get("name", ""),
        phone=form.get("phone", ""),
        email=form.get("email", ""),
        department_id=_optional_id(form, "department", errors),
        campaign_id=_optional_id(form, "campaign", errors),
        tags=_tags(form.get("tags", ""), errors),
    )
    if with_owner:
        data.owner_id = _optional_id(form, "owner", errors)
    if with_custom:
        data.custom = _custom(form, errors)
    return data, errors


def values_from_form(form: MultiDict) -> dict:
    """What was typed, to show again next to the errors."""
    values: dict = {name: form.get(name, "") for name in TEXT_FIELDS}
    for name in ("department", "campaign", "owner"):
        values[name] = form.get(name, "")
    values["custom"] = list(
        zip(form.getlist("custom_key"), form.getlist("custom_value"), strict=False)
    )
    return values


def values_for_contact(contact: Contact) -> dict:
    """The edit form's starting values."""
    return {
        "name": contact.name,
        "phone": contact.phone or "",
        "email": contact.email or "",
        "tags": ", ".join(contact.tags or []),
        "department": str(contact.department_id or ""),
        "campaign": str(contact.campaign_id or ""),
        "owner": "",
        "custom": list((contact.custom or {}).items()),
    }


def empty_values() -> dict:
    return values_from_form(MultiDict())


def status_from_form(form: MultiDict) -> tuple[str, str, dict[str, str]]:
    """(status, reason, errors); only the statuses the form offers pass."""
    status = form.get("status", "")
    errors = {}
    if status not in STATUS_CHOICES:
        errors["status"] = _("Pick from the list.")
    return status, form.get("reason", ""), errors


def history_from_form(form: MultiDict) -> tuple[str, str]:
    """(kind, body) of a timeline entry; the service validates both."""
    return form.get("kind", "note"), form.get("body", "")
