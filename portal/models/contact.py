"""Contacts, their leads, their timeline and who owned them when."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.base import AccountScoped, UTCDateTime, created_at_column, utcnow
from portal.models.org import Department
from portal.models.user import User


class ContactStatus(enum.StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    SCHEDULED = "scheduled"
    WON = "won"
    LOST = "lost"


class LeadState(enum.StrEnum):
    """Where a lead stands in the roulette (CONTRACT's lead states)."""

    QUEUED = "queued"  # waiting for an agent
    OFFERED = "offered"  # one agent has a pending offer of it
    ASSIGNED = "assigned"  # it has an owner: accepted, or assigned by hand


class Origin(enum.StrEnum):
    WEB = "web"
    STORE = "store"
    MANUAL = "manual"
    IMPORT = "import"


class AssignmentHow(enum.StrEnum):
    SELF = "self"
    MANUAL = "manual"
    BULK = "bulk"
    ROULETTE = "roulette"
    RULE = "rule"
    REASSIGNMENT = "reassignment"
    IMPORT = "import"


campaign_member = Table(
    "campaign_member",
    db.metadata,
    Column(
        "campaign_id", ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)


class Campaign(AccountScoped, db.Model):
    """A marketing campaign; agents may claim its contacts only as members."""

    __table_args__ = (UniqueConstraint("account_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(200))
    members: Mapped[list[User]] = relationship(secondary=campaign_member)


class Contact(AccountScoped, db.Model):
    """A person the team talks to; leads are their inquiries."""

    __table_args__ = (
        # Each list filter walks one of these in id order (keyset pagination).
        Index("ix_contact_owner_page", "account_id", "owner_id", "id"),
        Index("ix_contact_status_page", "account_id", "status", "id"),
        # Prefix searches are ranges on these; on PostgreSQL the pattern
        # opclass keeps them byte-wise whatever the database collation
        # (migration 0003; equality still uses them).
        Index(
            "ix_contact_phone",
            "account_id",
            "phone_national",
            postgresql_ops={"phone_national": "varchar_pattern_ops"},
        ),
        Index(
            "ix_contact_e164",
            "account_id",
            "phone_e164",
            postgresql_ops={"phone_e164": "varchar_pattern_ops"},
        ),
        Index(
            "ix_contact_email",
            "account_id",
            "email_normalized",
            postgresql_ops={"email_normalized": "varchar_pattern_ops"},
        ),
        Index(
            "ix_contact_name",
            "account_id",
            "name_search",
            postgresql_ops={"name_search": "varchar_pattern_ops"},
        ),
        Index("ix_contact_activity", "account_id", "last_activity_at"),
        # The list sorted by last activity for one owner (or the unassigned),
        # "open too long", and created-date ranges (migration 0003).
        Index(
            "ix_contact_owner_activity", "account_id", "owner_id", "last_activity_at"
        ),
        Index("ix_contact_open_idle", "account_id", "status", "last_activity_at"),
        Index("ix_contact_created", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Lower-cased, accents folded: what name search compares against.
    name_search: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    # E.164 for matching; the national number for "type the digits you know".
    phone_e164: Mapped[str | None] = mapped_column(String(20))
    phone_national: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    email_normalized: Mapped[str | None] = mapped_column(String(254))
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("department.id", ondelete="SET NULL"), index=True
    )
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="SET NULL"), index=True
    )
    tags: Mapped[list] = mapped_column(JSON, default=list)
    custom: Mapped[dict] = mapped_column(JSON, default=dict)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(20), default=ContactStatus.NEW)
    status_reason: Mapped[str | None] = mapped_column(String(500))
    origin: Mapped[str] = mapped_column(String(10), default=Origin.MANUAL)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_seconds: Mapped[int | None] = mapped_column(Integer)

    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    department: Mapped[Department | None] = relationship()
    campaign: Mapped[Campaign | None] = relationship()


class Lead(AccountScoped, db.Model):
    """One inbound inquiry of a contact; the roulette routes these."""

    __table_args__ = (
        UniqueConstraint("account_id", "external_id"),
        Index("ix_lead_state", "account_id", "state", "id"),
        # The capacity cap counts an agent's accepted, unattended leads.
        Index("ix_lead_accepted_open", "accepted_by_id", "attended_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    origin: Mapped[str] = mapped_column(String(10), default=Origin.WEB)
    source: Mapped[str | None] = mapped_column(String(100))
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="SET NULL")
    )
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("department.id", ondelete="SET NULL")
    )
    message: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(100))
    custom: Mapped[dict] = mapped_column(JSON, default=dict)
    # queued | offered | assigned (CONTRACT's lead states)
    state: Mapped[str] = mapped_column(String(20), default="queued")
    created_at: Mapped[datetime] = created_at_column()
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The roulette's progress: the round being offered, and when every round
    # was declined (the lead then waits for someone who has not seen it).
    round: Mapped[int] = mapped_column(Integer, default=1)
    exhausted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why it waits: the last candidate list, each with its skip reason.
    routing: Mapped[list | None] = mapped_column(JSON)
    accepted_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # Intake -> accepted, and intake -> attended (the dashboard's figures).
    speed_to_lead_seconds: Mapped[int | None] = mapped_column(Integer)
    first_response_seconds: Mapped[int | None] = mapped_column(Integer)
    # When the department's managers were told it waits too long.
    alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    contact: Mapped[Contact] = relationship()


class HistoryEntry(AccountScoped, db.Model):
    """One line of a contact's timeline."""

    __table_args__ = (Index("ix_history_contact", "contact_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE")
    )
    # note | call | status | assignment | edit | offer | task | invoice
    kind: Mapped[str] = mapped_column(String(20))
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    body: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = created_at_column()

    author: Mapped[User | None] = relationship()


class AssignmentLog(AccountScoped, db.Model):
    """Every change of a contact's owner: from, to, by whom, how, when."""

    __table_args__ = (Index("ix_assignment_contact", "contact_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE")
    )
    from_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    to_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    how: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = created_at_column()


class SavedFilter(AccountScoped, db.Model):
    """A user's named contact-list query string."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = created_at_column()


class Notification(AccountScoped, db.Model):
    """Something a user should see: a mention, an assignment, an alert."""

    __table_args__ = (Index("ix_notification_user", "user_id", "read_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    url: Mapped[str | None] = mapped_column(String(500))
    # The event this notifies about, so a job run twice notifies once.
    dedupe_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_at_column()
