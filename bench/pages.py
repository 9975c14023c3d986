"""Page benchmarks (issue #2).

Seeds 1,000 users, then measures the server time of the admin user list and
its htmx filter fragment (median and p95 over 200 requests each; target
p95 <= 30 ms on SQLite), and the gzip size of the agent home page with its CSS
and JS (target <= 60 KB).

    .venv/bin/python -m bench.pages            # SQLite + embedded Redis
    DATABASE_URL=postgresql+psycopg://... REDIS_URL=redis://... \
        .venv/bin/python -m bench.pages

Server time is measured in-process through the WSGI app (Flask's test
client): no network or browser, only what the server does for the request.
"""

from __future__ import annotations

import argparse
import gzip
import re

from bench.common import make_app, summary, timed, verdict

PASSWORD = "bench-password-123"


def seed_users(app, count: int) -> tuple[str, str]:
    """`count` users over every role, teams, units and departments; returns
    the admin's and an attendant's email."""
    from sqlalchemy import insert, select

    from portal.auth.service import hash_password
    from portal.extensions import db
    from portal.models import Role, TeamMember, UnitMember, User
    from portal.models.org import department_member
    from portal.org import structure
    from portal.settings.service import current_account

    with app.app_context():
        account = current_account()
        roles = {r.key: r for r in db.session.scalars(select(Role))}
        teams = [structure.get_or_create_team(account, f"team-{i}") for i in range(10)]
        units = [structure.get_or_create_unit(account, f"unit-{i}") for i in range(10)]
        departments = [
            structure.get_or_create_department(account, key)
            for key in ("sales", "rentals", "support")
        ]
        db.session.commit()
        # One hash for everyone: Argon2 is slow by design and not measured here.
        password_hash = hash_password(PASSWORD)
        role_cycle = ["attendant"] * 6 + ["seller"] * 3 + ["coordinator", "manager"]
        rows = []
        for i in range(count):
            key = "admin" if i == 0 else role_cycle[i % len(role_cycle)]
            rows.append(
                {
                    "account_id": account.id,
                    "email": f"user{i:05d}@bench.example",
                    "name": f"Bench User {i:05d}",
                    "role_id": roles[key].id,
                    "password_hash": password_hash,
                    "status": "active",
                    "is_restricted": key in {"attendant", "seller"},
                    "receives_web_leads": key == "attendant",
                    "creates_store_leads": key == "seller",
                    "session_version": 1,
                }
            )
        db.session.execute(insert(User), rows)
        users = db.session.execute(select(User.id, User.role_id)).all()
        by_role = {r.id: r.key for r in roles.values()}
        team_rows, unit_rows, dept_rows = [], [], []
        for n, (user_id, role_id) in enumerate(users):
            key = by_role[role_id]
            if key in {"attendant", "coordinator"}:
                team_rows.append(
                    {
                        "team_id": teams[n % 10].id,
                        "user_id": user_id,
                        "is_coordinator": key == "coordinator",
                    }
                )
            if key in {"seller", "manager"}:
                unit_rows.append(
                    {
                        "unit_id": units[n % 10].id,
                        "user_id": user_id,
                        "is_manager": key == "manager",
                    }
                )
            dept_rows.append(
                {"department_id": departments[n % 3].id, "user_id": user_id}
            )
        db.session.execute(insert(TeamMember), team_rows)
        db.session.execute(insert(UnitMember), unit_rows)
        db.session.execute(insert(department_member), dept_rows)
        db.session.commit()
    return "user00000@bench.example", "user00001@bench.example"


def signed_in_client(app, email: str):
    from tests.conftest import PortalClient

    app.test_client_class = PortalClient
    client = app.test_client()
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 303, response.status_code
    return client


def page_weight(client) -> dict[str, int]:
    """Gzip bytes of the home page and every script and stylesheet it loads."""
    html = client.get("/").data
    assets = re.findall(rb'(?:src|href)="(/static/[^"]+\.(?:js|css))"', html)
    total_raw = len(html)
    total_gz = len(gzip.compress(html, 9))
    for path in assets:
        body = client.get(path.decode()).data
        total_raw += len(body)
        total_gz += len(gzip.compress(body, 9))
    return {"assets": len(assets), "raw_bytes": total_raw, "gzip_bytes": total_gz}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    app = make_app()
    admin_email, agent_email = seed_users(app, args.users)
    db_kind = app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0]
    print(f"database: {db_kind}; users: {args.users}; requests: {args.requests}")

    admin = signed_in_client(app, admin_email)
    hx = {"HX-Request": "true"}

    def full_list():
        response = admin.get("/admin/users")
        assert response.status_code == 200

    def filter_fragment():
        response = admin.get("/admin/users?q=User 004", headers=hx)
        assert response.status_code == 200 and b"<html" not in response.data

    for label, fn in (
        ("admin user list (full page)", full_list),
        ("admin user list filter (htmx fragment)", filter_fragment),
    ):
        stats = summary(timed(fn, args.requests))
        print(
            f"{label}: median {stats['median_ms']} ms, p95 {stats['p95_ms']} ms, "
            f"max {stats['max_ms']} ms over {stats['n']} -> "
            f"{verdict(stats['p95_ms'], 30)} (target p95 <= 30 ms)"
        )

    agent = signed_in_client(app, agent_email)
    weight = page_weight(agent)
    kb = weight["gzip_bytes"] / 1024
    print(
        f"agent home page: {weight['raw_bytes']} bytes raw, "
        f"{weight['gzip_bytes']} bytes gzip ({kb:.1f} KB) with "
        f"{weight['assets']} scripts/stylesheets -> "
        f"{verdict(kb, 60)} (target <= 60 KB)"
    )


if __name__ == "__main__":
    main()
