"""What a dispatcher does to one pickup from the console's drawer that no other service already does:
a note. Assign, reassign and take back are server/dispatch/service.py's; cancelling on the customer's
behalf is server/pickups/actions.py's cancel, with the dispatcher as actor and their scope.
"""

from __future__ import annotations

import re

from server.dispatch.scope import Scope
from server.errors import field_errors, not_found
from server.push.log import Actor, unit_of_work
from server.tables import Pickup

NOTE_MAX = 500
# Control characters other than tab and line breaks (which a textarea sends as CR LF).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_note(text: str) -> str:
    """The note as it will be kept (trimmed), or a field error: not empty, at most NOTE_MAX characters,
    no control characters but line breaks."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise field_errors([{"field": "text", "message": "write the note"}])
    if len(text) > NOTE_MAX:
        raise field_errors([{"field": "text", "message": f"at most {NOTE_MAX} characters"}])
    if _CONTROL.search(text):
        raise field_errors([{"field": "text", "message": "no control characters"}])
    return text


async def add_note(actor: Actor, pickup_id: int, text: str, *, scope: Scope) -> None:
    """A dispatcher's note on a pickup in their scope, in any state: one pickup.noted event, which only
    staff see (push.log.STAFF_ONLY_TYPES keeps it from partners; the tracking page lists what it shows)."""
    text = check_note(text)
    async with unit_of_work() as uow:
        pickup = await Pickup.select(Pickup.id, Pickup.zone).where(Pickup.id == pickup_id).first()
        if pickup is None or not scope.covers_zone(pickup["zone"]):
            raise not_found("pickup")
        uow.note_zone(pickup_id, pickup["zone"])
        uow.add("pickup.noted", actor=actor, pickup_id=pickup_id, data={"text": text})
