"""The board's rows as HTML, written in Python rather than in the template.

The board's first page is 250 rows (five sections of 50), read again after every change; as a Jinja
block each row cost a new template context and some twenty autoescapes through Markup, most of the
board's time at a million pickups (issue #10). Here a row is one f-string, every value that comes from
a pickup escaped (`escape`), the fixed words from the catalogue. console.html's board calls it for
each row, and the single-row partial (a row the live stream changed, console/pickups/{id}/row) is it
alone, so the two stay the same HTML.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from html import escape as _escape
from typing import Any

from markupsafe import Markup

from server.console.queries import PickupRow
from server.i18n import translate

Url = Callable[..., str]

_CLOSED = ("failed", "closed")


_SPECIAL = re.compile("[&<>\"']")


def escape(value: str) -> str:
    """As Jinja's autoescape (& < > " ' escaped), without making a Markup of each value; a value with
    none of them (nearly every one) is looked at once rather than replaced five times."""
    return _escape(value, quote=True) if _SPECIAL.search(value) else value


@lru_cache(maxsize=1024)
def _word(key: str, lang: str) -> str:
    """A catalogue text, escaped once (the board shows the same few hundred times)."""
    return escape(translate(key, lang))


def row_html(row: PickupRow, lang: str, u: Url, fmt: Any) -> Markup:
    """One `<tr>` of the board (see console.css and console.js for what reads its classes and data)."""
    pid = row.id
    code = escape(row.tracking_code)
    classes = f"sla-{escape(row.sla_state)}"
    if row.escalated:
        classes += " escalated"
    if row.chase_count and row.section not in _CLOSED:
        classes += " chased"
    pick = (
        f'<input type="checkbox" name="pickup_ids" value="{pid}" form="dispatch-form" aria-label="{code}">'
        if row.status not in ("collected", "cancelled")
        else ""
    )
    if row.zone_code:
        zone = f"{escape(row.zone_name or '')} <small>{escape(row.zone_code)}</small>"
    else:
        zone = f'<span class="muted">{_word("console.no_zone", lang)}</span>'
    addr = escape(row.district) + (f" · {escape(row.street)}" if row.street else "")
    status = _status(row, lang)
    due = '<span class="muted">—</span>'
    if row.due_at:
        at = row.due_at.isoformat()
        due = (
            f'<time datetime="{at}" title="{escape(row.timezone)}">{escape(fmt.local(row.due_at, row.timezone))}'
            "</time>"
        )
        if row.section not in _CLOSED:
            due += f' <span class="left" data-due="{at}">{escape(fmt.remaining(row))}</span>'
    chase = ""
    if row.chase_count:
        chased = escape(translate("console.chased", lang, n=row.chase_count))
        chase = f'<span class="badge chases" title="{chased}">{row.chase_count}</span>'
    return Markup(
        f'<tr id="pickup-{pid}" class="{classes}"\n'
        f'    data-section="{escape(row.section)}" data-zone="{escape(row.zone_code or "")}"'
        f' data-sort="{escape(row.sort_key)}">\n'
        f'  <td class="pick">{pick}</td>\n'
        f'  <td class="code"><a class="open-drawer" href="{escape(u("/console/pickups/" + str(pid)))}"'
        f' data-pickup-id="{pid}">{code}</a></td>\n'
        f'  <td class="zone">{zone}</td>\n'
        f'  <td class="addr">{addr}</td>\n'
        f'  <td class="status">{status}</td>\n'
        f'  <td class="courier">{escape(row.courier_name or "—")}</td>\n'
        f'  <td class="due">{due}</td>\n'
        f'  <td class="chase">{chase}</td>\n'
        "</tr>"
    )


def _status(row: PickupRow, lang: str) -> str:
    if row.assigned_by_dispatcher and row.status == "accepted":
        title, label = _word("console.board.assigned.title", lang), _word("console.board.assigned", lang)
        out = f'<span class="badge st-assigned" title="{title}">{label}</span>'
    else:
        out = f'<span class="badge st-{escape(row.status)}">{_word("console.status." + row.status, lang)}</span>'
    if row.escalated and row.section == "queue":
        out += f' <span class="badge esc">{_word("console.escalated", lang)}</span>'
    if row.sla_state != "ok" and row.section not in _CLOSED:
        out += f' <span class="badge sla">{_word("console.sla." + row.sla_state, lang)}</span>'
    if row.status == "failed" and row.failure_reason:
        out += f' <span class="reason">{_word("courier.reason." + row.failure_reason, lang)}</span>'
    return out
