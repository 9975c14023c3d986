"""RQ job functions. Each takes ids, opens an app context and is safe to run twice.

The worker (`flask --app app worker`) runs them inside its own app context;
anywhere else (`rq worker`, a test) the first job builds the app lazily, never
at import.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from flask import Flask, has_app_context

_app: Flask | None = None


def app_context() -> AbstractContextManager:
    global _app
    if has_app_context():
        return nullcontext()
    if _app is None:
        from portal import create_app

        _app = create_app()
    return _app.app_context()
