"""Collecting at the door in a real browser (360 × 640, touch): the camera reads the waybill's barcode
into the form, the courier records pieces, weight, re-packed and a photo (shrunk on the phone), and the
partner's API then shows them and serves the photo; with no camera the page says so and the courier types.

The camera is Chromium's fake capture device fed a Y4M file (`--use-file-for-fake-video-capture`) holding
a Code 128 barcode of a fresh waybill number, drawn from the vendored ZXing's own table of Code 128
bar widths, so the test needs nothing beyond the app. Headless Chromium on Linux has no
BarcodeDetector: this exercises the ZXing path the app loads lazily.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, PHONE_CONTEXT, open_page
from tests.browser.test_courier_app_browser import SMALL_TARGETS, sign_in_and_go_on_duty
from tests.conftest import Personas, ServerProcess, login_couriers, make_zone, new_waybill, pickup_body

pytestmark = pytest.mark.browser

SHOTS = "/tmp/shots"
FRAME_W, FRAME_H, MODULE_PX = 1280, 720, 4

# ZXing-js reads Code 128 but writes only 2D codes: the bars are laid out here (code set B) from the
# reader's own table of bar/space widths, with a quiet zone of ten modules on each side.
ENCODE = """(text) => {
  const patterns = ZXing.Code128Reader.CODE_PATTERNS;
  const values = [...text].map((c) => c.charCodeAt(0) - 32);
  const checksum = values.reduce((sum, v, i) => sum + v * (i + 1), 104) % 103;
  let bits = "0".repeat(10);
  for (const code of [104, ...values, checksum, 106]) {
    Array.from(patterns[code]).forEach((w, i) => { bits += (i % 2 ? "0" : "1").repeat(w); });
  }
  return bits + "0".repeat(10);
}"""


async def code128_bits(browser: Any, server: ServerProcess, text: str) -> str:
    """The barcode's modules (1 = bar), from the widths in the ZXing build the app serves."""
    context = await browser.new_context(base_url=server.url)
    try:
        page = await context.new_page()
        await page.goto("/health")
        await page.add_script_tag(url="/static/vendor/zxing/index.min.js")
        return str(await page.evaluate(ENCODE, text))
    finally:
        await context.close()


def barcode_y4m(bits: str, path: Path) -> None:
    """One 4:2:0 frame: black bars on white, centred; Chromium loops it as the camera's picture."""
    width = len(bits) * MODULE_PX
    assert width + 80 <= FRAME_W, "the barcode does not fit the frame"
    left = (FRAME_W - width) // 2
    row = bytearray(b"\xeb" * FRAME_W)
    for i, bit in enumerate(bits):
        if bit == "1":
            row[left + i * MODULE_PX : left + (i + 1) * MODULE_PX] = b"\x10" * MODULE_PX
    white = bytes(b"\xeb" * FRAME_W)
    luma = b"".join(bytes(row) if FRAME_H // 3 <= y < 2 * FRAME_H // 3 else white for y in range(FRAME_H))
    chroma = b"\x80" * (FRAME_W // 2 * FRAME_H // 2)
    header = f"YUV4MPEG2 W{FRAME_W} H{FRAME_H} F15:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + b"FRAME\n" + luma + chroma + chroma)


def photo_png(width: int = 2400, height: int = 1800) -> bytes:
    """A grey gradient PNG bigger than the app uploads (it must shrink it to 1280 px)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes((x * 255 // width + y) % 256 for x in range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise AssertionError("no start of frame")


@pytest.fixture
async def camera_phone(browser: Any, server: ServerProcess, tmp_path: Path) -> AsyncIterator[tuple[Any, str]]:
    """A phone whose rear camera sees a barcode of a fresh waybill number; yields the page and the number."""
    waybill = new_waybill()
    video = tmp_path / "waybill.y4m"
    barcode_y4m(await code128_bits(browser, server, waybill), video)
    camera = await browser.browser_type.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )
    try:
        async with open_page(camera, server, **PHONE_CONTEXT, permissions=["camera"]) as page:
            yield page, waybill
    finally:
        await camera.close()


async def held_pickup(people: Personas, page: Any, parcel_count: int = 2) -> tuple[int, Any]:
    """A zone with one courier signed in on the page and on duty, and a pickup they hold."""
    zone = await make_zone(people, couriers=1)
    await sign_in_and_go_on_duty(page, zone)
    (courier,) = await login_couriers(people, zone, on_duty=False)
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone, parcel_count=parcel_count))
    assert r.status_code == 201, r.text
    pickup_id = r.json()["id"]
    r = await courier.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
    assert r.status_code == 200, r.text
    held = page.locator(f"#held-{pickup_id}")
    await expect(held).to_have_attribute("data-status", "accepted")
    return pickup_id, held


async def test_scan_a_barcode_record_the_details_and_the_partner_sees_them(
    camera_phone: tuple[Any, str], people: Personas
) -> None:
    page, waybill = camera_phone
    pickup_id, held = await held_pickup(people, page, parcel_count=2)
    form = held.locator("form.collect")
    await expect(form.locator("input[name=pieces]")).to_have_value("2")  # the declared parcel count
    assert await page.evaluate(SMALL_TARGETS) == []
    # The barcode library is not part of the app shell: it loads when the camera first opens.
    assert await page.evaluate("typeof window.ZXing") == "undefined"

    await form.locator("button[data-action=scan]").tap()
    scanner = page.locator("#scanner")
    await expect(scanner).to_be_visible()
    await page.screenshot(path=f"{SHOTS}/courier-scan-360.png")
    await expect(form.locator("input[name=waybill_no]")).to_have_value(waybill, timeout=15000)
    await expect(scanner).to_be_hidden()
    assert await page.evaluate("document.body.dataset.scanner") == "zxing"
    # The camera is released once the number is read.
    assert await page.evaluate("document.getElementById('scanner-video').srcObject") is None

    await form.locator("input[name=pieces]").fill("3")
    await form.locator("input[name=weight_kg]").fill("2.5")
    await form.locator("input[name=repacked]").check()
    await form.locator("input[name=photo]").set_input_files(
        {"name": "parcel.png", "mimeType": "image/png", "buffer": photo_png()}
    )
    preview = form.locator("[data-photo-preview]")
    await expect(preview).to_be_visible()
    assert (await preview.get_attribute("src") or "").startswith("data:image/jpeg")
    assert await page.evaluate(SMALL_TARGETS) == []
    await page.screenshot(path=f"{SHOTS}/courier-collect-details-360.png", full_page=True)

    await form.locator("button[type=submit]").tap()
    await expect(held).to_have_count(0)

    partner = people.partner()
    seen = (await partner.get(f"/api/v1/pickups/{pickup_id}")).json()
    assert seen["status"] == "collected" and seen["waybill_no"] == waybill
    collection = seen["collection"]
    assert (collection["pieces"], collection["weight_kg"], collection["repacked"]) == (3, 2.5, True)
    assert collection["photo_id"] and collection["photo_url"]
    r = await partner.get(collection["photo_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    # Shrunk on the phone: 2400 × 1800 became 1280 × 960, well under the upload limit.
    assert jpeg_size(r.content) == (1280, 960)
    print(f"\nphoto: 2400x1800 PNG → {len(r.content)} bytes JPEG 1280x960")
    assert len(r.content) < 1_048_576


async def test_without_a_camera_the_page_says_so_and_the_courier_types(phone: Any, people: Personas) -> None:
    pickup_id, held = await held_pickup(people, phone)
    form = held.locator("form.collect")
    await form.locator("button[data-action=scan]").tap()
    error = form.locator("[data-error]")
    await expect(error).to_have_text(re.compile("无法使用相机|未获准使用相机"))
    await expect(phone.locator("#scanner")).to_be_hidden()
    await expect(form.locator("input[name=waybill_no]")).to_be_focused()
    # The number typed by hand collects, with the declared parcel count as pieces.
    typed = new_waybill()
    await form.locator("input[name=waybill_no]").fill(typed)
    await form.locator("button[type=submit]").tap()
    await expect(held).to_have_count(0)
    seen = (await people.partner().get(f"/api/v1/pickups/{pickup_id}")).json()
    assert seen["waybill_no"] == typed and seen["collection"]["pieces"] == 2
    assert seen["collection"]["photo_id"] is None and seen["collection"]["repacked"] is False


async def test_a_number_of_no_known_carrier_is_refused_in_the_pages_language(
    phone: Any, people: Personas
) -> None:
    _, held = await held_pickup(people, phone)
    form = held.locator("form.collect")
    await form.locator("input[name=waybill_no]").fill("ORDER20261125")
    await form.locator("button[type=submit]").tap()
    await expect(form.locator("[data-error]")).to_have_text("不是可识别的运单号，请重新扫描或输入")
    await form.locator("input[name=pieces]").fill("0")
    await form.locator("input[name=waybill_no]").fill(new_waybill())
    await form.locator("button[type=submit]").tap()
    await expect(form.locator("[data-error]")).to_have_text("件数须为 1 到 999")
