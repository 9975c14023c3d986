"""`flask --app app translations update|compile`: keep the catalogs in step.

`update` extracts every string the code and templates use, merges the four
catalogs (new strings arrive untranslated, for translators to fill) and
fills the English catalog from the source strings. `compile` builds .mo files.
"""

from __future__ import annotations

from pathlib import Path

import click
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po, write_po
from flask.cli import AppGroup

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "portal" / "translations"
LOCALES = ("en", "pt_BR", "es", "ru")

translations_group = AppGroup("translations", help="Extract, merge, compile.")


def _pybabel(*args: str) -> None:
    CommandLineInterface().run(["pybabel", "-q", *args])


@translations_group.command("update")
def update_command() -> None:
    """Extract strings and merge them into every catalog."""
    pot = TRANSLATIONS / "messages.pot"
    _pybabel(
        "extract",
        "-F", str(TRANSLATIONS / "babel.cfg"),
        "-k", "_l", "-k", "lazy_gettext",
        "--sort-by-file", "--no-wrap",
        "--project", "Roleta",
        "-o", str(pot),
        str(ROOT),
    )  # fmt: skip
    for locale in LOCALES:
        po = TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po"
        if po.exists():
            _pybabel(
                "update", "--no-wrap", "--ignore-obsolete", "--no-fuzzy-matching",
                "-i", str(pot), "-d", str(TRANSLATIONS), "-l", locale,
            )  # fmt: skip
        else:
            _pybabel(
                "init", "--no-wrap", "-i", str(pot), "-d", str(TRANSLATIONS),
                "-l", locale,
            )  # fmt: skip
    _fill_english(TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.po")
    missing = {
        locale: _untranslated(TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po")
        for locale in LOCALES
    }
    for locale, count in missing.items():
        click.echo(f"{locale}: {count} untranslated")


def _fill_english(path: Path) -> None:
    """English is the source language: its translation is the source text."""
    with path.open("rb") as fh:
        catalog = read_po(fh, locale="en")
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            message.string = tuple(message.id)
        else:
            message.string = message.id
        message.flags.discard("fuzzy")
    with path.open("wb") as fh:
        write_po(fh, catalog, width=0, sort_by_file=True)


def _untranslated(path: Path) -> int:
    with path.open("rb") as fh:
        catalog = read_po(fh)
    return sum(
        1
        for m in catalog
        if m.id
        and (
            m.fuzzy or not (all(m.string) if isinstance(m.string, tuple) else m.string)
        )
    )


@translations_group.command("compile")
def compile_command() -> None:
    """Compile every catalog to its .mo file."""
    _pybabel("compile", "-d", str(TRANSLATIONS), "--statistics")
