"""The lead intake's body as a pydantic model.

`LeadIn` checks what a client sends (types, lengths, unknown fields); its JSON
schema is the request body in the OpenAPI document. What needs the database
or the phone library (keys, phone, email) is checked by the service.
"""

from __future__ import annotations

from typing import Annotated, Any

from flask_babel import gettext as _
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

MAX_NAME = 200
MAX_MESSAGE = 5000
MAX_EXTERNAL_ID = 100
MAX_CUSTOM_FIELDS = 50
MAX_CUSTOM_KEY = 100


def _squeeze(value: Any) -> Any:
    """Runs of whitespace become one space, ends trimmed (names)."""
    return " ".join(value.split()) if isinstance(value, str) else value


def _strip_or_none(value: Any) -> Any:
    """Ends trimmed; a blank string counts as absent."""
    if isinstance(value, str):
        return value.strip() or None
    return value


Name = Annotated[str, BeforeValidator(_squeeze)]
OptionalText = Annotated[str | None, BeforeValidator(_strip_or_none)]
Scalar = str | int | float | bool | None


class LeadIn(BaseModel):
    """A lead as a web form or an integration sends it."""

    model_config = ConfigDict(extra="forbid", title="LeadIn")

    name: Name = Field(
        min_length=1, max_length=MAX_NAME, description="The person's name."
    )
    phone: OptionalText = Field(
        None,
        max_length=40,
        description=(
            "Any common format; without a leading + the number is read as "
            "Brazilian. At least one of phone and email is required."
        ),
        examples=["+55 11 91234-5678"],
    )
    email: OptionalText = Field(
        None,
        max_length=254,
        description="At least one of phone and email is required.",
        json_schema_extra={"format": "email"},
    )
    department: OptionalText = Field(
        None,
        max_length=50,
        description=(
            "Key of an existing department. Without one, the lead may go to "
            "any agent who receives web leads."
        ),
        examples=["sales"],
    )
    campaign: OptionalText = Field(
        None, max_length=50, description="Key of an existing campaign."
    )
    source: OptionalText = Field(
        None, max_length=100, description="Where the lead came from, e.g. website."
    )
    message: OptionalText = Field(None, max_length=MAX_MESSAGE)
    external_id: OptionalText = Field(
        None,
        max_length=MAX_EXTERNAL_ID,
        description=(
            "Your id of this lead. Sending the same external_id again answers "
            "200 with the first lead and creates nothing."
        ),
    )
    custom: dict[
        Annotated[str, Field(min_length=1, max_length=MAX_CUSTOM_KEY)], Scalar
    ] = Field(
        default_factory=dict,
        max_length=MAX_CUSTOM_FIELDS,
        description="Up to 50 extra fields with scalar values.",
    )


def _message_for(error: dict) -> str:
    """A pydantic error in plain, translatable words."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    field = error["loc"][0] if error["loc"] else ""
    if field == "custom":
        if kind == "too_long":
            return _("Use at most %(n)d fields.", n=MAX_CUSTOM_FIELDS)
        if kind == "dict_type":
            return _("Must be an object.")
        if error["loc"][-1] == "[key]":
            return _("Field names must have 1 to %(n)d characters.", n=MAX_CUSTOM_KEY)
        return _("Values must be text, numbers, true, false or null.")
    if kind == "missing":
        return _("Required.")
    if kind == "extra_forbidden":
        return _("Unknown field.")
    if kind == "string_type":
        return _("Must be text.")
    if kind == "string_too_short":
        return _("Required.")
    if kind == "string_too_long":
        return _("Use at most %(n)d characters.", n=ctx.get("max_length", 0))
    return _("Not valid.")


def field_errors(exc: PydanticValidationError) -> dict[str, str]:
    """{top-level field: message}, the first error of each field."""
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else "body"
        errors.setdefault(field, _message_for(error))
    return errors
