"""Roleta: the application factory."""

from __future__ import annotations

from pathlib import Path

from flask import (
    Flask,
    current_app,
    flash,
    has_request_context,
    redirect,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import get_locale, lazy_gettext
from flask_login import current_user

from portal import (
    comments,
    database,  # engine pragmas, the SQLite gate, pings
    errors_http,
    imports,
    notifications,
    org,
    roles,
    security,
    settings,
    users,
)
from portal.api import bp as api_bp
from portal.apikeys import bp as apikeys_bp
from portal.auth import bp as auth_bp
from portal.auth import view_as
from portal.auth.access import can
from portal.auth.service import load_session_user
from portal.background import kinds as job_kinds
from portal.background.views import bp as jobs_admin_bp
from portal.board import live as board_live
from portal.board.views import bp as board_bp
from portal.cli import register_commands
from portal.config import build_config
from portal.contacts import bp as contacts_bp
from portal.contacts.ownership import owner_changed, status_changed
from portal.dashboard.views import bp as dashboard_bp
from portal.errors_http import error_response
from portal.extensions import (
    babel,
    csrf,
    db,
    htmx,
    limiter,
    login_manager,
    migrate,
    sock,
)
from portal.home import live as home_live
from portal.ids import IdConverter
from portal.imports.job import IMPORT_KIND
from portal.leads.signals import lead_created
from portal.localtime import select_timezone
from portal.main import bp as main_bp
from portal.navigation import navigation
from portal.notifications import push as notification_push
from portal.notifications.push import notifications_changed
from portal.realtime.views import bp as realtime_bp
from portal.redis_conn import limiter_storage_uri, redis_url
from portal.reports.views import bp as reports_bp
from portal.roulette import signals as roulette_signals
from portal.roulette.endings import withdraw_for_new_owners
from portal.roulette.views import bp as roulette_bp
from portal.roulette.views import presence_switch
from portal.tasks import events as task_events
from portal.tasks.notify import tasks_changed
from portal.tasks.rule_views import bp as task_rules_bp
from portal.tasks.views import bp as tasks_bp
from portal.users.offboarding import REASSIGN_KIND
from portal.users.offboarding_views import bp as offboarding_bp


def create_app(config: dict | None = None) -> Flask:
    """Build the app; `config` overrides what the environment says."""
    cfg = build_config(config)
    app = Flask(__name__, instance_path=cfg["INSTANCE_PATH"])
    app.config.update(cfg)
    app.url_map.converters["int"] = IdConverter  # before any route is added
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    app.config.setdefault("RATELIMIT_STORAGE_URI", limiter_storage_uri(redis_url(app)))
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)

    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            database.ping_when_idle(engine, app.config["DATABASE_PING_IDLE_SECONDS"])
    migrate.init_app(
        app,
        db,
        directory=str(Path(__file__).parent / "migrations"),
        render_as_batch=True,
    )
    htmx.init_app(app)
    sock.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(
        app, locale_selector=_select_locale, timezone_selector=select_timezone
    )
    _init_login(app)
    # After Flask-Login has its user: viewing as another user swaps it.
    app.before_request(view_as.apply)

    app.register_blueprint(auth_bp)
    app.register_blueprint(view_as.bp)
    app.register_blueprint(main_bp)
    app.register_blueprint(imports.bp)
    app.register_blueprint(contacts_bp)
    app.register_blueprint(comments.bp)
    app.register_blueprint(notifications.bp)
    app.register_blueprint(roulette_bp)
    app.register_blueprint(realtime_bp)
    app.register_blueprint(tasks_bp)
    app.register_blueprint(task_rules_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(board_bp)
    app.register_blueprint(dashboard_bp)
    for admin_feature in (users, org, roles, settings):
        app.register_blueprint(admin_feature.bp, url_prefix="/admin")
    app.register_blueprint(apikeys_bp, url_prefix="/admin")
    app.register_blueprint(jobs_admin_bp, url_prefix="/admin")
    app.register_blueprint(offboarding_bp, url_prefix="/admin")
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    csrf.exempt(api_bp)  # bearer-key API: no cookies, so no CSRF to forge

    # Contacts announce an owner change; the roulette withdraws the offers.
    owner_changed.connect(withdraw_for_new_owners, app)
    # The home page's blocks refresh themselves when what they show changed.
    owner_changed.connect(home_live.on_owner_changed, app)
    tasks_changed.connect(home_live.on_tasks_changed, app)
    notifications_changed.connect(home_live.on_notifications_changed, app)
    # Automatic task rules hear of the contacts' events.
    owner_changed.connect(task_events.on_owner_changed, app)
    status_changed.connect(task_events.on_status_changed, app)
    lead_created.connect(task_events.on_lead_created, app)
    roulette_signals.offer_changed.connect(task_events.on_offer_changed, app)
    # The live board follows the roulette.
    roulette_signals.offer_changed.connect(board_live.on_roulette_changed, app)
    roulette_signals.switch_changed.connect(board_live.on_roulette_changed, app)
    # Every commit that writes notifications pushes the badges it changed.
    notification_push.install()
    # Each feature's kind of background job, for the worker and the jobs page.
    job_kinds.register(IMPORT_KIND)
    job_kinds.register(REASSIGN_KIND)

    security.init_app(app)
    errors_http.init_app(app)
    register_commands(app)
    _init_templates(app)
    return app


def _select_locale() -> str | None:
    if not has_request_context():
        return None  # jobs and commands choose with force_locale
    languages = list(current_app.config["LANGUAGES"])
    if current_user and current_user.is_authenticated and current_user.language:
        return current_user.language
    if session.get("language") in languages:
        return session["language"]
    return request.accept_languages.best_match(languages) or "en"


def _init_login(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login_form"
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_session_user)

    login_manager.login_message = lazy_gettext("Please sign in to see this page.")
    login_manager.login_message_category = "info"

    @login_manager.unauthorized_handler
    def unauthorized() -> ResponseReturnValue:
        login_url = url_for("auth.login_form", next=request.full_path.rstrip("?"))
        if request.path.startswith("/api/"):
            return error_response(401, str(lazy_gettext("Sign in first.")))
        if getattr(request, "htmx", False):
            # A fragment request must not swap the login page into a table
            # cell: tell htmx to navigate the whole window instead.
            return "", 401, {"HX-Redirect": login_url}
        flash(login_manager.login_message, login_manager.login_message_category)
        return redirect(login_url)


def _init_templates(app: Flask) -> None:
    @app.context_processor
    def portal_context() -> dict:
        locale = get_locale()
        return {
            "can": can,
            "view_as_viewer": view_as.viewer(),
            "navigation": navigation,
            "presence_switch": presence_switch,
            "languages": app.config["LANGUAGES"],
            "html_lang": str(locale).replace("_", "-") if locale else "en",
        }
