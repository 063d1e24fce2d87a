"""The page under a flood, measured inside Debian's Chromium: lines drawn per second, how
long a keystroke waits for the page's main thread, and the JS heap afterwards.

Playwright's async API drives the browser; the server is a real `webchat server`, the
flood comes from a raw TCP peer, and every figure is read in the page itself."""

from __future__ import annotations

import asyncio
import shutil

from harness import Counts, open_tcp, webchat

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--js-flags=--expose-gc",
    "--enable-precise-memory-info",
]
PROBE = """() => {
  window.inputDelays = [];
  const entry = document.getElementById("entry");
  entry.addEventListener("input", (ev) => {
    window.inputDelays.push(performance.now() - ev.timeStamp);
  });
}"""

LAST_ROW_ENDS_WITH = (
    "(last) => document.querySelector('#log .row:last-child')?.textContent.endsWith(last)"
)


def available() -> bool:
    return shutil.which(CHROMIUM) is not None


async def page_flood(c: Counts) -> tuple[float, float]:
    """Lines drawn per second while `c.page_lines` lines flood in, and the p99 of how long
    a keystroke typed meanwhile waited before the page handled it, in ms."""
    drawn, delays, _ = await _flood(c.page_lines)
    return drawn, delays


async def page_heap(c: Counts) -> float:
    """The page's JS heap in MB after `c.page_lines` lines, after a garbage collection."""
    return (await _flood(c.page_lines))[2]


async def _flood(lines: int) -> tuple[float, float, float]:
    from playwright.async_api import async_playwright

    async with webchat() as server, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"http://127.0.0.1:{server.http_port}/")
            await page.wait_for_selector(".row")
            await page.evaluate(PROBE)
            _, writer = await open_tcp(server)
            await page.wait_for_selector("#peers .peer", state="attached")
            last = f"flood {lines - 1:07d}"
            started = await page.evaluate("performance.now()")
            block = b"".join(b"flood %07d\n" % i for i in range(lines))
            writer.write(block)
            typing = asyncio.create_task(page.type("#entry", "x" * 40, delay=25))
            await page.wait_for_function(
                LAST_ROW_ENDS_WITH,
                arg=last,
                polling="raf",
                timeout=300_000,
            )
            finished = await page.evaluate("performance.now()")
            await typing
            delays = sorted(await page.evaluate("window.inputDelays"))
            await page.evaluate("window.gc()")
            heap = await page.evaluate("performance.memory.usedJSHeapSize")
            writer.close()
            p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else 0.0
            return lines / ((finished - started) / 1000), p99, heap / 1024 / 1024
        finally:
            await browser.close()
