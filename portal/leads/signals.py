"""Sent after a lead's intake committed (account_id, lead_id), for the
features above leads (automatic task rules)."""

from __future__ import annotations

from blinker import Namespace

lead_created = Namespace().signal("lead-created")
