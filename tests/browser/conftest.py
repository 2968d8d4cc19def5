"""Headless Chromium for the browser tests (Debian's /usr/bin/chromium, driven by Playwright).

Without Chromium (or Playwright) the browser tests are skipped, unless LANSHOU_REQUIRE_BROWSER=1 (CI),
where a missing browser is a failure.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
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


# What each open page saw, for the report of a test that fails (see pytest_runtest_makereport below).
_WATCHED: list[tuple[Any, deque[str], ServerProcess]] = []


def _watch(page: Any, server: ServerProcess) -> tuple[Any, deque[str], ServerProcess]:
    """Keep the page's last requests, failures and console errors, stamped with the time."""
    seen: deque[str] = deque(maxlen=40)

    def note(text: str) -> None:
        seen.append(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {text}")

    page.on("request", lambda r: note(f"→ {r.method} {r.url}"))
    page.on("response", lambda r: note(f"← {r.status} {r.request.method} {r.url}"))
    page.on("requestfailed", lambda r: note(f"✗ {r.method} {r.url}: {r.failure}"))
    page.on("console", lambda m: m.type in ("error", "warning") and note(f"console {m.type}: {m.text}"))
    _WATCHED.append(entry := (page, seen, server))
    return entry


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing browser test's report shows where each of its pages was, what they last asked the
    server and heard back, and the end of the server's log: enough to tell a slow machine from a fault
    when it fails in CI only."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    for n, (page, seen, _) in enumerate(_WATCHED, 1):
        report.sections.append((f"page {n} at {page.url}", "\n".join(seen)))
    for server in {id(s): s for _, _, s in _WATCHED}.values():
        tail = server.log().splitlines()[-60:]
        report.sections.append((f"server log (last lines) {server.url}", "\n".join(tail)))


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
    context.set_default_navigation_timeout(15_000)  # a whole page with its scripts, on a busy machine
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    watched = _watch(page, server)
    try:
        yield page
    finally:
        _WATCHED.remove(watched)
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
