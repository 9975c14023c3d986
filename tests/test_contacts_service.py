"""Rules of contacts: who sees them, who may take or give them, attendance."""

from __future__ import annotations

import pytest

from portal.contacts import assignment, cleaning, matching, scope, service
from portal.contacts.scope import visible_clause
from portal.errors import Conflict, Forbidden, NotFound, ValidationError
from portal.extensions import db
from portal.models import AssignmentLog, Contact, Notification
from portal.settings.service import current_account
from tests import factories


def visible_ids(user) -> set[int]:
    return set(db.session.scalars(db.select(Contact.id).where(visible_clause(user))))


def test_creator_owns_a_manual_contact_and_the_log_says_self(ctx):
    agent = factories.make_user("attendant")
    contact = factories.make_contact(agent, phone="(11) 91234-5678")
    assert contact.owner_id == agent.id
    assert contact.status == "assigned"
    assert contact.phone_e164 == "+5511912345678"
    assert contact.phone_national == "11912345678"
    (log,) = db.session.scalars(db.select(AssignmentLog))
    assert (log.from_user_id, log.to_user_id, log.by_user_id, log.how) == (
        None,
        agent.id,
        agent.id,
        "self",
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "Required."),
        ("name", "x" * 201, "at most 200"),
        ("email", "not-an-email", "valid email"),
        ("phone", "11 9abc 5678", "digits"),
        ("phone", "12", "valid phone"),
    ],
)
def test_bad_contact_fields_are_named_and_nothing_is_written(
    ctx, field, value, message
):
    agent = factories.make_user("attendant")
    data = cleaning.ContactInput(name="Ana", phone="+55 11 91234-5678")
    setattr(data, field, value)
    with pytest.raises(ValidationError) as caught:
        service.create_contact(current_account(), agent, data)
    assert message in caught.value.fields[field]
    assert db.session.scalar(db.select(db.func.count(Contact.id))) == 0


def test_a_contact_needs_a_phone_or_an_email(ctx):
    agent = factories.make_user("attendant")
    with pytest.raises(ValidationError) as caught:
        service.create_contact(
            current_account(), agent, cleaning.ContactInput(name="A")
        )
    assert "phone" in caught.value.fields


def test_unknown_department_or_campaign_is_refused(ctx):
    agent = factories.make_user("attendant")
    data = cleaning.ContactInput(name="A", email="a@x.io", department_id=999)
    with pytest.raises(ValidationError) as caught:
        service.create_contact(current_account(), agent, data)
    assert "department" in caught.value.fields


def test_matches_are_found_by_normalised_phone_and_email(ctx):
    factories.make_contact(phone="+55 (11) 91234-5678", email="Ana@Example.com")
    account = current_account()
    assert matching.find_matches(account, "+5511912345678", None)
    assert matching.find_matches(account, None, "ana@example.com")
    assert not matching.find_matches(account, "+5511900000000", "x@y.z")


def test_restricted_agent_sees_own_and_claimable_only(ctx):
    me = factories.make_user("attendant")
    other = factories.make_user("attendant")
    mine = factories.make_contact(me)
    theirs = factories.make_contact(other)
    free = factories.make_contact(unassigned=True)
    campaign_free = factories.make_contact(unassigned=True, campaign="bf")
    assert visible_ids(me) == {mine.id, free.id}
    factories.add_to_campaign(me, "bf")
    assert visible_ids(me) == {mine.id, free.id, campaign_free.id}
    with pytest.raises(NotFound):
        scope.get_visible(me, theirs.id)


def test_coordinator_sees_their_teams_and_the_queue(ctx):
    coordinator = factories.make_user("coordinator", teams=["north"])
    member = factories.make_user("attendant", teams=["north"])
    outsider = factories.make_user("attendant", teams=["south"])
    in_team = factories.make_contact(member)
    out_team = factories.make_contact(outsider)
    free = factories.make_contact(unassigned=True)
    seen = visible_ids(coordinator)
    assert in_team.id in seen and free.id in seen
    assert out_team.id not in seen


def test_manager_sees_their_units(ctx):
    manager = factories.make_user("manager", units=["store-1"])
    seller = factories.make_user("seller", units=["store-1"])
    other_seller = factories.make_user("seller", units=["store-2"])
    ours = factories.make_contact(seller)
    not_ours = factories.make_contact(other_seller)
    seen = visible_ids(manager)
    assert ours.id in seen and not_ours.id not in seen


def test_admin_and_unrestricted_agents_see_everything(ctx):
    admin = factories.make_user("admin")
    free_agent = factories.make_user("attendant", is_restricted=False)
    contacts = {factories.make_contact(factories.make_user("seller")).id for _ in "ab"}
    assert contacts <= visible_ids(admin)
    assert contacts <= visible_ids(free_agent)


def test_agent_claims_unassigned_then_second_claim_conflicts(ctx, run_jobs):
    first = factories.make_user("attendant", name="First Agent")
    second = factories.make_user("attendant")
    contact = factories.make_contact(unassigned=True)
    assignment.assign(first, contact.id)
    with pytest.raises(Conflict) as caught:
        assignment.assign(second, contact.id)
    assert "Already taken by First Agent" in str(caught.value)
    assert db.session.get(Contact, contact.id).owner_id == first.id
    logs = db.session.scalars(
        db.select(AssignmentLog).where(AssignmentLog.contact_id == contact.id)
    ).all()
    assert [log.how for log in logs] == ["self"]


def test_agent_cannot_claim_a_campaign_contact_outside_their_campaigns(ctx):
    agent = factories.make_user("attendant")
    contact = factories.make_contact(unassigned=True, campaign="vip")
    with pytest.raises(NotFound):
        assignment.assign(agent, contact.id)
    factories.add_to_campaign(agent, "vip")
    assert assignment.assign(agent, contact.id).owner_id == agent.id


def test_agents_assign_only_to_themselves(ctx):
    agent = factories.make_user("attendant")
    colleague = factories.make_user("attendant")
    contact = factories.make_contact(unassigned=True)
    with pytest.raises(Forbidden):
        assignment.assign(agent, contact.id, colleague.id)


def test_coordinator_assigns_within_scope_only(ctx, run_jobs):
    coordinator = factories.make_user("coordinator", teams=["north"])
    member = factories.make_user("attendant", teams=["north"])
    outsider = factories.make_user("attendant", teams=["south"])
    contact = factories.make_contact(unassigned=True)
    with pytest.raises(Forbidden):
        assignment.assign(coordinator, contact.id, outsider.id)
    assigned = assignment.assign(coordinator, contact.id, member.id)
    assert assigned.owner_id == member.id
    assert run_jobs() == 1
    (note,) = db.session.scalars(db.select(Notification)).all()
    assert note.user_id == member.id and note.data["contact_id"] == contact.id


def test_notification_job_run_twice_notifies_once(ctx, run_jobs):
    from portal.queue import enqueue

    admin = factories.make_user("admin")
    agent = factories.make_user("attendant")
    contact = factories.make_contact(unassigned=True)
    assignment.assign(admin, contact.id, agent.id)
    log_id = db.session.scalar(db.select(db.func.max(AssignmentLog.id)))
    enqueue("jobs.notifications.notify_assignment", log_id)
    assert run_jobs() == 2
    assert db.session.scalar(db.select(db.func.count(Notification.id))) == 1


def test_reassignment_is_logged_with_from_and_by(ctx):
    admin = factories.make_user("admin")
    a = factories.make_user("attendant")
    b = factories.make_user("attendant")
    contact = factories.make_contact(a)
    assignment.assign(admin, contact.id, b.id)
    last = db.session.scalars(
        db.select(AssignmentLog).order_by(AssignmentLog.id.desc())
    ).first()
    assert (last.from_user_id, last.to_user_id, last.by_user_id, last.how) == (
        a.id,
        b.id,
        admin.id,
        "reassignment",
    )


def test_bulk_assign_reports_each_contact(ctx):
    manager = factories.make_user("admin")
    agent = factories.make_user("attendant")
    free = [factories.make_contact(unassigned=True) for _ in range(3)]
    result = assignment.bulk_assign(manager, [c.id for c in free] + [999999], agent.id)
    assert sorted(result.assigned) == sorted(c.id for c in free)
    assert list(result.failed) == [999999]


def test_owner_first_note_marks_attended_and_measures_first_response(ctx):
    agent = factories.make_user("attendant")
    contact = factories.make_contact(unassigned=True)
    assignment.assign(agent, contact.id)
    service.add_history(agent, contact.id, "note", "Called, will visit Friday")
    contact = db.session.get(Contact, contact.id)
    assert contact.status == "in_progress"
    assert contact.attended_at is not None
    assert contact.first_response_seconds is not None
    assert contact.first_response_seconds >= 0


def test_a_note_by_someone_else_does_not_mark_attended(ctx):
    admin = factories.make_user("admin")
    agent = factories.make_user("attendant")
    contact = factories.make_contact(agent)
    service.add_history(admin, contact.id, "note", "Manager's note")
    assert db.session.get(Contact, contact.id).attended_at is None


@pytest.mark.parametrize("status", ["won", "lost"])
def test_won_and_lost_need_a_reason(ctx, status):
    agent = factories.make_user("attendant")
    contact = factories.make_contact(agent)
    with pytest.raises(ValidationError) as caught:
        service.set_status(agent, contact.id, status, "  ")
    assert "reason" in caught.value.fields
    done = service.set_status(agent, contact.id, status, "Bought the 2-bedroom")
    assert done.status == status and done.status_reason == "Bought the 2-bedroom"


def test_history_text_is_bounded(ctx):
    agent = factories.make_user("attendant")
    contact = factories.make_contact(agent)
    with pytest.raises(ValidationError):
        service.add_history(agent, contact.id, "note", "x" * 10_000)
