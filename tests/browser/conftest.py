"""Headless Chromium for the browser tests (Debian's /usr/bin/chromium, driven by Playwright).

Without Chromium (or Playwright) the browser tests are skipped, unless LANSHOU_REQUIRE_BROWSER=1 (CI),
where a missing browser is a failure.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.is_file()
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("LANSHOU_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (LANSHOU_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        _unavailable(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("Playwright is not installed")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


# A phone for the courier app: 360 × 640, touch, in Chinese.
PHONE_CONTEXT: dict[str, Any] = {
    "locale": "zh-CN",
    "viewport": {"width": 360, "height": 640},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


@asynccontextmanager
async def open_page(browser: Any, server: ServerProcess, **options: Any) -> AsyncIterator[Any]:
    """A page in a fresh browser profile (no cookies) on `server`, with `options` for the context; fails
    the test if the page raised a JavaScript error."""
    context = await browser.new_context(base_url=server.url, **options)
    context.set_default_timeout(8000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
async def page(browser: Any, server: ServerProcess) -> AsyncIterator[Any]:
    """A fresh browser profile in Chinese, on a desktop-sized window."""
    async with open_page(browser, server, locale="zh-CN", viewport={"width": 1440, "height": 1000}) as page:
        yield page


@pytest.fixture
async def phone(browser: Any, server: ServerProcess) -> AsyncIterator[Any]:
    """A fresh phone-sized, touch-screen browser profile in Chinese."""
    async with open_page(browser, server, **PHONE_CONTEXT) as page:
        yield page
