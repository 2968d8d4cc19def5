"""The API's error messages in the caller's language: Chinese when Accept-Language prefers Chinese (or
?lang=zh-CN), today's English otherwise; `code` and `field` the same in both (server/api_language.py).

Each test sends one kind of bad request twice, in Chinese and without a language, and compares."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Api, Database, Personas, ServerProcess, make_zone, pickup_body, square
from tests.test_partner_keys import api_key_in

ZH = {"accept-language": "zh-CN,zh;q=0.9,en;q=0.8"}


def order_no() -> str:
    return f"LANG-{uuid.uuid4().hex[:10]}"


async def both(api: Api, method: str, url: str, **request: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The error body in Chinese and in English; the same status, code and fields in each."""
    headers = request.pop("headers", {})
    zh = await api.request(method, url, headers={**headers, **ZH}, **request)
    en = await api.request(method, url, headers=headers, **request)
    assert zh.status_code == en.status_code and zh.status_code >= 400, (zh.text, en.text)
    assert "Accept-Language" in zh.headers.get("vary", ""), zh.headers
    zh_body, en_body = zh.json(), en.json()
    assert zh_body["code"] == en_body["code"], (zh_body, en_body)
    assert [e["field"] for e in zh_body["errors"]] == [e["field"] for e in en_body["errors"]]
    return zh_body, en_body


def messages(body: dict[str, Any]) -> dict[str, str]:
    return {e["field"]: e["message"] for e in body["errors"]}


async def test_field_shapes_are_explained_in_chinese_and_stay_english_otherwise(people: Personas) -> None:
    body = pickup_body(partner_order_no=order_no(), parcel_count="two", parcels=3)
    del body["address"]["city"]
    body["sender"]["name"] = "字" * 100
    zh, en = await both(people.partner(), "POST", "/api/v1/pickups", json=body)
    assert messages(zh) == {
        "parcels": "未知字段",
        "address.city": "此字段为必填项",
        "parcel_count": "类型错误：应为 `int`，实际为 `str`",
        "sender.name": "长度不得超过 64",
    }, zh
    assert messages(en) == {
        "parcels": "unknown field",
        "address.city": "this field is required",
        "parcel_count": "Expected `int`, got `str`",
        "sender.name": "Expected `str` of length <= 64",
    }, en
    assert zh["message"].startswith("请求无效：") and "address.city：此字段为必填项" in zh["message"]
    assert en["message"] == "invalid request: " + "; ".join(f"{f}: {m}" for f, m in messages(en).items())


async def test_range_pattern_and_choice_problems_keep_their_limits_in_chinese(people: Personas) -> None:
    body = pickup_body(partner_order_no=order_no(), parcel_count=0)
    body["address"].update(lat=28.19, lng=112.97, datum="baidu")
    body["sender"]["phone"] = "0731-84561234"
    zh, en = await both(people.partner(), "POST", "/api/v1/pickups", json=body)
    zh_messages = messages(zh)
    assert zh_messages["parcel_count"] == "不得小于 1"
    assert zh_messages["sender.phone"] == "不是中国大陆手机号（11 位，1[3-9] 开头，可加 +86）"
    assert (
        zh_messages["address.datum"].startswith("须为以下之一：") and "gcj02" in zh_messages["address.datum"]
    )
    assert messages(en)["parcel_count"] == "Expected `int` >= 1"
    assert messages(en)["address.datum"].startswith("one of: ")


async def test_pickup_checks_windows_points_and_divisions_in_chinese(people: Personas) -> None:
    now = datetime.now(UTC)
    shop = people.partner()
    ends_first = {"start": "2030-05-01T14:00:00+08:00", "end": "2030-05-01T13:00:00+08:00"}
    far = {
        "start": (now + timedelta(days=40)).isoformat(),
        "end": (now + timedelta(days=40, hours=2)).isoformat(),
    }
    over = {"start": (now - timedelta(hours=3)).isoformat(), "end": (now - timedelta(hours=2)).isoformat()}
    naive = {"start": "2030-05-01T14:00:00", "end": "2030-05-01T16:00:00"}
    expected = {
        "window.end": ("时间窗的结束时间必须晚于开始时间", "the window must end after it starts", ends_first),
        "window.start": (
            "时间窗的开始时间不能晚于 30 天之后",
            "the window starts more than 30 days ahead",
            far,
        ),
    }
    for field, (zh_text, en_text, window) in expected.items():
        zh, en = await both(shop, "POST", "/api/v1/pickups", json=pickup_body(window=window))
        assert messages(zh) == {field: zh_text} and messages(en) == {field: en_text}
    zh, en = await both(shop, "POST", "/api/v1/pickups", json=pickup_body(window=over))
    assert messages(zh) == {"window.end": "时间窗已经结束"}
    zh, _ = await both(shop, "POST", "/api/v1/pickups", json=pickup_body(window=naive))
    assert messages(zh)["window.start"] == "需要带 UTC 时差，例如 2026-11-25T14:00:00+08:00"

    body = pickup_body(partner_order_no=order_no())
    body["address"].update(city="长春市", lat=28.19)
    zh, en = await both(shop, "POST", "/api/v1/pickups", json=body)
    assert messages(zh)["address.lng"] == "lat 和 lng 须同时提供或同时省略"
    assert messages(en)["address.lng"] == "give both lat and lng, or neither"
    assert messages(zh)["address.city"].startswith("湖南省没有城市 '长春市'（例如 "), zh
    assert messages(en)["address.city"].startswith("湖南省 has no city '长春市' (e.g. "), en


async def test_one_line_address_problems_in_chinese(people: Personas) -> None:
    body = pickup_body(partner_order_no=order_no(), address="asdf qwer !!!")
    zh, en = await both(people.partner(), "POST", "/api/v1/pickups", json=body)
    assert messages(zh)["address.province"] == "一行地址中没有找到省份：请写明（例如 湖南省长沙市开福区…）"
    assert messages(en)["address.province"] == (
        "no province found in the one-line address: name it (e.g. 湖南省长沙市开福区…)"
    )
    zh, _ = await both(
        people.partner(), "POST", "/api/v1/pickups", json={**body, "address": "朝阳区建国路88号"}
    )
    assert "是多个城市都有的区名" in messages(zh)["address.city"] and "北京市" in messages(zh)["address.city"]


async def test_the_body_itself_refused_in_chinese(people: Personas) -> None:
    shop = people.partner()
    json_type = {"content-type": "application/json"}
    zh, en = await both(shop, "POST", "/api/v1/pickups", content=b'{"sender": {', headers=json_type)
    assert zh["code"] == "malformed_body"
    assert zh["message"] == "请求体不是有效的 JSON：数据不完整（被截断）"
    assert en["message"] == "the request body is not valid JSON: Input data was truncated"
    zh, en = await both(shop, "POST", "/api/v1/pickups", data={"sender": "李四"})
    assert zh["code"] == "unsupported_media_type" and zh["message"].startswith("请以 JSON 发送请求体")
    big = pickup_body(partner_order_no=order_no(), note="字" * 400_000)
    zh, en = await both(shop, "POST", "/api/v1/pickups", json=big)
    assert zh["code"] == "body_too_large"
    assert zh["message"].startswith("请求体超过允许的 ") and zh["message"].endswith(" 字节")
    assert en["message"].startswith("the request body is larger than the ")


async def test_generic_messages_and_not_found_in_chinese_and_lang_in_the_query(people: Personas) -> None:
    shop = people.partner()
    zh, en = await both(shop, "GET", "/api/v1/pickups/999999999")
    assert (zh["message"], en["message"]) == ("未找到取件单", "pickup not found")
    r = await shop.get("/api/v1/pickups/999999999", params={"lang": "zh-CN"})
    assert r.json()["message"] == "未找到取件单"
    r = await shop.get("/api/v1/pickups/999999999", headers={"accept-language": "en-US,en;q=0.9,zh;q=0.8"})
    assert r.json()["message"] == "pickup not found"
    zh, en = await both(shop, "GET", "/api/v1/no-such-route")
    assert zh["code"] == "not_found" and zh["message"] == "未找到" and en["message"] != zh["message"]
    zh, en = await both(people.anonymous(), "GET", "/api/v1/pickups")
    assert zh["code"] == "not_authenticated" and zh["message"] != en["message"], (zh, en)


async def test_refusals_of_pickups_in_chinese(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    admin, shop = await people.user("admin"), people.partner()
    # An illegal transition: cancelling twice.
    r = await shop.post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    url = f"/api/v1/pickups/{r.json()['id']}/cancel"
    assert (await shop.post(url, json={})).status_code == 200
    zh, en = await both(shop, "POST", url, json={})
    assert zh["code"] == "illegal_transition"
    assert (zh["message"], en["message"]) == (
        "取件单当前状态为 cancelled，不能取消",
        "cannot cancel a pickup that is cancelled",
    )
    # An oversized batch.
    zh, en = await both(shop, "POST", "/api/v1/pickups/batch", json={"items": [pickup_body()] * 501})
    assert zh["code"] == "batch_too_large"
    assert (zh["message"], en["message"]) == (
        "每批须有 1 到 500 个取件单，此批有 501 个",
        "a batch holds 1 to 500 pickups, this one 501",
    )
    # A stop-ship area: the admin's reason as written.
    area = {
        "name": "暴雪停发",
        "reason": "暴雪封路，暂停揽收",
        "datum": "wgs84",
        "geometry": square(zone.lng - 0.001, zone.lat - 0.001, 0.002),
        "station": zone.station,
    }
    assert (await admin.post("/api/v1/stop-ship-areas", json=area)).status_code == 201
    zh, en = await both(shop, "POST", "/api/v1/pickups", json=pickup_body(zone))
    assert zh["code"] == "stop_ship_area" and zh["reason"] == "暴雪封路，暂停揽收"
    assert zh["message"] == "此处暂停上门取件：停收区域 '暴雪停发'：暴雪封路，暂停揽收"
    assert en["message"] == "no pickups here for now: stop-ship area '暴雪停发': 暴雪封路，暂停揽收"


async def test_idempotency_key_errors_in_chinese(people: Personas) -> None:
    shop = people.partner()
    zh, en = await both(
        shop, "POST", "/api/v1/pickups", json=pickup_body(), headers={"idempotency-key": "a b"}
    )
    assert zh["code"] == "bad_idempotency_key" and zh["message"].startswith(
        "Idempotency-Key 须为 1 到 255 个"
    )
    assert en["message"].startswith("Idempotency-Key must be 1 to 255 printable ASCII characters")
    key = {"idempotency-key": str(uuid.uuid4())}
    note = f"lang-{uuid.uuid4().hex}"
    assert (await shop.post("/api/v1/pickups", json=pickup_body(note=note), headers=key)).status_code == 201
    zh, en = await both(shop, "POST", "/api/v1/pickups", json=pickup_body(note=note + "x"), headers=key)
    assert zh["code"] == "idempotency_key_reused"
    assert (
        zh["message"]
        == f"Idempotency-Key '{key['idempotency-key']}' 已用于请求体不同的 POST /api/v1/pickups；新请求请使用新的键"
    )
    assert "POST /api/v1/pickups with another body" in en["message"]


async def test_rate_limited_in_chinese(db: Database) -> None:
    server = ServerProcess(db, LANSHOU_API_RATE_LIMIT="1", LANSHOU_API_RATE_WINDOW_S="86400").start()
    key = api_key_in(db.cli("partner", "create", "--code", f"lg{uuid.uuid4().hex[:8]}"))
    api = Api(server.url, {"authorization": f"Bearer {key}"})
    try:
        assert (await api.get("/api/v1/pickups")).status_code == 200
        zh, en = await both(api, "GET", "/api/v1/pickups")
    finally:
        await api.close()
        server.stop()
    assert zh["code"] == "rate_limited"
    assert zh["message"] == "此 API 密钥在 86400 秒内的请求超过 1 次；请按 Retry-After 给出的秒数后重试"
    assert (
        en["message"]
        == "more than 1 requests in 86400 s with this API key; retry after the seconds in Retry-After"
    )


def test_a_message_without_a_translation_stays_english() -> None:
    from server.api_language import localize, localize_body

    assert localize("something nobody translated", "zh-CN") == "something nobody translated"
    body = {"code": "x", "message": "odd", "errors": [{"field": "a", "message": "odd"}]}
    assert localize_body(body, "zh-CN") == body
