"""What each kind of background job does, registered by the feature that owns it.

A feature (imports, later reassignments and digests) registers one `Kind`
when its module is imported; the job machinery looks it up by the row's
`kind` and never imports the feature.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from flask_babel.speaklater import LazyString

from portal.background.lease import Lease
from portal.models import BackgroundJob


@dataclass(frozen=True)
class Kind:
    """One kind of job.

    `work(job, lease)` does the job from where its last committed batch
    stopped, calling `lease.checkpoint(...)` inside each batch's
    transaction just before committing it. `on_status(job)` runs in the
    same transaction as every change of the job's status, so the feature's
    own record (an import's status) can never disagree with the job.
    """

    key: str
    label: LazyString
    work: Callable[[BackgroundJob, Lease], None]
    on_status: Callable[[BackgroundJob], None] | None = None
    # Where the person who started it follows it (None: the jobs page).
    url: Callable[[BackgroundJob], str | None] | None = None
    # Failure reasons of this kind, worded in the reader's language.
    reasons: Mapping[str, LazyString] = field(default_factory=dict)
    timeout_seconds: int = 3600


_kinds: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    _kinds[kind.key] = kind
    return kind


def get(key: str) -> Kind | None:
    return _kinds.get(key)


def all_kinds() -> list[Kind]:
    return sorted(_kinds.values(), key=lambda kind: kind.key)
