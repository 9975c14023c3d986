"""Column helpers shared by the models.

The promise: every datetime a model column hands back is aware and in UTC,
on SQLite as on PostgreSQL, so no caller ever fixes a naive value up.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Dialect, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that stores UTC and reads back aware UTC.

    The stored form is the one the plain type wrote for a UTC value: naive
    UTC text on SQLite (its driver drops the offset), `timestamptz` on
    PostgreSQL. A naive value given to it is taken as UTC, as SQLite always
    took it; an aware one in another zone is converted, where SQLite would
    have kept its wall time.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite's text carries no offset
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class AccountScoped:
    """Every row belongs to an account, so a multi-account deployment later
    needs no migration of meaning."""

    account_id: Mapped[int] = mapped_column(
        ForeignKey("account.id", ondelete="CASCADE"), index=True
    )


def created_at_column() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow)
