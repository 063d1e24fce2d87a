"""The page in Debian's headless Chromium, driven by Playwright, against a real `webchat server`."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from tests.conftest import Running, dial, recv_until, wait_until
from tests.test_scaleout import RedisServer, viewer
from tests.test_starttls import serving, upgrading_server

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
    """A closed `nc` looks like a half-close until the linger ends: keep that short."""
    running = Running(
        "server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--half-close-linger", "0.3"
    )
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
    expect(page).to_have_title(f"webchat · server :{server.tcp_port}")
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
    expect(log).to_contain_text(f"{name} finished sending; you can still reply")
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
    expect(page.locator(".row", has_text="once")).to_have_count(1)


def test_scrolling_up_loads_older_entries(page: Page, server: Running) -> None:
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        sock.sendall(b"".join(b"row %d\n" % i for i in range(800)))
        expect(page.get_by_role("log")).to_contain_text("row 799")
    page.reload()
    log = page.get_by_role("log")
    expect(log).to_contain_text("row 799")
    expect(page.locator(".row", has_text="row 100")).to_have_count(0)
    for _ in range(40):
        log.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
        page.wait_for_timeout(100)
        if page.locator(".row", has_text="Waiting for a client").count():
            break
    expect(page.locator(".row", has_text=re.compile(r"row 0$"))).to_have_count(1)
    ids = page.locator(".row").evaluate_all("els => els.map(e => Number(e.dataset.id))")
    assert ids == sorted(set(ids)) and ids[0] == 1 and len(ids) == ids[-1]


def test_search_filters_the_log_and_clearing_restores_it(page: Page, server: Running) -> None:
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        sock.sendall(b"apple pie\nbanana split\nApple tart\n")
        log = page.get_by_role("log")
        expect(log).to_contain_text("Apple tart")
        page.get_by_label("Search the transcript").fill("apple")
        expect(page.locator("#search-info")).to_contain_text("apple")
        expect(log).not_to_contain_text("banana")
        expect(page.locator(".row")).to_have_count(2)
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
        with dial(f"127.0.0.1:{running.tcp_port}") as sock:
            expect(page.locator("#peer option")).to_have_count(2)
            sock.sendall(b"A\x00B\r\n")
            line = page.locator(".row.in").first
            expect(line).to_contain_text("127.0.0.1")
            expect(page.locator(".row button")).to_have_count(0)  # no button on every row
            menu = page.get_by_label("Selected entry as")
            expect(menu).to_be_disabled()
            line.click()
            expect(menu).to_have_value("text")
            page.keyboard.press("v")  # a key on the selected row
            expect(line.locator(".text")).to_have_text("A\\0B\\r\\n")
            menu.select_option("hex")
            expect(line.locator(".text")).to_have_text(
                re.compile(r"^00000000  41 00 42 0d 0a +\|A\.B\.\.\|$")
            )
            menu.select_option("text")
            expect(line.locator(".text")).to_have_text("A\x00B\r\n")
            page.get_by_label("Show as hex").check()
            expect(line.locator(".text")).to_contain_text("41 00 42 0d 0a")
            page.get_by_label("Send as").select_option("hex")
            page.get_by_label("Message").fill("de ad be ef")
            page.get_by_label("Message").press("Enter")
            sock.settimeout(5)
            assert sock.recv(100) == b"\xde\xad\xbe\xef"
            page.get_by_label("Message").fill("abc")
            page.get_by_label("Message").press("Enter")
            expect(page.locator("#send-error")).to_contain_text("odd count")
            expect(page.get_by_label("Message")).to_have_value("abc")  # a refused send keeps it
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
    expect(page.locator("#status")).to_have_text("webchat unreachable · reconnecting…")
    expect(page.locator("#roster")).to_have_class(re.compile("stale"))
    second = Running("server", *ports, "--quiet", "--db", db)
    try:
        expect(page.locator("#status")).to_contain_text("WebSocket open", timeout=15_000)
        with dial(f"127.0.0.1:{second.tcp_port}") as sock:
            sock.sendall(b"after the restart\n")
            expect(log).to_contain_text("after the restart")
        expect(page.locator(".row", has_text="before the crash")).to_have_count(1)
        page.reload()
        expect(log).to_contain_text("after the restart")
        expect(page.locator(".row", has_text="before the crash")).to_have_count(1)
        ids = page.locator(".row").evaluate_all("els => els.map(e => Number(e.dataset.id))")
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


def test_a_flood_of_20000_lines_leaves_the_page_usable(page: Page, server: Running) -> None:
    """Generous bounds: the figures (lines drawn per second, keystroke latency) are the
    benchmark's; this pins that the page keeps up, keeps its socket and echoes typing."""
    entry = page.get_by_label("Message")
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        expect(page.locator("#peers .peer")).to_have_count(1)
        flood = threading.Thread(
            target=sock.sendall, args=(b"".join(b"flood %05d\n" % i for i in range(20_000)),)
        )
        flood.start()
        entry.press_sequentially("typed during the flood", delay=20)
        expect(entry).to_have_value("typed during the flood", timeout=5000)
        flood.join()
        expect(page.locator(".row").last).to_contain_text("flood 19999", timeout=30_000)
        expect(page.locator("#status")).to_contain_text("WebSocket open")
        assert page.locator(".row").count() <= 400  # only rows near the view are in the DOM
        log = page.get_by_role("log")
        log.focus()
        page.keyboard.press("Home")  # the very first entry, 20,000 lines up
        expect(page.locator(".row").first).to_contain_text("Waiting for a client")
        page.keyboard.press("End")
        expect(page.locator(".row").last).to_contain_text("flood 19999")


def test_a_refused_send_keeps_its_text_and_up_recalls_earlier_sends(
    page: Page, server: Running
) -> None:
    entry = page.get_by_label("Message")
    entry.fill("nobody to hear this")
    entry.press("Enter")
    expect(page.locator("#send-error")).to_contain_text("no TCP client is connected")
    expect(entry).to_have_value("nobody to hear this")
    entry.fill("")
    entry.press("Enter")  # an empty entry sends nothing
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        expect(page.locator("#peers .peer")).to_have_count(1)
        for text in ("first", "second"):
            entry.fill(text)
            entry.press("Enter")
            expect(entry).to_have_value("")
            assert recv_until(sock, b"\n") == text.encode() + b"\n"
        expect(page.locator("#send-error")).to_be_hidden()
        entry.press("ArrowUp")
        expect(entry).to_have_value("second")
        entry.press("ArrowUp")
        expect(entry).to_have_value("first")
        entry.press("ArrowDown")
        expect(entry).to_have_value("second")
        entry.press("Shift+Enter")
        entry.type("more")
        expect(entry).to_have_value("second\nmore")
        entry.press("Enter")
        assert recv_until(sock, b"more\n") == b"second\nmore\n"


def test_a_send_without_line_ending_arrives_exactly_as_typed(browser: Browser) -> None:
    with Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet") as running:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{running.http_port}/")
        with dial(f"127.0.0.1:{running.tcp_port}") as sock:
            expect(page.locator("#peers .peer")).to_have_count(1)
            page.get_by_label("Line ending").select_option("none")
            page.get_by_label("Send as").select_option("hex")
            page.get_by_label("Message").fill("2a 31 0d 0a")
            page.get_by_label("Message").press("Enter")
            sock.settimeout(5)
            assert sock.recv(100) == b"*1\r\n"  # no LF added by the line framing
        page.close()


def test_the_roster_shows_every_peer_and_targets_one(page: Page, server: Running) -> None:
    with dial(f"127.0.0.1:{server.tcp_port}") as a, dial(f"127.0.0.1:{server.tcp_port}") as b:
        name_b = f"127.0.0.1:{b.getsockname()[1]}"
        a.sendall(b"hello\n")
        expect(page.locator("#peers .peer")).to_have_count(2)
        expect(
            page.locator("#peers li", has_text=f"127.0.0.1:{a.getsockname()[1]}")
        ).to_contain_text("in 6 B")
        expect(page.locator("#pages")).to_have_text("1 page open")
        page.get_by_text("Who is there").click()  # a drawer at phone size
        page.locator("#peers .peer", has_text=name_b).click()
        expect(page.get_by_label("Send to")).to_have_value(name_b)
        page.get_by_label("Message").fill("just b")
        page.get_by_label("Message").press("Enter")
        assert recv_until(b, b"\n") == b"just b\n"
        a.settimeout(0.3)
        with pytest.raises(TimeoutError):
            a.recv(10)
    expect(page.locator("#peers .peer")).to_have_count(0)
    expect(page.locator("#peers")).to_contain_text("no TCP client yet")


def test_the_client_role_panel_disconnects_and_connects(browser: Browser) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        target = f"127.0.0.1:{listener.getsockname()[1]}"
        args = ("client", "--connect", target, "--http-port", "0", "--quiet")
        with Running(*args) as running:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{running.http_port}/")
            accepted, _ = listener.accept()
            expect(page.locator("#connection")).to_have_text(f"{target}: connected")
            page.get_by_role("button", name="Disconnect").click()
            expect(page.locator("#connection")).to_have_text(f"{target}: stopped")
            accepted.settimeout(5)
            assert accepted.recv(10) == b""
            page.get_by_role("button", name="Connect now").click()
            again, _ = listener.accept()
            expect(page.locator("#connection")).to_have_text(f"{target}: connected")
            expect(page).to_have_title(f"webchat · client {target}")
            accepted.close()
            again.close()
            page.close()


def test_a_10_mb_file_from_the_page_arrives_byte_for_byte(
    page: Page, server: Running, tmp_path: Path
) -> None:
    data = os.urandom(10 * 1024 * 1024)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        expect(page.get_by_role("log")).to_contain_text("Connected with")
        received = bytearray()

        def read() -> None:
            sock.settimeout(30)
            while len(received) < len(data) and (chunk := sock.recv(1 << 20)):
                received.extend(chunk)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        page.get_by_label("Send file").set_input_files(str(path))
        expect(page.locator("#send-error")).to_have_text(
            f"sent data.bin: {len(data)} bytes in 160 messages", timeout=30_000
        )
        reader.join(30)
        assert bytes(received) == data
        expect(page.locator(".row.out")).not_to_have_count(0)


def test_a_view_only_link_shows_the_log_live_but_cannot_send(browser: Browser) -> None:
    with Running(
        "server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--view-token", "watch-only-123"
    ) as running:
        assert "view-only page at http://127.0.0.1:" in running.start_line
        assert running.token  # a full token was made and shown beside it
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{running.http_port}/?token=watch-only-123")
        expect(page.locator("#view-only")).to_have_text("view only")
        with dial(f"127.0.0.1:{running.tcp_port}") as sock:
            sock.sendall(b"live for the class\n")
            expect(page.get_by_role("log")).to_contain_text("live for the class")
            expect(page.get_by_role("button", name="Send")).to_be_hidden()
            expect(page.get_by_label("Message")).to_be_hidden()
            refused = page.evaluate(
                """async () => (await fetch("api/messages", {method: "POST",
                    headers: {"Content-Type": "application/json"},
                    body: JSON.stringify({text: "sneaky"})})).status"""
            )
            assert refused == 403
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(10)
        page.close()


def test_a_snippet_saved_on_the_page_is_sent_with_one_click(
    browser: Browser, server: Running
) -> None:
    page = browser.new_page()

    def accept_greet(dialog: Dialog) -> None:
        dialog.accept("greet")

    page.on("dialog", accept_greet)
    page.goto(f"http://127.0.0.1:{server.http_port}/")
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        expect(page.locator("#peers .peer")).to_have_count(1)
        page.get_by_label("Message").fill("hello #{{counter}}")
        page.get_by_role("button", name="Save as snippet").click()
        greet = page.get_by_role("button", name="greet", exact=True)
        greet.click()
        assert recv_until(sock, b"\n") == b"hello #1\n"
        greet.click()
        assert recv_until(sock, b"\n") == b"hello #2\n"
        page.remove_listener("dialog", accept_greet)
        page.once("dialog", lambda dialog: dialog.accept("changed #{{counter}}"))
        page.get_by_role("button", name="Edit snippet greet").click()
        expect(greet).to_have_attribute("title", "changed #{{counter}}")
        greet.click()
        assert recv_until(sock, b"\n") == b"changed #3\n"
        page.get_by_role("button", name="Delete snippet greet").click()
        expect(greet).to_have_count(0)
    page.close()


def test_a_browser_user_and_nc_chat_in_one_room(browser: Browser) -> None:
    with Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--chat") as running:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{running.http_port}/")
        name = page.get_by_label("Your name")
        expect(name).to_be_visible()
        name.fill("alice")
        name.dispatch_event("change")
        with dial(f"127.0.0.1:{running.tcp_port}") as sock:
            assert recv_until(sock, b"\n").startswith(b"* welcome, you are user1")
            expect(page.get_by_role("log")).to_contain_text("user1 joined")
            entry = page.get_by_label("Message")
            entry.fill("hello room")
            entry.press("Enter")
            assert recv_until(sock, b"\n") == b"<alice> hello room\n"
            sock.sendall(b"hi alice\n")
            expect(page.get_by_role("log")).to_contain_text("hi alice")
        other = browser.new_page(viewport={"width": 1280, "height": 800})
        other.goto(f"http://127.0.0.1:{running.http_port}/")
        expect(other.locator("#visitors")).to_contain_text("alice · 127.0.0.1:")
        expect(other.locator("#visitors .visitor")).to_have_count(2)
        other.close()
        page.reload()
        expect(page.get_by_label("Your name")).to_have_value("alice")  # remembered
        page.close()


def test_rules_are_added_switched_and_deleted_on_the_page(
    browser: Browser, server: Running
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"http://127.0.0.1:{server.http_port}/")
    page.locator("#rules summary").click()
    page.get_by_label("When a line matches (regex)").fill("^PING (.*)$")
    page.get_by_label("Reply with").fill(r"PONG \1")
    page.get_by_role("button", name="Add rule").click()
    rules = page.locator("#rule-list .rule")
    expect(rules).to_have_count(1)
    expect(rules).to_contain_text(r"when /^PING (.*)$/ → PONG \1")
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        expect(page.locator("#peers .peer")).to_have_count(1)
        sock.sendall(b"PING :x\n")
        assert recv_until(sock, b"\n") == b"PONG :x\n"
        page.get_by_label("Rule 1 enabled").uncheck()
        expect(page.get_by_label("Rule 1 enabled")).not_to_be_checked()
        wait_until(lambda: not httpx.get(rules_url(server)).json()["rules"][0]["enabled"])
        page.get_by_label("When a line matches (regex)").fill("(unclosed")
        page.get_by_label("Reply with").fill("never")
        page.get_by_role("button", name="Add rule").click()
        expect(page.locator("#send-error")).to_contain_text("not a regular expression")
    page.get_by_role("button", name="Delete rule 1").click()
    expect(rules).to_have_count(0)
    page.close()


def rules_url(server: Running) -> str:
    return f"http://127.0.0.1:{server.http_port}/api/rules"


def test_an_automatic_reply_is_marked_on_the_page(browser: Browser) -> None:
    with Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--echo") as running:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{running.http_port}/")
        with dial(f"127.0.0.1:{running.tcp_port}") as sock:
            sock.sendall(b"say it back\n")
            assert recv_until(sock, b"\n") == b"say it back\n"
            auto = page.locator(".row.out .dir", has_text="auto")
            expect(auto).to_have_count(1)
            expect(auto).to_have_attribute("title", re.compile("auto-responder rule 0"))
        page.close()


def test_start_tls_from_the_client_panel(browser: Browser, tmp_path: Path) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    handle = upgrading_server(context, b"hello\n", b"STARTTLS", b"go ahead\n")
    with serving(handle) as port, Running(
        "client", "--connect", f"127.0.0.1:{port}", "--http-port", "0", "--quiet",
        "--starttls", "plain", "--tls-ca", str(tmp_path / "ca.pem"),
    ) as running:  # fmt: skip
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"http://127.0.0.1:{running.http_port}/")
        start = page.get_by_role("button", name="Start TLS")
        expect(page.get_by_role("log")).to_contain_text("hello")
        expect(start).to_be_visible()
        entry = page.get_by_label("Message")
        entry.fill("STARTTLS")
        entry.press("Enter")
        expect(page.get_by_role("log")).to_contain_text("go ahead")
        start.click()
        expect(page.locator("#connection")).to_contain_text("🔒 TLSv1")
        expect(page.get_by_role("log")).to_contain_text("STARTTLS (plain): TLSv1")
        expect(start).to_be_hidden()
        lock = page.locator("#peers .lock")
        expect(lock).to_have_attribute(
            "title", re.compile(r"certificate: .*\nSHA-256: [0-9a-f]{64}")
        )
        entry.fill("over tls")
        entry.press("Enter")
        expect(page.get_by_role("log")).to_contain_text("echo: over tls")
        page.close()


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
def test_screenshots_at_desktop_and_phone_size(
    browser: Browser, server: Running, tmp_path: Path, width: int, height: int
) -> None:
    """The pictures are for a person to look at (they go to the test's tmp_path); what is
    asserted is what a phone needs: one row per entry and a hex dump that fits."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{server.http_port}/")
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        sock.sendall(b"a line from nc\n" + bytes(b for b in range(40) if b != 10) + b"\n")
        expect(page.locator(".row.in")).to_have_count(2)
        page.get_by_label("Show as hex").check()
        dump = page.locator(".row.in .text").last
        expect(dump).to_contain_text("|")
        assert dump.evaluate("el => el.scrollWidth <= el.clientWidth + 1")  # no sideways scroll
        row = page.locator(".row.in").first
        assert row.evaluate("el => getComputedStyle(el).display") == "grid"
        page.screenshot(path=str(tmp_path / f"page-{width}x{height}.png"))
    assert page.locator("#roster").evaluate("el => el.open") == (width >= 768)
    context.close()


def test_scrolled_up_the_view_stays_and_n_new_jumps_back(page: Page, server: Running) -> None:
    log = page.get_by_role("log")
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        sock.sendall(b"".join(b"early %d\n" % i for i in range(200)))
        expect(page.locator(".row").last).to_contain_text("early 199")
        log.evaluate("el => { el.scrollTop = el.scrollHeight / 2; }")
        page.wait_for_timeout(200)
        top = log.evaluate("el => el.scrollTop")
        reading = page.locator(".row").nth(100).text_content()
        sock.sendall(b"".join(b"later %d\n" % i for i in range(50)))
        jump = page.get_by_role("button", name=re.compile(r"new ↓"))
        expect(jump).to_have_text("50 new ↓")
        assert log.evaluate("el => el.scrollTop") == top  # the view stays where it is
        assert page.locator(".row").nth(100).text_content() == reading
        jump.click()
        expect(page.locator(".row").last).to_contain_text("later 49")
        expect(jump).to_be_hidden()


def test_clearing_the_transcript_empties_the_open_page(page: Page, server: Running) -> None:
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        sock.sendall(b"soon gone\n")
        expect(page.get_by_role("log")).to_contain_text("soon gone")
        cleared = httpx.delete(f"http://127.0.0.1:{server.http_port}/api/messages")
        assert cleared.status_code == 200
        expect(page.locator(".row")).to_have_count(1)
        expect(page.locator(".row")).to_contain_text("Transcript cleared")
        sock.sendall(b"after the clear\n")
        expect(page.locator(".row")).to_have_count(2)


def test_the_badge_says_when_the_transcript_store_is_away(browser: Browser, tmp_path: Path) -> None:
    """In a shared room too: the roster lists the peer another instance holds, by instance."""
    redis_server = RedisServer(tmp_path)
    flags = ("--tcp-port", "0", "--http-port", "0", "--quiet", "--store", redis_server.url)
    try:
        with (
            Running("server", *flags) as running,
            Running("server", *flags) as other,
            dial(f"127.0.0.1:{other.tcp_port}") as sock,
        ):
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{running.http_port}/")
            badge = page.locator("#status")
            expect(badge).to_contain_text("WebSocket open")
            held = page.locator("#peers li", has_text=f"127.0.0.1:{sock.getsockname()[1]}")
            expect(held).to_contain_text(re.compile(r"on \S+-\d+-[0-9a-f]{4}"))
            expect(held).not_to_contain_text("undefined")
            expect(badge).to_contain_text(re.compile(r"TCP 0 clients on \S+ · 1 in the room"))
            with viewer(redis_server.url) as (_, http):
                watching = context.new_page()
                watching.goto(f"{http.base_url}")
                expect(watching.locator("#status")).to_contain_text("TCP 1 client in the room")
            redis_server.stop()
            expect(badge).to_contain_text("transcript store unavailable", timeout=10_000)
            expect(badge).to_contain_text("cannot be reached")
            redis_server.start()
            expect(badge).to_contain_text("WebSocket open", timeout=10_000)
            context.close()
    finally:
        redis_server.stop()
