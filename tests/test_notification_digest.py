"""Mail digests: what someone offline missed for 10 minutes is mailed, at
most one digest every 15 minutes, never twice, never to who opted out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from jobs.notifications import mail_digest
from portal import mail
from portal.extensions import db
from portal.models import Notification
from portal.models.base import utcnow
from portal.notifications import digest
from portal.notifications.models import NotificationMail
from portal.queue import get_queue
from portal.realtime import presence
from tests import factories

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def sam(ctx):
    return factories.make_user("seller", name="Sam Seller", password=None)


def notify(user, minutes_ago: float = 11, **data) -> Notification:
    made = Notification(
        account_id=user.account_id,
        user_id=user.id,
        kind="mention",
        data={"by": "Mia", "contact_name": "Ana", "excerpt": "Call her", **data},
        url="/contacts/1#entry-2",
    )
    db.session.add(made)
    db.session.commit()
    db.session.execute(
        update(Notification)
        .where(Notification.id == made.id)
        .values(created_at=utcnow() - timedelta(minutes=minutes_ago))
    )
    db.session.commit()
    return made


def mails_to(user) -> list:
    return mail.outbox_messages(user.email)


def setting(user) -> NotificationMail:
    db.session.expire_all()
    return db.session.get(NotificationMail, user.id)


def test_what_an_offline_user_missed_is_mailed_once(sam):
    first = notify(sam, contact_name=f"Ana {SCRIPT}")
    notify(sam, kind_note="second")
    assert mail_digest(sam.id) is not None
    (sent,) = mails_to(sam)
    assert sent["Subject"] == "2 notifications you missed on Roleta"
    body = sent.get_content()
    # Plain text: what people typed as they typed it, and no markup.
    assert f"Mia mentioned you on Ana {SCRIPT} — Call her" in body
    assert "<bdi>" not in body and "&lt;" not in body
    assert "http://portal.test/contacts/1#entry-2" in body
    assert "http://portal.test/notifications" in body
    assert setting(sam).mailed_up_to > first.id
    assert mail_digest(sam.id) is None  # again: nothing new
    assert len(mails_to(sam)) == 1


def test_nothing_is_mailed_before_ten_minutes_and_the_job_comes_back(sam):
    notify(sam, minutes_ago=2)
    registry = get_queue().scheduled_job_registry
    before = set(registry.get_job_ids())
    assert mail_digest(sam.id) is None
    assert mails_to(sam) == []
    assert len(set(registry.get_job_ids()) - before) == 1


def test_a_connected_user_is_not_mailed(sam):
    notify(sam)
    presence.touch(sam.account_id, sam.id)
    assert mail_digest(sam.id) is None
    assert mails_to(sam) == []


def test_read_notifications_are_not_mailed(sam):
    read = notify(sam)
    read.read_at = utcnow()
    db.session.commit()
    assert mail_digest(sam.id) is None


def test_who_opted_out_is_not_mailed(sam):
    digest.set_opted_out(sam, True)
    notify(sam)
    assert mail_digest(sam.id) is None
    assert mails_to(sam) == []


def test_at_most_one_digest_every_fifteen_minutes(sam):
    notify(sam)
    mail_digest(sam.id)
    later = notify(sam, excerpt="Later one")
    assert mail_digest(sam.id) is None  # too soon after the first
    db.session.execute(
        update(NotificationMail)
        .where(NotificationMail.user_id == sam.id)
        .values(last_sent_at=utcnow() - timedelta(minutes=16))
    )
    db.session.commit()
    assert mail_digest(sam.id) is not None
    # (Two mails of one second: the outbox's order between them is random.)
    (second,) = [m for m in mails_to(sam) if "Later one" in m.get_content()]
    assert second["Subject"] == "1 notification you missed on Roleta"
    assert "Call her" not in second.get_content()
    assert setting(sam).mailed_up_to == later.id


def test_a_failed_delivery_hands_the_claim_back(app, sam):
    notify(sam)
    app.config["MAIL_URL"] = "smtp://127.0.0.1:1"  # nothing listens there
    try:
        with pytest.raises(OSError):
            mail_digest(sam.id)
    finally:
        del app.config["MAIL_URL"]
    assert setting(sam).mailed_up_to == 0
    assert setting(sam).last_sent_at is None
    assert mail_digest(sam.id) is not None  # RQ's retry then mails it


def test_a_new_notification_schedules_one_digest(sam):
    registry = get_queue().scheduled_job_registry
    before = set(registry.get_job_ids())
    notify(sam, minutes_ago=0)
    notify(sam, minutes_ago=0)
    scheduled = set(registry.get_job_ids()) - before
    assert len(scheduled) == 1


def test_the_switch_on_the_notifications_page(client, auth, ctx):
    user = factories.make_user("seller")
    auth.login(user)
    page = client.get("/notifications").get_data(as_text=True)
    assert 'data-mail-digest="on"' in page
    answer = client.hx_post("/notifications/mail", data={"digest": "off"})
    assert answer.status_code == 200
    assert 'data-mail-digest="off"' in answer.get_data(as_text=True)
    assert setting(user).opted_out is True
    assert client.post("/notifications/mail", data={"digest": "on"}).status_code == 303
    assert setting(user).opted_out is False
    assert client.post("/notifications/mail", data={"digest": "x"}).status_code == 422
    refused = client.post("/notifications/mail", data={"digest": "off"}, csrf=False)
    assert refused.status_code == 400
    assert setting(user).opted_out is False
