"""What counts as acceptable text from a client: no I/O, used by the request structs (through
server/validation.py) and by checks of input that arrives outside them (GeoJSON properties, forms)."""

from __future__ import annotations

import re

# C0 and C1 control characters and DEL. PostgreSQL refuses NUL in text outright; the others are never
# part of a name, an address or a code. (Lone surrogates, which cannot be stored as UTF-8, never get
# this far: msgspec refuses them while decoding JSON. Leaving them out keeps the patterns portable to
# the regex engines of other languages, which the OpenAPI document is read with.)
CONTROL = "\\x00-\\x1f\\x7f-\\x9f"
CONTROL_BUT_LINE_BREAKS = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f"
# A required single line: something other than white space, and no control characters.
LINE_PATTERN = f"^[^{CONTROL}]*[^\\s{CONTROL}][^{CONTROL}]*$"
# An optional single line (may be empty), no control characters.
OPTIONAL_LINE_PATTERN = f"^[^{CONTROL}]*$"
# Free text: line breaks and tabs allowed, no other control characters.
LINES_PATTERN = f"^[^{CONTROL_BUT_LINE_BREAKS}]*$"

_CONTROL_RE = re.compile(f"[{CONTROL}]")


def has_control_characters(value: str) -> bool:
    return _CONTROL_RE.search(value) is not None


def text_problem(value: object, max_length: int, *, required: bool = True) -> str | None:
    """Why `value` is not an acceptable single line of text (the rule of LINE_PATTERN), or None."""
    if not isinstance(value, str):
        return "must be a string"
    if has_control_characters(value):
        return "must not contain control characters"
    if required and not value.strip():
        return "must not be blank"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    return None
