"""Outgoing mail: real SMTP when MAIL_URL is set, else files in the outbox.

The outbox is for the embedded default: nothing leaves the machine, and the
admin UI can show the activation link it contains.
"""

from __future__ import annotations

import smtplib
import time
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app


def build_message(to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4()}@roleta>"
    message.set_content(body)
    return message


def send(to: str, subject: str, body: str) -> str:
    """Deliver one plain-text mail; returns where it went (for logs)."""
    message = build_message(to, subject, body)
    url = current_app.config.get("MAIL_URL")
    if url:
        parts = urlsplit(url)
        with smtplib.SMTP(
            parts.hostname or "localhost", parts.port or 25, timeout=30
        ) as smtp:
            if parts.scheme == "smtp+starttls":
                smtp.starttls()
            if parts.username:
                smtp.login(parts.username, parts.password or "")
            smtp.send_message(message)
        return f"smtp:{to}"
    outbox = Path(current_app.config["OUTBOX_DIR"])
    outbox.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
    path = outbox / name
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(bytes(message))
    tmp.rename(path)  # readers never see half a mail
    return str(path)


def outbox_messages(to: str | None = None) -> list[EmailMessage]:
    """Mails in the outbox, oldest first (optionally only those to `to`)."""
    outbox = Path(current_app.config["OUTBOX_DIR"])
    if not outbox.exists():
        return []
    found = []
    for path in sorted(outbox.glob("*.eml")):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        if to is None or msg["To"] == to:
            found.append(msg)
    return found
