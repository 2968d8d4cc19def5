"""The server's VAPID key pair (RFC 8292): generated on first run and kept beside the secret key.

The private key is kept as the browser world writes it, base64url of the raw 32-byte P-256 scalar
(what `web-push generate-vapid-keys` prints), so LANSHOU_VAPID_PRIVATE_KEY can take one made elsewhere.
The public key (base64url of the uncompressed point) is what a browser's pushManager.subscribe takes as
applicationServerKey; a subscription made with one key pair is refused by the push service for any
other, so losing the key file means every courier subscribes again.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_FILE = "vapid_private_key"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Base64url with or without padding (browsers send it without); ValueError if it is not."""
    cleaned = text.strip()
    if not cleaned.isascii():
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (ValueError, TypeError):
        raise ValueError("not base64url") from None


def generate_private_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def load_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """ValueError unless `text` is a base64url raw P-256 private key."""
    raw = b64url_decode(text)
    if len(raw) != 32:
        raise ValueError("a VAPID private key is 32 bytes, base64url-encoded (43 characters)")
    return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())


def public_key(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The applicationServerKey a browser subscribes with (base64url uncompressed point)."""
    return b64url(
        private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


def vapid_private_key(env: Mapping[str, str], data_dir: Path) -> str:
    """LANSHOU_VAPID_PRIVATE_KEY, else the key kept in the data directory (made on first run).

    ValueError naming what is wrong with a key that does not load.
    """
    raw = env.get("LANSHOU_VAPID_PRIVATE_KEY", "").strip()
    if raw:
        load_private_key(raw)
        return raw
    key_file = data_dir / KEY_FILE
    if not key_file.exists():
        write_once(key_file, generate_private_key())
    key = key_file.read_text().strip()
    try:
        load_private_key(key)
    except ValueError:
        raise ValueError(f"{key_file} holds no usable VAPID key: delete it to generate one") from None
    return key


def write_once(path: Path, text: str) -> None:
    """Write `text` to a new private file at `path`, whole or not at all.

    Written to a temporary file, then linked into place: a process starting at the same time, or a
    crash, never sees a half-written key; if two race, the first link wins and both read it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
