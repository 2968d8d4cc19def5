"""Signing in and out, who may call what, and partners kept apart from each other's pickups."""

from __future__ import annotations

import re
import sqlite3
import uuid

import httpx

from tests.conftest import ON_POSTGRES, Database, Personas, pickup_body


def api_key_in(cli_output: str) -> str:
    match = re.search(r"(lsk_[A-Za-z0-9_\-]+)", cli_output)
    assert match, cli_output
    return match.group(1)


def assert_json_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    assert r.json()["code"] == code, r.json()
    assert r.json()["message"]


def session_cookie_header(r: httpx.Response) -> str:
    headers = [h for h in r.headers.get_list("set-cookie") if h.startswith("lanshou_session=")]
    assert len(headers) == 1, r.headers
    return headers[0]


# -- signing in ----------------------------------------------------------------------------------------------


async def test_json_sign_in_returns_the_principal_and_a_session(people: Personas) -> None:
    dispatcher = people.anonymous()
    r = await dispatcher.post("/auth/login", json={"username": "dispatch", "password": "demo"})
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "dispatcher"
    assert r.json()["kind"] == "user"
    r = await dispatcher.get("/api/v1/me")
    assert r.status_code == 200
    assert r.json()["role"] == "dispatcher"


async def test_a_wrong_password_is_401_with_a_json_error(people: Personas) -> None:
    mallory = people.anonymous()
    r = await mallory.post("/auth/login", json={"username": "dispatch", "password": "guess"})
    assert_json_error(r, 401, "not_authenticated")
    assert "lanshou_session" not in r.headers.get("set-cookie", "")
    assert (await mallory.get("/api/v1/me")).status_code == 401


async def test_an_unknown_user_gets_the_same_401_as_a_wrong_password(people: Personas) -> None:
    mallory = people.anonymous()
    wrong_password = await mallory.post("/auth/login", json={"username": "dispatch", "password": "guess"})
    unknown_user = await mallory.post("/auth/login", json={"username": "nobody-here", "password": "guess"})
    assert_json_error(unknown_user, 401, "not_authenticated")
    # The same answer either way: sign-in must not tell which usernames exist.
    assert unknown_user.json() == wrong_password.json()


async def test_a_json_sign_in_without_a_password_names_the_field(people: Personas) -> None:
    r = await people.anonymous().post("/auth/login", json={"username": "dispatch"})
    assert_json_error(r, 422, "validation_error")
    assert [e["field"] for e in r.json()["errors"]] == ["password"]


async def test_a_form_sign_in_redirects_with_a_session_cookie(people: Personas) -> None:
    browser = people.anonymous()
    r = await browser.post("/auth/login", data={"username": "courier01", "password": "demo"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/app"
    session_cookie_header(r)
    r = await browser.get("/api/v1/me")
    assert r.status_code == 200
    assert r.json()["role"] == "courier"


async def test_a_form_sign_in_goes_back_to_a_same_site_next_page_only(people: Personas) -> None:
    r = await people.anonymous().post(
        "/auth/login", data={"username": "dispatch", "password": "demo", "next": "/console?zone=3"}
    )
    assert r.headers["location"] == "/console?zone=3"
    r = await people.anonymous().post(
        "/auth/login", data={"username": "dispatch", "password": "demo", "next": "//evil.example/x"}
    )
    assert r.headers["location"] == "/console"


async def test_a_wrong_password_in_the_form_shows_the_page_again_in_chinese(people: Personas) -> None:
    r = await people.anonymous().post("/auth/login", data={"username": "dispatch", "password": "guess"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("text/html")
    assert "用户名或密码错误" in r.text
    assert 'value="dispatch"' in r.text  # the username is kept, the password is not
    assert "guess" not in r.text
    assert "lanshou_session" not in r.headers.get("set-cookie", "")


async def test_a_wrong_password_in_the_form_speaks_english_when_asked(people: Personas) -> None:
    r = await people.anonymous().post(
        "/auth/login?lang=en", data={"username": "dispatch", "password": "guess"}
    )
    assert r.status_code == 401
    assert "Wrong username or password" in r.text
    assert "用户名或密码错误" not in r.text


async def test_the_session_cookie_is_httponly_and_samesite_lax(people: Personas) -> None:
    r = await people.anonymous().post("/auth/login", json={"username": "courier02", "password": "demo"})
    attributes = [a.strip().lower() for a in session_cookie_header(r).split(";")]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes


async def test_signing_in_never_reuses_a_session_id_planted_beforehand(people: Personas) -> None:
    # Session fixation: Mallory plants a cookie of her choosing in Wang's browser, Wang signs in, and
    # Mallory's copy of that cookie must not be signed in as Wang.
    planted = "f1" * 32
    wang = people.anonymous()
    wang.cookies.set("lanshou_session", planted)
    r = await wang.post("/auth/login", json={"username": "courier06", "password": "demo"})
    assert r.status_code == 200, r.text
    assert planted not in session_cookie_header(r)
    assert (await wang.get("/api/v1/me")).json()["name"]

    mallory = people.anonymous()
    mallory.cookies.set("lanshou_session", planted)
    assert_json_error(await mallory.get("/api/v1/me"), 401, "not_authenticated")


async def test_calls_without_a_session_get_no_session_cookie(people: Personas) -> None:
    # Each such cookie used to be a row written to the sessions table: one per partner API call.
    r = await people.partner().get("/api/v1/pickups")
    assert r.status_code == 200
    assert "lanshou_session" not in r.headers.get("set-cookie", "")
    r = await people.anonymous().get("/health")
    assert "lanshou_session" not in r.headers.get("set-cookie", "")


async def session_data(db: Database, key: str, new: str | None = None) -> str:
    """The session row's stored data, read straight from the database (and first set to `new`)."""
    if ON_POSTGRES:
        import asyncpg

        conn = await asyncpg.connect(db.url)
        try:
            if new is not None:
                await conn.execute("UPDATE sessions SET data = $1 WHERE key = $2", new, key)
            return str(await conn.fetchval("SELECT data FROM sessions WHERE key = $1", key))
        finally:
            await conn.close()
    with sqlite3.connect(db.url.removeprefix("sqlite:///"), timeout=10) as conn:
        if new is not None:
            conn.execute("UPDATE sessions SET data = ? WHERE key = ?", (new, key))
        return str(conn.execute("SELECT data FROM sessions WHERE key = ?", (key,)).fetchone()[0])


async def test_a_request_that_leaves_the_session_as_it_was_does_not_write_it(
    people: Personas, db: Database
) -> None:
    # Every response used to write the session row back: a write per courier action, and thousands at
    # once when the apps' streams reconnect after a restart.
    courier = await people.user("courier04")
    key = courier.cookies.get("lanshou_session")
    assert key
    stored = await session_data(db, key)
    # The same session in a spelling the server never writes: a write would put its own back.
    respelt = stored.replace(":", " : ")
    assert respelt != stored
    await session_data(db, key, respelt)
    r = await courier.get("/api/v1/courier/pickups")
    assert r.status_code == 200
    assert session_cookie_header(r).startswith(f"lanshou_session={key};")  # the cookie still goes out
    assert await session_data(db, key) == respelt
    assert (await courier.get("/api/v1/me")).status_code == 200  # and the session still works


async def test_signing_out_ends_the_session_for_good(people: Personas) -> None:
    courier = await people.user("courier03")
    stolen_cookie = courier.cookies.get("lanshou_session")
    assert stolen_cookie
    r = await courier.post("/auth/logout", json={})
    assert r.status_code == 200
    assert_json_error(await courier.get("/api/v1/courier/pickups"), 401, "not_authenticated")
    # The session is gone from the server, not just from this client's cookie jar.
    replay = people.anonymous()
    replay.cookies.set("lanshou_session", stolen_cookie)
    assert_json_error(await replay.get("/api/v1/me"), 401, "not_authenticated")


async def test_a_user_made_with_the_cli_can_sign_in_and_me_shows_no_hash(
    people: Personas, db: Database
) -> None:
    username = f"sun-{uuid.uuid4().hex[:6]}"
    db.cli("user", "create", "--username", username, "--role", "dispatcher", "--password", "s3cret-pw")
    sun = people.anonymous()
    assert (
        await sun.post("/auth/login", json={"username": username, "password": "s3cret-pw!"})
    ).status_code == 401
    await sun.login(username, "s3cret-pw")
    r = await sun.get("/api/v1/me")
    assert r.status_code == 200
    me = r.json()
    assert me["role"] == "dispatcher"
    assert set(me) == {"kind", "id", "name", "role", "courier_id", "station_id"}
    assert "argon2" not in r.text and "s3cret" not in r.text


# -- what sign-in accepts -------------------------------------------------------------------------------------


async def test_a_login_body_that_is_not_utf8_is_400(people: Personas) -> None:
    r = await people.anonymous().post(
        "/auth/login",
        content=b'{"username": "dispatch", "password": "\xff\xfe"}',
        headers={"content-type": "application/json"},
    )
    assert_json_error(r, 400, "malformed_body")


async def test_a_nul_in_the_username_or_password_is_422_naming_each_field(people: Personas) -> None:
    # PostgreSQL refuses NUL in text: it must never reach a query.
    r = await people.anonymous().post(
        "/auth/login", json={"username": "dis\u0000patch", "password": "x\u0000"}
    )
    assert_json_error(r, 422, "validation_error")
    assert [e["field"] for e in r.json()["errors"]] == ["username", "password"]


async def test_credentials_that_cannot_exist_are_422_before_any_look_up(people: Personas) -> None:
    client = people.anonymous()
    cases: list[tuple[dict[str, object], str]] = [
        ({"username": "a" * 10_000, "password": "demo"}, "username"),
        ({"username": "   ", "password": "demo"}, "username"),
        ({"username": "dis\tpatch", "password": "demo"}, "username"),
        ({"username": "dispatch", "password": "p" * 5000}, "password"),
        ({"username": "dispatch", "password": ""}, "password"),
        ({"username": 7, "password": "demo"}, "username"),
        ({"username": None, "password": "demo"}, "username"),
        ({"username": {"$ne": ""}, "password": "demo"}, "username"),
        ({"username": "dispatch", "password": ["demo"]}, "password"),
    ]
    for body, field in cases:
        r = await client.post("/auth/login", json=body)
        assert_json_error(r, 422, "validation_error")
        assert [e["field"] for e in r.json()["errors"]] == [field], (body, r.json())


async def test_a_login_body_over_the_size_limit_is_413(people: Personas) -> None:
    r = await people.anonymous().post(
        "/auth/login", json={"username": "dispatch", "password": "x" * 2_000_000}
    )
    assert_json_error(r, 413, "body_too_large")


async def test_hostile_form_sign_ins_show_the_page_with_400(people: Personas) -> None:
    client = people.anonymous()
    for data, status in [
        (b"username=dis%00patch&password=demo", 400),
        (b"username=dispatch&password=de%00mo", 400),
        (b"username=" + b"a" * 100_000 + b"&password=demo", 400),
        (b"username=%FF%FE&password=%FF", 401),  # not UTF-8: decoded with replacement characters
    ]:
        r = await client.post(
            "/auth/login", content=data, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert r.status_code == status, (data[:40], r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("text/html")
        assert "lanshou_session" not in r.headers.get("set-cookie", "")
    # A file where the username should be.
    r = await client.post(
        "/auth/login", files={"username": ("name.txt", b"dispatch")}, data={"password": "demo"}
    )
    assert r.status_code == 400, r.text
    assert "用户名或密码格式不正确" in r.text


# -- who may call what -------------------------------------------------------------------------------------


async def test_anonymous_calls_to_the_api_are_401_json(people: Personas) -> None:
    stranger = people.anonymous()
    assert_json_error(await stranger.get("/api/v1/pickups"), 401, "not_authenticated")
    assert_json_error(await stranger.post("/api/v1/pickups", json=pickup_body()), 401, "not_authenticated")
    assert_json_error(await stranger.get("/api/v1/courier/pickups"), 401, "not_authenticated")
    assert_json_error(await stranger.get("/api/v1/me"), 401, "not_authenticated")


async def test_a_courier_cannot_create_pickups(people: Personas) -> None:
    courier = await people.user("courier04")
    r = await courier.post("/api/v1/pickups", json=pickup_body(partner_order_no="COURIER-TRIES"))
    assert_json_error(r, 403, "forbidden")


async def test_a_partner_cannot_use_the_courier_api(people: Personas) -> None:
    shop = people.partner()
    assert_json_error(await shop.get("/api/v1/courier/pickups"), 403, "forbidden")
    assert_json_error(await shop.post("/api/v1/courier/duty", json={"on_duty": True}), 403, "forbidden")


async def test_a_garbage_api_key_is_401(people: Personas) -> None:
    forger = people.partner("lsk_" + "A" * 43)
    assert_json_error(await forger.get("/api/v1/pickups"), 401, "not_authenticated")
    not_even_a_key = people.partner("hunter2")
    assert_json_error(await not_even_a_key.get("/api/v1/pickups"), 401, "not_authenticated")


async def test_a_rotated_api_key_stops_working(people: Personas, db: Database) -> None:
    code = f"rotate-{uuid.uuid4().hex[:6]}"
    old_key = api_key_in(db.cli("partner", "create", "--code", code))
    new_key = api_key_in(db.cli("partner", "create", "--code", code))
    assert new_key != old_key
    assert_json_error(await people.partner(old_key).get("/api/v1/pickups"), 401, "not_authenticated")
    assert (await people.partner(new_key).get("/api/v1/pickups")).status_code == 200


async def test_a_cookie_session_cannot_post_a_form_to_the_api(people: Personas) -> None:
    # A cross-site page can post a form with the user's cookie, but not a JSON body.
    courier = await people.user("courier05")
    r = await courier.post("/api/v1/courier/duty", data={"on_duty": "true"})
    assert_json_error(r, 403, "forbidden")
    r = await courier.post(
        "/api/v1/courier/duty", content=b'{"on_duty": true}', headers={"content-type": "text/plain"}
    )
    assert_json_error(r, 403, "forbidden")
    r = await courier.post("/api/v1/courier/duty", json={"on_duty": False})
    assert r.status_code == 200, r.text


# -- partners kept apart -------------------------------------------------------------------------------------


async def test_a_partner_cannot_see_another_partners_pickup(people: Personas, db: Database) -> None:
    demo_shop = people.partner()
    r = await demo_shop.post("/api/v1/pickups", json=pickup_body(partner_order_no=f"MINE-{uuid.uuid4().hex}"))
    assert r.status_code == 201, r.text
    pickup_id = r.json()["id"]

    other_shop = people.partner(api_key_in(db.cli("partner", "create", "--code", "other-shop")))
    r = await other_shop.get(f"/api/v1/pickups/{pickup_id}")
    assert_json_error(r, 404, "not_found")  # 404, not 403: ids must not reveal what exists
    r = await other_shop.get("/api/v1/pickups", params={"limit": 200})
    assert r.status_code == 200
    assert pickup_id not in [p["id"] for p in r.json()["items"]]
    assert (await demo_shop.get(f"/api/v1/pickups/{pickup_id}")).status_code == 200
