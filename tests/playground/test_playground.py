"""The chat playground in real headless Chromium (Debian's, driven by Playwright) against the real engine, through
a gateway with API keys: streaming, images three ways, stop, keys, storage, export/import, tools, a phone screen,
and no request to any other origin."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Route,
    expect,
    sync_playwright,
)

from server.access.auth import hash_key
from server.playground.routes import CSP
from tests.support.gateway_process import ENGINE_KEY, OUTPUT_DIR, Gateway, attached_gateway
from tests.support.helpers import WEATHER_TOOL, png

pytestmark = pytest.mark.engine

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium calls Google's hosts at start; as root it needs --no-sandbox.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
KEY = "sk-ml-playground-0123456789"


@pytest.fixture(scope="module")
def keyed(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway with keys, attached to the session's engine: the page must work the way it is deployed."""
    env = {
        "MISTRAL_LOCAL_API_KEYS": json.dumps([{"label": "people", "sha256": hash_key(KEY)}]),
        "MISTRAL_LOCAL_DB_PATH": str(tmp_path_factory.mktemp("records") / "p.sqlite3"),
    }
    with attached_gateway("gateway-playground", gateway, ENGINE_KEY, env, {"Authorization": f"Bearer {KEY}"}) as gw:
        yield gw


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert CHROMIUM.is_file(), "Debian's chromium is missing: `make test` installs it (scripts/browser.sh)"
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield b
    b.close()


class Visit:
    """One fresh browser context on the playground, recording every request and every page error."""

    def __init__(self, browser: Browser, gateway: Gateway, **context: object) -> None:
        self.context: BrowserContext = browser.new_context(**context)  # type: ignore[arg-type]
        self.page: Page = self.context.new_page()
        self.requests: list[Request] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", self._console)
        self.url = gateway.url

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium logs every HTTP error answer ("Failed to load resource: … 401"); the page shows those itself.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def open(self, key: str | None = KEY) -> Page:
        self.page.goto(f"{self.url}/")
        if key is not None:
            self.set_key(key)
        return self.page

    def set_key(self, key: str, remember: bool = False) -> None:
        self.page.get_by_role("button", name="API key").click()
        self.page.get_by_label("Key", exact=True).fill(key)
        if remember:
            self.page.get_by_label("Remember on this device").check()
        self.page.get_by_role("button", name="Save").click()

    def say(self, text: str) -> None:
        self.page.get_by_label("Message").fill(text)
        self.page.get_by_label("Message").press("Enter")

    def wait_answer(self) -> str:
        answer = self.page.locator("article.message.assistant").last
        expect(answer.locator(".figures")).to_contain_text("finish:", timeout=60_000)
        return answer.inner_text()


@pytest.fixture
def visit(browser: Browser, keyed: Gateway) -> Iterator[Visit]:
    v = Visit(browser, keyed)
    yield v
    v.context.close()
    assert not v.errors, v.errors


def test_page_is_local_strict_and_needs_the_key(visit: Visit) -> None:
    page = visit.open(key=None)
    expect(page.locator("#status")).to_contain_text("key needed (401")
    visit.set_key(KEY)
    expect(page.locator("#status")).to_contain_text("engine ready", timeout=10_000)
    box = page.get_by_label("Message")
    box.fill("first line")
    box.press("Shift+Enter")
    box.type("second line")
    expect(box).to_have_value("first line\nsecond line")  # Shift+Enter: a new line, nothing sent
    expect(page.locator("article.message")).to_have_count(0)
    response = httpx.get(f"{visit.url}/playground")
    assert response.headers["content-security-policy"] == CSP
    assert "default-src 'none'" in CSP and "connect-src 'self'" in CSP
    assert all(r.url.startswith(visit.url + "/") for r in visit.requests), [r.url for r in visit.requests]


def test_answer_streams_with_its_figures(visit: Visit) -> None:
    page = visit.open()
    page.get_by_text("Settings").click()
    page.get_by_label("Max tokens").fill("200")  # long enough to be seen growing on a loaded machine
    # Every length the answer's text takes, recorded in the page as the DOM changes: polling from here can miss a
    # fast stream entirely on a loaded machine.
    page.evaluate("""() => {
        window.lengths = new Set();
        new MutationObserver(() => {
            const bodies = document.querySelectorAll("article.message.assistant .body");
            if (bodies.length) window.lengths.add(bodies[bodies.length - 1].innerText.length);
        }).observe(document.body, { subtree: true, childList: true, characterData: true });
    }""")
    visit.say("Tell me about the sea")
    answer = page.locator("article.message.assistant").last
    expect(answer.locator(".figures")).to_contain_text("finish:", timeout=60_000)
    figures = answer.locator(".figures").inner_text()
    assert "TTFT" in figures and "tok/s" in figures and "out" in figures and "finish: length" in figures
    seen: list[int] = page.evaluate("[...window.lengths]")
    assert len({n for n in seen if n > 0}) >= 2, "the answer appeared at once, not streamed"
    expect(page.locator("article.message.user .body")).to_have_text("Tell me about the sea")
    assert all(r.url.startswith(visit.url + "/") for r in visit.requests)
    page.screenshot(path=OUTPUT_DIR / "playground-desktop.png")  # for people reviewing the page


def test_images_by_picker_drop_and_paste(visit: Visit, tmp_path: Path) -> None:
    page = visit.open()
    picked = tmp_path / "red.png"
    picked.write_bytes(png(56, 56, (200, 30, 30)))
    page.locator("#file").set_input_files(str(picked))
    drop_paste = """([b64, how]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], "x.png", { type: "image/png" }));
        const target = document.getElementById(how === "drop" ? "composer" : "input");
        const event = how === "drop"
            ? new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true })
            : new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true });
        target.dispatchEvent(event);
    }"""
    page.evaluate(drop_paste, [base64.b64encode(png(56, 56, (30, 200, 30))).decode(), "drop"])
    page.evaluate(drop_paste, [base64.b64encode(png(56, 56, (30, 30, 200))).decode(), "paste"])
    expect(page.locator("#attachments img")).to_have_count(3)
    with page.expect_request(lambda r: r.url.endswith("/chat/completions")) as sent:
        visit.say("What colours are these?")
    body = json.loads(sent.value.post_data or "{}")
    parts = body["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url", "image_url"]
    assert all(p["image_url"]["url"].startswith("data:image/png;base64,") for p in parts[1:])
    visit.wait_answer()
    expect(page.locator("article.message.user img")).to_have_count(3)
    expect(page.locator("#attachments img")).to_have_count(0)


def test_stop_aborts_the_generation(visit: Visit) -> None:
    page = visit.open()

    def without_eos(route: Route) -> None:  # the answer cannot end by itself before Stop: only the abort ends it
        body = json.loads(route.request.post_data or "{}")
        route.continue_(post_data=json.dumps({**body, "ignore_eos": True}))

    page.route("**/chat/completions", without_eos)
    page.get_by_text("Settings").click()
    page.get_by_label("Max tokens").fill("3000")
    visit.say("Write a very long story")
    answer = page.locator("article.message.assistant").last
    expect(answer.locator(".body")).not_to_have_text("", timeout=30_000)
    page.keyboard.press("Escape")
    expect(answer.locator(".figures")).to_contain_text("finish: stopped", timeout=10_000)
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    # The engine stops too: nothing is left in flight at the gateway.
    deadline = time.monotonic() + 10
    while httpx.get(f"{visit.url}/status", headers={"Authorization": f"Bearer {KEY}"}).json()["in_flight"]:
        assert time.monotonic() < deadline, "the stopped request is still in flight"
        time.sleep(0.1)


def test_a_wrong_key_shows_the_401(visit: Visit) -> None:
    page = visit.open(key="sk-ml-wrong")
    visit.say("hello")
    expect(page.locator("#error")).to_contain_text("401: Invalid API key (set your API key)")
    expect(page.locator("article.message.assistant")).to_have_count(0)


def test_reload_keeps_the_conversation_export_import_and_clear(visit: Visit, tmp_path: Path) -> None:
    page = visit.open()
    visit.say("Remember me")
    visit.wait_answer()
    page.reload()
    expect(page.locator("article.message.user")).to_contain_text("Remember me")
    expect(page.locator("article.message.assistant")).to_have_count(1)
    with page.expect_download() as download:
        page.get_by_role("button", name="Export").click()
    saved = tmp_path / "export.json"
    download.value.save_as(saved)
    exported = json.loads(saved.read_text())
    assert exported[0]["messages"][0]["content"] == "Remember me"
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Clear all").click()
    expect(page.locator("article.message")).to_have_count(0)
    page.locator("#import").set_input_files(str(saved))
    page.get_by_role("button", name="Remember me").click()
    expect(page.locator("article.message.user")).to_contain_text("Remember me")


def test_regenerate_and_edit_and_resend(visit: Visit) -> None:
    page = visit.open()
    visit.say("First question")
    visit.wait_answer()
    page.get_by_role("button", name="Regenerate").click()
    visit.wait_answer()
    expect(page.locator("article.message")).to_have_count(2)
    page.locator("article.message.user").get_by_role("button", name="Edit").click()
    page.get_by_label("Edit message").fill("Second question")
    page.get_by_role("button", name="Save and resend").click()
    visit.wait_answer()
    expect(page.locator("article.message")).to_have_count(2)
    expect(page.locator("article.message.user")).to_contain_text("Second question")


def test_tool_calls_are_shown(visit: Visit) -> None:
    page = visit.open()
    page.get_by_text("Settings").click()
    page.get_by_label("Tools").fill(json.dumps([WEATHER_TOOL]))
    page.get_by_label("Tool choice").select_option("fn:get_weather")
    page.get_by_label("Max tokens").fill("64")
    visit.say("Weather in Paris?")
    visit.wait_answer()
    expect(page.locator("article.message.assistant .tool-call")).to_contain_text("Tool call: get_weather(")


def test_phone_screen(browser: Browser, keyed: Gateway) -> None:
    v = Visit(browser, keyed, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = v.open()
        expect(page.get_by_label("Message")).to_be_visible()
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
        expect(page.get_by_role("navigation", name="Conversations")).to_be_hidden()
        page.get_by_role("button", name="Show conversations").click()
        expect(page.locator("#new-chat")).to_be_visible()
        page.screenshot(path=OUTPUT_DIR / "playground-phone.png")
        assert not v.errors, v.errors
    finally:
        v.context.close()
