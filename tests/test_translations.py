"""Every string the code and templates use is translated in every catalog."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "portal" / "translations"
LOCALES = ["en", "pt_BR", "es", "ru"]
# Words that are spelled the same in a language, so an identical translation is
# right there rather than a forgotten copy of the English.
SAME_IN = {
    "pt_BR": {
        "Roleta",
        "Status",
        "Call center",
        "Manual",
        "Web",
        "Online",
        # Units of time, written alike ("%(n)d s", "%(n)s min", "%(n)s h").
        "s",
        "min",
        "h",
    },
    "es": {
        "Roleta",
        "Marketing",
        "Error",
        "No",
        "Web",
        "Manual",
        "Roles",
        "CSV",
        "Online",
        "s",
        "min",
        "h",
    },
    "ru": {"Roleta", "CSV"},
}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


@pytest.fixture(scope="module")
def used_messages(tmp_path_factory) -> set[str]:
    pot = tmp_path_factory.mktemp("pot") / "messages.pot"
    CommandLineInterface().run(
        [
            "pybabel",
            "-q",
            "extract",
            "-F",
            str(TRANSLATIONS / "babel.cfg"),
            "-k",
            "_l",
            "-k",
            "lazy_gettext",
            "-o",
            str(pot),
            str(ROOT),
        ]
    )
    with pot.open("rb") as fh:
        catalog = read_po(fh)
    ids = {m.id for m in catalog if m.id}
    assert len(ids) > 50, "extraction found suspiciously few strings"
    return {i if isinstance(i, str) else i[0] for i in ids}


def _catalog(locale: str):
    path = TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po"
    assert path.exists(), f"missing catalog {path}"
    with path.open("rb") as fh:
        return read_po(fh, locale=locale)


@pytest.mark.parametrize("locale", LOCALES)
def test_catalog_translates_every_used_string(locale, used_messages):
    catalog = _catalog(locale)
    translated = {
        (m.id if isinstance(m.id, str) else m.id[0]): m
        for m in catalog
        if m.id
        and not m.fuzzy
        and (all(m.string) if isinstance(m.string, tuple) else m.string)
    }
    missing = sorted(used_messages - set(translated))
    assert not missing, f"{locale} lacks {len(missing)}: {missing[:20]}"


def _words(text: str) -> str:
    """The text without placeholders and punctuation: what a reader reads."""
    return re.sub(r"[\s.:%()+-]+", " ", PLACEHOLDER.sub("", text)).strip()


@pytest.mark.parametrize("locale", ["pt_BR", "es", "ru"])
def test_translations_are_not_copies_of_english(locale, used_messages):
    catalog = _catalog(locale)
    copies = sorted(
        m.id
        for m in catalog
        if isinstance(m.id, str)
        and m.id in used_messages
        and m.string == m.id
        and _words(m.id) not in SAME_IN[locale] | {""}
    )
    assert not copies, f"{locale} copies the English for: {copies[:20]}"


@pytest.mark.parametrize("locale", LOCALES)
def test_placeholders_survive_translation(locale):
    for message in _catalog(locale):
        if not message.id or not isinstance(message.id, str) or not message.string:
            continue
        assert set(PLACEHOLDER.findall(message.id)) == set(
            PLACEHOLDER.findall(message.string)
        ), f"{locale}: placeholders differ in {message.id!r}"


def test_compiled_catalogs_answer_in_portuguese(client):
    html = client.get("/login", headers={"Accept-Language": "pt-BR,pt;q=0.9"}).text
    assert '<html lang="pt-BR">' in html
    assert "Entrar" in html
