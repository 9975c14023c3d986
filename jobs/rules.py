"""Automatic task rules' jobs: one per event, safe to run twice (each rule
fires once per event: portal.tasks.firing)."""

from __future__ import annotations

from jobs import app_context
from portal.tasks import firing


def lead_created(lead_id: int) -> int:
    with app_context():
        return firing.lead_created(lead_id)


def status_changed(entry_id: int) -> int:
    with app_context():
        return firing.status_changed(entry_id)


def offer_expired(offer_id: int) -> int:
    with app_context():
        return firing.offer_expired(offer_id)


def contacts_assigned(contact_ids: list[int]) -> int:
    with app_context():
        return firing.contacts_assigned(contact_ids)
