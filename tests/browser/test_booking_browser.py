"""A customer books a pickup on a phone (360 × 640, touch, Chinese) through the form's pickers and
lands on the tracking page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

pytestmark = pytest.mark.browser

SHOTS = "/tmp/shots"


async def test_a_customer_books_on_a_phone_and_lands_on_the_tracking_page(phone: Any) -> None:
    await phone.goto("/book")
    await expect(phone.locator("h1")).to_have_text("预约上门取件")
    # Each choice brings the next picker's options (htmx swaps the address block).
    await phone.select_option("#province", label="湖南省")
    await expect(phone.locator("#city option", has_text="长沙市")).to_have_count(1)
    await phone.select_option("#city", label="长沙市")
    await expect(phone.locator("#district option", has_text="开福区")).to_have_count(1)
    await phone.select_option("#district", label="开福区")
    await expect(phone.locator("#served")).to_contain_text("可以上门取件")
    await expect(phone.locator("#slot")).to_be_enabled()
    await phone.select_option("#slot", index=1)
    await phone.fill("#name", "王小明")
    await phone.fill("#phone", "13907312345")
    await phone.fill("#detail", "湘江世纪城 3 栋 1201")
    submit = phone.get_by_role("button", name="预约取件")
    await expect(submit).to_be_in_viewport()  # within the thumb's reach without scrolling down
    # The keyboard's "go" books as the button does (the tracking page's browser test taps the button):
    # no hidden button of the swapped pickers comes first.
    await phone.press("#detail", "Enter")
    await phone.wait_for_url(re.compile(r"/t/[A-Za-z0-9_-]+$"), timeout=30_000)


async def test_the_pickers_say_when_the_server_cannot_be_reached_until_it_answers(phone: Any) -> None:
    await phone.goto("/book")
    note = phone.locator(".place-box [data-failure]")
    await phone.route("**/book/areas*", lambda route: route.abort())
    await phone.select_option("#province", label="湖南省")
    await expect(note).to_have_text("无法连接服务器，请检查网络后重试")
    await expect(phone.locator("#city")).to_be_disabled()
    await phone.screenshot(path=f"{SHOTS}/book-unreachable-360.png", full_page=True)
    await phone.unroute("**/book/areas*")
    await phone.route("**/book/areas*", lambda route: route.fulfill(status=500, body="boom"))
    await phone.select_option("#province", label="湖北省")
    await expect(note).to_have_text("服务器出错（500），请稍后重试")
    # The server answers again: the next choice brings its cities and the note goes.
    await phone.unroute("**/book/areas*")
    await phone.select_option("#province", label="湖南省")
    await expect(phone.locator("#city option", has_text="长沙市")).to_have_count(1)
    await expect(note).to_have_count(0)


async def test_a_booking_the_server_fails_is_said_beside_the_button_in_english(phone: Any) -> None:
    await phone.goto("/book?lang=en")
    await expect(phone.locator(".bar .langs a[aria-current]")).to_have_text("EN")
    await phone.select_option("#province", label="湖南省")
    await expect(phone.locator("#city option", has_text="长沙市")).to_have_count(1)
    await phone.select_option("#city", label="长沙市")
    await expect(phone.locator("#district option", has_text="开福区")).to_have_count(1)
    await phone.select_option("#district", label="开福区")
    await expect(phone.locator("#slot")).to_be_enabled()
    await phone.select_option("#slot", index=1)
    await phone.fill("#name", "Wang")
    await phone.fill("#phone", "13907312345")
    await phone.fill("#detail", "Building 3, 1201")

    async def fail_the_post(route: Any) -> None:
        if route.request.method == "POST":
            await route.fulfill(status=500, body="boom")
        else:
            await route.continue_()

    await phone.route("**/book?lang=en", fail_the_post)
    submit = phone.get_by_role("button", name="Book the pickup")
    await submit.tap()
    note = phone.locator("form [data-failure]")
    await expect(note).to_have_text("The server failed (500). Please try again shortly.")
    await expect(submit).to_be_enabled()
    await phone.screenshot(path=f"{SHOTS}/book-failed-en-360.png", full_page=True)
    await phone.unroute("**/book?lang=en")
    await submit.tap()
    await phone.wait_for_url(re.compile(r"/t/[A-Za-z0-9_-]+\?lang=en$"), timeout=30_000)
