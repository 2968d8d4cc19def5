"""The gettext catalogues (server/locale): every key the pages, the code and the JavaScript use is in both
languages, the two languages and the template agree, and the .po files are what Babel reads and writes.

Message ids are keys, so `pybabel extract` finds the literal ones (with `t` and `translate` as keywords)
but not keys built at run time ('courier.status.' ~ p.status): those are expanded here from the domain's
own lists, and a template that builds a key no list here expands fails the test until it is added.
"""

from __future__ import annotations

import importlib.util
import io
import re
import string
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import jinja2
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po
from jinja2 import nodes

from server import api_language, i18n
from server.booking import service as booking
from server.console import board as console_board
from server.console import controller as console
from server.console import drawer as console_drawer
from server.console import pickup_detail
from server.console.queries import SECTIONS
from server.courier.schemas import FailureReason
from server.courier_app import controller as courier_app
from server.courier_app import day
from server.domain.pickup_states import HELD_STATES, Status
from server.tracking import forms as tracking_forms
from server.tracking import queries as tracking_queries

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "server"
TEMPLATES = SERVER / "templates"
POT = i18n.LOCALE_DIR / "messages.pot"
# Keys built in templates from a prefix and a value, each with the values it can take (pickups.sla_state
# is ok | warning | breached, and the page shows no badge for ok).
DYNAMIC_TEMPLATE_KEYS: dict[str, list[str]] = {
    "console.section.{}": list(SECTIONS),
    "console.section.{}.hint": list(SECTIONS),
    "console.status.{}": [s.value for s in Status],
    "console.sla.{}": ["warning", "breached"],
    "console.board.attention.{}": list(console_board.ATTENTION),
    "console.board.sort.{}": list(console_board.SORTS),
    "console.datum.{}": list(console.DATUMS),
    "console.drawer.ev.{}": list(pickup_detail.EVENT_NAMES),
    "console.drawer.actor.{}": list(pickup_detail.ACTOR_KINDS),
    "console.drawer.outcome.{}": list(pickup_detail.OFFER_OUTCOMES),
    "console.drawer.stage.{}": list(console_drawer.STAGE_NAMES.values()),
    "console.drawer.why.{}": list(console_drawer.WITHDRAW_REASONS),
    "courier.status.{}": [s.value for s in HELD_STATES],
    "courier.reason.{}": list(get_args(FailureReason)),
    "courier.decline.{}": list(courier_app.DECLINE_REASONS),
    "courier.nav.{}": list(day.NAV_APPS),
    "courier.day.{}": list(day.DAY_COUNTS),
    "track.status.{}": [s.value for s in Status],
    "track.step.{}": sorted(t.removeprefix("pickup.") for t in tracking_queries.CUSTOMER_TYPES),
    "track.reason.{}": list(get_args(FailureReason)),
    "track.address.{}": [*tracking_forms.PICKERS, *tracking_forms.ADDRESS_LIMITS],
    "book.{}": ["province", "city", "district", "street"],  # the booking page's pickers
}
# Keys the code builds from a prefix and a value (the tracking page's "done" line per action).
DYNAMIC_CODE_KEYS: dict[str, list[str]] = {"track.done.{}": list(tracking_forms.ACTIONS)}
# Keys the code only uses when the catalogue has them (f"console.error.{code}", else the API's message).
OPTIONAL_PREFIXES = ("console.error.", "track.error.")
# How the pages' scripts ask for a string: t("key", ...) or T["key"].
JS_KEY = re.compile(r"""\b(?:t\(|T\[)\s*["']([a-z_]+(?:\.[a-z_0-9]+)+)["']""")
JS_PAGES = {
    ROOT / "pwa" / "static" / "console.js": console.JS_STRINGS,
    ROOT / "pwa" / "static" / "courier.js": courier_app.JS_STRINGS,
}


def catalog(path: Path, locale: str | None = None) -> Any:
    with path.open("rb") as f:
        return read_po(f, locale=locale, abort_invalid=True)


def messages(path: Path, locale: str | None = None) -> dict[str, str]:
    return {m.id: m.string for m in catalog(path, locale) if m.id}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def extracted(method: str, pattern: str, keywords: dict[str, Any]) -> set[str]:
    """The literal keys Babel's own extractors find (what `pybabel extract` would list)."""
    found = extract_from_dir(
        str(SERVER),
        method_map=[(pattern, method)],
        options_map={pattern: {"silent": "false"}},
        keywords=keywords,
    )
    return {message if isinstance(message, str) else message[0] for _, _, message, _, _ in found}


def dynamic_template_keys() -> Iterator[tuple[str, str]]:
    """(template, pattern) for each t(...) whose key is built with ~, as 'prefix.{}.suffix'."""
    env = jinja2.Environment()
    for path in sorted(TEMPLATES.glob("*.html")):
        for call in env.parse(path.read_text(encoding="utf-8")).find_all(nodes.Call):
            if not (isinstance(call.node, nodes.Name) and call.node.name == "t" and call.args):
                continue
            key = call.args[0]
            if isinstance(key, nodes.Const):
                continue
            parts = key.nodes if isinstance(key, nodes.Concat) else [key]
            yield path.name, "".join(p.value if isinstance(p, nodes.Const) else "{}" for p in parts)


def template_keys() -> set[str]:
    literal = extracted("jinja2", "templates/**.html", {"t": None})
    built = {pattern.format(value) for pattern, values in DYNAMIC_TEMPLATE_KEYS.items() for value in values}
    return literal | built


def code_keys() -> set[str]:
    literal = extracted("python", "**.py", {"translate": None, "_word": None, "forbidden_page": (2,)})
    geo = {key for _, key in console._GEO_MESSAGES} | {key for _, key in console._JSON_REASONS}
    built = {pattern.format(value) for pattern, values in DYNAMIC_CODE_KEYS.items() for value in values}
    booking_errors = set(booking.ERRORS.values())
    api_errors = set(api_language.KEYS)  # the API's error messages in Chinese (server/api_language.py)
    return (
        literal
        | geo
        | built
        | set(console.JS_STRINGS)
        | set(console.MAP_JS_STRINGS)
        | set(courier_app.JS_STRINGS)
        | booking_errors
        | api_errors
    )


ZH = messages(i18n.po_path("zh-CN"), "zh_CN")
EN = messages(i18n.po_path("en"), "en")


# -- the catalogues themselves -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [POT, *(i18n.po_path(lang) for lang in i18n.LANGUAGES)], ids=str)
def test_each_catalogue_parses_and_is_in_babels_own_layout(path: Path) -> None:
    cat = catalog(path)  # abort_invalid: a syntax error raises
    assert len(cat) > 100
    assert not [m.id for m in cat if m.id and m.fuzzy], "fuzzy entries are not used at run time"
    buffer = io.BytesIO()
    write_po(buffer, cat, width=76, no_location=True, sort_output=True, include_previous=False)
    # What pybabel update and tools/i18n_dict_to_po.py write: a run of either changes only what it must.
    # The header names the Babel that wrote it (Generated-By): a newer Babel is not a change of layout.
    generated_by = re.compile(r'"Generated-By: Babel [^\\"]*\\n"')
    written, kept = (
        generated_by.sub("", text) for text in (buffer.getvalue().decode(), path.read_text("utf-8"))
    )
    assert written == kept


def test_the_template_and_both_languages_have_the_same_keys() -> None:
    template = messages(POT)
    assert set(ZH) == set(template), set(ZH) ^ set(template)
    assert set(EN) == set(template), set(EN) ^ set(template)
    assert not any(template.values()), "the .pot holds ids only"


def test_every_key_has_text_in_both_languages_with_the_same_placeholders() -> None:
    empty = [key for key in ZH if not ZH[key].strip() or not EN[key].strip()]
    assert not empty
    differ = {key: (ZH[key], EN[key]) for key in ZH if placeholders(ZH[key]) != placeholders(EN[key])}
    assert not differ
    # And each formats: a stray brace would raise at run time.
    for table in (ZH, EN):
        for key, text in table.items():
            text.format(**dict.fromkeys(placeholders(text), "x")), key


def test_the_app_reads_what_the_po_files_say() -> None:
    assert i18n.MESSAGES["zh-CN"] == ZH
    assert i18n.MESSAGES["en"] == EN
    assert i18n.translate("login.title", "zh-CN") == "登录"
    assert i18n.translate("login.title", "en") == "Sign in"


# -- every key in use is in both catalogues -------------------------------------------------------------


def test_every_key_the_templates_use_is_in_both_catalogues() -> None:
    keys = template_keys()
    assert "login.title" in keys and "courier.reason.customer_absent" in keys  # the scan finds them
    assert not keys - set(ZH), sorted(keys - set(ZH))
    assert not keys - set(EN), sorted(keys - set(EN))


def test_every_key_built_in_a_template_is_expanded_here() -> None:
    patterns = {pattern for _, pattern in dynamic_template_keys()}
    assert patterns == set(DYNAMIC_TEMPLATE_KEYS), (
        "a template builds a key with ~: list the values it can take in DYNAMIC_TEMPLATE_KEYS",
        patterns ^ set(DYNAMIC_TEMPLATE_KEYS),
    )


def test_every_key_the_code_uses_is_in_both_catalogues() -> None:
    keys = code_keys()
    assert {"login.throttled", "courier.forbidden", "console.geo.code", "courier.left"} <= keys
    assert not keys - set(ZH), sorted(keys - set(ZH))
    assert not keys - set(EN), sorted(keys - set(EN))


@pytest.mark.parametrize("script", list(JS_PAGES), ids=lambda p: p.name)
def test_every_key_a_script_asks_for_is_sent_with_its_page(script: Path) -> None:
    asked = set(JS_KEY.findall(script.read_text(encoding="utf-8")))
    assert len(asked) > 5
    assert not asked - set(JS_PAGES[script]), sorted(asked - set(JS_PAGES[script]))


def test_no_key_is_left_unused() -> None:
    """A key nothing uses is a string a translator keeps up for nothing."""
    used = template_keys() | code_keys()
    unused = {key for key in ZH if key not in used and not key.startswith(OPTIONAL_PREFIXES)}
    assert not unused, sorted(unused)


# -- translate() ----------------------------------------------------------------------------------------


def test_translate_falls_back_to_chinese_then_to_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(i18n.MESSAGES, "en", {k: v for k, v in EN.items() if k != "login.title"})
    assert i18n.translate("login.title", "en") == "登录"
    assert i18n.translate("login.title", "fr") == "登录"
    assert i18n.translate("no.such.key", "en", n=1) == "no.such.key"
    assert (
        i18n.translate("login.throttled", "en", minutes=3) == "Too many failed sign-ins. Try again in 3 min."
    )
    assert i18n.translate("console.dur.hour", "zh-CN", h=1, m=5) == "1小时5分"
    assert i18n.known("console.error.conflict") and not i18n.known("console.error.nope")


def test_untranslated_and_fuzzy_entries_fall_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    po = tmp_path / "en" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
        'msgid "a"\nmsgstr "A"\n\nmsgid "b"\nmsgstr ""\n\n#, fuzzy\nmsgid "c"\nmsgstr "C?"\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    assert i18n.load("en") == {"a": "A"}


# -- the merge tool -------------------------------------------------------------------------------------


def load_tool() -> Any:
    spec = importlib.util.spec_from_file_location("i18n_dict_to_po", ROOT / "tools" / "i18n_dict_to_po.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The merge tool, writing into a copy of the catalogues."""
    module = load_tool()
    for lang in i18n.LANGUAGES:
        target = tmp_path / i18n.LOCALES[lang] / "LC_MESSAGES" / "messages.po"
        target.parent.mkdir(parents=True)
        target.write_bytes(i18n.po_path(lang).read_bytes())
    (tmp_path / "messages.pot").write_bytes(POT.read_bytes())
    monkeypatch.setattr(module, "LOCALE_DIR", tmp_path)
    monkeypatch.setattr(module, "TEMPLATE", tmp_path / "messages.pot")
    return module


OLD_STYLE = """
CATALOGUE: dict[str, dict[str, str]] = {
    "login.title": {"zh-CN": "登录", "en": "Sign in"},
    "intake.title": {"zh-CN": "预约上门取件", "en": "Book a pickup"},
    "intake.slots": {
        "zh-CN": "可选 {n} 个时段",
        "en": "{n} time slots",
    },
}
"""


def test_the_merge_tool_adds_the_keys_the_catalogues_lack(tool: Any, tmp_path: Path) -> None:
    source = tmp_path / "i18n_old.py"
    source.write_text(OLD_STYLE, encoding="utf-8")
    assert tool.main([str(source)]) == 0
    zh = messages(tmp_path / "zh_CN" / "LC_MESSAGES" / "messages.po")
    en = messages(tmp_path / "en" / "LC_MESSAGES" / "messages.po")
    pot = messages(tmp_path / "messages.pot")
    assert zh["intake.slots"] == "可选 {n} 个时段" and en["intake.slots"] == "{n} time slots"
    assert set(zh) == set(en) == set(pot) == set(ZH) | {"intake.title", "intake.slots"}
    assert zh["login.title"] == "登录"
    # Run again: nothing to add, nothing written differently.
    before = (tmp_path / "messages.pot").read_bytes()
    assert tool.main([str(source)]) == 0
    assert (tmp_path / "messages.pot").read_bytes() == before


def test_the_merge_tool_reads_tab_separated_lines(tool: Any, tmp_path: Path) -> None:
    source = tmp_path / "keys.tsv"
    source.write_text("# key, zh-CN, en\nintake.done\t已预约\tBooked\n", encoding="utf-8")
    assert tool.main([str(source)]) == 0
    assert messages(tmp_path / "en" / "LC_MESSAGES" / "messages.po")["intake.done"] == "Booked"


def test_the_merge_tool_refuses_bad_entries_and_reports_differences(tool: Any, tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text('X = {"intake.bad": {"zh-CN": "{n} 件", "en": "{count} parcels"}}\n', encoding="utf-8")
    pot = (tmp_path / "messages.pot").read_bytes()
    assert tool.main([str(source)]) == 1
    assert (tmp_path / "messages.pot").read_bytes() == pot  # nothing written
    source.write_text('X = {"login.title": {"zh-CN": "登入", "en": "Sign in"}}\n', encoding="utf-8")
    assert tool.main([str(source)]) == 1
    assert messages(tmp_path / "zh_CN" / "LC_MESSAGES" / "messages.po")["login.title"] == "登录"
    assert tool.main([str(source), "--overwrite"]) == 0
    assert messages(tmp_path / "zh_CN" / "LC_MESSAGES" / "messages.po")["login.title"] == "登入"
