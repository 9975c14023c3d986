from __future__ import annotations

ALL: list = []
