"""Comments on a contact's timeline and whom their author may mention.

A comment is a timeline entry of kind "comment" whose data lists the people
it mentions ({"mentions": [{"id", "name"}]}). Who may be mentioned follows
the one visibility rule of portal.contacts.scope: an active user of the
account who sees the contact. A comment is the team talking among
themselves, not an answer to the customer: it neither attends the contact
nor counts as its activity.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import format_number
from flask_babel import gettext as _
from sqlalchemy import exists, func, literal, select, union_all

from portal.contacts.scope import get_visible, visible_clause
from portal.errors import ValidationError
from portal.extensions import db
from portal.ids import parse_id
from portal.models import Contact, HistoryEntry, User, UserStatus
from portal.queue import enqueue

MAX_BODY = 10_000
MAX_MENTIONS = 20
# The autocomplete offers this many people, checking at most SCAN_LIMIT
# candidates whose name matches (each check is one indexed query).
OPTIONS_LIMIT = 10
SCAN_LIMIT = 200
CHECK_BATCH = 50
MENTION_JOB = "jobs.notifications.notify_mentions"


def sees_contact(user: User, contact_id: int) -> bool:
    """Whether `user` is active and may see the contact."""
    if not user.is_active:
        return False
    return bool(
        db.session.scalar(
            select(exists().where(Contact.id == contact_id, visible_clause(user)))
        )
    )


def seeing(users: list[User], contact_id: int) -> set[int]:
    """The ids of those of `users` (active or not) who may see the contact,
    in one query: each user's own visibility clause, side by side."""
    if not users:
        return set()
    checks = [
        select(literal(user.id).label("user_id")).where(
            exists().where(Contact.id == contact_id, visible_clause(user))
        )
        for user in users
    ]
    return set(db.session.scalars(union_all(*checks)))


def _like_pattern(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def mention_options(
    author: User, contact: Contact, query: str, chosen: Iterable[User] = ()
) -> list[User]:
    """People the author may mention on the contact whose name or e-mail
    holds `query` (any part, case folded), by name; never the author nor
    those already `chosen`."""
    skip = {author.id} | {user.id for user in chosen}
    statement = (
        select(User)
        .where(
            User.account_id == author.account_id,
            User.status == UserStatus.ACTIVE,
            User.id.not_in(skip),
        )
        .order_by(User.name, User.id)
        .limit(SCAN_LIMIT)
    )
    query = " ".join(query.split())[:100]
    if query:
        pattern = _like_pattern(query)
        statement = statement.where(
            func.lower(User.name).like(pattern, escape="\\")
            | User.email.like(pattern, escape="\\")
        )
    found: list[User] = []
    candidates = list(db.session.scalars(statement))
    # A batch of candidates per query: an autocomplete answers each keystroke.
    for start in range(0, len(candidates), CHECK_BATCH):
        batch = candidates[start : start + CHECK_BATCH]
        visible = seeing(batch, contact.id)
        found += [user for user in batch if user.id in visible]
        if len(found) >= OPTIONS_LIMIT:
            break
    return found[:OPTIONS_LIMIT]


def chosen_users(author: User, raw_ids: Iterable[object]) -> list[User]:
    """The users behind the `mention` values, in the order given, each once;
    values that name nobody of the account are dropped."""
    ids: list[int] = []
    for raw in raw_ids:
        user_id = parse_id(raw)
        if user_id is not None and user_id not in ids:
            ids.append(user_id)
    if not ids:
        return []
    users = {
        user.id: user
        for user in db.session.scalars(
            select(User).where(User.id.in_(ids), User.account_id == author.account_id)
        )
    }
    return [users[user_id] for user_id in ids if user_id in users]


def _mentioned(author: User, contact: Contact, raw_ids: list[object]) -> list[User]:
    """The mentioned users; raises ValidationError naming one who may not
    see the contact (or a value that names nobody)."""
    given = [raw for raw in raw_ids if str(raw).strip()]
    users = chosen_users(author, given)
    wanted = {parse_id(raw) for raw in given}
    if None in wanted or len(wanted) != len(users):
        raise ValidationError({"mention": _("Pick the people from the list.")})
    if len(users) > MAX_MENTIONS:
        raise ValidationError(
            {"mention": _("Mention at most %(n)d people.", n=MAX_MENTIONS)}
        )
    for user in users:
        if not sees_contact(user, contact.id):
            raise ValidationError(
                {
                    "mention": _(
                        "%(name)s cannot see this contact, so they cannot be "
                        "mentioned.",
                        name=user.name,
                    )
                }
            )
    return users


def clean_body(body: str | None) -> str:
    """The comment's text without surrounding blanks; raises ValidationError."""
    text = (body or "").replace("\r\n", "\n").strip()
    if not text:
        raise ValidationError({"body": _("Write the comment.")})
    if len(text) > MAX_BODY:
        raise ValidationError(
            {
                "body": _(
                    "A comment holds at most %(n)s characters; this one has %(m)s.",
                    n=format_number(MAX_BODY),
                    m=format_number(len(text)),
                )
            }
        )
    return text


def add_comment(
    author: User, contact_id: int, body: str | None, mention_ids: list[object]
) -> HistoryEntry:
    """Comment on the contact, mentioning `mention_ids` (user ids).

    Raises NotFound when the author may not see the contact, and
    ValidationError (every bad field at once) when the text is empty or too
    long or a mentioned user may not see the contact; then nothing is
    written. The mentioned are notified by a job queued after the commit.
    """
    contact = get_visible(author, contact_id)
    errors: dict[str, str] = {}
    text = ""
    mentioned: list[User] = []
    try:
        text = clean_body(body)
    except ValidationError as exc:
        errors.update(exc.fields)
    try:
        mentioned = _mentioned(author, contact, list(mention_ids))
    except ValidationError as exc:
        errors.update(exc.fields)
    if errors:
        raise ValidationError(errors)
    entry = HistoryEntry(
        account_id=contact.account_id,
        contact_id=contact.id,
        kind="comment",
        author_id=author.id,
        body=text,
        data={"mentions": [{"id": user.id, "name": user.name} for user in mentioned]},
    )
    db.session.add(entry)
    db.session.commit()
    if any(user.id != author.id for user in mentioned):
        enqueue(MENTION_JOB, entry.id)
    return entry
