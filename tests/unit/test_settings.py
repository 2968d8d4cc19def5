"""Unit tests for server.settings: defaults, one clear error per bad variable, the generated secret key."""

from __future__ import annotations

import stat
from pathlib import Path

import msgspec
import pytest

from server.settings import DEFAULT_TILE_URL, Settings, SettingsError, load_settings

GOOD_KEY = "k" * 32


def env_in(tmp_path: Path, **values: str) -> dict[str, str]:
    """An environment with only LANSHOU_* values we set; the data dir is the test's own."""
    return {"LANSHOU_DATA_DIR": str(tmp_path), **values}


# -- defaults ------------------------------------------------------------------------------------------


def test_an_empty_environment_gives_a_server_that_runs_on_a_fresh_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default data dir is ./var
    settings = load_settings({})
    assert settings.database_url == "sqlite:///var/lanshou.sqlite3"
    assert settings.is_sqlite
    assert settings.data_dir == "var"
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.log_level == "info"
    assert settings.channels_url == ""
    assert settings.secure_cookies is False
    assert settings.scheduler_interval_ms == 500
    assert settings.map_tile_url == DEFAULT_TILE_URL
    assert settings.max_body_bytes == 1_048_576
    assert settings.webhook_allowed_hosts == ()  # webhooks reach the public internet only
    assert settings.webhook_give_up_s == 86_400  # a failing batch is given up after 24 h
    assert len(settings.secret_key) >= 32
    assert (tmp_path / "var" / "secret_key").read_text() == settings.secret_key


def test_blank_values_mean_the_default(tmp_path: Path) -> None:
    blank = {
        name: "  "
        for name in [
            "LANSHOU_DATABASE_URL",
            "LANSHOU_HOST",
            "LANSHOU_PORT",
            "LANSHOU_LOG_LEVEL",
            "LANSHOU_CHANNELS_URL",
            "LANSHOU_SECURE_COOKIES",
            "LANSHOU_SCHEDULER_INTERVAL_MS",
            "LANSHOU_MAP_TILE_URL",
            "LANSHOU_MAX_BODY_BYTES",
            "LANSHOU_WEBHOOK_ALLOWED_HOSTS",
        ]
    }
    settings = load_settings(env_in(tmp_path, LANSHOU_SECRET_KEY=GOOD_KEY, **blank))
    assert settings.database_url == f"sqlite:///{tmp_path / 'lanshou.sqlite3'}"
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 8000, "info")
    assert (settings.channels_url, settings.secure_cookies) == ("", False)
    assert settings.scheduler_interval_ms == 500
    assert settings.map_tile_url == DEFAULT_TILE_URL
    assert settings.max_body_bytes == 1_048_576
    assert settings.webhook_allowed_hosts == ()


def test_good_values_are_read(tmp_path: Path) -> None:
    settings = load_settings(
        env_in(
            tmp_path,
            LANSHOU_DATABASE_URL="postgresql://lanshou@db.internal:5432/lanshou",
            LANSHOU_SECRET_KEY=GOOD_KEY,
            LANSHOU_HOST="0.0.0.0",
            LANSHOU_PORT="8443",
            LANSHOU_LOG_LEVEL=" WARNING ",
            LANSHOU_CHANNELS_URL="redis://127.0.0.1:6379/0",
            LANSHOU_SECURE_COOKIES="yes",
            LANSHOU_SCHEDULER_INTERVAL_MS="50",
            LANSHOU_MAX_BODY_BYTES="2048",
        )
    )
    assert settings.database_url == "postgresql://lanshou@db.internal:5432/lanshou"
    assert not settings.is_sqlite
    assert settings.secret_key == GOOD_KEY
    assert (settings.host, settings.port, settings.log_level) == ("0.0.0.0", 8443, "warning")
    assert settings.channels_url == "redis://127.0.0.1:6379/0"
    assert settings.secure_cookies is True
    assert settings.scheduler_interval_ms == 50
    assert settings.max_body_bytes == 2048
    assert not (tmp_path / "secret_key").exists()  # a given key is never written anywhere


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("On", True),
        ("0", False),
        ("false", False),
        ("NO", False),
        ("off", False),
    ],
)
def test_secure_cookies_takes_the_usual_spellings_of_true_and_false(
    tmp_path: Path, raw: str, expected: bool
) -> None:
    settings = load_settings(env_in(tmp_path, LANSHOU_SECURE_COOKIES=raw))
    assert settings.secure_cookies is expected


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///var/lanshou.sqlite3",
        "sqlite:////srv/lanshou.sqlite3",
        "postgres://u:p@localhost/lanshou",
        "postgresql:///lanshou?host=/var/run/postgresql",
    ],
)
def test_database_urls_that_name_a_file_or_a_server_are_accepted(tmp_path: Path, url: str) -> None:
    assert load_settings(env_in(tmp_path, LANSHOU_DATABASE_URL=url)).database_url == url


def test_webhook_allowed_hosts_are_names_addresses_and_networks_normalised(tmp_path: Path) -> None:
    raw = " ERP.internal., 10.1.0.0/16,127.0.0.1 , [::1],, fd00::/8, erp.internal"
    settings = load_settings(env_in(tmp_path, LANSHOU_WEBHOOK_ALLOWED_HOSTS=raw))
    assert settings.webhook_allowed_hosts == (
        "erp.internal",
        "10.1.0.0/16",
        "127.0.0.1/32",
        "::1/128",
        "fd00::/8",
    )


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(env_in(tmp_path))
    assert isinstance(settings, Settings)
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]
    assert msgspec.structs.replace(settings, port=9000).port == 9000


# -- bad values ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("LANSHOU_PORT", "abc", "whole number"),
        ("LANSHOU_PORT", "70000", "between 1 and 65535"),
        ("LANSHOU_PORT", "0", "between 1 and 65535"),
        ("LANSHOU_PORT", "80.5", "whole number"),
        ("LANSHOU_DATABASE_URL", "mysql://x", "sqlite:///"),
        ("LANSHOU_DATABASE_URL", "sqlite:///", "names a file"),
        ("LANSHOU_DATABASE_URL", "sqlite://relative.db", "names a file"),
        ("LANSHOU_DATABASE_URL", "postgresql:///lanshou", "needs a host"),
        ("LANSHOU_DATABASE_URL", "lanshou.sqlite3", "sqlite:///"),
        ("LANSHOU_LOG_LEVEL", "loud", "loud"),
        ("LANSHOU_SECURE_COOKIES", "maybe", "true or false"),
        ("LANSHOU_CHANNELS_URL", "amqp://x", "redis://"),
        ("LANSHOU_SECRET_KEY", "too-short", "at least 32 characters"),
        ("LANSHOU_SECRET_KEY", "k" * 31, "at least 32 characters"),
        ("LANSHOU_SCHEDULER_INTERVAL_MS", "5", "between 10 and 60000"),
        ("LANSHOU_MAX_BODY_BYTES", "-1", "between"),
        ("LANSHOU_WEBHOOK_ALLOWED_HOSTS", "*", "host names"),
        ("LANSHOU_WEBHOOK_ALLOWED_HOSTS", "erp.internal, http://erp", "'http://erp'"),
        ("LANSHOU_WEBHOOK_ALLOWED_HOSTS", "10.0.0.1/8", "host bits set"),
        ("LANSHOU_WEBHOOK_ALLOWED_HOSTS", "127.1", "four decimal numbers"),
        ("LANSHOU_WEBHOOK_GIVE_UP_S", "0", "between 1 and"),
    ],
)
def test_a_bad_value_stops_the_start_with_an_error_naming_the_variable(
    tmp_path: Path, name: str, value: str, says: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env_in(tmp_path, **{name: value}))
    message = str(caught.value)
    assert name in message
    assert says in message


def test_the_alert_gateway_is_off_by_default_and_needs_a_url_and_a_secret(tmp_path: Path) -> None:
    settings = load_settings(env_in(tmp_path))
    assert settings.alert_gateway_url == "" and settings.alert_gateway_after_s == 20
    assert settings.alert_gateway_voice_after_s == 0
    on = load_settings(
        env_in(
            tmp_path,
            LANSHOU_ALERT_GATEWAY_URL="https://sms.example.com/lanshou",
            LANSHOU_ALERT_GATEWAY_SECRET="s" * 16,
            LANSHOU_ALERT_GATEWAY_AFTER_S="15",
            LANSHOU_ALERT_GATEWAY_VOICE_AFTER_S="45",
            LANSHOU_ALERT_GATEWAY_ALLOWED_HOSTS="10.1.0.0/16",
        )
    )
    assert (on.alert_gateway_after_s, on.alert_gateway_voice_after_s) == (15, 45)
    assert on.alert_gateway_allowed_hosts == ("10.1.0.0/16",)


@pytest.mark.parametrize(
    ("env", "name", "says"),
    [
        ({"LANSHOU_ALERT_GATEWAY_URL": "ftp://sms.example.com"}, "LANSHOU_ALERT_GATEWAY_URL", "http"),
        ({"LANSHOU_ALERT_GATEWAY_URL": "https://sms.example.com"}, "LANSHOU_ALERT_GATEWAY_SECRET", "16"),
        ({"LANSHOU_ALERT_GATEWAY_AFTER_S": "0"}, "LANSHOU_ALERT_GATEWAY_AFTER_S", "between 1"),
        (
            {"LANSHOU_ALERT_GATEWAY_AFTER_S": "30", "LANSHOU_ALERT_GATEWAY_VOICE_AFTER_S": "30"},
            "LANSHOU_ALERT_GATEWAY_VOICE_AFTER_S",
            "later",
        ),
    ],
)
def test_a_bad_alert_gateway_setting_names_the_variable(
    tmp_path: Path, env: dict[str, str], name: str, says: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env_in(tmp_path, **env))
    assert name in str(caught.value) and says in str(caught.value)


def test_a_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


# -- the generated secret key --------------------------------------------------------------------------


def test_the_secret_key_is_generated_once_private_to_the_owner_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data" / "lanshou"  # does not exist yet
    env = {"LANSHOU_DATA_DIR": str(data_dir)}
    first = load_settings(env)
    key_file = data_dir / "secret_key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first.secret_key) >= 32
    assert key_file.read_text().strip() == first.secret_key

    second = load_settings(env)
    assert second.secret_key == first.secret_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_each_data_dir_gets_its_own_secret_key(tmp_path: Path) -> None:
    one = load_settings({"LANSHOU_DATA_DIR": str(tmp_path / "one")})
    two = load_settings({"LANSHOU_DATA_DIR": str(tmp_path / "two")})
    assert one.secret_key != two.secret_key


def test_a_key_given_in_the_environment_wins_over_the_stored_one(tmp_path: Path) -> None:
    stored = load_settings(env_in(tmp_path)).secret_key
    given = load_settings(env_in(tmp_path, LANSHOU_SECRET_KEY=GOOD_KEY)).secret_key
    assert given == GOOD_KEY != stored
    assert load_settings(env_in(tmp_path)).secret_key == stored


def test_generating_the_key_leaves_only_the_key_file_behind(tmp_path: Path) -> None:
    load_settings(env_in(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key", "vapid_private_key"]


@pytest.mark.parametrize("stored", ["", "\n", "short-key"])
def test_an_empty_or_truncated_stored_key_is_refused_rather_than_used(tmp_path: Path, stored: str) -> None:
    # E.g. left by a crash mid-write: signing sessions with an empty secret would make them forgeable.
    (tmp_path / "secret_key").write_text(stored)
    with pytest.raises(SettingsError) as caught:
        load_settings(env_in(tmp_path))
    assert "LANSHOU_SECRET_KEY" in str(caught.value)
    assert "secret_key" in str(caught.value)


# -- waybill patterns and the photo directory -----------------------------------------------------------


def test_waybill_patterns_are_read_as_named_regexes(tmp_path: Path) -> None:
    from server.domain.contact import DEFAULT_WAYBILL_PATTERNS

    assert load_settings(env_in(tmp_path)).waybill_patterns == DEFAULT_WAYBILL_PATTERNS
    settings = load_settings(env_in(tmp_path, LANSHOU_WAYBILL_PATTERNS=r" SF=^SF\d{12}$ ; YTO=^YT\d{13}$;"))
    assert settings.waybill_patterns == (("SF", r"^SF\d{12}$"), ("YTO", r"^YT\d{13}$"))


@pytest.mark.parametrize("raw", ["SF", "=^SF$", "S F=^SF$", "SF=", "SF=^SF[0-9$"])
def test_a_bad_waybill_pattern_stops_the_server_naming_the_variable(tmp_path: Path, raw: str) -> None:
    with pytest.raises(SettingsError, match="LANSHOU_WAYBILL_PATTERNS"):
        load_settings(env_in(tmp_path, LANSHOU_WAYBILL_PATTERNS=raw))


def test_photos_are_stored_beside_the_data_unless_told_otherwise(tmp_path: Path) -> None:
    assert load_settings(env_in(tmp_path)).photo_dir == str(tmp_path / "photos")
    elsewhere = str(tmp_path / "elsewhere")
    assert load_settings(env_in(tmp_path, LANSHOU_PHOTO_DIR=elsewhere)).photo_dir == elsewhere
