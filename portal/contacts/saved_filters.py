"""Saved views of the contact list: a user's named query strings.

Each user sees and deletes only their own; another user's id answers
NotFound, exactly like an id that never existed.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from portal.contacts import list_filters
from portal.errors import NotFound, ValidationError
from portal.extensions import db
from portal.models import Account, SavedFilter, User

MAX_NAME = 100
MAX_SAVED = 50


def list_saved(user: User) -> list[SavedFilter]:
    """The user's saved views, by name."""
    return list(
        db.session.scalars(
            select(SavedFilter)
            .where(SavedFilter.user_id == user.id)
            .order_by(SavedFilter.name, SavedFilter.id)
        )
    )


def canonical_query(account: Account, query: str) -> str:
    """The query string as the list itself writes it (known filters only,
    no cursor); raises ValidationError when a filter is invalid."""
    args = MultiDict(parse_qsl((query or "").lstrip("?"), keep_blank_values=True))
    args.pop("cursor", None)
    try:
        filters = list_filters.parse_filters(account, args)
    except ValidationError:
        raise ValidationError(
            {"name": _("Fix the filters before saving this view.")}
        ) from None
    return filters.query_string()


def save(user: User, account: Account, name: str, query: str) -> SavedFilter:
    """Save `query` under `name`; the user's view of the same name is
    replaced. Raises ValidationError."""
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError({"name": _("Give this view a name.")})
    if len(name) > MAX_NAME:
        raise ValidationError({"name": _("Use at most %(n)d characters.", n=MAX_NAME)})
    if len(query or "") > 2000:
        raise ValidationError({"name": _("These filters are too long to save.")})
    canonical = canonical_query(account, query)
    saved = db.session.scalar(
        select(SavedFilter).where(
            SavedFilter.user_id == user.id, SavedFilter.name == name
        )
    )
    if saved is None:
        count = len(list_saved(user))
        if count >= MAX_SAVED:
            raise ValidationError(
                {"name": _("You have %(n)d saved views; delete one first.", n=count)}
            )
        saved = SavedFilter(account_id=user.account_id, user_id=user.id, name=name)
        db.session.add(saved)
    saved.query = canonical
    db.session.commit()
    return saved


def delete(user: User, filter_id: int) -> None:
    """Delete the user's saved view; raises NotFound for anyone else's."""
    saved = db.session.scalar(
        select(SavedFilter).where(
            SavedFilter.id == filter_id, SavedFilter.user_id == user.id
        )
    )
    if saved is None:
        raise NotFound()
    db.session.delete(saved)
    db.session.commit()
