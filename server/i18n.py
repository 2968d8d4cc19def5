"""The translation catalogues: zh-CN by default, English on request (?lang=en or Accept-Language).

The strings live in gettext catalogues managed with Babel: server/locale/messages.pot lists every
message id, and server/locale/<locale>/LC_MESSAGES/messages.po holds each language's text. Message ids
are keys ("login.title"), the same in the templates' t('...'), the code's translate("...") and the
strings sent to the pages' JavaScript. Placeholders are str.format fields ({minutes}), the same in every
language. The .po files are read once, at import, with Babel's read_po: no compile step and no .mo files.
The README's "Translations" section says how to add a key; tests/test_i18n.py checks the catalogues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
# The page language → its gettext locale (the folder under server/locale).
LOCALES = {"zh-CN": "zh_CN", "en": "en"}


def po_path(lang: str) -> Path:
    return LOCALE_DIR / LOCALES[lang] / "LC_MESSAGES" / "messages.po"


def load(lang: str) -> dict[str, str]:
    """One language's translated messages; untranslated and fuzzy ones are left out, as gettext does."""
    with po_path(lang).open("rb") as f:
        catalog = read_po(f, locale=LOCALES[lang], abort_invalid=True)
    return {
        message.id: message.string
        for message in catalog
        if isinstance(message.id, str)
        and message.id
        and isinstance(message.string, str)
        and message.string
        and not message.fuzzy
    }


MESSAGES: dict[str, dict[str, str]] = {lang: load(lang) for lang in LANGUAGES}


def known(key: str) -> bool:
    """Whether the catalogue has this key (for messages that are only translated when it does)."""
    return key in MESSAGES[DEFAULT_LANGUAGE]


def pick_language(query_lang: str | None, accept_language: str | None) -> str:
    if query_lang:
        return "en" if query_lang.lower().startswith("en") else "zh-CN"
    if accept_language and accept_language.strip().lower().startswith("en"):
        return "en"
    return "zh-CN"


def translate(key: str, lang: str, **values: Any) -> str:
    """The key's text in `lang`, else in zh-CN, else the key itself; `values` fill its {placeholders}."""
    text = MESSAGES.get(lang, {}).get(key) or MESSAGES[DEFAULT_LANGUAGE].get(key)
    if text is None:
        return key
    return text.format(**values) if values else text
