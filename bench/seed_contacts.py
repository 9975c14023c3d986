"""Seeding for bench/contacts.py: a sales team and a million contacts.

People: an admin, a coordinator leading two teams of attendants, a manager of
two units of sellers, and `agents` agents (60% attendants in teams of 12, 40%
sellers in units of 10), every one in a department, some in campaigns.

Contacts look like a year of a Brazilian sales team's leads: accented names,
mobile numbers typed in several ways, most with an email, about 30%
unassigned, statuses, origins, departments and campaigns mixed, created
times spread over the last year in id order and last activity after them.

The load is a bulk load: the contact table's secondary indexes are dropped,
the rows go in with executemany (SQLite) or COPY (PostgreSQL) in batches, and
the indexes are rebuilt from their own DDL, so the schema ends as migrated.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from bench.pages import PASSWORD

FIRST_NAMES = (
    "Ana", "Maria", "João", "José", "Antônio", "Francisco", "Carlos", "Paulo",
    "Pedro", "Lucas", "Luís", "Gabriel", "Rafael", "Márcia", "Letícia",
    "Patrícia", "Fernanda", "Juliana", "Adriana", "Mônica", "Sebastião",
    "Conceição", "Inês", "Vitória", "Beatriz", "Júlia", "Luíza", "Helena",
    "Otávio", "Caio", "Mateus", "Thiago", "Bruno", "Sérgio", "Fábio", "Vinícius",
    "Débora", "Cecília", "Lúcia", "Raquel", "Tânia", "Simone", "Cláudia",
    "Rogério", "Marcelo", "Estêvão", "André", "Ângela", "Joaquim", "Raúl",
    "Sofía", "Zoë", "Ñusta", "Élodie", "Yuki", "Chiara", "Olga", "Müller",
)  # fmt: skip
LAST_NAMES = (
    "Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves",
    "Pereira", "Lima", "Gomes", "Ribeiro", "Carvalho", "Araújo", "Gonçalves",
    "Martins", "Rocha", "Magalhães", "Simões", "Conceição", "Nóbrega",
    "Figueiredo", "Brandão", "Assunção", "Falcão", "Damião", "Pires", "Teixeira",
    "Moraes", "Cardoso", "Castro", "Nascimento", "Barbosa", "Monteiro", "Mendes",
    "Freitas", "Correia", "Peçanha", "Guimarães", "Sá", "Leão", "Macedo",
    "Azevedo", "Queiroz", "Tavares", "Vieira", "Fonseca", "Xavier", "Borges",
    "Núñez", "García", "López", "Schäfer", "Kowalski", "Tanaka", "D'Ávila",
)  # fmt: skip
AREA_CODES = (
    "11", "11", "11", "21", "21", "31", "41", "47", "48", "51", "61", "62",
    "71", "81", "85", "91", "92", "19", "27", "84",
)  # fmt: skip
EMAIL_DOMAINS = (
    "gmail.com", "gmail.com", "gmail.com", "hotmail.com", "outlook.com",
    "yahoo.com.br", "uol.com.br", "bol.com.br", "terra.com.br", "empresa.com.br",
)  # fmt: skip
DEPARTMENTS = (("sales", "Vendas"), ("rentals", "Locação"), ("support", "Pós-venda"))
CAMPAIGNS = (
    ("black-friday", "Black Friday"),
    ("feirao", "Feirão de Março"),
    ("indicacao", "Indicação Premiada"),
    ("instagram", "Instagram Ads"),
    ("radio", "Rádio 98 FM"),
)
OWNED_STATUSES = (
    ("assigned", 30),
    ("in_progress", 35),
    ("scheduled", 10),
    ("won", 15),
    ("lost", 10),
)
ORIGINS = (("web", 50), ("store", 20), ("manual", 20), ("import", 10))
WON_REASONS = ("Fechou à vista", "Financiamento aprovado", "Consórcio")
LOST_REASONS = ("Comprou no concorrente", "Sem crédito", "Desistiu", "Sem resposta")
UNASSIGNED_SHARE = 0.30
CAMPAIGN_SHARE = 0.15
TEAM_SIZE = 12
UNIT_SIZE = 10

CONTACT_COLUMNS = (
    "account_id",
    "name",
    "name_search",
    "phone",
    "phone_e164",
    "phone_national",
    "email",
    "email_normalized",
    "department_id",
    "campaign_id",
    "tags",
    "custom",
    "owner_id",
    "status",
    "status_reason",
    "origin",
    "created_by_id",
    "created_at",
    "updated_at",
    "last_activity_at",
    "assigned_at",
    "attended_at",
    "first_response_seconds",
)


@dataclass(frozen=True)
class People:
    """Who the benchmark signs in as, and the ids the contacts refer to."""

    admin_email: str
    manager_email: str
    coordinator_email: str
    attendant_email: str
    agent_emails: tuple[str, ...]
    account_id: int
    admin_id: int
    agent_ids: tuple[int, ...]
    department_ids: tuple[int, ...]
    campaign_ids: tuple[int, ...]


def email_of(kind: str, n: int = 0) -> str:
    local = f"{kind}{n:03d}" if kind == "agent" else kind
    return f"{local}@bench.example"


def seed_people(app, agents: int) -> People:
    """The admin, coordinator, manager and `agents` agents with their teams,
    units, departments and campaigns (one Argon2 hash for all)."""
    from sqlalchemy import insert, select

    from portal.auth.service import hash_password
    from portal.contacts.normalize import fold
    from portal.extensions import db
    from portal.models import Campaign, Role, TeamMember, UnitMember, User
    from portal.models.contact import campaign_member
    from portal.models.org import department_member
    from portal.org import structure
    from portal.settings.service import current_account

    rng = random.Random(7)
    with app.app_context():
        account = current_account()
        roles = {r.key: r.id for r in db.session.scalars(select(Role))}
        attendants = round(agents * 0.6)
        teams = [
            structure.get_or_create_team(account, f"team-{i:02d}", f"Equipe {i + 1}")
            for i in range(-(-attendants // TEAM_SIZE))
        ]
        units = [
            structure.get_or_create_unit(account, f"unit-{i:02d}", f"Loja {i + 1}")
            for i in range(-(-(agents - attendants) // UNIT_SIZE))
        ]
        departments = [
            structure.get_or_create_department(account, key, name)
            for key, name in DEPARTMENTS
        ]
        campaigns = [
            Campaign(account_id=account.id, key=key, name=name)
            for key, name in CAMPAIGNS
        ]
        db.session.add_all(campaigns)
        db.session.commit()

        password_hash = hash_password(PASSWORD)
        people = [
            ("admin", email_of("admin"), "Alice Administradora"),
            ("coordinator", email_of("coordinator"), "Cátia Coordenadora"),
            ("manager", email_of("manager"), "Márcio Gerente"),
        ]
        for n in range(agents):
            role = "attendant" if n < attendants else "seller"
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)} ({n:03d})"
            people.append((role, email_of("agent", n), name))
        db.session.execute(
            insert(User),
            [
                {
                    "account_id": account.id,
                    "email": email,
                    "name": name,
                    "role_id": roles[role],
                    "password_hash": password_hash,
                    "status": "active",
                    "is_restricted": role != "admin",
                    "receives_web_leads": role == "attendant",
                    "creates_store_leads": role == "seller",
                    "session_version": 1,
                }
                for role, email, name in people
            ],
        )
        ids = dict(db.session.execute(select(User.email, User.id)).tuples().all())
        agent_ids = [ids[email_of("agent", n)] for n in range(agents)]
        team_rows = [
            {"team_id": teams[n // TEAM_SIZE].id, "user_id": agent_ids[n]}
            for n in range(attendants)
        ]
        # The coordinator leads the first two teams, the manager the first
        # two units: their scopes hold a few dozen agents, as in life.
        team_rows += [
            {"team_id": team.id, "user_id": ids[email_of("coordinator")]}
            | {"is_coordinator": True}
            for team in teams[:2]
        ]
        unit_rows = [
            {"unit_id": units[(n - attendants) // UNIT_SIZE].id, "user_id": uid}
            for n, uid in enumerate(agent_ids)
            if n >= attendants
        ]
        unit_rows += [
            {"unit_id": unit.id, "user_id": ids[email_of("manager")]}
            | {"is_manager": True}
            for unit in units[:2]
        ]
        db.session.execute(insert(TeamMember), team_rows)
        db.session.execute(insert(UnitMember), unit_rows)
        db.session.execute(
            insert(department_member),
            [
                {"department_id": departments[n % 3].id, "user_id": uid}
                for n, uid in enumerate(ids.values())
            ],
        )
        # Each campaign has a fifth of the agents.
        db.session.execute(
            insert(campaign_member),
            [
                {"campaign_id": campaigns[n % len(campaigns)].id, "user_id": uid}
                for n, uid in enumerate(agent_ids)
            ],
        )
        db.session.commit()
        assert fold("João") == "joao"  # what the name_search column holds
        return People(
            admin_email=email_of("admin"),
            manager_email=email_of("manager"),
            coordinator_email=email_of("coordinator"),
            attendant_email=email_of("agent", 0),
            agent_emails=tuple(email_of("agent", n) for n in range(agents)),
            account_id=account.id,
            admin_id=ids[email_of("admin")],
            agent_ids=tuple(agent_ids),
            department_ids=tuple(d.id for d in departments),
            campaign_ids=tuple(c.id for c in campaigns),
        )


def load_people(app) -> People | None:
    """The people of an earlier seeding (for --reuse), or None."""
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import Campaign, Department, User

    with app.app_context():
        ids = dict(db.session.execute(select(User.email, User.id)).tuples().all())
        if email_of("admin") not in ids:
            return None
        agent_emails = sorted(e for e in ids if e.startswith("agent"))
        return People(
            admin_email=email_of("admin"),
            manager_email=email_of("manager"),
            coordinator_email=email_of("coordinator"),
            attendant_email=email_of("agent", 0),
            agent_emails=tuple(agent_emails),
            account_id=db.session.scalar(
                select(User.account_id).where(User.id == ids[email_of("admin")])
            ),
            admin_id=ids[email_of("admin")],
            agent_ids=tuple(ids[e] for e in agent_emails),
            department_ids=tuple(db.session.scalars(select(Department.id))),
            campaign_ids=tuple(db.session.scalars(select(Campaign.id))),
        )


def _weighted(choices: tuple[tuple[str, int], ...], rng: random.Random, n: int):
    values = [value for value, _ in choices]
    weights = [weight for _, weight in choices]
    return rng.choices(values, weights, k=n)


def contact_rows(people: People, count: int, seed: int = 11):
    """`count` rows (lists in CONTACT_COLUMNS order, datetimes aware UTC),
    created times rising with the row over the last year."""
    from portal.contacts.normalize import fold

    rng = random.Random(seed)
    rand = rng.random  # random.choice costs twice as much; this runs 10^6 times

    def pick(values):
        return values[int(rand() * len(values))]

    now = datetime.now(UTC).replace(microsecond=0)
    year_ago = now - timedelta(days=365)
    step = timedelta(days=365) / max(count, 1)
    second = timedelta(seconds=1)
    folded = {name: fold(name) for name in FIRST_NAMES + LAST_NAMES}
    plain = {name: folded[name].replace("'", "") for name in folded}
    statuses = _weighted(OWNED_STATUSES, rng, count)
    origins = _weighted(ORIGINS, rng, count)
    agent_ids, campaign_ids = people.agent_ids, people.campaign_ids
    department_ids = people.department_ids
    empty_list, empty_dict = "[]", "{}"
    tag_choices = ('["vip"]', '["retorno"]', '["vip", "retorno"]')
    for i in range(count):
        first = pick(FIRST_NAMES)
        last = pick(LAST_NAMES)
        if rand() < 0.4:
            middle = pick(LAST_NAMES)
            name = f"{first} {middle} {last}"
            name_search = f"{folded[first]} {folded[middle]} {folded[last]}"
        else:
            name = f"{first} {last}"
            name_search = f"{folded[first]} {folded[last]}"
        phone = e164 = national = None
        if rand() < 0.95:
            area = pick(AREA_CODES)
            line = f"{int(rand() * 100_000_000):08d}"
            national = f"{area}9{line}"
            e164 = "+55" + national
            style = i % 3
            if style == 0:
                phone = f"({area}) 9{line[:4]}-{line[4:]}"
            elif style == 1:
                phone = f"+55 {area} 9{line[:4]}-{line[4:]}"
            else:
                phone = national
        email = None
        if phone is None or rand() < 0.8:
            email = f"{plain[first]}.{plain[last]}{i}@{pick(EMAIL_DOMAINS)}"
            email = email.replace(" ", "")
        created = year_ago + step * i + second * int(rand() * 60)
        owner_id = assigned = attended = reason = response = None
        status = "new"
        last_activity = created
        if rand() >= UNASSIGNED_SHARE:
            owner_id = pick(agent_ids)
            status = statuses[i]
            assigned = created + second * int(rand() * 3600)
            last_activity = assigned
            if status != "assigned":
                response = 60 + int(rand() * 36_000)
                attended = last_activity = assigned + second * response
            if status == "won":
                reason = pick(WON_REASONS)
            elif status == "lost":
                reason = pick(LOST_REASONS)
            # Activity goes on after the first response, more often lately.
            later = created + (now - created) * rand() ** 2
            last_activity = max(last_activity, later)
        campaign_id = (
            pick(campaign_ids) if campaign_ids and rand() < CAMPAIGN_SHARE else None
        )
        department_id = pick(department_ids) if rand() < 0.9 else None
        yield [
            people.account_id,
            name,
            name_search,
            phone,
            e164,
            national,
            email,
            email,
            department_id,
            campaign_id,
            pick(tag_choices) if rand() < 0.1 else empty_list,
            empty_dict,
            owner_id,
            status,
            reason,
            origins[i],
            owner_id or people.admin_id,
            created,
            last_activity,
            last_activity,
            assigned,
            attended,
            response,
        ]


# --- loading ------------------------------------------------------------------


def _sqlite_time(value: datetime | None) -> str | None:
    # The text SQLAlchemy's SQLite DateTime stores (UTC wall time).
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _load_sqlite(raw, rows, batch: int, phases: dict[str, float]) -> None:
    cursor = raw.cursor()
    cursor.execute("PRAGMA cache_size=-262144")  # 256 MB for the index builds
    indexes = cursor.execute(
        "SELECT name, sql FROM sqlite_master "
        "WHERE type = 'index' AND tbl_name = 'contact' AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    raw.commit()
    placeholders = ", ".join("?" for _ in CONTACT_COLUMNS)
    columns = ", ".join(CONTACT_COLUMNS)  # constants, not input
    sql = f"INSERT INTO contact ({columns}) VALUES ({placeholders})"  # noqa: S608
    time_columns = [
        CONTACT_COLUMNS.index(c)
        for c in ("created_at", "updated_at", "last_activity_at")
        + ("assigned_at", "attended_at")
    ]
    mark = time.perf_counter()
    try:
        while chunk := list(islice(rows, batch)):
            for row in chunk:
                for c in time_columns:
                    row[c] = _sqlite_time(row[c])
            cursor.executemany(sql, chunk)
            raw.commit()
    finally:
        mark = _phase(phases, "rows", mark)
        for _, ddl in indexes:
            cursor.execute(ddl)
        raw.commit()
        mark = _phase(phases, "indexes", mark)
        cursor.execute("ANALYZE")
        raw.commit()
        _phase(phases, "analyze", mark)


def _load_postgresql(raw, rows, batch: int, phases: dict[str, float]) -> None:
    connection = raw.driver_connection
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        # Secondary indexes only: those backing a constraint stay.
        cursor.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE t.relname = 'contact' AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)"
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        connection.commit()
        copy_sql = f"COPY contact ({', '.join(CONTACT_COLUMNS)}) FROM STDIN"
        mark = time.perf_counter()
        try:
            while chunk := list(islice(rows, batch)):
                with cursor.copy(copy_sql) as copy:
                    for row in chunk:
                        copy.write_row(row)
                connection.commit()
        finally:
            connection.rollback()
            mark = _phase(phases, "rows", mark)
            for _, ddl in indexes:
                cursor.execute(ddl)
            connection.commit()
            mark = _phase(phases, "indexes", mark)
            cursor.execute("ANALYZE contact")
            connection.commit()
            _phase(phases, "analyze", mark)


def _phase(phases: dict[str, float], name: str, since: float) -> float:
    now = time.perf_counter()
    phases[name] = now - since
    return now


def seed_contacts(
    app, people: People, count: int, batch: int = 100_000
) -> dict[str, float]:
    """Bulk-load `count` contacts; returns the seconds of each phase (rows
    generated and inserted, indexes rebuilt, statistics gathered)."""
    from portal.extensions import db

    phases: dict[str, float] = {}
    with app.app_context():
        db.session.remove()
        raw = db.engine.raw_connection()
        try:
            rows = contact_rows(people, count)
            if db.engine.dialect.name == "postgresql":
                _load_postgresql(raw, rows, batch, phases)
            else:
                _load_sqlite(raw, rows, batch, phases)
        finally:
            raw.close()
    return phases


def contact_count(app) -> int:
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import Contact

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Contact))


def check_sqlite_time_format(app) -> None:
    """The text we write for datetimes is exactly what SQLAlchemy writes."""
    from portal.extensions import db
    from portal.models import Contact

    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            return
        column_type = Contact.__table__.c.created_at.type
        dialect = db.engine.dialect
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        moment = datetime(2025, 3, 4, 5, 6, 7, 89, tzinfo=UTC)
        assert process(moment) == _sqlite_time(moment), process(moment)
        assert json.dumps(["vip", "retorno"]) == '["vip", "retorno"]'
