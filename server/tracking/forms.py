"""The tracking page's forms: read and check what the customer typed, call the pickup's actions
(server/pickups/actions.py, shared with the partner API, which writes each change and its event), and
say what went wrong next to the field, in the page's language.

Each returns (errors by field, HTTP status, what was done): errors keep the form as typed.
"""

from __future__ import annotations

from typing import Any

from server.domain import divisions
from server.domain.text import has_control_characters
from server.errors import ApiError
from server.i18n import known, translate
from server.pickups import actions
from server.push.log import Actor
from server.tracking.queries import TrackingView

CUSTOMER = Actor("customer")
ADDRESS_LIMITS = {"detail": 200}
PICKERS = ("province", "city", "district", "street")
Outcome = tuple[dict[str, str], int, str | None]


def _text_error(value: str, max_length: int, lang: str, *, required: bool) -> str | None:
    if has_control_characters(value.replace("\r", "").replace("\n", "").replace("\t", "")):
        return translate("track.error.control", lang)
    if required and not value.strip():
        return translate("track.error.required", lang)
    if len(value) > max_length:
        return translate("track.error.too_long", lang, n=max_length)
    return None


def localise(exc: ApiError, lang: str) -> str:
    """The action's refusal in the page's language: by its code when the catalogue has it."""
    key = f"track.error.{exc.code}"
    if known(key):
        values = {k: v for k, v in exc.extra_fields.items() if isinstance(v, (int, str))}
        if "retry_after" in values:
            values["minutes"] = max(1, -(-int(values["retry_after"]) // 60))
        return translate(key, lang, **values)
    return exc.message


def _field_errors(exc: ApiError, lang: str, default_field: str) -> dict[str, str]:
    """An ApiError as errors by field: its field errors where it has them, else one under default_field."""
    if exc.errors and exc.code not in ("stop_ship_area",):
        return {
            str(e.get("field") or default_field): (
                e.get("message") or exc.message if lang == "en" else translate("track.error.invalid", lang)
            )
            for e in exc.errors
        }
    return {default_field: localise(exc, lang)}


def offered(action: str, view: TrackingView) -> bool:
    """Whether the page shows this action's form for the pickup as it is now."""
    return {
        "chase": view.can_chase,
        "cancel": view.can_cancel,
        "reschedule": view.can_change,
        "address": view.can_change,
        "rate": view.can_rate,
        "complain": view.can_complain,
    }[action]


async def run(action: str, view: TrackingView, form: dict[str, str], slots: list[Any], lang: str) -> Outcome:
    check = _CHECKS[action]
    errors, call = check(form, slots, lang)
    if errors:
        return errors, 422, None
    try:
        await call(actions, view.id)
    except ApiError as exc:
        return _field_errors(exc, lang, _MAIN_FIELD[action]), exc.status_code, None
    return {}, 200, translate(f"track.done.{action}", lang)


# -- one check per form: (errors, the call to make) --------------------------------------------------------

Call = Any
Check = tuple[dict[str, str], Call]


def _chase(form: dict[str, str], slots: list[Any], lang: str) -> Check:
    return {}, lambda a, pid: a.chase(CUSTOMER, pid)


def _cancel(form: dict[str, str], slots: list[Any], lang: str) -> Check:
    reason = form.get("reason", "").strip()
    error = _text_error(reason, 200, lang, required=False)
    if error:
        return {"reason": error}, None
    return {}, lambda a, pid: a.cancel(CUSTOMER, pid, reason or "customer")


def _reschedule(form: dict[str, str], slots: list[Any], lang: str) -> Check:
    from server.pickups.schemas import TimeWindow

    chosen = form.get("slot", "")
    for slot in slots:
        if chosen == f"{slot.start.isoformat()}/{slot.end.isoformat()}":
            window = TimeWindow(start=slot.start, end=slot.end)
            return {}, lambda a, pid, w=window: a.reschedule(CUSTOMER, pid, w)
    key = "track.error.choose_slot" if not chosen else "track.error.slot_gone"
    return {"slot": translate(key, lang)}, None


def address_pickers(view: TrackingView, form: dict[str, str]) -> divisions.Pickers:
    """The change of address's pickers: as the form chose them (codes) once it has been sent or a
    picker changed, else the pickup's current address preselected."""
    if "province" in form:
        return _picked(form)
    return divisions.pickers(**divisions.codes(view.province, view.city, view.district, view.street))


def _picked(form: dict[str, str]) -> divisions.Pickers:
    return divisions.pickers(**{name: form.get(name, "").strip() for name in PICKERS})


def _address(form: dict[str, str], slots: list[Any], lang: str) -> Check:
    """The pickers send division codes, as on the booking page; the pickup keeps their names."""
    from server.pickups.schemas import Address

    picked = _picked(form)
    errors: dict[str, str] = {}
    for name in PICKERS:
        code = form.get(name, "").strip()
        if picked.chosen[name] is None and (code or name != "street"):
            # Nothing chosen, or a code that is not under the one above (a stale or forged form); the
            # pickers under it offer nothing yet, so this one is the error.
            key = "track.error.division" if code else "track.error.required"
            errors[f"address.{name}"] = translate(key, lang)
            break
    detail = form.get("detail", "").strip()
    if error := _text_error(detail, ADDRESS_LIMITS["detail"], lang, required=True):
        errors["address.detail"] = error
    if errors:
        return errors, None
    names = [d.name if (d := picked.chosen[name]) else "" for name in PICKERS]
    address = Address(province=names[0], city=names[1], district=names[2], street=names[3], detail=detail)
    return {}, lambda a, pid: a.change_address(CUSTOMER, pid, address)


def _rate(form: dict[str, str], slots: list[Any], lang: str) -> Check:
    errors: dict[str, str] = {}
    raw = form.get("stars", "")
    stars = int(raw) if raw in {"1", "2", "3", "4", "5"} else None
    if stars is None:
        errors["stars"] = translate("track.error.stars", lang)
    comment = form.get("comment", "").strip()
    if error := _text_error(comment, 500, lang, required=False):
        errors["comment"] = error
    if errors or stars is None:
        return errors, None
    return {}, lambda a, pid: a.rate(CUSTOMER, pid, stars, comment)


def _complain(form: dict[str, str], slots: list[Any], lang: str) -> Check:
    text = form.get("text", "").strip()
    if error := _text_error(text, 500, lang, required=True):
        return {"text": error}, None
    return {}, lambda a, pid: a.complain(CUSTOMER, pid, text)


_CHECKS = {
    "chase": _chase,
    "cancel": _cancel,
    "reschedule": _reschedule,
    "address": _address,
    "rate": _rate,
    "complain": _complain,
}
ACTIONS = tuple(_CHECKS)
_MAIN_FIELD = {
    "chase": "chase",
    "cancel": "reason",
    "reschedule": "slot",
    "address": "address",
    "rate": "stars",
    "complain": "text",
}
