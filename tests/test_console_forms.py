"""The console's forms and rough edges over HTTP: what a refused or broken action says in each language,
the dispatch form starting afresh after an action, the attention panel on the page, the 403 page's look
and the favicon."""

from __future__ import annotations

import json
import re

import msgspec
import pytest

from server.console.controller import json_error_message
from tests.conftest import Personas, login_couriers, make_zone, pickup_body
from tests.test_console import csrf, dispatcher


async def test_the_favicon_is_served_to_anyone(people: Personas) -> None:
    r = await people.anonymous().get("/favicon.ico")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/x-icon")
    assert r.content[:4] == b"\x00\x00\x01\x00"  # an icon directory
    assert b"\x89PNG" in r.content


async def test_the_403_page_is_styled_and_says_why_in_each_language(people: Personas) -> None:
    courier = await people.user("courier01")
    r = await courier.get("/console")
    assert r.status_code == 403
    assert '<main class="login notice">' in r.text and 'class="button"' in r.text
    assert "无权访问" in r.text and 'aria-current="page">中文' in r.text
    css = await people.anonymous().get("/static/app.css")
    assert ".notice a.button" in css.text
    r = await courier.get("/console?lang=en")
    assert r.status_code == 403 and "Not allowed" in r.text and 'aria-current="page">English' in r.text


async def test_the_console_carries_the_attention_panel_and_its_sound(people: Personas) -> None:
    api = await dispatcher(people)
    r = await api.get("/console")
    assert 'id="attention"' in r.text and 'src="/static/console-attention.js"' in r.text
    assert "点击页面任意处开启声音" in r.text and 'data-attention="breach"' in r.text
    sound = await api.get("/static/sounds/attention.wav")
    assert sound.status_code == 200 and sound.content[:4] == b"RIFF" and sound.content[8:12] == b"WAVE"
    r = await api.get("/console?lang=en")
    assert "Click anywhere to enable sound" in r.text and "Time limit breached" in r.text


@pytest.mark.parametrize(
    ("text", "zh", "en"),
    [
        (
            '{\n  "type" "FeatureCollection"}',
            "第 2 行第 10 列，键后面缺少冒号",
            "line 2, column 10: a ':' is missing",
        ),
        ("{broken", "第 1 行第 2 列，对象的键必须是带双引号的字符串", "line 1, column 2: object keys"),
        (
            '{"名称": "长沙",\n "a": [1 2]}',
            "第 2 行第 10 列，缺少逗号或 ]",
            "line 2, column 10: a ',' or ']'",
        ),
        ('{"a": 1}\nx', "第 2 行第 1 列，JSON 结束后还有多余的内容", "line 2, column 1: there is more text"),
        ('{"features": [', "不是有效的 JSON：内容没有写完", "Not valid JSON: the text ends too early"),
    ],
)
def test_a_json_error_says_where_and_why_in_the_page_language(text: str, zh: str, en: str) -> None:
    with pytest.raises(msgspec.DecodeError) as caught:
        msgspec.json.decode(text)
    assert zh in json_error_message(caught.value, text, "zh-CN")
    assert en in json_error_message(caught.value, text, "en")


async def test_a_zone_upload_that_is_not_json_says_where_in_chinese(people: Personas) -> None:
    api = await dispatcher(people)
    text = '{"type": "FeatureCollection",\n "features": [,]}'
    r = await api.post("/console/zones", data={"geojson": text}, headers=csrf(api))
    assert r.status_code == 422
    # About the whole upload: a sentence, not a table row with a "body" field.
    assert '<p class="general">不是有效的 JSON：第 2 行第 15 列，这里有无法识别的字符</p>' in r.text
    assert 'class="errors"' not in r.text
    assert "malformed" not in r.text and "byte" not in r.text
    r = await api.post("/console/zones?lang=en", data={"geojson": text}, headers=csrf(api))
    assert "Not valid JSON: line 2, column 15: a character here is not allowed" in r.text


async def test_after_an_assignment_the_outside_zone_box_is_unticked(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    other = await make_zone(people)
    await login_couriers(people, zone)
    pickup_id = (await people.partner().post("/api/v1/pickups", json=pickup_body(other))).json()["id"]
    api = await dispatcher(people)
    form = {
        "pickup_ids": [str(pickup_id)],
        "courier_id": str(zone.courier_ids[0]),
        "reason": "顺路",
        "allow_outside_zone": "on",
    }
    r = await api.post("/console/pickups/assign", data=form, headers=csrf(api))
    assert r.status_code == 200, r.text
    assert "已派给" in r.text
    box = re.search(r'<input type="checkbox" name="allow_outside_zone"[^>]*>', r.text)
    assert box and "checked" not in box.group(0)
    # The courier choice stays: the next batch often goes to the same courier.
    assert re.search(rf'<option value="{zone.courier_ids[0]}" selected>', r.text)


async def test_a_refusal_reads_as_a_sentence_on_the_english_page(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    other = await make_zone(people)
    await login_couriers(people, zone)
    pickup_id = (await people.partner().post("/api/v1/pickups", json=pickup_body(other))).json()["id"]
    api = await dispatcher(people)
    form = {"pickup_ids": [str(pickup_id)], "courier_id": str(zone.courier_ids[0]), "reason": "try"}
    r = await api.post("/console/pickups/assign?lang=en", data=form, headers=csrf(api))
    assert r.status_code == 422
    message = re.search(r'<p class="msg error" role="alert">(.*?)</p>', r.text)
    assert message, r.text
    assert message.group(1).startswith("This courier does not work this pickup")
    assert "allow_outside_zone" not in message.group(1) and "nothing was changed" in message.group(1)
    r = await api.post("/console/pickups/assign", data=form, headers=csrf(api))
    assert "该揽投员不负责此片区" in r.text


async def test_a_feature_error_names_the_field_within_its_feature(people: Personas) -> None:
    api = await dispatcher(people)
    collection = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "geometry": None, "properties": {"code": "X1", "station": "ST-TX"}}],
    }
    r = await api.post("/console/zones", data={"geojson": json.dumps(collection)}, headers=csrf(api))
    assert r.status_code == 422
    # The first column says which feature; the field column the path inside it, breakable at its dots,
    # with the whole path on hover.
    assert (
        '<td>#0</td><td><code title="features[0].properties.name">properties.<wbr>name</code></td>' in r.text
    )
