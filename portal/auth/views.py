from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from portal.auth import service
from portal.errors import ValidationError
from portal.extensions import db, limiter

bp = Blueprint("auth", __name__)


def _login_key() -> str:
    return "login:" + service.normalise_email(request.form.get("email", ""))


def _login_failed(response: Response) -> bool:
    return response.status_code != 303


def _failure_limit() -> str:
    return current_app.config["LOGIN_FAILURE_LIMIT"]


@bp.get("/login")
def login_form() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    return render_template("auth/login.html", next=request.args.get("next", ""))


@bp.post("/login")
@limiter.limit(_failure_limit, key_func=_login_key, deduct_when=_login_failed)
@limiter.limit("30 per minute", deduct_when=_login_failed)
def login() -> ResponseReturnValue:
    email = request.form.get("email", "")
    user = service.authenticate(email, request.form.get("password", ""))
    if user is None:
        return (
            render_template(
                "auth/login.html",
                email=email,
                next=request.form.get("next", ""),
                error=_("Wrong email or password."),
            ),
            401,
        )
    # A fresh session at sign-in: nothing from before (a planted session or an
    # old CSRF token) carries over.
    session.clear()
    login_user(user, remember=request.form.get("remember") == "1")
    return redirect(_safe_next(request.form.get("next")), code=303)


def _safe_next(target: str | None) -> str:
    # Only local paths: an open redirect would turn the login page into a
    # phishing aid.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("main.home")


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login_form"), code=303)


@bp.route("/activate/<token>", methods=["GET", "POST"])
def activate(token: str) -> ResponseReturnValue:
    try:
        user = service.user_for_activation(token)
    except service.ActivationError as exc:
        return render_template("auth/activate.html", link_error=str(exc)), 410
    if request.method == "GET":
        return render_template("auth/activate.html", user=user, token=token)
    try:
        user = service.activate(
            token, request.form.get("password", ""), request.form.get("confirm", "")
        )
    except ValidationError as exc:
        db.session.rollback()
        return (
            render_template(
                "auth/activate.html", user=user, token=token, errors=exc.fields
            ),
            422,
        )
    except service.ActivationError as exc:
        return render_template("auth/activate.html", link_error=str(exc)), 410
    logout_user()
    session.clear()
    flash(_("Your password is set. Sign in to start."), "success")
    return redirect(url_for("auth.login_form"), code=303)


@bp.post("/language")
def set_language() -> ResponseReturnValue:
    code = request.form.get("language", "")
    if code not in current_app.config["LANGUAGES"]:
        return _("Unknown language."), 422
    if current_user.is_authenticated:
        current_user.language = code
        db.session.commit()
    else:
        session["language"] = code
    return redirect(_safe_next(request.form.get("next")), code=303)
