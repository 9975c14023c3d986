"""Errors services raise; views turn them into pages, fragments or JSON."""

from __future__ import annotations


class ServiceError(Exception):
    """A rule was broken; the message is translated and safe to show."""


class ValidationError(ServiceError):
    """Bad input. `fields` maps each field name to what is wrong with it."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


class NotFound(ServiceError):
    """The record does not exist or the caller may not see it (answers 404)."""


class Forbidden(ServiceError):
    """The caller may not do this (answers 403)."""


class Conflict(ServiceError):
    """Someone else changed the record first (answers 409)."""
