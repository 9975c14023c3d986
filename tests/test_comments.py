"""Comments with @mentions on a contact's timeline (CONTRACT: Working
together): only people who see the contact may be mentioned, the text is
escaped with its line breaks and links, and a refusal writes nothing."""

from __future__ import annotations

import pytest
from markupsafe import Markup

from portal.comments import service
from portal.comments.text import comment_html, excerpt
from portal.errors import NotFound, ValidationError
from portal.extensions import db
from portal.models import HistoryEntry, Notification
from portal.queue import get_queue
from tests import factories

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


class World:
    pass


@pytest.fixture
def world(ctx) -> World:
    """A manager of unit u1 with its seller Sam, who owns the contact; Sol
    sells in u2 and cannot see it; an admin sees everything."""
    w = World()
    w.admin = factories.make_user("admin", name="Ada Admin", password=None)
    w.manager = factories.make_user("manager", name="Mia Manager", units=["u1"])
    w.sam = factories.make_user("seller", name="Sam Seller", units=["u1"])
    w.sol = factories.make_user("seller", name="Sol Seller", units=["u2"])
    w.contact = factories.make_contact(w.admin, name="Ana Souza", owner=w.sam)
    return w


def comments() -> list[HistoryEntry]:
    db.session.expire_all()
    query = db.select(HistoryEntry).where(HistoryEntry.kind == "comment")
    return list(db.session.scalars(query))


# ------------------------------------------------------------- the text


def test_comment_text_is_escaped_with_line_breaks_and_links():
    html = comment_html(f"Hi {SCRIPT}\nsee https://example.com/a?b=1&c=2.\r\nbye")
    assert isinstance(html, Markup)
    assert ESCAPED in html
    assert "<script" not in html
    assert html.count("<br>") == 2
    assert (
        '<a href="https://example.com/a?b=1&amp;c=2" rel="nofollow noopener '
        'noreferrer">https://example.com/a?b=1&amp;c=2</a>.' in html
    )


@pytest.mark.parametrize(
    ("text", "links"),
    [
        ('javascript:alert(1) <a href="x">', []),
        ('https://x.example/"onmouseover="alert(1)', ["https://x.example/"]),
        ("<img src=x onerror=alert(1)>", []),
    ],
)
def test_comment_text_never_makes_markup_of_what_was_typed(text, links):
    html = str(comment_html(text))
    assert "<img" not in html
    assert html.count("<a ") == len(links)
    for link in links:
        assert f'<a href="{link}" rel=' in html
    assert '"onmouseover' not in html


def test_a_link_keeps_the_parenthesis_it_opened():
    html = comment_html("(see https://en.example/wiki/A_(b))")
    assert 'href="https://en.example/wiki/A_(b)"' in html
    assert html.endswith("</a>)")


def test_excerpt_is_one_line_and_bounded():
    assert excerpt("a\n\n b") == "a b"
    assert len(excerpt("x" * 500)) == 140


# ------------------------------------------------------------- service


def test_a_comment_mentions_someone_who_sees_the_contact(world, run_jobs):
    entry = service.add_comment(
        world.manager, world.contact.id, "Call her back", [str(world.sam.id)]
    )
    assert entry.kind == "comment"
    assert entry.data == {"mentions": [{"id": world.sam.id, "name": "Sam Seller"}]}
    run_jobs()
    (notification,) = db.session.scalars(db.select(Notification))
    assert notification.user_id == world.sam.id
    assert notification.kind == "mention"
    assert notification.url == f"/contacts/{world.contact.id}#entry-{entry.id}"
    assert notification.data["by"] == "Mia Manager"


def test_mentioning_someone_who_cannot_see_it_is_refused_by_name(world):
    queued = get_queue().count
    with pytest.raises(ValidationError) as refused:
        service.add_comment(
            world.manager, world.contact.id, "Look", [world.sam.id, world.sol.id]
        )
    assert "Sol Seller" in refused.value.fields["mention"]
    assert comments() == []
    assert get_queue().count == queued


def test_an_unknown_or_foreign_mention_is_refused(world):
    for bad in (["999999"], ["abc"]):
        with pytest.raises(ValidationError) as refused:
            service.add_comment(world.manager, world.contact.id, "Look", bad)
        assert "mention" in refused.value.fields
    assert comments() == []


def test_a_suspended_user_cannot_be_mentioned(world):
    world.sam.status = "suspended"
    db.session.commit()
    with pytest.raises(ValidationError) as refused:
        service.add_comment(world.manager, world.contact.id, "Look", [world.sam.id])
    assert "Sam Seller" in refused.value.fields["mention"]


def test_a_contact_out_of_sight_is_not_found(world):
    with pytest.raises(NotFound):
        service.add_comment(world.sol, world.contact.id, "Hello", [])
    assert comments() == []


def test_a_comment_without_mentions_queues_no_job(world):
    queued = get_queue().count
    service.add_comment(world.sam, world.contact.id, "Note to self", [])
    assert get_queue().count == queued


def test_mention_options_are_only_people_who_see_the_contact(world):
    everyone = service.mention_options(world.manager, world.contact, "")
    names = [user.name for user in everyone]
    assert names == ["Ada Admin", "Sam Seller"]  # not the author, not Sol
    found = service.mention_options(world.manager, world.contact, "SAM")
    assert [user.name for user in found] == ["Sam Seller"]
    assert service.mention_options(world.manager, world.contact, "sol") == []
    # A pattern's wildcards are searched as text.
    assert service.mention_options(world.manager, world.contact, "%") == []


# --------------------------------------------------------------- views


def post_comment(client, contact_id, body="Hello", mentions=(), htmx=True):
    data = {"body": body, "mention": [str(m) for m in mentions]}
    url = f"/contacts/{contact_id}/comments"
    return client.hx_post(url, data=data) if htmx else client.post(url, data=data)


def test_posting_a_comment_answers_the_new_entry(world, client, auth):
    auth.login(world.manager)
    answer = post_comment(
        client, world.contact.id, f"{SCRIPT}\nhttps://example.com", [world.sam.id]
    )
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    (entry,) = comments()
    assert f'id="entry-{entry.id}"' in html
    assert "<html" not in html
    assert ESCAPED in html and "<script>alert" not in html
    assert '<a href="https://example.com"' in html
    assert f'data-user-id="{world.sam.id}"' in html
    assert 'id="comment-form"' in html  # a fresh form for the next one
    page = client.get(f"/contacts/{world.contact.id}").get_data(as_text=True)
    assert ESCAPED in page and "<script>alert" not in page
    assert 'id="comment-form"' in page


def test_without_htmx_a_comment_redirects_to_the_profile(world, client, auth):
    auth.login(world.sam)
    answer = post_comment(client, world.contact.id, htmx=False)
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith(f"/contacts/{world.contact.id}")


def test_an_out_of_scope_mention_answers_422_naming_them(world, client, auth):
    auth.login(world.manager)
    for htmx in (True, False):
        answer = post_comment(
            client, world.contact.id, "Look", [world.sol.id], htmx=htmx
        )
        assert answer.status_code == 422
        html = answer.get_data(as_text=True)
        assert "Sol Seller" in html
        assert "Look" in html  # what was typed is kept
    assert comments() == []


def test_an_over_long_comment_is_refused_with_a_field_error(world, client, auth):
    auth.login(world.sam)
    answer = post_comment(client, world.contact.id, "x" * 10_001)
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert 'id="error-body"' in html
    assert "10,000" in html and "10,001" in html
    assert comments() == []
    assert post_comment(client, world.contact.id, "x" * 10_000).status_code == 200
    assert post_comment(client, world.contact.id, "   ").status_code == 422


@pytest.mark.parametrize(
    "path", ["/contacts/{id}/comments", "/contacts/{id}/mentions?mention_q=a"]
)
def test_a_contact_out_of_sight_answers_404(world, client, auth, path):
    auth.login(world.sol)
    url = path.format(id=world.contact.id)
    if "comments" in path:
        answer = client.hx_post(url, data={"body": "Hi"})
    else:
        answer = client.hx_get(url)
    assert answer.status_code == 404
    assert comments() == []


def test_a_comment_without_csrf_token_is_refused(world, client, auth):
    auth.login(world.sam)
    answer = client.post(
        f"/contacts/{world.contact.id}/comments", data={"body": "Hi"}, csrf=False
    )
    assert answer.status_code == 400
    assert comments() == []


def test_the_autocomplete_offers_people_who_see_the_contact(world, client, auth):
    auth.login(world.manager)
    url = f"/contacts/{world.contact.id}/mentions"
    html = client.hx_get(url, query_string={"mention_q": "sel"}).get_data(as_text=True)
    assert "<html" not in html
    assert "Sam Seller" in html and f'value="{world.sam.id}"' in html
    assert "Sol Seller" not in html
    # Those ticked stay ticked, first, even when the search moves on.
    html = client.hx_get(
        url, query_string={"mention_q": "ada", "mention": [str(world.sam.id)]}
    ).get_data(as_text=True)
    assert f'value="{world.sam.id}" checked' in html
    assert "Ada Admin" in html
    assert html.index("Sam Seller") < html.index("Ada Admin")
    # A ticked person who cannot see the contact is not carried along.
    html = client.hx_get(
        url, query_string={"mention_q": "", "mention": [str(world.sol.id)]}
    ).get_data(as_text=True)
    assert "Sol Seller" not in html
    page = client.get(url, query_string={"mention_q": "sam"})
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
