"""The dispatcher's console over HTTP: the page and its partials, who may see it, the zone import form,
the assign / unassign forms and the console's event stream."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.conftest import Api, Personas, SSEStream, login_couriers, make_zone, pickup_body, square

HX = {"HX-Request": "true"}


async def dispatcher(people: Personas) -> Api:
    """The demo dispatcher, signed in, with the CSRF cookie the console's forms need."""
    api = await people.user("dispatch")
    r = await api.get("/console")
    assert r.status_code == 200, r.text
    return api


def csrf(api: Api) -> dict[str, str]:
    return {"x-csrftoken": api.client.cookies["lanshou_csrf"], **HX}


def zone_collection(code: str, **props: Any) -> dict[str, Any]:
    feature = {
        "type": "Feature",
        "geometry": square(113.60, 28.60),
        "properties": {"code": code, "name": f"上传区 {code}", "station": "ST-TX", **props},
    }
    return {"type": "FeatureCollection", "features": [feature]}


async def zone_codes(api: Api) -> set[str]:
    r = await api.get("/api/v1/zones")
    assert r.status_code == 200, r.text
    return {f["properties"]["code"] for f in r.json()["features"]}


async def row_html(api: Api, pickup_id: int, lang: str = "") -> str:
    r = await api.get(f"/console/pickups/{pickup_id}/row" + (f"?lang={lang}" if lang else ""), headers=HX)
    assert r.status_code == 200, r.text
    return r.text


# -- the page and who may see it ---------------------------------------------------------------------------


async def test_the_dispatcher_sees_the_board_in_chinese_by_default(people: Personas) -> None:
    api = await dispatcher(people)
    r = await api.get("/console")
    assert r.headers["content-type"].startswith("text/html")
    assert 'id="board"' in r.text
    assert "待处理" in r.text and "揽投员" in r.text and "片区地图" in r.text
    for section in ("queue", "offered", "held", "closed"):
        assert f'id="rows-{section}"' in r.text
    assert "/static/vendor/leaflet/leaflet.js" in r.text and "/static/vendor/htmx/htmx.min.js" in r.text

    r = await api.get("/console?lang=en")
    assert "Pending queue" in r.text and "Zone map" in r.text
    assert "待处理" not in r.text


async def test_an_anonymous_browser_is_sent_to_the_login_page(people: Personas) -> None:
    anon = people.anonymous()
    r = await anon.get("/console")
    assert r.status_code == 303
    assert r.headers["location"].endswith("/auth/login?next=%2Fconsole")
    # A partial asked for by htmx gets a redirect htmx follows, not a login page swapped into the board.
    r = await anon.get("/console/board", headers=HX)
    assert r.status_code == 401
    assert r.headers["hx-redirect"].startswith("/auth/login?next=")
    r = await anon.get("/console/events")
    assert r.status_code == 303


async def test_signing_in_through_the_form_leads_to_the_console(people: Personas) -> None:
    anon = people.anonymous()
    r = await anon.get("/auth/login?next=/console")
    assert 'name="next" value="/console"' in r.text
    r = await anon.post("/auth/login", data={"username": "dispatch", "password": "demo", "next": "/console"})
    assert r.status_code == 303 and r.headers["location"].endswith("/console")
    r = await anon.get("/console")
    assert r.status_code == 200 and 'id="board"' in r.text


async def test_a_courier_may_not_open_the_console(people: Personas) -> None:
    courier = await people.user("courier01")
    r = await courier.get("/console")
    assert r.status_code == 403
    assert "调度员" in r.text
    r = await courier.get("/console/events")
    assert r.status_code == 403


async def test_console_forms_need_the_csrf_token(people: Personas) -> None:
    api = await dispatcher(people)
    r = await api.post("/console/pickups/unassign", data={"pickup_ids": "1", "reason": "x"}, headers=HX)
    assert r.status_code == 403


# -- the board -------------------------------------------------------------------------------------------


async def test_a_new_pickup_reaches_the_console_stream_and_its_row(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    await login_couriers(people, zone)
    api = await dispatcher(people)
    async with SSEStream(api, path="/console/events") as stream:
        r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
        assert r.status_code == 201, r.text
        created = r.json()
        event = await stream.next_event("pickup.created", pickup_id=created["id"])
        assert event.data["pickup_id"] == created["id"]
    html = await row_html(api, created["id"])
    assert f'id="pickup-{created["id"]}"' in html
    assert created["tracking_code"] in html
    assert 'data-section="offered"' in html
    assert f'data-zone="{zone.code}"' in html
    assert "待接单" in html and "望城区 · 白箬铺镇" in html
    assert "Offered" in await row_html(api, created["id"], lang="en")


async def test_a_pickup_no_zone_matches_waits_in_the_queue(people: Personas) -> None:
    body = pickup_body()
    body["address"].update(
        lat=30.5, lng=114.3, province="湖北省", city="武汉市", district="江岸区", street=""
    )
    r = await people.partner().post("/api/v1/pickups", json=body)
    pickup_id = r.json()["id"]
    api = await dispatcher(people)
    html = await row_html(api, pickup_id)
    assert 'data-section="queue"' in html and "未匹配片区" in html
    # The queue is paged (and shared with every test's unmatched pickups): find this one by its code.
    board = (await api.get(f"/console/board?q={r.json()['tracking_code']}", headers=HX)).text
    queue = board.split('id="rows-queue"')[1].split("</tbody>")[0]
    assert f'id="pickup-{pickup_id}"' in queue


async def test_the_due_time_is_shown_in_shanghai_time(people: Personas) -> None:
    zone = await make_zone(people)
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    due_utc = r.json()["due_at"]
    api = await dispatcher(people)
    html = await row_html(api, r.json()["id"])
    local = datetime.fromisoformat(due_utc.replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Shanghai"))
    assert f">{local:%m-%d %H:%M}</time>" in html
    assert "剩 " in html


async def test_the_board_filters_by_zone(people: Personas) -> None:
    mine, other = await make_zone(people), await make_zone(people)
    partner = people.partner()
    inside = (await partner.post("/api/v1/pickups", json=pickup_body(mine))).json()["id"]
    outside = (await partner.post("/api/v1/pickups", json=pickup_body(other))).json()["id"]
    api = await dispatcher(people)
    board = (await api.get(f"/console/board?zone={mine.code}", headers=HX)).text
    assert f'data-zone="{mine.code}"' in board.split(">")[0]
    assert f'id="pickup-{inside}"' in board and f'id="pickup-{outside}"' not in board
    assert "清除筛选" in board
    page = (await api.get(f"/console?zone={mine.code}")).text
    assert f'id="pickup-{outside}"' not in page


async def test_the_courier_list_shows_duty_load_and_the_last_accept(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    couriers = await login_couriers(people, zone)
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    r = await couriers[0].post(f"/api/v1/courier/pickups/{r.json()['id']}/accept", json={})
    assert r.status_code == 200
    api = await dispatcher(people)
    html = (await api.get("/console/couriers/panel", headers=HX)).text
    row = re.search(rf'<tr id="courier-{zone.courier_ids[0]}".*?</tr>', html, re.S)
    assert row, html
    assert zone.couriers[0] in row.group(0) and "在岗" in row.group(0)
    assert "1/8" in row.group(0)
    assert row.group(0).count("刚刚") == 2  # last seen and last accept


# -- zone import -----------------------------------------------------------------------------------------


async def test_a_broken_geojson_upload_shows_the_errors_and_changes_nothing(people: Personas) -> None:
    api = await dispatcher(people)
    code = f"UP-{uuid.uuid4().hex[:6]}"
    broken = zone_collection(code)
    broken["features"][0]["geometry"]["coordinates"][0].pop()  # the ring no longer closes
    del broken["features"][0]["properties"]["name"]
    files = {"file": ("zones.geojson", json.dumps(broken).encode(), "application/geo+json")}
    r = await api.post("/console/zones", files=files, data={"datum": "wgs84"}, headers=csrf(api))
    assert r.status_code == 422, r.text
    assert 'id="zone-form"' in r.text
    assert "未通过校验" in r.text and "未做任何修改" in r.text
    assert "features[0].properties.name" in r.text and "缺少片区名称" in r.text
    assert "features[0].geometry.coordinates[0]" in r.text and "未闭合" in r.text
    assert "<td>#0</td>" in r.text
    assert code not in await zone_codes(api)

    r = await api.post("/console/zones?lang=en", files=files, data={"datum": "wgs84"}, headers=csrf(api))
    assert r.status_code == 422
    assert "nothing was changed" in r.text and "name is required" in r.text

    r = await api.post("/console/zones", data={"geojson": "{not json"}, headers=csrf(api))
    assert r.status_code == 422 and "不是有效的 JSON" in r.text

    r = await api.post(
        "/console/zones",
        data={"geojson": json.dumps(zone_collection(code, station="NOPE"))},
        headers=csrf(api),
    )
    assert r.status_code == 422 and "网点 NOPE 不存在" in r.text
    assert code not in await zone_codes(api)


async def test_a_good_upload_creates_the_zone(people: Personas) -> None:
    api = await dispatcher(people)
    code = f"UP-{uuid.uuid4().hex[:6]}"
    files = {"file": ("zones.geojson", json.dumps(zone_collection(code)).encode(), "application/geo+json")}
    async with SSEStream(api, path="/console/events") as stream:
        r = await api.post("/console/zones", files=files, data={"datum": "wgs84"}, headers=csrf(api))
        assert r.status_code == 200, r.text
        assert "导入成功：新建 1 个，更新 0 个" in r.text
        assert "zones-changed" in r.headers["hx-trigger"]
        await stream.next_event("zones.changed")
    assert code in await zone_codes(api)
    # A pickup there now matches the new zone.
    body = pickup_body()
    body["address"].update(lng=113.602, lat=28.602)
    assert (await people.partner().post("/api/v1/pickups", json=body)).json()["zone"]["code"] == code


# -- assign, reassign, unassign ----------------------------------------------------------------------------


async def test_the_dispatcher_assigns_and_reassigns_from_the_console(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    await login_couriers(people, zone)
    pickup_id = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()["id"]
    api = await dispatcher(people)
    first, second = zone.courier_ids
    async with SSEStream(api, path="/console/events") as stream:
        r = await api.post(
            "/console/pickups/assign",
            data={"pickup_ids": [str(pickup_id)], "courier_id": str(first), "reason": "客户指定"},
            headers=csrf(api),
        )
        assert r.status_code == 200, r.text
        assert f"已派给 {zone.couriers[0]}：1 单" in r.text
        await stream.next_event("pickup.assigned", pickup_id=pickup_id)
        html = await row_html(api, pickup_id)
        assert 'data-section="held"' in html and zone.couriers[0] in html

        r = await api.post(
            "/console/pickups/assign",
            data={"pickup_ids": [str(pickup_id)], "courier_id": str(second), "reason": "原揽投员请假"},
            headers=csrf(api),
        )
        assert r.status_code == 200, r.text
        await stream.next_event("pickup.reassigned", pickup_id=pickup_id)
        assert zone.couriers[1] in await row_html(api, pickup_id)

        r = await api.post(
            "/console/pickups/unassign",
            data={"pickup_ids": [str(pickup_id)], "reason": "重新派发"},
            headers=csrf(api),
        )
        assert r.status_code == 200, r.text
        assert "已撤回 1 单" in r.text
        await stream.next_event("pickup.unassigned", pickup_id=pickup_id)
    html = await row_html(api, pickup_id)
    assert zone.couriers[1] not in html and 'data-section="held"' not in html


async def test_a_refused_assignment_shows_the_reason_in_the_page_language(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    pickup_id = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()["id"]
    api = await dispatcher(people)
    form = {"pickup_ids": [str(pickup_id)], "courier_id": str(zone.courier_ids[0]), "reason": "试试"}
    r = await api.post("/console/pickups/assign", data=form, headers=csrf(api))
    assert r.status_code == 422
    assert "该揽投员不在岗" in r.text and 'role="alert"' in r.text
    r = await api.post("/console/pickups/assign?lang=en", data=form, headers=csrf(api))
    assert "This courier is off duty" in r.text
    r = await api.post("/console/pickups/assign", data={"reason": "x", "courier_id": "1"}, headers=csrf(api))
    assert r.status_code == 422 and "请先勾选运单" in r.text
    r = await api.post("/console/pickups/assign", data={**form, "reason": " "}, headers=csrf(api))
    assert r.status_code == 422 and "请填写原因" in r.text
    # Nothing changed: with nobody on duty the pickup went straight up to the dispatcher and stays there.
    html = await row_html(api, pickup_id)
    assert 'data-section="queue"' in html and "已升级至调度" in html


async def test_without_htmx_a_form_answers_with_the_whole_page(people: Personas) -> None:
    api = await dispatcher(people)
    token = api.client.cookies["lanshou_csrf"]
    r = await api.post("/console/pickups/assign", data={"_csrf_token": token, "reason": "x"})
    assert r.status_code == 422
    assert 'id="board"' in r.text and "请先勾选运单" in r.text


def test_every_geojson_problem_is_said_in_chinese() -> None:
    """If geo.py rewords a message, the console's Chinese falls back to English: this notices."""
    from server.console.controller import localise_geo_message
    from server.domain.geo import GeoJSONError, parse_zone_collection

    def feature(code: str, geometry: Any, **props: Any) -> dict[str, Any]:
        return {"type": "Feature", "geometry": geometry, "properties": {"code": code, "name": code, **props}}

    def polygon(*ring: list[float]) -> dict[str, Any]:
        return {"type": "Polygon", "coordinates": [list(ring)]}

    good = square(113.0, 28.0)
    broken = [
        "not a collection",
        {"type": "FeatureCollection"},
        {
            "type": "FeatureCollection",
            "features": [
                1,
                {"type": "Feature", "properties": 5, "geometry": None},
                {
                    "type": "Feature",
                    "properties": {"code": "", "name": 3, "priority": "x", "admin_areas": "a", "station": 3},
                    "geometry": {"type": "Point", "coordinates": [1, 2]},
                },
                feature("A", polygon([28.0, 113.0], [28.0, 113.01], [28.01, 113.01], [28.0, 113.0])),
                feature("A", polygon([200, 28], [113, 95], ["a", 1], [113, 28]), admin_areas=[""]),
                feature("B", polygon([113, 28], [113.01, 28.01], [113.01, 28], [113, 28.01], [113, 28])),
                feature("C", polygon([113, 28], [113.01, 28])),
                feature("D", polygon(*good["coordinates"][0][:-1], [113.0, 28.001])),
                feature("E", {"type": "MultiPolygon", "coordinates": [good["coordinates"]] * 2}),
                feature("F", None),
                feature("G", polygon([45.2, 80.1], [45.3, 80.1], [45.3, 80.2], [45.2, 80.1])),
                feature("H", polygon(*([[500, 500]] * 12))),
            ],
        },
    ]
    seen = 0
    for collection in broken:
        try:
            parse_zone_collection(collection)
        except GeoJSONError as exc:
            for error in exc.errors:
                seen += 1
                said = localise_geo_message(error.message, "zh-CN")
                assert said != error.message, error.message
                assert localise_geo_message(error.message, "en") == error.message
    assert seen > 20


async def test_the_console_links_to_an_export_that_imports_back_unchanged(people: Personas) -> None:
    api = await dispatcher(people)
    page = (await api.get("/console")).text
    assert 'id="zone-export" href="/api/v1/zones"' in page
    exported = (await api.get("/api/v1/zones")).json()
    assert exported["type"] == "FeatureCollection" and exported["features"]
    r = await api.put("/api/v1/zones", json=exported)  # a round trip changes nothing
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 0
    assert (await api.get("/api/v1/zones")).json() == exported


# -- what the browser receives: text stays text, a strict policy, files in the encodings people save ------

HOSTILE_NAME = "<img src=x onerror=\"window.__xss='name'\"><script>window.__xss='script'</script>"


async def test_a_zone_name_with_markup_reaches_the_board_as_text(people: Personas) -> None:
    zone = await make_zone(people, name=HOSTILE_NAME)
    pickup_id = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()["id"]
    api = await dispatcher(people)
    html = await row_html(api, pickup_id)
    assert "&lt;img src=x onerror=" in html and "&lt;script&gt;" in html
    assert "<img" not in html and "<script" not in html
    board = (await api.get(f"/console/board?zone={zone.code}", headers=HX)).text
    assert "&lt;img src=x" in board and "<img" not in board


def csp_directives(response: Any) -> dict[str, list[str]]:
    policy = response.headers["content-security-policy"]
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        if part.strip():
            name, *values = part.split()
            out[name] = values
    return out


def assert_strict_policy(response: Any) -> None:
    """No inline script, nothing framed, nothing sniffed: what every HTML page must carry."""
    d = csp_directives(response)
    assert d["default-src"] == ["'self'"]
    assert d["script-src"] == ["'self'"]
    assert d["object-src"] == ["'none'"] and d["base-uri"] == ["'self'"]
    assert d["frame-ancestors"] == ["'none'"] and d["form-action"] == ["'self'"]
    assert d["connect-src"] == ["'self'"]
    assert d["style-src"] == ["'self'"]  # no 'unsafe-inline'
    assert "'self'" in d["img-src"] and "data:" in d["img-src"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"


async def test_every_page_carries_a_policy_without_inline_script(people: Personas) -> None:
    api = await dispatcher(people)
    console = await api.get("/console")
    assert_strict_policy(console)
    # The default tiles come from OpenStreetMap: the map must still be allowed to show them.
    assert "https://tile.openstreetmap.org" in csp_directives(console)["img-src"]
    assert_strict_policy(await people.anonymous().get("/auth/login"))
    assert_strict_policy(await (await people.user("courier01")).get("/console"))
    assert_strict_policy(await api.get("/console/board", headers=HX))
    failed = await people.anonymous().post("/auth/login", data={"username": "dispatch", "password": "no"})
    assert failed.status_code == 401
    assert_strict_policy(failed)
    assert_strict_policy(await api.get("/schema"))
    # Everything else is at least never sniffed into HTML or framed: JSON, errors, static files.
    for r in (
        await api.get("/api/v1/zones"),
        await api.get("/no/such/page"),
        await api.get("/static/console.js"),
        await people.anonymous().get("/api/v1/me"),
    ):
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["x-frame-options"] == "DENY", r.url


def test_the_policy_allows_the_configured_tile_host_and_nothing_else() -> None:
    from server.security_headers import content_security_policy

    def img_src(tile_url: str) -> list[str]:
        for part in content_security_policy(tile_url).split(";"):
            name, *values = part.split()
            if name == "img-src":
                return values
        raise AssertionError("no img-src")

    assert img_src("https://tile.openstreetmap.org/{z}/{x}/{y}.png")[2:] == ["https://tile.openstreetmap.org"]
    assert img_src("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png")[2:] == [
        "https://*.tile.openstreetmap.org"
    ]
    amap = "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&x={x}&y={y}&z={z}&style=8"
    assert img_src(amap)[2:] == ["https://*.is.autonavi.com"]
    assert img_src("http://10.0.0.5:8080/tiles/{z}/{x}/{y}.png")[2:] == ["http://10.0.0.5:8080"]
    assert img_src("/tiles/{z}/{x}/{y}.png") == ["'self'", "data:"]  # served by ourselves
    # A value that would smuggle a directive into the header adds nothing.
    assert img_src("https://evil.example; script-src *;/{z}/{x}/{y}.png") == ["'self'", "data:"]
    assert img_src("javascript:alert(1)") == ["'self'", "data:"]


async def test_a_courier_gets_a_proper_page_saying_the_console_is_not_for_them(people: Personas) -> None:
    courier = await people.user("courier01")
    r = await courier.get("/console")
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/html")
    assert '<link rel="stylesheet" href="/static/app.css">' in r.text
    assert "<title>" in r.text and 'lang="zh-CN"' in r.text
    assert "调度台仅限调度员和管理员使用" in r.text
    assert 'href="/auth/login?next=%2Fconsole"' in r.text
    r = await courier.get("/console?lang=en")
    assert r.status_code == 403 and 'lang="en"' in r.text
    assert "The console is for dispatchers and admins" in r.text
    assert 'href="/auth/login?next=%2Fconsole%3Flang%3Den&amp;lang=en"' in r.text


def gbk_collection(code: str) -> dict[str, Any]:
    return zone_collection(code, name=f"天心区·坡子街 {code}")


async def test_zone_files_saved_with_a_bom_or_in_gbk_are_imported(people: Personas) -> None:
    api = await dispatcher(people)
    for encoding in ("utf-8-sig", "gbk", "gb18030", "utf-16"):
        code = f"ENC-{uuid.uuid4().hex[:6]}"
        raw = json.dumps(gbk_collection(code), ensure_ascii=False).encode(encoding)
        files = {"file": ("zones.geojson", raw, "application/geo+json")}
        r = await api.post("/console/zones", files=files, data={"datum": "wgs84"}, headers=csrf(api))
        assert r.status_code == 200, (encoding, r.text)
        assert "导入成功：新建 1 个" in r.text
        names = {
            f["properties"]["code"]: f["properties"]["name"]
            for f in (await api.get("/api/v1/zones")).json()["features"]
        }
        assert names[code] == f"天心区·坡子街 {code}", encoding


async def test_a_file_in_an_unknown_encoding_gets_a_form_error(people: Personas) -> None:
    api = await dispatcher(people)
    # 0x80 and 0xFF start no character in UTF-8 or in GB18030.
    raw = b'{"type": "FeatureCollection", "features": [], "name": "\x80\xff"}'
    for lang, said in (("", "无法识别文件编码"), ("?lang=en", "Unknown file encoding")):
        files = {"file": ("zones.geojson", raw, "application/geo+json")}
        r = await api.post(f"/console/zones{lang}", files=files, headers=csrf(api))
        assert r.status_code == 422, r.text
        assert 'id="zone-form"' in r.text and said in r.text
    # The pasted text too, when a hand-made request sends it in bytes that are not UTF-8.
    body = b'--XX\r\nContent-Disposition: form-data; name="geojson"\r\n\r\n\x80\xff\r\n--XX--\r\n'
    headers = {**csrf(api), "content-type": "multipart/form-data; boundary=XX"}
    r = await api.post("/console/zones", content=body, headers=headers)
    assert r.status_code == 422, r.text
    assert 'id="zone-form"' in r.text and "无法识别文件编码" in r.text


async def test_deeply_nested_json_gets_a_form_error(people: Personas) -> None:
    api = await dispatcher(people)
    code = f"DEEP-{uuid.uuid4().hex[:6]}"
    deep_property = zone_collection(code)
    deep_property["features"][0]["properties"]["extra"] = json.loads("[" * 200 + "]" * 200)
    for text in ("[" * 100_000 + "]" * 100_000, json.dumps(deep_property)):
        r = await api.post("/console/zones", data={"geojson": text}, headers=csrf(api))
        assert r.status_code == 422, r.text[:300]
        assert 'id="zone-form"' in r.text and "嵌套过深" in r.text
    assert code not in await zone_codes(api)


async def test_a_file_over_the_upload_limit_gets_a_form_error(people: Personas) -> None:
    api = await dispatcher(people)
    # Past the console's 8 MiB for zone files (and the JSON API's 1 MiB).
    huge = b" " * (8 * 1024 * 1024 + 1) + json.dumps(zone_collection("HUGE")).encode()
    files = {"file": ("zones.geojson", huge, "application/geo+json")}
    r = await api.post("/console/zones", files=files, headers=csrf(api))
    assert r.status_code == 413, r.text[:300]
    assert 'id="zone-form"' in r.text and "文件太大" in r.text
    r = await api.post("/console/zones?lang=en", files=files, headers=csrf(api))
    assert r.status_code == 413 and "The file is too large" in r.text
