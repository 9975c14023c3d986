from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from portal.extensions import db
from portal.redis_conn import get_redis

bp = Blueprint("api", __name__)


@bp.get("/health")
def health():
    """200 when the database and Redis answer; 503 naming what is down."""
    status = {"db": "ok", "redis": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any driver error means the same to a probe: down
        db.session.rollback()
        status["db"] = "down"
    try:
        get_redis().ping()
    except Exception:
        status["redis"] = "down"
    code = 200 if all(v == "ok" for v in status.values()) else 503
    return jsonify(status), code
