"""Settings: one frozen struct read from the environment and validated at start.

Every value has a default that makes `lanshou serve` work on a fresh machine (SQLite under ./var/, a
secret generated on first run). A bad value stops the process with a message naming the variable.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from server.domain.contact import DEFAULT_WAYBILL_PATTERNS
from server.webhooks.destinations import RefusedDestination, normalise_allowed_host, parse_webhook_url
from server.webpush.keys import vapid_private_key, write_once

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
DEFAULT_TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
# The datums a tile server can draw in: WGS-84 (OpenStreetMap and most of the world) or GCJ-02 (AMap,
# Tencent). The console converts its WGS-84 shapes and positions into the tiles' datum before drawing.
TILE_DATUMS = ("wgs84", "gcj02")


class SettingsError(ValueError):
    """A setting read from the environment is unusable; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str
    secret_key: str
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    # text (uvicorn's and Python's usual lines) or json (one JSON object per line, for a log shipper).
    log_format: str = "text"
    # Bearer token for GET /metrics (empty: /metrics answers loopback clients only).
    metrics_token: str = ""
    data_dir: str = "var"
    # Empty: in-memory channels (one process). redis://… or postgresql://… to share push between processes.
    channels_url: str = ""
    # Redis pub/sub names are server-wide (not per database): deployments sharing a Redis need their own.
    channels_prefix: str = "lanshou"
    # Cookies marked Secure; turn on behind HTTPS (the default serves plain HTTP on localhost).
    secure_cookies: bool = False
    # Scheduler poll interval for durable timers, in milliseconds.
    scheduler_interval_ms: int = 500
    # How often each process looks for partner events to POST to their webhooks, in milliseconds.
    webhook_interval_ms: int = 1000
    # A webhook batch failing for this long without a break is given up: the partner's webhook goes into
    # the dead-letter state until the partner re-arms it (24 h; tests shorten it).
    webhook_give_up_s: int = 86_400
    # Tile server for the dispatcher's map (any XYZ template; OpenStreetMap by default).
    map_tile_url: str = DEFAULT_TILE_URL
    # The datum of those tiles (wgs84 or gcj02): with the wrong one every shape sits a few hundred metres off.
    map_tile_datum: str = "wgs84"
    # Largest request body accepted, in bytes (a batch of 500 pickups fits comfortably).
    max_body_bytes: int = 1_048_576
    # Internal destinations webhooks may reach besides the public internet (on-premise integrations):
    # host names (lowercase, exact) and IP networks (canonical, e.g. 10.1.0.0/16). Empty: public only.
    webhook_allowed_hosts: tuple[str, ...] = ()
    # Failed sign-ins allowed per username and per client address within the window, then 429.
    login_failures_per_user: int = 10
    login_failures_per_address: int = 100
    login_window_s: int = 900
    # Bookings through the public form (/book) per client address and window (server/throttle.py).
    booking_per_address: int = 20
    booking_window_s: int = 3600
    # Seconds a connection may take to send a request's line and headers before it is closed.
    header_timeout_s: int = 10
    # Web Push: the VAPID private key (base64url; empty: push off) and the contact push services see.
    vapid_private_key: str = ""
    vapid_subject: str = "mailto:admin@localhost"
    # Internal push services allowed besides the public internet (as webhook_allowed_hosts; tests).
    push_allowed_hosts: tuple[str, ...] = ()
    # Seconds between pushes of an offer that is still open (0: push once).
    push_renotify_s: int = 30
    # Carriers' waybill shapes accepted besides UPU S10 numbers (which are checked by check digit).
    waybill_patterns: tuple[tuple[str, str], ...] = DEFAULT_WAYBILL_PATTERNS
    # Where the couriers' photos of parcels are stored (default: photos/ in the data directory).
    photo_dir: str = "var/photos"
    # SMS / voice-call gateway for offers a courier has not seen or answered (see server/alerts/):
    # the provider's endpoint (empty: off), the HMAC-SHA256 signing secret, and when each stage goes
    # out, in seconds after the offer (voice 0: no voice stage).
    alert_gateway_url: str = ""
    alert_gateway_secret: str = ""
    alert_gateway_after_s: int = 20
    alert_gateway_voice_after_s: int = 0
    # Internal gateways allowed besides the public internet (as webhook_allowed_hosts).
    alert_gateway_allowed_hosts: tuple[str, ...] = ()

    # Partner API requests allowed per API key in each window of api_rate_window_s seconds (0: no limit);
    # shared by every process through Redis (channels_url) or PostgreSQL, else counted in this process.
    api_rate_limit: int = 12_000
    api_rate_window_s: int = 60
    # How long a partner's Idempotency-Key is remembered, in seconds (at least a day).
    idempotency_ttl_s: int = 86_400
    # How long a request waits for another with the same Idempotency-Key to finish before a 409.
    idempotency_wait_s: int = 10

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _allowed_hosts(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated host names, IP addresses and CIDR networks, each checked and normalised."""
    entries: list[str] = []
    for raw in env.get(name, "").split(","):
        if not raw.strip():
            continue
        try:
            entries.append(normalise_allowed_host(raw))
        except ValueError as exc:
            raise SettingsError(
                f"{name} takes comma-separated host names (e.g. erp.internal), IP addresses or networks "
                f"(e.g. 10.1.0.0/16); {raw.strip()!r}: {exc}"
            ) from None
    return tuple(dict.fromkeys(entries))


def _tile_datum(env: Mapping[str, str]) -> str:
    raw = env.get("LANSHOU_MAP_TILE_DATUM", "").strip().lower() or "wgs84"
    if raw not in TILE_DATUMS:
        raise SettingsError(f"LANSHOU_MAP_TILE_DATUM must be one of {', '.join(TILE_DATUMS)}, got {raw!r}")
    return raw


def _database_url(env: Mapping[str, str], data_dir: Path) -> str:
    raw = env.get("LANSHOU_DATABASE_URL", "").strip()
    if not raw:
        return f"sqlite:///{data_dir / 'lanshou.sqlite3'}"
    scheme = urlsplit(raw).scheme
    if scheme == "sqlite":
        if not raw.startswith("sqlite:///") or raw == "sqlite:///":
            raise SettingsError(
                "LANSHOU_DATABASE_URL: a SQLite URL names a file, e.g. sqlite:///var/lanshou.sqlite3 "
                f"(relative) or sqlite:////srv/lanshou.sqlite3 (absolute); got {raw!r}"
            )
        return raw
    if scheme in ("postgres", "postgresql"):
        if not urlsplit(raw).hostname and "host=" not in raw:
            raise SettingsError(f"LANSHOU_DATABASE_URL: a PostgreSQL URL needs a host, got {raw!r}")
        return raw
    raise SettingsError(f"LANSHOU_DATABASE_URL must start with sqlite:/// or postgresql://, got {raw!r}")


def _channels_url(env: Mapping[str, str]) -> str:
    raw = env.get("LANSHOU_CHANNELS_URL", "").strip()
    if raw and urlsplit(raw).scheme not in ("redis", "rediss", "postgres", "postgresql"):
        raise SettingsError(
            f"LANSHOU_CHANNELS_URL must be empty (in-process), redis://… or postgresql://…, got {raw!r}"
        )
    return raw


def _secret_key(env: Mapping[str, str], data_dir: Path) -> str:
    raw = env.get("LANSHOU_SECRET_KEY", "").strip()
    if raw:
        if len(raw) < 32:
            raise SettingsError("LANSHOU_SECRET_KEY must be at least 32 characters")
        return raw
    # Generated once and kept beside the data, so sessions and CSRF tokens survive restarts.
    key_file = data_dir / "secret_key"
    if not key_file.exists():
        write_once(key_file, secrets.token_urlsafe(48))
    key = key_file.read_text().strip()
    if len(key) < 32:
        raise SettingsError(
            f"LANSHOU_SECRET_KEY is unset and {key_file} holds no usable key: delete it to generate one"
        )
    return key


_PATTERN_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _waybill_patterns(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """`NAME=regex;NAME=regex` (each regex matched against the whole number, upper case, no spaces)."""
    raw = env.get("LANSHOU_WAYBILL_PATTERNS", "").strip()
    if not raw:
        return DEFAULT_WAYBILL_PATTERNS
    patterns: list[tuple[str, str]] = []
    for entry in raw.split(";"):
        if not entry.strip():
            continue
        name, sep, regex = entry.partition("=")
        name, regex = name.strip(), regex.strip()
        if not sep or not _PATTERN_NAME.match(name) or not regex:
            raise SettingsError(
                "LANSHOU_WAYBILL_PATTERNS takes NAME=regex entries separated by ';' "
                f"(e.g. SF=^SF[0-9]{{12}}$;YTO=^YT[0-9]{{13}}$), got {entry.strip()!r}"
            )
        try:
            re.compile(regex)
        except re.error as exc:
            raise SettingsError(
                f"LANSHOU_WAYBILL_PATTERNS: the pattern for {name} is no regex: {exc}"
            ) from None
        patterns.append((name, regex))
    return tuple(patterns)


def _vapid_subject(env: Mapping[str, str]) -> str:
    raw = env.get("LANSHOU_VAPID_SUBJECT", "").strip() or "mailto:admin@localhost"
    # RFC 8292: a contact URI; push services (Apple's among them) refuse anything else.
    if not raw.startswith(("mailto:", "https://")) or any(c.isspace() for c in raw):
        raise SettingsError(f"LANSHOU_VAPID_SUBJECT must be a mailto: or https:// address, got {raw!r}")
    return raw


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read LANSHOU_* variables; raise SettingsError naming the first bad one."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("LANSHOU_DATA_DIR", "").strip() or "var")
    log_level = env.get("LANSHOU_LOG_LEVEL", "info").strip().lower() or "info"
    if log_level not in LOG_LEVELS:
        raise SettingsError(f"LANSHOU_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    log_format = env.get("LANSHOU_LOG_FORMAT", "").strip().lower() or "text"
    if log_format not in LOG_FORMATS:
        raise SettingsError(f"LANSHOU_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    metrics_token = env.get("LANSHOU_METRICS_TOKEN", "").strip()
    if metrics_token and len(metrics_token) < 16:
        raise SettingsError("LANSHOU_METRICS_TOKEN must be at least 16 characters (or empty: loopback only)")
    _check_multiprocess_dir(env)
    return Settings(
        database_url=_database_url(env, data_dir),
        secret_key=_secret_key(env, data_dir),
        host=env.get("LANSHOU_HOST", "").strip() or "127.0.0.1",
        port=_int(env, "LANSHOU_PORT", 8000, 1, 65535),
        log_level=log_level,
        log_format=log_format,
        metrics_token=metrics_token,
        data_dir=str(data_dir),
        channels_url=_channels_url(env),
        channels_prefix=env.get("LANSHOU_CHANNELS_PREFIX", "").strip() or "lanshou",
        secure_cookies=_bool(env, "LANSHOU_SECURE_COOKIES", False),
        scheduler_interval_ms=_int(env, "LANSHOU_SCHEDULER_INTERVAL_MS", 500, 10, 60_000),
        webhook_interval_ms=_int(env, "LANSHOU_WEBHOOK_INTERVAL_MS", 1000, 10, 60_000),
        webhook_give_up_s=_int(env, "LANSHOU_WEBHOOK_GIVE_UP_S", 86_400, 1, 30 * 86_400),
        map_tile_url=env.get("LANSHOU_MAP_TILE_URL", "").strip() or DEFAULT_TILE_URL,
        map_tile_datum=_tile_datum(env),
        max_body_bytes=_int(env, "LANSHOU_MAX_BODY_BYTES", 1_048_576, 1024, 100 * 1_048_576),
        webhook_allowed_hosts=_allowed_hosts(env, "LANSHOU_WEBHOOK_ALLOWED_HOSTS"),
        login_failures_per_user=_int(env, "LANSHOU_LOGIN_FAILURES_PER_USER", 10, 1, 1_000_000),
        login_failures_per_address=_int(env, "LANSHOU_LOGIN_FAILURES_PER_ADDRESS", 100, 1, 1_000_000),
        login_window_s=_int(env, "LANSHOU_LOGIN_WINDOW_S", 900, 1, 86_400),
        booking_per_address=_int(env, "LANSHOU_BOOKING_PER_ADDRESS", 20, 1, 1_000_000),
        booking_window_s=_int(env, "LANSHOU_BOOKING_WINDOW_S", 3600, 1, 86_400),
        header_timeout_s=_int(env, "LANSHOU_HEADER_TIMEOUT_S", 10, 1, 3600),
        vapid_private_key=_vapid(env, data_dir),
        vapid_subject=_vapid_subject(env),
        push_allowed_hosts=_allowed_hosts(env, "LANSHOU_PUSH_ALLOWED_HOSTS"),
        push_renotify_s=_int(env, "LANSHOU_PUSH_RENOTIFY_S", 30, 0, 3600),
        waybill_patterns=_waybill_patterns(env),
        photo_dir=env.get("LANSHOU_PHOTO_DIR", "").strip() or str(data_dir / "photos"),
        api_rate_limit=_int(env, "LANSHOU_API_RATE_LIMIT", 12_000, 0, 100_000_000),
        api_rate_window_s=_int(env, "LANSHOU_API_RATE_WINDOW_S", 60, 1, 86_400),
        idempotency_ttl_s=_int(env, "LANSHOU_IDEMPOTENCY_TTL_S", 86_400, 86_400, 30 * 86_400),
        idempotency_wait_s=_int(env, "LANSHOU_IDEMPOTENCY_WAIT_S", 10, 1, 60),
        **_alert_gateway(env),
    )


def _check_multiprocess_dir(env: Mapping[str, str]) -> None:
    """prometheus_client's multiprocess mode (several server processes, one /metrics): its directory
    must exist and be writable, or every request would fail writing its counters."""
    raw = env.get("PROMETHEUS_MULTIPROC_DIR", "")
    if raw and not (os.path.isdir(raw) and os.access(raw, os.W_OK)):
        raise SettingsError(f"PROMETHEUS_MULTIPROC_DIR must be an existing writable directory, got {raw!r}")


def _alert_gateway(env: Mapping[str, str]) -> dict[str, Any]:
    url = env.get("LANSHOU_ALERT_GATEWAY_URL", "").strip()
    secret = env.get("LANSHOU_ALERT_GATEWAY_SECRET", "").strip()
    after_s = _int(env, "LANSHOU_ALERT_GATEWAY_AFTER_S", 20, 1, 3600)
    voice_after_s = _int(env, "LANSHOU_ALERT_GATEWAY_VOICE_AFTER_S", 0, 0, 3600)
    if url:
        try:
            parse_webhook_url(url)
        except RefusedDestination as exc:
            raise SettingsError(f"LANSHOU_ALERT_GATEWAY_URL: {exc.message}") from None
        if len(secret) < 16:
            raise SettingsError(
                "LANSHOU_ALERT_GATEWAY_SECRET must be at least 16 characters when LANSHOU_ALERT_GATEWAY_URL "
                "is set (the gateway checks each request's signature with it)"
            )
    if voice_after_s and voice_after_s <= after_s:
        raise SettingsError(
            "LANSHOU_ALERT_GATEWAY_VOICE_AFTER_S must be later than LANSHOU_ALERT_GATEWAY_AFTER_S "
            f"(the call follows the SMS), got {voice_after_s} <= {after_s}"
        )
    return {
        "alert_gateway_url": url,
        "alert_gateway_secret": secret,
        "alert_gateway_after_s": after_s,
        "alert_gateway_voice_after_s": voice_after_s,
        "alert_gateway_allowed_hosts": _allowed_hosts(env, "LANSHOU_ALERT_GATEWAY_ALLOWED_HOSTS"),
    }


def _vapid(env: Mapping[str, str], data_dir: Path) -> str:
    try:
        return vapid_private_key(env, data_dir)
    except ValueError as exc:
        raise SettingsError(f"LANSHOU_VAPID_PRIVATE_KEY: {exc}") from None
