"""Normalising what people type, so the same person matches however written."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from flask_babel import gettext as _

from portal.errors import ValidationError

DEFAULT_REGION = "BR"  # the first users' country; numbers with + need none
_PHONE_CHARS = re.compile(r"^[\d\s().+\-/]*$")


@dataclass(frozen=True)
class Phone:
    display: str
    e164: str
    national: str


def parse_phone(raw: str, region: str = DEFAULT_REGION, field: str = "phone") -> Phone:
    """Validate and normalise a phone number; raises ValidationError."""
    text = " ".join((raw or "").split())
    if not text:
        raise ValidationError({field: _("Required.")})
    if len(text) > 40 or not _PHONE_CHARS.match(text):
        raise ValidationError({field: _("Use digits, spaces and + ( ) - only.")})
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValidationError({field: _("Not a valid phone number.")}) from None
    if not phonenumbers.is_possible_number(number):
        raise ValidationError({field: _("Not a valid phone number.")})
    return Phone(
        display=text,
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        national=str(number.national_number),
    )


def phone_digits(query: str) -> str:
    """The digits of a search query, for a prefix match on national numbers."""
    return "".join(ch for ch in query if ch.isdigit())


def fold(text: str) -> str:
    """Lower-case without accents: "João" and "joao" search alike."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())
