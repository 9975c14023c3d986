"""Mail jobs."""

from __future__ import annotations

from flask_babel import force_locale
from flask_babel import gettext as _

from jobs import app_context


def send_activation(user_id: int, nonce: str) -> str | None:
    """Mail the activation link for `nonce`; skipped when a newer link replaced
    it or this nonce's mail already went out (a retried job sends nothing)."""
    with app_context():
        from portal import mail
        from portal.auth.service import activation_url
        from portal.extensions import db
        from portal.models import User
        from portal.redis_conn import get_redis

        user = db.session.get(User, user_id)
        if user is None or user.activation_nonce != nonce:
            return None
        if not get_redis().set(f"mail:activation:{nonce}", 1, nx=True, ex=7 * 86400):
            return None
        url = activation_url(user.id, nonce)
        with force_locale(user.language or "en"):
            subject = _("Your Roleta account")
            body = _(
                "Hello %(name)s,\n\nAn account was created for you on Roleta. "
                "Open this link to choose your password (it works once and "
                "expires in 3 days):\n\n%(url)s\n",
                name=user.name,
                url=url,
            )
        try:
            return mail.send(user.email, subject, body)
        except Exception:
            # Let RQ retry a failed delivery: forget that we claimed it.
            get_redis().delete(f"mail:activation:{nonce}")
            raise
