"""How contact statuses and origins read in the user's language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from portal.models import ContactStatus, Origin

STATUS_LABELS = {
    ContactStatus.NEW: _l("New"),
    ContactStatus.ASSIGNED: _l("Assigned"),
    ContactStatus.IN_PROGRESS: _l("In progress"),
    ContactStatus.SCHEDULED: _l("Scheduled"),
    ContactStatus.WON: _l("Won"),
    ContactStatus.LOST: _l("Lost"),
}
ORIGIN_LABELS = {
    Origin.WEB: _l("Web"),
    Origin.STORE: _l("Store"),
    Origin.MANUAL: _l("Manual"),
    Origin.IMPORT: _l("Import"),
}
