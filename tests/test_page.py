"""The page in Debian's headless Chromium, driven by Playwright, against a real `webchat server`."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Running, dial, recv_until

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.page

if not shutil.which(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing in CI: .ci/test installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Dialog, Page, Route, expect, sync_playwright  # noqa: E402

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server() -> Iterator[Running]:
    running = Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet")
    yield running
    running.stop()


@pytest.fixture
def page(browser: Browser, server: Running) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 740})
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(f"http://127.0.0.1:{server.http_port}/")
    yield page
    assert dialogs == [], "no peer text may run as script"
    context.close()


def test_page_shows_the_seed_layout_and_waits_for_a_client(page: Page, server: Running) -> None:
    expect(page).to_have_title("TCP Server")
    expect(page.get_by_role("heading")).to_have_text("TCP Server")
    log = page.get_by_role("log")
    expect(log).to_contain_text(
        f"Waiting for a client... (waiting for clients on 127.0.0.1:{server.tcp_port})"
    )
    expect(page.locator("#status")).to_contain_text("WebSocket open")
    expect(page.get_by_role("button", name="Send")).to_be_visible()


def test_lines_flow_both_ways_between_page_and_socket(page: Page, server: Running) -> None:
    log = page.get_by_role("log")
    expect(log).to_contain_text("Waiting for a client")
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        name = f"127.0.0.1:{sock.getsockname()[1]}"
        expect(log).to_contain_text(f"Connected with {name}")
        sock.sendall(b"hi from nc\n")
        expect(log).to_contain_text("hi from nc")
        entry = page.get_by_label("Message")
        entry.fill("hello tcp")
        entry.press("Enter")
        assert recv_until(sock, b"\n") == b"hello tcp\n"
        expect(entry).to_have_value("")
        expect(log).to_contain_text("hello tcp")
    expect(log).to_contain_text(f"{name} disconnected")


def test_peer_selector_sends_to_one_peer(page: Page, server: Running) -> None:
    with dial(f"127.0.0.1:{server.tcp_port}") as a, dial(f"127.0.0.1:{server.tcp_port}") as b:
        name_b = f"127.0.0.1:{b.getsockname()[1]}"
        expect(page.locator("#peer option")).to_have_count(3)
        page.get_by_label("Send to").select_option(name_b)
        page.get_by_label("Message").fill("only b")
        page.get_by_role("button", name="Send").click()
        assert recv_until(b, b"\n") == b"only b\n"
        a.settimeout(0.3)
        with pytest.raises(TimeoutError):
            a.recv(10)


def test_peer_html_is_shown_as_text(page: Page, server: Running) -> None:
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        sock.sendall(b"<img src=x onerror=alert(1)>\n")
        log = page.get_by_role("log")
        expect(log).to_contain_text("<img src=x onerror=alert(1)>")
        expect(log.locator("img")).to_have_count(0)


def test_reload_resumes_without_duplicates(page: Page, server: Running) -> None:
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        sock.sendall(b"once\n")
        expect(page.get_by_role("log")).to_contain_text("once")
    page.reload()
    expect(page.get_by_role("log")).to_contain_text("disconnected")
    expect(page.locator(".line", has_text="once")).to_have_count(1)


def test_scrolling_up_loads_older_entries(page: Page, server: Running) -> None:
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        sock.sendall(b"".join(b"row %d\n" % i for i in range(800)))
        expect(page.get_by_role("log")).to_contain_text("row 799")
    page.reload()
    log = page.get_by_role("log")
    expect(log).to_contain_text("row 799")
    expect(page.locator(".line", has_text="row 100")).to_have_count(0)
    for _ in range(5):
        log.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
        page.wait_for_timeout(200)
    expect(page.locator(".line", has_text=re.compile(r"^.*row 0$"))).to_have_count(1)
    expect(page.locator(".line", has_text="row 100")).to_have_count(1)
    expect(page.get_by_role("button", name="Load older entries")).to_be_hidden()
    ids = page.locator(".line[data-id]").evaluate_all("els => els.map(e => Number(e.dataset.id))")
    assert ids == sorted(set(ids)) and len(ids) == ids[-1]


def test_search_filters_the_log_and_clearing_restores_it(page: Page, server: Running) -> None:
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        sock.sendall(b"apple pie\nbanana split\nApple tart\n")
        log = page.get_by_role("log")
        expect(log).to_contain_text("Apple tart")
        page.get_by_label("Search the transcript").fill("apple")
        expect(page.locator("#search-info")).to_have_text("2 matches")
        expect(log).not_to_contain_text("banana")
        sock.sendall(b"cherry\napple crumble\n")
        expect(log).to_contain_text("apple crumble")
        expect(log).not_to_contain_text("cherry")
        page.get_by_label("Search the transcript").fill("")
        expect(log).to_contain_text("banana split")
        expect(log).to_contain_text("cherry")
        expect(page.locator("#search-info")).to_have_text("")


def test_download_button_exports_the_transcript(page: Page, server: Running) -> None:
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        sock.sendall(b"keep me\n")
        expect(page.get_by_role("log")).to_contain_text("keep me")
    with page.expect_download() as info:
        page.get_by_role("link", name="txt").click()
    download = info.value
    assert download.suggested_filename.startswith("webchat-server-")
    text = download.path().read_text(encoding="utf-8")
    assert re.search(r"  in   127\.0\.0\.1:\d+  keep me$", text, re.M)


@pytest.fixture
def other_site(tmp_path: Path) -> Iterator[str]:
    """A page on another port, with no CSP of its own: the attacker's site."""
    (tmp_path / "index.html").write_text("<!doctype html><title>elsewhere</title>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as site:
        threading.Thread(target=site.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{site.server_address[1]}/"
        site.shutdown()


OPEN_WS = """url => new Promise(done => {
  const ws = new WebSocket(url);
  ws.onopen = () => { ws.close(); done("open"); };
  ws.onclose = () => done("refused");
})"""


def test_a_page_from_another_port_cannot_open_the_websocket(
    browser: Browser, server: Running, other_site: str
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(other_site)
    url = f"ws://127.0.0.1:{server.http_port}/ws"
    assert page.evaluate(OPEN_WS, url) == "refused"
    own = context.new_page()
    own.goto(f"http://127.0.0.1:{server.http_port}/")
    assert own.evaluate(OPEN_WS, url) == "open"
    context.close()


def test_allow_origin_lets_a_named_site_in(browser: Browser, other_site: str) -> None:
    origin = other_site.rstrip("/")
    with Running(
        "server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--allow-origin", origin
    ) as running:
        context = browser.new_context()
        page = context.new_page()
        page.goto(other_site)
        assert page.evaluate(OPEN_WS, f"ws://127.0.0.1:{running.http_port}/ws") == "open"
        context.close()


def test_the_page_works_under_its_csp_with_no_violation(browser: Browser, server: Running) -> None:
    context = browser.new_context()
    page = context.new_page()
    complaints: list[str] = []
    page.on(
        "console", lambda m: complaints.append(m.text) if "Content Security" in m.text else None
    )
    response = page.goto(f"http://127.0.0.1:{server.http_port}/")
    assert (
        response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    )
    expect(page.locator("#status")).to_contain_text("WebSocket open")
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        sock.sendall(b"under csp\n")
        expect(page.get_by_role("log")).to_contain_text("under csp")
    assert complaints == []
    context.close()


def test_the_page_opened_with_its_token_works_and_the_bare_page_is_refused(
    browser: Browser,
) -> None:
    with Running(
        "server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--http-host", "0.0.0.0"
    ) as running:
        context = browser.new_context()
        page = context.new_page()
        bare = page.goto(f"http://127.0.0.1:{running.http_port}/")
        assert bare is not None and bare.status == 401
        page.goto(f"http://127.0.0.1:{running.http_port}/?token={running.token}")
        expect(page.locator("#status")).to_contain_text("WebSocket open")
        with dial(f"127.0.0.1:{running.tcp_port}") as sock:
            page.get_by_label("Message").fill("authorised")
            expect(page.locator("#peer option")).to_have_count(2)
            page.get_by_label("Message").press("Enter")
            assert recv_until(sock, b"\n") == b"authorised\n"
        context.close()


def test_bytes_views_and_hex_send(browser: Browser) -> None:
    with Running(
        "server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--framing", "raw"
    ) as running:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{running.http_port}/")
        log = page.get_by_role("log")
        with dial(f"127.0.0.1:{running.tcp_port}") as sock:
            expect(page.locator("#peer option")).to_have_count(2)
            sock.sendall(b"A\x00B\r\n")
            line = page.locator(".line.in").first
            expect(line).to_contain_text("from 127.0.0.1")
            switch = line.get_by_role("button")
            expect(switch).to_have_text("text")
            switch.click()
            expect(line.locator(".text")).to_have_text("A\\0B\\r\\n")
            switch.click()
            expect(line.locator(".text")).to_have_text(
                "00000000  41 00 42 0d 0a" + " " * 34 + "  |A.B..|"
            )
            switch.click()
            expect(switch).to_have_text("text")
            page.get_by_label("Show as hex").check()
            expect(line.locator(".text")).to_contain_text("41 00 42 0d 0a")
            page.get_by_label("Send as").select_option("hex")
            page.get_by_label("Message").fill("de ad be ef")
            page.get_by_label("Message").press("Enter")
            sock.settimeout(5)
            assert sock.recv(100) == b"\xde\xad\xbe\xef"
            page.get_by_label("Message").fill("abc")
            page.get_by_label("Message").press("Enter")
            expect(log).to_contain_text("odd count")
            page.get_by_label("Send as").select_option("escapes")
            page.get_by_label("Message").fill(r"x\r\n\x00")
            page.get_by_label("Message").press("Enter")
            assert sock.recv(100) == b"x\r\n\x00"
        expect(page.locator("#status")).to_contain_text(re.compile(r"WebSocket open \([\d.]+ ms\)"))
        context.close()


def test_the_page_survives_kill_9_and_resumes_without_duplicates(
    browser: Browser, tmp_path: Path
) -> None:
    db = str(tmp_path / "t.sqlite3")
    first = Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--db", db)
    ports = ["--tcp-port", str(first.tcp_port), "--http-port", str(first.http_port)]
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{first.http_port}/")
    log = page.get_by_role("log")
    with dial(f"127.0.0.1:{first.tcp_port}") as sock:
        sock.sendall(b"before the crash\n")
        expect(log).to_contain_text("before the crash")
    first.proc.kill()  # kill -9: no goodbye to the page
    first.stop()
    expect(page.locator("#status")).to_contain_text("reconnecting")
    second = Running("server", *ports, "--quiet", "--db", db)
    try:
        expect(page.locator("#status")).to_contain_text("WebSocket open", timeout=15_000)
        with dial(f"127.0.0.1:{second.tcp_port}") as sock:
            sock.sendall(b"after the restart\n")
            expect(log).to_contain_text("after the restart")
        expect(page.locator(".line", has_text="before the crash")).to_have_count(1)
        page.reload()
        expect(log).to_contain_text("after the restart")
        expect(page.locator(".line", has_text="before the crash")).to_have_count(1)
        ids = page.locator(".line[data-id]").evaluate_all(
            "els => els.map(e => Number(e.dataset.id))"
        )
        assert ids == sorted(set(ids))
    finally:
        context.close()
        second.stop()


def test_the_api_docs_render_with_no_network_but_webchat(browser: Browser, server: Running) -> None:
    """Swagger UI comes from webchat itself: any other request is blocked and must not matter."""
    context = browser.new_context()
    page = context.new_page()
    base = f"http://127.0.0.1:{server.http_port}"
    elsewhere: list[str] = []

    def only_webchat(route: Route) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_webchat)
    page.goto(f"{base}/docs")
    expect(page.locator(".opblock-summary-path", has_text="/api/messages").first).to_be_visible()
    assert elsewhere == []
    context.close()
