"""CSV import pages: upload, map columns, preview, start, follow progress,
download the error report. Every page needs `contacts.import`; an import of
someone else answers 404 (unless the viewer sees every contact)."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from portal.auth.access import require
from portal.errors import Conflict, NotFound, ValidationError
from portal.errors_http import error_response
from portal.imports import csvfile, service
from portal.imports import progress as run
from portal.models import ContactImport
from portal.rendering import render
from portal.settings.service import current_account

bp = Blueprint("imports", __name__)

PERMISSION = "contacts.import"


def _own_import(import_id: int) -> ContactImport:
    try:
        return service.get_import(current_user, import_id)
    except NotFound:
        abort(404)


def _start_page(errors: dict | None = None, status: int = 200) -> tuple[str, int]:
    return (
        render_template(
            "imports/start.html",
            errors=errors or {},
            imports=service.recent_imports(current_user),
            max_mb=_max_megabytes(),
        ),
        status,
    )


def _max_megabytes() -> int:
    return int(current_app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024))


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> tuple[str, int]:
    """An upload over the limit: the upload page again, saying the limit."""
    message = _(
        "The file is larger than %(n)d MB. Split it into smaller files and "
        "import them one by one.",
        n=_max_megabytes(),
    )
    if not current_user.is_authenticated or not current_user.can(PERMISSION):
        return message, 413
    return _start_page({"file": message}, 413)


@bp.get("/contacts/import")
@require(PERMISSION)
def start() -> ResponseReturnValue:
    return _start_page()


@bp.post("/contacts/import")
@require(PERMISSION)
def upload() -> ResponseReturnValue:
    """Check and keep the file, then map its columns (303)."""
    try:
        imp = service.store_upload(
            current_account(), current_user, request.files.get("file")
        )
    except ValidationError as exc:
        return _start_page(exc.fields, 422)
    return redirect(url_for("imports.mapping", import_id=imp.id), code=303)


def _mapping_page(
    imp: ContactImport, errors: dict | None = None, status: int = 200
) -> tuple[str, int]:
    fmt = csvfile.CsvFormat(imp.encoding, imp.delimiter)
    chosen = request.form if errors else None
    columns = []
    for index, (name, target) in enumerate(zip(imp.header, imp.mapping, strict=True)):
        value = (
            chosen.get(f"column-{index}", "") if chosen else service.form_value(target)
        )
        columns.append({"index": index, "name": name, "value": value})
    return (
        render_template(
            "imports/mapping.html",
            imp=imp,
            fmt=fmt,
            columns=columns,
            samples=service.sample_values(imp),
            choices=service.target_choices(),
            duplicate_choices=service.duplicate_choices(),
            on_duplicate=(chosen.get("on_duplicate") if chosen else imp.on_duplicate),
            errors=errors or {},
        ),
        status,
    )


@bp.get("/contacts/import/<int:import_id>/mapping")
@require(PERMISSION)
def mapping(import_id: int) -> ResponseReturnValue:
    imp = _own_import(import_id)
    if run.is_started(imp):
        return redirect(url_for("imports.show", import_id=imp.id), code=303)
    return _mapping_page(imp)


@bp.post("/contacts/import/<int:import_id>/mapping")
@require(PERMISSION)
def save_mapping(import_id: int) -> ResponseReturnValue:
    """Keep the mapping, then preview (303); 422 with the mistakes marked."""
    imp = _own_import(import_id)
    columns = [
        request.form.get(f"column-{index}", "") for index in range(len(imp.header))
    ]
    try:
        service.save_mapping(imp, columns, request.form.get("on_duplicate", ""))
    except ValidationError as exc:
        return _mapping_page(imp, exc.fields, 422)
    except Conflict:
        return redirect(url_for("imports.show", import_id=imp.id), code=303)
    return redirect(url_for("imports.preview", import_id=imp.id), code=303)


@bp.get("/contacts/import/<int:import_id>/preview")
@require(PERMISSION)
def preview(import_id: int) -> ResponseReturnValue:
    imp = _own_import(import_id)
    if run.is_started(imp):
        return redirect(url_for("imports.show", import_id=imp.id), code=303)
    try:
        result = service.preview(imp, current_user)
    except ValidationError:
        return redirect(url_for("imports.mapping", import_id=imp.id), code=303)
    return render_template(
        "imports/preview.html",
        imp=imp,
        result=result,
        columns=service.mapped_columns(imp),
    )


@bp.post("/contacts/import/<int:import_id>/start")
@require(PERMISSION)
def start_import(import_id: int) -> ResponseReturnValue:
    """Queue the job (once), then follow its progress (303)."""
    imp = _own_import(import_id)
    try:
        run.start_import(imp)
    except ValidationError:
        return redirect(url_for("imports.mapping", import_id=imp.id), code=303)
    return redirect(url_for("imports.show", import_id=imp.id), code=303)


@bp.get("/contacts/import/<int:import_id>")
@require(PERMISSION)
def show(import_id: int) -> ResponseReturnValue:
    imp = _own_import(import_id)
    if not run.is_started(imp):
        return redirect(url_for("imports.mapping", import_id=imp.id), code=303)
    return render("imports/show.html", **run.progress_context(imp))


@bp.get("/contacts/import/<int:import_id>/progress")
@require(PERMISSION)
def progress(import_id: int) -> ResponseReturnValue:
    """The progress component alone; it polls itself until the import ends."""
    imp = _own_import(import_id)
    return render("imports/show.html", block="progress", **run.progress_context(imp))


@bp.post("/contacts/import/<int:import_id>/cancel")
@require(PERMISSION)
def cancel(import_id: int) -> ResponseReturnValue:
    """Stop the import (what it committed stays): the progress component for
    htmx, else back to the progress page (303); 409 once it has ended."""
    imp = _own_import(import_id)
    try:
        run.cancel_import(imp)
    except Conflict as exc:
        return error_response(409, str(exc))
    if request.htmx:
        return render(
            "imports/show.html", block="progress", **run.progress_context(imp)
        )
    return redirect(url_for("imports.show", import_id=imp.id), code=303)


@bp.get("/contacts/import/<int:import_id>/errors.csv")
@require(PERMISSION)
def report(import_id: int) -> ResponseReturnValue:
    """The rows that were not imported, for the importer (or an admin)."""
    imp = _own_import(import_id)
    path = service.report_path(imp)
    if not imp.failed or path is None or not path.exists():
        abort(404)
    return send_file(
        path,
        mimetype="text/csv",
        as_attachment=True,
        download_name=f"import-{imp.id}-errors.csv",
        max_age=0,
    )
