"""Reading a lead back for the API (GET /api/v1/leads/<id>): its state, who
took it, and every offer made of it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from portal.errors import NotFound
from portal.extensions import db
from portal.ids import MAX_ID
from portal.models import Account, Lead, Offer, User


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z."""
    if moment is None:
        return None
    return (
        moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def lead_detail(account: Account, lead_id: int) -> dict:
    """The lead, who took it, and every offer made of it (oldest first).
    Raises NotFound for a lead of another account or none."""
    lead = db.session.get(Lead, lead_id) if 0 < lead_id <= MAX_ID else None
    if lead is None or lead.account_id != account.id:
        raise NotFound()
    owner = None
    if lead.accepted_by_id is not None:
        user = db.session.get(User, lead.accepted_by_id)
        if user is not None:
            owner = {"id": user.id, "name": user.name}
    offers = db.session.execute(
        select(Offer.agent_id, Offer.state, Offer.offered_at, Offer.decided_at)
        .where(Offer.lead_id == lead.id)
        .order_by(Offer.id)
    )
    return {
        "id": lead.id,
        "contact_id": lead.contact_id,
        "state": lead.state,
        "owner": owner,
        "offers": [
            {
                "agent_id": row.agent_id,
                "state": row.state,
                "offered_at": iso(row.offered_at),
                "decided_at": iso(row.decided_at),
            }
            for row in offers
        ],
    }
