"""What does the courier app cost a phone to open, and how long from a partner's POST to the phone ringing?

Run: python -m tests.bench.bench_courier_app [--pickups 20] [--postgres URL]

Starts `lanshou serve` on a fresh database (SQLite by default; with --postgres URL, a uniquely named
database on that server, created and finally dropped), makes a zone with one courier, and opens the app
in headless Chromium (/usr/bin/chromium) at 360 × 640 with an empty cache:

* first load: every response the signed-in /app page fetches (the page, its scripts, styles, icons and
  manifest; not the event stream and not the service worker's own install fetches), as sent by the server
  and as it would be gzipped (the server itself does not compress: a reverse proxy in front usually does);
* create → ring: the courier goes on duty; then, one at a time, a pickup is created through the partner
  API and the time from sending the POST to the page starting to ring (body[data-ringing=true], seen by a
  MutationObserver in the page) is recorded; the pickup is then cancelled and the ringing stops.

It prints the figures and asserts nothing: the numbers belong to the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

from tests.conftest import Database, Personas, ServerProcess, make_zone, pickup_body, seed_demo

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Resolves when the page next starts ringing, with the page's own clock at that moment.
NEXT_RING = """() => new Promise((resolve) => {
  const seen = new MutationObserver(() => {
    if (document.body.dataset.ringing === "true") { seen.disconnect(); resolve(Date.now()); }
  });
  seen.observe(document.body, { attributes: true, attributeFilter: ["data-ringing"] });
})"""


async def first_load(page: Any, base: str) -> list[tuple[str, int, int]]:
    """(path, bytes sent, bytes gzipped) for each response of the signed-in /app page's first load."""
    bodies: list[tuple[str, int, int]] = []
    pending: list[Any] = []

    async def record(response: Any) -> None:
        path = response.url.removeprefix(base)
        if path.startswith("/api/") or response.request.resource_type == "eventsource":
            return
        body = await response.body()
        bodies.append((path, len(body), len(gzip.compress(body, 9))))

    page.on("response", lambda r: pending.append(asyncio.ensure_future(record(r))))
    await page.goto("/app", wait_until="networkidle")
    await asyncio.gather(*pending, return_exceptions=True)
    return bodies


async def measure(
    server: ServerProcess, key: str, pickups: int
) -> tuple[list[tuple[str, int, int]], list[float]]:
    people = Personas(server, key)
    zone = await make_zone(people, couriers=1)
    name = zone.couriers[0]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = await browser.new_context(
            base_url=server.url, locale="zh-CN", viewport={"width": 360, "height": 640}, is_mobile=True
        )
        page = await context.new_page()
        await page.goto("/auth/login")
        await page.fill("input[name=username]", name)
        await page.fill("input[name=password]", "pw-" + name.split("-")[-1])
        await page.click("button[type=submit]")
        await page.wait_for_url("**/app")
        # A second context with the signed-in cookie and an empty cache: the first load as a phone that
        # has never opened the app sees it.
        cold = await browser.new_context(
            base_url=server.url,
            locale="zh-CN",
            viewport={"width": 360, "height": 640},
            is_mobile=True,
            storage_state=await context.storage_state(),
            service_workers="block",
        )
        loaded = await first_load(await cold.new_page(), server.url)
        await cold.close()

        await page.locator("#duty").click()
        await page.wait_for_function("() => document.getElementById('duty').ariaPressed === 'true'")
        await page.wait_for_function("() => document.getElementById('live').dataset.state === 'live'")
        partner = people.partner()
        times: list[float] = []
        for _ in range(pickups):
            ring = asyncio.ensure_future(page.evaluate(NEXT_RING))
            await asyncio.sleep(0.05)  # the observer is in place
            sent_ms = time.time() * 1000
            r = await partner.post("/api/v1/pickups", json=pickup_body(zone))
            assert r.status_code == 201, r.text
            rang_ms = await asyncio.wait_for(ring, 10)
            times.append(rang_ms - sent_ms)
            await partner.post(f"/api/v1/pickups/{r.json()['id']}/cancel", json={"reason": "bench"})
            await page.wait_for_function("() => document.body.dataset.ringing === 'false'")
        await browser.close()
    await people.close()
    return loaded, times


def main(pickups: int, postgres: str | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lanshou-bench-app-"))
    database = Database(tmp, pg_admin_url=postgres, prefix="lanshou_bench")
    server: ServerProcess | None = None
    try:
        database.cli("migrate")
        key = seed_demo(database)["api_key"]
        server = ServerProcess(database).start()
        loaded, times = asyncio.run(measure(server, key, pickups))
    finally:
        if server:
            server.stop()
        database.drop()
        shutil.rmtree(tmp, ignore_errors=True)

    engine = "PostgreSQL" if postgres else "SQLite"
    print(f"courier app first load (signed in, empty cache), {len(loaded)} responses:")
    for path, sent, zipped in sorted(loaded, key=lambda row: -row[1]):
        print(f"  {path:<40} {sent:>8,} B sent  {zipped:>7,} B gzipped")
    print(
        f"  {'total':<40} {sum(r[1] for r in loaded):>8,} B sent  {sum(r[2] for r in loaded):>7,} B gzipped"
    )
    times.sort()
    print(
        f"create → ring on {engine}, {len(times)} pickups: median {statistics.median(times):.0f} ms, "
        f"p90 {times[int(len(times) * 0.9) - 1]:.0f} ms, max {times[-1]:.0f} ms, min {times[0]:.0f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pickups", type=int, default=20)
    parser.add_argument("--postgres", default=os.environ.get("LANSHOU_BENCH_POSTGRES"))
    args = parser.parse_args()
    main(args.pickups, args.postgres)
