"""The API docs page (/schema) in a real browser with the internet cut off: it must render from this
server's own files alone, under a Content-Security-Policy without inline script."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import expect

from tests.conftest import ServerProcess

pytestmark = pytest.mark.browser

# What the server's own policy must at least allow the page to live with (no inline script or style).
STRICT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'"
)


async def test_the_docs_page_renders_the_operations_without_the_internet(
    page: Any, server: ServerProcess
) -> None:
    local = urlsplit(server.url).netloc
    blocked: list[str] = []
    policies: list[str] = []

    async def only_this_server(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).netloc != local:
            blocked.append(url)
            await route.abort()
            return
        if route.request.resource_type != "document":
            await route.continue_()
            return
        # The page must work under the server's policy; until every page carries one, under a strict one.
        response = await route.fetch()
        headers = dict(response.headers)
        headers.setdefault("content-security-policy", STRICT_POLICY)
        policies.append(headers["content-security-policy"])
        await route.fulfill(response=response, headers=headers)

    await page.context.route("**/*", only_this_server)
    refused: list[str] = []
    page.on(
        "console",
        lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None,
    )

    await page.goto("/schema")
    await expect(page.get_by_text("Ask for a doorstep pickup")).to_be_visible()
    await expect(page.get_by_text("Accept an offered pickup")).to_be_visible()

    assert policies and "'unsafe-inline'" not in policies[0].split("script-src", 1)[-1].split(";")[0]
    assert blocked == [], f"the docs page reached outside the server: {blocked}"
    assert refused == [], f"the Content-Security-Policy refused: {refused}"
