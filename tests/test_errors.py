"""Error pages know who asked: a browser, htmx, or an API client."""

from __future__ import annotations

from tests import factories


def test_unknown_page_is_a_full_404_page(client, auth, ctx):
    auth.login(factories.make_user("attendant"))
    response = client.get("/no/such/page")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "<html" in html and "nothing here" in html


def test_htmx_error_is_swapped_into_the_flash_region(client, auth, ctx):
    auth.login(factories.make_user("attendant"))
    response = client.hx_get("/no/such/page")
    assert response.status_code == 404
    assert response.headers["HX-Retarget"] == "#flash"
    assert response.headers["HX-Reswap"] == "beforeend"
    html = response.get_data(as_text=True)
    assert "<html" not in html and 'data-status="404"' in html


def test_missing_permission_is_403_page_and_fragment(client, auth, ctx):
    auth.login(factories.make_user("attendant"))
    page = client.get("/admin/settings")
    assert page.status_code == 403
    assert "permission" in page.get_data(as_text=True)
    fragment = client.hx_get("/admin/settings")
    assert fragment.status_code == 403
    assert b"<html" not in fragment.data


def test_api_errors_are_json(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_navigation_shows_only_what_the_user_may_use(client, auth, ctx):
    auth.login(factories.make_user("attendant"))
    html = client.get("/").get_data(as_text=True)
    assert "/admin/users" not in html and "/admin/settings" not in html
    auth.logout()
    auth.login(factories.make_user("admin"))
    html = client.get("/").get_data(as_text=True)
    assert "/admin/users" in html and "/admin/settings" in html


def test_reception_reaches_new_contact_from_the_bar(client, auth, ctx):
    auth.login(factories.make_user("reception"))
    html = client.get("/").get_data(as_text=True)
    assert 'href="/contacts/new"' in html
    assert 'href="/contacts"' not in html
