"""A contact's leads as the profile shows them, with the roulette's record:
each offer and "why this agent" (every candidate and why they were skipped).

Whoever may see the contact sees its leads (origin, source, campaign,
department, message, state, response times). The offers and the candidate
lists name other agents and why they were passed over, so only those who
hand contacts out (contacts.assign) get them; an agent sees their contact's
leads without their colleagues' skip reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import undefer

from portal.contacts.scope import get_visible
from portal.extensions import db
from portal.models import Account, Campaign, Contact, Department, Lead, Offer, User

# Who may see the roulette's reasoning about other agents.
ROUTING_PERMISSION = "contacts.assign"
PAGE_SIZE = 10

LEAD_STATE_LABELS = {
    "queued": _l("Waiting in the queue"),
    "offered": _l("Offered to an agent"),
    "assigned": _l("Assigned"),
}
OFFER_STATE_LABELS = {
    "pending": _l("Waiting for an answer"),
    "accepted": _l("Accepted"),
    "declined": _l("Declined"),
    "expired": _l("No answer in time"),
    "cancelled": _l("Withdrawn"),
}
# The reasons the roulette stores in an offer (its candidate list and why
# the chosen one was asked), keyed by their stored form: contacts show what
# the roulette wrote without importing it.
CANDIDATE_LABELS = {
    "chosen": _l("chosen"),
    "offline": _l("offline"),
    "paused": _l("not available"),
    "busy": _l("answering another offer"),
    "capacity": _l("at the cap of open leads"),
    "hours": _l("outside working hours"),
    "declined": _l("already declined this lead"),
    # Could take the lead, but their turn had not come.
    "later": _l("eligible, not their turn yet"),
}
REASON_LABELS = {
    "owner": _l("the contact's owner"),
    "turn": _l("longest wait since an offer"),
}


def _seconds(since: datetime | None, until: datetime | None) -> int | None:
    if since is None or until is None:
        return None
    return max(0, int((until - since).total_seconds()))


@dataclass
class Candidate:
    """One agent the roulette considered, and what it concluded."""

    name: str
    reason: str
    label: str
    owner: bool


def _candidates(raw: list | None) -> list[Candidate]:
    return [
        Candidate(
            name=str(item.get("name") or ""),
            reason=str(item.get("reason") or ""),
            label=str(CANDIDATE_LABELS.get(item.get("reason"), item.get("reason"))),
            owner=bool(item.get("owner")),
        )
        for item in raw or ()
        if isinstance(item, dict)
    ]


@dataclass
class OfferRecord:
    offer: Offer
    agent_name: str
    reason_label: str
    state_label: str
    candidates: list[Candidate]

    @property
    def answer_seconds(self) -> int | None:
        """Offered -> decided: how long the agent took (or let run out)."""
        return _seconds(self.offer.offered_at, self.offer.decided_at)


@dataclass
class LeadRecord:
    lead: Lead
    state_label: str
    department: str | None = None
    campaign: str | None = None
    accepted_by: str | None = None
    # Only for those who may see routing (else always empty / None):
    offers: list[OfferRecord] = field(default_factory=list)
    # Why a queued lead waits: the last evaluation's candidates.
    waiting_reasons: list[Candidate] | None = None


@dataclass
class LeadsPage:
    contact: Contact
    leads: list[LeadRecord]
    # The id to pass as `before` for the next (older) page; None at the end.
    next_before: int | None
    shows_routing: bool
    roulette_enabled: bool


def shows_routing(viewer: User) -> bool:
    return viewer.can(ROUTING_PERMISSION)


def _names(model: type[User] | type[Department], ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = db.session.execute(select(model.id, model.name).where(model.id.in_(ids)))
    return {row_id: name for row_id, name in rows}


def contact_leads(
    viewer: User, contact_id: int, before: int | None = None, limit: int = PAGE_SIZE
) -> LeadsPage:
    """The contact's leads, newest first, `limit` at a time (older than the
    lead `before`), in at most five queries.

    Raises NotFound when the viewer may not see the contact.
    """
    contact: Contact = get_visible(viewer, contact_id)
    query = (
        select(Lead)
        .where(Lead.account_id == viewer.account_id, Lead.contact_id == contact.id)
        .order_by(Lead.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(Lead.id < before)
    leads = list(db.session.scalars(query))
    next_before = None
    if len(leads) > limit:
        leads = leads[:limit]
        next_before = leads[-1].id

    departments = _names(Department, {x.department_id for x in leads} - {None})
    campaigns = _names(Campaign, {x.campaign_id for x in leads} - {None})
    people = _names(User, {x.accepted_by_id for x in leads} - {None})
    routing = shows_routing(viewer)
    records = {
        lead.id: LeadRecord(
            lead=lead,
            state_label=str(LEAD_STATE_LABELS.get(lead.state, lead.state)),
            department=departments.get(lead.department_id),
            campaign=campaigns.get(lead.campaign_id),
            accepted_by=people.get(lead.accepted_by_id),
        )
        for lead in leads
    }
    if routing and leads:
        _attach_offers(records)
        for record in records.values():
            if record.lead.state == "queued":
                record.waiting_reasons = _candidates(record.lead.routing)
    account = db.session.get(Account, viewer.account_id)
    return LeadsPage(
        contact=contact,
        leads=list(records.values()),
        next_before=next_before,
        shows_routing=routing,
        roulette_enabled=bool(account and account.roulette_enabled),
    )


def _attach_offers(records: dict[int, LeadRecord]) -> None:
    """Every offer of these leads, oldest first, with the agent's name."""
    rows = db.session.execute(
        select(Offer, User.name)
        .options(undefer(Offer.candidates))
        .outerjoin(User, User.id == Offer.agent_id)
        .where(Offer.lead_id.in_(records))
        .order_by(Offer.lead_id, Offer.id)
    )
    for offer, agent_name in rows:
        records[offer.lead_id].offers.append(
            OfferRecord(
                offer=offer,
                agent_name=agent_name or "",
                reason_label=str(REASON_LABELS.get(offer.reason, offer.reason)),
                state_label=str(OFFER_STATE_LABELS.get(offer.state, offer.state)),
                candidates=_candidates(offer.candidates),
            )
        )
