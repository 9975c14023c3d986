"""An import that gives a contact an owner is a hand-over like any other:
the contact's offered lead is withdrawn at once and the agent's pop-up ends
over their real websocket (through Redis, from another process)."""

from __future__ import annotations

import io

from flask import Flask
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from portal.extensions import db
from portal.imports import runner
from portal.imports.service import save_mapping, store_upload
from portal.models import Contact, Lead, Offer, User
from portal.settings.service import current_account
from tests.roulette_procs import Scene


def _import_owner(app: Flask, importer_id: int, email: str, owner_email: str) -> None:
    """Upload and run, in this process, a one-row import that updates the
    contact with `email` and gives it to `owner_email`."""
    data = f"name,email,owner\r\nImported Name,{email},{owner_email}\r\n".encode()
    with app.test_request_context():
        importer = db.session.get(User, importer_id)
        upload = FileStorage(io.BytesIO(data), filename="owners.csv")
        imp = store_upload(current_account(), importer, upload)
        save_mapping(imp, ["name", "email", "owner"], "update")
        imp.status = "queued"
        db.session.commit()
        assert runner.run_import(imp.id).updated == 1
        db.session.remove()


def test_an_import_giving_the_contact_an_owner_ends_the_agents_pop_up(
    app: Flask, scene: Scene
):
    scene.enable_roulette(timeout=60)
    (ana,) = scene.agents(1)
    (boss,) = scene.agents(1, role="admin")
    sock = scene.online(ana, "B")
    lead_id = scene.post_lead("A", email="buyer@example.net")
    offer = sock.wait_offer(timeout=10, lead_id=lead_id)

    _import_owner(app, boss.id, "buyer@example.net", boss.email)

    sock.wait_offer(timeout=10, offer_id=offer.offer_id, state="cancelled")
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        assert (lead.state, lead.accepted_by_id) == ("assigned", boss.id)
        assert db.session.get(Contact, lead.contact_id).owner_id == boss.id
        states = db.session.scalars(
            select(Offer.state).where(Offer.lead_id == lead_id)
        ).all()
        assert states == ["cancelled"]
        db.session.remove()
