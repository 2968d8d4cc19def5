#!/usr/bin/env python3
"""Move translation keys written in the old dict style into the gettext catalogues (server/locale).

Until the move to Babel, server/i18n.py held one Python dict:

    CATALOGUE = {
        "login.title": {"zh-CN": "登录", "en": "Sign in"},
        ...
    }

Branches started before the move add their keys there. After merging such a branch, give this script
that branch's version of the file; every key the catalogues lack is added to server/locale/messages.pot
(empty msgstr) and to both .po files (zh_CN and en) with its text:

    git show some-branch:server/i18n.py > /tmp/i18n_old.py
    python tools/i18n_dict_to_po.py /tmp/i18n_old.py
    git show some-branch:server/i18n.py | python tools/i18n_dict_to_po.py -     # the same, from stdin

The input is read as Python (the file is parsed, never run: every dict literal whose values are
{"zh-CN": ..., "en": ...} dicts counts, wherever it sits in the file) or, when it is not Python, as
lines of `key<TAB>zh-CN text<TAB>en text` (blank lines and lines starting with # are skipped).

A key already in the catalogues is left alone; one whose text differs is listed (exit status 1) and
only changed with --overwrite. A key without English text, or whose placeholders ({name}) differ between
the two languages, is refused (exit status 1) and nothing is written. --dry-run writes nothing either.
The files are written back in Babel's own layout (sorted by key, as `pybabel update` leaves them), so
`tests/test_i18n.py` stays green after a run; run it (it also checks that every key the code uses is there).

Written for the merge; it was also the one-off that turned the old dict into the .po files.
"""

from __future__ import annotations

import argparse
import ast
import io
import string
import sys
from datetime import datetime
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
LOCALE_DIR = ROOT / "server" / "locale"
TEMPLATE = LOCALE_DIR / "messages.pot"
# The page language → its gettext locale (the folder under server/locale); the same as server/i18n.py.
LOCALES = {"zh-CN": "zh_CN", "en": "en"}
# Fixed so that a fresh catalogue does not differ from run to run.
EPOCH = datetime(2026, 11, 25, 0, 0)


def po_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def entries_from_python(source: str) -> list[tuple[str, str, str]]:
    """Every `"key": {"zh-CN": ..., "en": ...}` in the dict literals of a Python source."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if not (
                isinstance(key, ast.Constant) and isinstance(key.value, str) and isinstance(value, ast.Dict)
            ):
                continue
            texts = {
                k.value: v.value
                for k, v in zip(value.keys, value.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant) and isinstance(v.value, str)
            }
            if "zh-CN" in texts:
                out.append((key.value, texts["zh-CN"], texts.get("en", "")))
    return out


def entries_from_lines(source: str) -> list[tuple[str, str, str]]:
    out = []
    for number, line in enumerate(source.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise SystemExit(f"line {number}: expected key<TAB>zh-CN<TAB>en, got {line!r}")
        out.append((parts[0].strip(), parts[1], parts[2]))
    return out


def parse(source: str) -> list[tuple[str, str, str]]:
    try:
        return entries_from_python(source)
    except SyntaxError:
        return entries_from_lines(source)


def new_catalog(locale: str | None) -> Catalog:
    what = f"The {locale} catalogue" if locale else "The template"
    return Catalog(
        header_comment=(
            f"# {what} of Lanshou's user interface.\n"
            "# Message ids are keys (login.title): see Translations in the README."
        ),
        locale=locale,
        domain="messages",
        project="Lanshou",
        version="0.1",
        copyright_holder="the Lanshou authors",
        msgid_bugs_address="lanshou@localhost",
        creation_date=EPOCH,
        revision_date=EPOCH,
        last_translator="Lanshou <lanshou@localhost>",
        language_team=f"{locale} <lanshou@localhost>" if locale else "LANGUAGE <LL@li.org>",
        fuzzy=False,
    )


def load(path: Path, locale: str | None) -> Catalog:
    if not path.exists():
        return new_catalog(locale)
    with path.open("rb") as f:
        return read_po(f, locale=locale, abort_invalid=True)


def dump(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=76, no_location=True, sort_output=True, include_previous=False)
    return buffer.getvalue()


def merge(
    entries: list[tuple[str, str, str]], overwrite: bool = False
) -> tuple[dict[Path, bytes], list[str], list[str]]:
    """The files to write, the keys added and the problems found (refusals and differing texts)."""
    problems = []
    for key, zh, en in entries:
        if not key or not zh.strip() or not en.strip():
            problems.append(f"refused {key!r}: both texts are needed (zh-CN {zh!r}, en {en!r})")
        elif placeholders(zh) != placeholders(en):
            problems.append(f"refused {key!r}: placeholders differ ({zh!r} / {en!r})")
    if problems:
        return {}, [], problems
    template = load(TEMPLATE, None)
    catalogs = {lang: load(po_path(locale), locale) for lang, locale in LOCALES.items()}
    added = []
    for key, zh, en in entries:
        texts = {"zh-CN": zh, "en": en}
        if key not in template:
            template[key] = Message(key, "")
        for lang, catalog in catalogs.items():
            current = catalog.get(key)
            if current is None or not current.string:
                catalog[key] = Message(key, texts[lang])
                if lang == "zh-CN":
                    added.append(key)
            elif current.string != texts[lang]:
                if overwrite:
                    current.string = texts[lang]
                else:
                    problems.append(
                        f"differs {key!r} [{lang}]: catalogue {current.string!r}, input {texts[lang]!r}"
                    )
    files = {TEMPLATE: dump(template)}
    files.update({po_path(LOCALES[lang]): dump(catalog) for lang, catalog in catalogs.items()})
    return files, added, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "source", help="a Python file with the old dict, a key<TAB>zh<TAB>en file, or - for stdin"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace texts that differ")
    parser.add_argument("--dry-run", action="store_true", help="say what would change, write nothing")
    args = parser.parse_args(argv)
    source = sys.stdin.read() if args.source == "-" else Path(args.source).read_text(encoding="utf-8")
    entries = parse(source)
    files, added, problems = merge(entries, overwrite=args.overwrite)
    for problem in problems:
        print(problem, file=sys.stderr)
    if files and not args.dry_run:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_bytes() != data:
                path.write_bytes(data)
    print(f"{len(entries)} keys read, {len(added)} added" + (" (dry run)" if args.dry_run else ""))
    for key in added:
        print(f"  + {key}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
