"""CSV import of contacts: upload, column mapping and preview.

An upload is checked completely before anything is written (encoding,
delimiter, header, row count); a bad file leaves no row and no file behind.
Starting, cancelling and following the run are `portal.imports.progress`;
the run itself is a background job (`portal.imports.job`, `runner`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import or_, select
from werkzeug.datastructures import FileStorage

from portal.contacts import normalize
from portal.errors import Conflict, NotFound, ValidationError
from portal.extensions import db
from portal.imports import csvfile
from portal.imports.rows import (
    CUSTOM,
    IGNORE,
    MAX_CUSTOM_KEY,
    SINGLE_TARGETS,
    Action,
    RowChecker,
    RowPlan,
    field_labels,
)
from portal.models import (
    Account,
    ContactImport,
    DuplicatePolicy,
    ImportStatus,
    User,
)

ALLOWED_SUFFIXES = (".csv", ".txt", ".tsv")
PREVIEW_ROWS = 20
# The preview checks every row of files up to this size (about a second of
# work); beyond it the totals are extrapolated from these first rows.
PREVIEW_CHECK_LIMIT = 5_000
JOB_TIMEOUT_SECONDS = 3600

# Column names people use in English, Portuguese, Spanish and Russian,
# compared folded (lower case, no accents). Earlier targets win a tie, so
# "Telefone do cliente" is a phone, not a name.
SYNONYMS: dict[str, str] = {
    "email": "email|e mail|mail|email address|correio|correio eletronico|correo|"
    "correo electronico|почта|электронная почта|эл почта|емейл|имейл",
    "phone": "phone|phone number|telephone|tel|mobile|mobile phone|cell|cellphone|"
    "cell phone|whatsapp|telefone|celular|fone|telefono|movil|numero de telefono|"
    "телефон|мобильный|мобильный телефон|номер телефона|тел",
    "owner": "owner|owner email|assigned to|agent|seller|responsavel|dono|vendedor|"
    "corretor|atendente|propietario|responsable|asesor|agente|ответственный|"
    "владелец|менеджер|агент",
    "department": "department|dept|departamento|setor|отдел|департамент|подразделение",
    "campaign": "campaign|campanha|campana|кампания",
    "tags": "tags|tag|labels|label|etiquetas|etiqueta|marcadores|теги|тег|метки",
    "status": "status|state|situacao|estado|статус|состояние",
    "name": "name|full name|fullname|contact|contact name|client|customer|nome|"
    "nome completo|cliente|contato|nombre|nombre completo|contacto|имя|фио|"
    "полное имя|клиент|контакт|имя клиента",
}


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", normalize.fold(text)).split())


_SYNONYM_WORDS = {
    target: tuple(_words(name) for name in names.split("|"))
    for target, names in SYNONYMS.items()
}


def target_choices() -> list[tuple[str, str]]:
    """(value, label) for a column's select; "custom" names the column."""
    labels = field_labels()
    return [
        (IGNORE, _("Ignore this column")),
        *[(target, labels[target]) for target in SINGLE_TARGETS],
        (CUSTOM, _("Custom field")),
    ]


def duplicate_choices() -> list[tuple[str, str]]:
    return [
        (DuplicatePolicy.SKIP, _("Skip the row and keep the existing contact")),
        (DuplicatePolicy.UPDATE, _("Update the existing contact")),
    ]


def custom_keys(header: list[str]) -> list[str]:
    """The custom-field key each column would fill: its name, made unique."""
    keys: list[str] = []
    for name in header:
        base = name[:MAX_CUSTOM_KEY]
        key, n = base, 2
        while key in keys:
            suffix = f" ({n})"
            key, n = base[: MAX_CUSTOM_KEY - len(suffix)] + suffix, n + 1
        keys.append(key)
    return keys


def guess_target(column_name: str) -> str | None:
    """The field a column name most likely means, or None."""
    words = _words(column_name)
    if not words:
        return None
    for target, names in _SYNONYM_WORDS.items():
        if words in names:
            return target
    padded = f" {words} "
    for target, names in _SYNONYM_WORDS.items():
        if any(len(name) >= 4 and f" {name} " in padded for name in names):
            return target
    return None


def guess_mapping(header: list[str]) -> list[str]:
    """A target per column: each field once, the rest custom fields."""
    taken: set[str] = set()
    keys = custom_keys(header)
    mapping = []
    for name, key in zip(header, keys, strict=True):
        target = guess_target(name)
        if target and target not in taken:
            taken.add(target)
            mapping.append(target)
        else:
            mapping.append(f"{CUSTOM}:{key}")
    return mapping


def form_value(target: str) -> str:
    """The select value for a stored target ("custom:Budget" → "custom")."""
    return CUSTOM if target.startswith(CUSTOM + ":") else target


def imports_dir() -> Path:
    path = Path(current_app.instance_path) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def upload_path(imp: ContactImport) -> Path:
    return imports_dir() / imp.stored_name


def report_path(imp: ContactImport) -> Path | None:
    return imports_dir() / imp.report_name if imp.report_name else None


def store_upload(
    account: Account, user: User, upload: FileStorage | None
) -> ContactImport:
    """Check and keep an uploaded CSV; raises ValidationError({"file": ...})
    naming what is wrong, and then keeps nothing."""
    filename = (upload.filename or "").strip() if upload else ""
    if not filename:
        raise ValidationError({"file": _("Choose a CSV file.")})
    if not filename.lower().endswith(ALLOWED_SUFFIXES):
        raise ValidationError(
            {"file": _("Upload a .csv file (comma, semicolon or tab separated).")}
        )
    # Our own name: the browser's filename is shown, never used as a path.
    stored_name = f"{uuid.uuid4().hex}.csv"
    path = imports_dir() / stored_name
    upload.save(path)
    try:
        text, encoding = csvfile.decode(path.read_bytes())
        delimiter = csvfile.sniff_delimiter(text)
        header, total = csvfile.inspect(text, delimiter)
    except ValidationError:
        path.unlink(missing_ok=True)
        raise
    imp = ContactImport(
        account_id=account.id,
        user_id=user.id,
        filename=Path(filename.replace("\\", "/")).name[:255],
        stored_name=stored_name,
        encoding=encoding,
        delimiter=delimiter,
        header=header,
        mapping=guess_mapping(header),
        on_duplicate=DuplicatePolicy.SKIP,
        status=ImportStatus.UPLOADED,
        total=total,
    )
    db.session.add(imp)
    db.session.commit()
    return imp


def get_import(user: User, import_id: int) -> ContactImport:
    """An import the user may see: their own, or any in the account when they
    see every contact. Raises NotFound otherwise."""
    clause = ContactImport.user_id == user.id
    if user.can("contacts.view_all"):
        clause = or_(clause, ContactImport.account_id == user.account_id)
    imp = db.session.scalar(
        select(ContactImport).where(
            ContactImport.id == import_id,
            ContactImport.account_id == user.account_id,
            clause,
        )
    )
    if imp is None:
        raise NotFound()
    return imp


def recent_imports(user: User, limit: int = 10) -> list[ContactImport]:
    return list(
        db.session.scalars(
            select(ContactImport)
            .where(
                ContactImport.account_id == user.account_id,
                ContactImport.user_id == user.id,
            )
            .order_by(ContactImport.id.desc())
            .limit(limit)
        )
    )


def _not_started(imp: ContactImport) -> None:
    if imp.status not in (ImportStatus.UPLOADED, ImportStatus.MAPPED):
        raise Conflict(_("This import has started already."))


def save_mapping(imp: ContactImport, columns: list[str], on_duplicate: str) -> None:
    """Keep the target of each column and the duplicate policy.

    Raises ValidationError (keys "column-<i>", "mapping", "on_duplicate") and
    Conflict when the import has started.
    """
    _not_started(imp)
    labels = field_labels()
    allowed = {IGNORE, CUSTOM, *SINGLE_TARGETS}
    keys = custom_keys(imp.header)
    errors: dict[str, str] = {}
    mapping: list[str] = []
    used: dict[str, int] = {}
    for index in range(len(imp.header)):
        value = columns[index] if index < len(columns) else IGNORE
        if value not in allowed:
            errors[f"column-{index}"] = _("Pick from the list.")
            value = IGNORE
        elif value in SINGLE_TARGETS and value in used:
            errors[f"column-{index}"] = _(
                "%(field)s is already the column “%(column)s”.",
                field=labels[value],
                column=imp.header[used[value]],
            )
        else:
            used.setdefault(value, index)
        mapping.append(f"{CUSTOM}:{keys[index]}" if value == CUSTOM else value)
    if "name" not in used:
        errors["mapping"] = _("Choose the column that holds the name.")
    elif "phone" not in used and "email" not in used:
        errors["mapping"] = _(
            "Choose a column for the phone or the email: every contact needs one."
        )
    if on_duplicate not in set(DuplicatePolicy):
        errors["on_duplicate"] = _("Pick from the list.")
    if errors:
        raise ValidationError(errors)
    imp.mapping = mapping
    imp.on_duplicate = on_duplicate
    imp.status = ImportStatus.MAPPED
    db.session.commit()


@dataclass
class Preview:
    """The first rows as the job will treat them, and the totals: exact when
    every row was checked, extrapolated from the first rows otherwise."""

    rows: list[RowPlan]
    # Rows with errors further down the checked part, to fix before starting.
    later_errors: list[RowPlan] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    checked: int = 0
    total: int = 0

    @property
    def estimated(self) -> bool:
        return self.checked < self.total

    def projected(self, action: str) -> int:
        count = self.counts.get(action, 0)
        if not self.estimated or not self.checked:
            return count
        return round(count * self.total / self.checked)


def preview(imp: ContactImport, importer: User) -> Preview:
    """Check the first rows with the job's own rules; writes nothing."""
    if imp.status != ImportStatus.MAPPED:
        raise ValidationError({"mapping": _("Map the columns first.")})
    account = db.session.get(Account, imp.account_id)
    checker = RowChecker(imp, importer, account)
    fmt = csvfile.CsvFormat(imp.encoding, imp.delimiter)
    result = Preview(rows=[], total=imp.total)
    counts = dict.fromkeys(Action, 0)
    records = csvfile.open_records(upload_path(imp), fmt)
    try:
        next(records, None)  # the header
        while result.checked < PREVIEW_CHECK_LIMIT:
            batch = []
            for record in records:
                batch.append(record)
                if len(batch) == 1000:
                    break
            if not batch:
                break
            plans = checker.plan(batch)
            for plan in plans:
                counts[plan.action] += 1
                if len(result.rows) < PREVIEW_ROWS:
                    result.rows.append(plan)
                elif plan.action == Action.ERROR and (
                    len(result.later_errors) < PREVIEW_ROWS
                ):
                    result.later_errors.append(plan)
            result.checked += len(batch)
    finally:
        records.close()
    result.counts = {str(action): n for action, n in counts.items()}
    return result


def sample_values(imp: ContactImport, rows: int = 3) -> list[list[str]]:
    """A few values of each column, to show beside its select."""
    samples: list[list[str]] = [[] for _column in imp.header]
    fmt = csvfile.CsvFormat(imp.encoding, imp.delimiter)
    records = csvfile.open_records(upload_path(imp), fmt)
    try:
        next(records, None)
        for record in records:
            for index, cell in enumerate(record.cells[: len(samples)]):
                if cell.strip() and len(samples[index]) < rows:
                    samples[index].append(cell.strip()[:80])
            if all(len(s) >= rows for s in samples):
                break
            if record.line > 200:
                break
    finally:
        records.close()
    return samples


def mapped_columns(imp: ContactImport) -> list[tuple[int, str, str]]:
    """(index, column name, field label) of the columns that are imported."""
    labels = field_labels()
    columns = []
    for index, (name, target) in enumerate(zip(imp.header, imp.mapping, strict=True)):
        if target == IGNORE:
            continue
        if target.startswith(CUSTOM + ":"):
            label = _("Custom field “%(key)s”", key=target[len(CUSTOM) + 1 :])
        else:
            label = labels[target]
        columns.append((index, name, label))
    return columns
