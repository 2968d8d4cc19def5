"""Idempotency-Key for partners' POSTs: the first answer to a key is kept and given again, never acted twice.

A partner that retries a POST after a timeout cannot know whether the first attempt acted. With an
`Idempotency-Key` header the retry is safe: the same key with the same request (method, path, query,
body) gets the first answer again, status and body, marked `Idempotent-Replayed: true`; the same key
with another request is refused (422, `idempotency_key_reused`, naming the request the key was first
used for). Keys are per partner and last `idempotency_ttl_s` (a day by default), then are purged.

How it stays exactly-once: the first request *claims* the key with one conditional upsert on the
unique (partner, key) (`_CLAIM`), before anything acts; a request that cannot claim it reads the
row and replays it, refuses it, or — while the first is still running — waits for it (in-process
wake-ups, a short poll across processes) up to `idempotency_wait_s`, then answers 409 `idempotency_key_in_use`
with Retry-After. Only the claimant runs the handler, so 50 concurrent copies act once and all get
the same answer.

What is kept: answers below 500. A 5xx (or a crash inside the handler) releases the key, so a retry
acts again — nothing was done, or the transaction rolled back.

A process that dies mid-request leaves a "running" row. It holds the key for `LEASE_S` (a minute,
far beyond any request's time) and then the next request with the same fingerprint takes it over and
acts. The one case this can act twice is a process killed in the milliseconds between its
transaction's commit and storing the answer: we chose to let a key recover by itself rather than
block it for a day on a case that rare; a partner who needs creation exactly-once even then also
sends `partner_order_no`, which the database keeps unique per partner.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from typing import Any

from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from server.api_language import scope_language
from server.partnerapi.responses import send_error, send_json_bytes
from server.tables import IdempotencyKey

HEADER = b"idempotency-key"
REPLAYED = (b"idempotent-replayed", b"true")
# Printable ASCII without spaces, up to 255: UUIDs, ULIDs, base64 and the partner's own order ids fit.
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
LEASE_S = 60  # how long a running first request holds its key before another may take it over
_PURGE_EVERY_S = 60.0

# Take the key: a new row, or over a row that has expired, or over a running row whose lease has run
# out (its process died) when the request is the same. A row comes back only to the one who took it.
_CLAIM = (
    'INSERT INTO idempotency_keys (partner, "key", scoped_key, fingerprint, request_line, state, status_code, '
    "content_type, body, created_ms, lease_ms) VALUES ({}, {}, {}, {}, {}, 'running', NULL, '', '', {}, {}) "
    "ON CONFLICT (scoped_key) DO UPDATE SET fingerprint = excluded.fingerprint, "
    "request_line = excluded.request_line, state = 'running', status_code = NULL, body = '', "
    "created_ms = excluded.created_ms, lease_ms = excluded.lease_ms "
    "WHERE idempotency_keys.created_ms <= {} OR (idempotency_keys.state = 'running' "
    "AND idempotency_keys.lease_ms <= {} AND idempotency_keys.fingerprint = excluded.fingerprint) "
    "RETURNING id"
)

# Requests in this process waiting for a key's first request to finish: woken when it does.
_finished: dict[tuple[int, str], asyncio.Event] = {}
_last_purge = 0.0


def _now_ms() -> int:
    return int(time.time() * 1000)  # wall clock: compared across processes


def header_value(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            return value
    return None


class Idempotency:
    """Runs one partner POST under its Idempotency-Key (see the module docstring)."""

    def __init__(self, ttl_s: int, wait_s: float, max_body_bytes: int) -> None:
        self.ttl_ms = ttl_s * 1000
        self.wait_s = wait_s
        self.max_body_bytes = max_body_bytes

    async def __call__(
        self, app: ASGIApp, scope: HTTPScope, receive: Receive, send: Send, partner_id: int, raw_key: bytes
    ) -> None:
        key = raw_key.decode("latin-1")
        if not KEY_PATTERN.match(key):
            await send_error(
                send,
                400,
                "bad_idempotency_key",
                "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces "
                "(a UUID is a good choice)",
                field="Idempotency-Key",
                lang=scope_language(scope),
            )
            return
        body, complete = await _read_body(receive, self.max_body_bytes)
        if not complete:
            # Larger than any body the app takes: let it answer (413) without remembering anything.
            await app(scope, _replaying(body, receive, more_body=True), send)
            return
        request_line = f"{scope['method']} {scope['path']}"[:300]
        digest = hashlib.sha256()
        for part in (scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body):
            digest.update(part)
            digest.update(b"\0")
        fingerprint = digest.hexdigest()
        deadline = time.monotonic() + self.wait_s
        pause = 0.02
        while True:
            now = _now_ms()
            claimed = await IdempotencyKey.raw(
                _CLAIM, partner_id, key, f"{partner_id}:{key}", fingerprint, request_line, now, now + LEASE_S * 1000,
                now - self.ttl_ms, now,
            )  # fmt: skip
            if claimed:
                await _purge_now_and_then(now - self.ttl_ms)
                await self._run_first(
                    app, scope, _replaying(body, receive), send, claimed[0]["id"], (partner_id, key)
                )
                return
            row = await (
                IdempotencyKey.select(
                    IdempotencyKey.fingerprint,
                    IdempotencyKey.request_line,
                    IdempotencyKey.state,
                    IdempotencyKey.status_code,
                    IdempotencyKey.content_type,
                    IdempotencyKey.body,
                )
                .where(IdempotencyKey.scoped_key == f"{partner_id}:{key}")
                .first()
            )
            if row is None:
                continue  # the first request failed and released the key between our two reads
            if row["fingerprint"] != fingerprint:
                same_path = row["request_line"] == request_line
                await send_error(
                    send,
                    422,
                    "idempotency_key_reused",
                    f"Idempotency-Key {key!r} was first used for "
                    + (f"{row['request_line']} with another body" if same_path else row["request_line"])
                    + "; use a new key for a new request",
                    field="Idempotency-Key",
                    first_request=row["request_line"],
                    lang=scope_language(scope),
                )
                return
            if row["state"] == "done":
                await send_json_bytes(
                    send,
                    row["status_code"],
                    row["body"].encode(),
                    content_type=row["content_type"],
                    extra_headers=[REPLAYED],
                )
                return
            if time.monotonic() >= deadline:
                await send_error(
                    send,
                    409,
                    "idempotency_key_in_use",
                    f"a request with Idempotency-Key {key!r} is still being processed; retry shortly",
                    field="Idempotency-Key",
                    headers=[(b"retry-after", b"1")],
                    lang=scope_language(scope),
                )
                return
            event = _finished.setdefault((partner_id, key), asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), pause)
            except TimeoutError:
                pause = min(pause * 1.5, 0.25)

    async def _run_first(
        self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, row_id: int, waiters: tuple[int, str]
    ) -> None:
        """Run the request as the key's first, then keep its answer (below 500) or release the key."""
        status = 500
        content_type = ""
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        kept = False
        try:
            await app(scope, receive, capture)
            if status < 500:
                try:
                    text = b"".join(chunks).decode()
                except UnicodeDecodeError:
                    text = None  # not JSON: nothing to replay faithfully, so not kept
                if text is not None:
                    await IdempotencyKey.update(
                        {
                            IdempotencyKey.state: "done",
                            IdempotencyKey.status_code: status,
                            IdempotencyKey.content_type: content_type[:100],
                            IdempotencyKey.body: text,
                        }
                    ).where(IdempotencyKey.id == row_id)
                    kept = True
        finally:
            if not kept:
                await IdempotencyKey.delete().where(IdempotencyKey.id == row_id)
            event = _finished.pop(waiters, None)
            if event is not None:
                event.set()


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The whole request body, or what was read of it and False once it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True  # the client went away; the app will see the same
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replaying(body: bytes, receive: Receive, more_body: bool = False) -> Receive:
    """A receive that gives the body already read in one message, then whatever follows."""
    given = False

    async def replay() -> Any:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": more_body}
        return await receive()

    return replay  # type: ignore[return-value]


async def _purge_now_and_then(expired_before_ms: int) -> None:
    global _last_purge
    if time.monotonic() - _last_purge > _PURGE_EVERY_S:
        _last_purge = time.monotonic()
        await IdempotencyKey.delete().where(IdempotencyKey.created_ms <= expired_before_ms)
