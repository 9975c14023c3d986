"""The ranking and the report by origin: counts per person and per origin,
source or campaign over a period. Aggregates only: no query here selects a
contact's name, phone or email.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Campaign, Contact, ContactStatus, HistoryEntry, Lead, User
from portal.reports.periods import Period


@dataclass(frozen=True)
class RankRow:
    user_id: int
    name: str
    won: int
    accepted: int
    median_speed_seconds: int | None


def ranking(account_id: int, period: Period) -> list[RankRow]:
    """Each person's wins (contacts they marked won in the period), leads
    they accepted and the median time from a lead's arrival to their accept.
    Best first: most won, then fastest."""
    in_period = (period.start, period.end)
    won = dict(
        db.session.execute(
            select(HistoryEntry.author_id, func.count())
            .where(
                HistoryEntry.account_id == account_id,
                HistoryEntry.kind == "status",
                HistoryEntry.data["to"].as_string() == ContactStatus.WON,
                HistoryEntry.created_at >= in_period[0],
                HistoryEntry.created_at < in_period[1],
                HistoryEntry.author_id.is_not(None),
            )
            .group_by(HistoryEntry.author_id)
        ).all()
    )
    speeds: dict[int, list[int]] = defaultdict(list)
    accepted: Counter[int] = Counter()
    for agent_id, seconds in db.session.execute(
        select(Lead.accepted_by_id, Lead.speed_to_lead_seconds).where(
            Lead.account_id == account_id,
            Lead.accepted_by_id.is_not(None),
            Lead.accepted_at >= in_period[0],
            Lead.accepted_at < in_period[1],
        )
    ):
        accepted[agent_id] += 1
        if seconds is not None:
            speeds[agent_id].append(seconds)
    ids = set(won) | set(accepted)
    names = dict(
        db.session.execute(select(User.id, User.name).where(User.id.in_(ids))).all()
    )
    rows = [
        RankRow(
            user_id=uid,
            name=names.get(uid, "?"),
            won=won.get(uid, 0),
            accepted=accepted.get(uid, 0),
            median_speed_seconds=(
                int(statistics.median(speeds[uid])) if speeds.get(uid) else None
            ),
        )
        for uid in ids
        if uid in names
    ]
    slowest = float("inf")
    rows.sort(
        key=lambda r: (-r.won, r.median_speed_seconds or slowest, -r.accepted, r.name)
    )
    return rows


GROUPS = {
    "origin": _l("Origin"),
    "source": _l("Source"),
    "campaign": _l("Campaign"),
}
INTERVALS = {"day": _l("Day"), "week": _l("Week"), "month": _l("Month")}


@dataclass(frozen=True)
class OriginRow:
    bucket: date  # the first day of the day, week (Monday) or month
    group: str  # the origin, source or campaign ("" when the lead had none)
    leads: int
    won: int

    @property
    def conversion(self) -> float:
        return self.won / self.leads if self.leads else 0.0


@dataclass(frozen=True)
class OriginReport:
    rows: list[OriginRow]
    totals: list[OriginRow]  # per group over the whole period (bucket: first day)

    @property
    def leads(self) -> int:
        return sum(row.leads for row in self.totals)

    @property
    def won(self) -> int:
        return sum(row.won for row in self.totals)


def _bucket(day: date, interval: str) -> date:
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def origins(account_id: int, period: Period, group: str, interval: str) -> OriginReport:
    """Leads that arrived in the period and how many of their contacts are
    won now, per `group` (origin, source or campaign) and `interval`."""
    column = {
        "origin": Lead.origin,
        "source": Lead.source,
        "campaign": Campaign.name,
    }[group]
    query = (
        select(Lead.created_at, column, Contact.status)
        .join(Contact, Contact.id == Lead.contact_id)
        .outerjoin(Campaign, Campaign.id == Lead.campaign_id)
        .where(
            Lead.account_id == account_id,
            Lead.created_at >= period.start,
            Lead.created_at < period.end,
        )
    )
    leads: Counter[tuple[date, str]] = Counter()
    won: Counter[tuple[date, str]] = Counter()
    for created_at, value, status in db.session.execute(query):
        key = (_bucket(period.local_day(created_at), interval), value or "")
        leads[key] += 1
        if status == ContactStatus.WON:
            won[key] += 1
    rows = [
        OriginRow(bucket=b, group=g, leads=n, won=won[(b, g)])
        for (b, g), n in sorted(leads.items())
    ]
    per_group: Counter[str] = Counter()
    won_per_group: Counter[str] = Counter()
    for row in rows:
        per_group[row.group] += row.leads
        won_per_group[row.group] += row.won
    totals = [
        OriginRow(bucket=period.first, group=g, leads=n, won=won_per_group[g])
        for g, n in sorted(per_group.items(), key=lambda item: (-item[1], item[0]))
    ]
    return OriginReport(rows=rows, totals=totals)
