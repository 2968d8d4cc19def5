"""The VAPID key pair: made once on first run, kept in the data directory, overridable, checked."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from server.settings import SettingsError, load_settings
from server.webpush.keys import (
    KEY_FILE,
    b64url_decode,
    generate_private_key,
    load_private_key,
    public_key,
    vapid_private_key,
)


def test_the_first_run_makes_a_key_and_later_runs_keep_it(tmp_path: Path) -> None:
    first = vapid_private_key({}, tmp_path)
    assert vapid_private_key({}, tmp_path) == first
    assert (tmp_path / KEY_FILE).read_text() == first
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [tmp_path / KEY_FILE]  # no temporary file left behind


def test_the_environment_key_wins_and_nothing_is_written(tmp_path: Path) -> None:
    key = generate_private_key()
    assert vapid_private_key({"LANSHOU_VAPID_PRIVATE_KEY": key}, tmp_path) == key
    assert not (tmp_path / KEY_FILE).exists()


def test_the_public_key_is_what_a_browser_subscribes_with(tmp_path: Path) -> None:
    private = load_private_key(vapid_private_key({}, tmp_path))
    point = b64url_decode(public_key(private))
    assert len(point) == 65 and point[0] == 4  # an uncompressed P-256 point: applicationServerKey
    assert ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point) == private.public_key()


@pytest.mark.parametrize("bad", ["not a key", "AAAA", generate_private_key() + "AAAA"])
def test_a_bad_environment_key_stops_the_start_naming_the_variable(tmp_path: Path, bad: str) -> None:
    env = {
        "LANSHOU_DATA_DIR": str(tmp_path),
        "LANSHOU_SECRET_KEY": "x" * 40,
        "LANSHOU_VAPID_PRIVATE_KEY": bad,
    }
    with pytest.raises(SettingsError, match="LANSHOU_VAPID_PRIVATE_KEY"):
        load_settings(env)


def test_a_damaged_key_file_says_to_delete_it(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("garbage")
    with pytest.raises(ValueError, match="delete it"):
        vapid_private_key({}, tmp_path)


def test_settings_carry_the_key_the_subject_and_the_allowed_push_hosts(tmp_path: Path) -> None:
    env = {
        "LANSHOU_DATA_DIR": str(tmp_path),
        "LANSHOU_SECRET_KEY": "x" * 40,
        "LANSHOU_VAPID_SUBJECT": "mailto:ops@example.com",
        "LANSHOU_PUSH_ALLOWED_HOSTS": "127.0.0.1",
    }
    settings = load_settings(env)
    assert settings.vapid_private_key == (tmp_path / KEY_FILE).read_text()
    assert settings.vapid_subject == "mailto:ops@example.com"
    assert settings.push_allowed_hosts == ("127.0.0.1/32",)
    assert settings.push_renotify_s == 30
    assert load_settings({**env, "LANSHOU_PUSH_RENOTIFY_S": "0"}).push_renotify_s == 0  # push once
    with pytest.raises(SettingsError, match="LANSHOU_PUSH_RENOTIFY_S"):
        load_settings({**env, "LANSHOU_PUSH_RENOTIFY_S": "-1"})
    with pytest.raises(SettingsError, match="LANSHOU_VAPID_SUBJECT"):
        load_settings({**env, "LANSHOU_VAPID_SUBJECT": "ops@example.com"})
