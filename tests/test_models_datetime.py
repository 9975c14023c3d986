"""Every datetime column hands back aware UTC and stores what it stored before:
naive UTC text on SQLite, `timestamptz` on PostgreSQL. Real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime, func, select, text, update

from portal.extensions import db
from portal.models import Account, Contact
from portal.models.base import UTCDateTime, utcnow
from portal.settings.service import current_account
from tests import factories

MOMENT = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def assert_aware_utc(value: datetime) -> None:
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


def test_every_datetime_column_uses_the_utc_type() -> None:
    plain = [
        f"{table.name}.{column.name}"
        for table in db.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, DateTime)
    ]
    assert plain == []
    utc = [
        column
        for table in db.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, UTCDateTime)
    ]
    assert len(utc) > 20


def _store(moment: datetime) -> int:
    account = current_account()
    account.created_at = moment
    db.session.commit()
    return account.id


def test_a_read_a_refresh_and_a_core_select_come_back_aware(ctx: None) -> None:
    account_id = _store(MOMENT)
    db.session.expire_all()
    account = db.session.get(Account, account_id)
    assert account.created_at == MOMENT
    assert_aware_utc(account.created_at)

    db.session.execute(
        update(Account).where(Account.id == account_id).values(created_at=MOMENT)
    )
    db.session.refresh(account)
    assert_aware_utc(account.created_at)

    selected = db.session.scalar(
        select(Account.__table__.c.created_at).where(Account.id == account_id)
    )
    assert selected == MOMENT
    assert_aware_utc(selected)
    newest = db.session.scalar(select(func.max(Account.created_at)))
    assert_aware_utc(newest)


def test_a_raw_statement_typed_with_the_column_comes_back_aware(ctx: None) -> None:
    # Raw SQL bypasses column types; naming the type restores the promise.
    _store(MOMENT)
    statement = text("SELECT created_at FROM account").columns(created_at=UTCDateTime)
    value = db.session.scalar(statement)
    assert value == MOMENT
    assert_aware_utc(value)


def test_the_stored_form_is_unchanged(ctx: None) -> None:
    _store(MOMENT)
    if db.engine.dialect.name == "sqlite":
        raw = db.session.scalar(text("SELECT created_at FROM account"))
        assert raw == "2024-05-06 07:08:09.123456"
    else:
        raw = db.session.scalar(
            text("SELECT created_at AT TIME ZONE 'UTC' FROM account")
        )
        assert raw == MOMENT.replace(tzinfo=None)


@pytest.mark.parametrize(
    "given",
    [
        MOMENT.astimezone(timezone(timedelta(hours=-3))),
        MOMENT.replace(tzinfo=None),  # naive values are taken as UTC
    ],
    ids=["other-zone", "naive"],
)
def test_values_are_stored_as_utc(ctx: None, given: datetime) -> None:
    account_id = _store(given)
    db.session.expire_all()
    assert db.session.get(Account, account_id).created_at == MOMENT


def test_stored_values_compare_with_utcnow(ctx: None) -> None:
    contact = factories.make_contact(name="Ana")
    db.session.expire_all()
    contact = db.session.get(Contact, contact.id)
    now = utcnow()
    assert contact.created_at <= now
    assert now - contact.last_activity_at < timedelta(minutes=1)
    later = db.session.scalar(
        select(func.count()).where(Contact.created_at > now - timedelta(hours=1))
    )
    assert later == 1
