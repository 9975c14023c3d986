"""The lead roulette: offers, each agent's routing state, and API keys."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.base import AccountScoped, UTCDateTime, created_at_column
from portal.models.contact import Lead
from portal.models.user import User


class OfferState(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


# Declining, letting the clock run out and being withdrawn all end an offer
# without an owner; within a round such an agent is not asked again.
ENDED_WITHOUT_OWNER = (OfferState.DECLINED, OfferState.EXPIRED, OfferState.CANCELLED)

# Why an agent passed, when they say (the pop-up's short list; optional).
DECLINE_REASONS = {
    "busy": _l("Busy with a customer"),
    "break": _l("On a break"),
    "not_mine": _l("Not my area"),
    "other": _l("Another reason"),
}

_PENDING = text("state = 'pending'")


class Offer(AccountScoped, db.Model):
    """One agent asked to take one lead, with a deadline.

    The two partial unique indexes are the last word on the roulette's
    promises, whatever the application does: a lead has at most one pending
    offer, and an agent holds at most one.
    """

    __table_args__ = (
        Index(
            "uq_offer_pending_lead",
            "lead_id",
            unique=True,
            sqlite_where=_PENDING,
            postgresql_where=_PENDING,
        ),
        Index(
            "uq_offer_pending_agent",
            "agent_id",
            unique=True,
            sqlite_where=_PENDING,
            postgresql_where=_PENDING,
        ),
        # The sweep walks pending offers by deadline.
        Index("ix_offer_state_expires", "state", "expires_at"),
        Index("ix_offer_lead", "lead_id", "id"),
        Index("ix_offer_agent", "agent_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(20), default=OfferState.PENDING)
    # "owner" (owner priority) or "turn" (the longest wait since an offer).
    reason: Mapped[str] = mapped_column(String(20))
    # Why this agent: every candidate with the reason it was skipped or chosen.
    # Deferred: a whole roster's worth of JSON that only the contact's Leads
    # section shows, and decoding it cost every answer to an offer.
    candidates: Mapped[list] = mapped_column(JSON, default=list, deferred=True)
    offered_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decline_reason: Mapped[str | None] = mapped_column(String(20))

    lead: Mapped[Lead] = relationship()
    agent: Mapped[User] = relationship()


class AgentState(db.Model):
    """An agent's roulette switch and turn; liveness itself is in Redis."""

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(
        ForeignKey("account.id", ondelete="CASCADE"), index=True
    )
    available: Mapped[bool] = mapped_column(Boolean, default=False)
    available_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The round-robin turn: whoever waited longest since this gets the next.
    last_offer_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(AccountScoped, db.Model):
    """A bearer key for the JSON API. Only a hash of the secret is stored."""

    __table_args__ = (Index("ix_api_key_lookup", "key_hash", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # The first characters of the key, shown in the list to tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))
    # Space-separated scopes: "leads:write", "leads:read", "contacts:read".
    scopes: Mapped[str] = mapped_column(String(200))
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = created_at_column()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
