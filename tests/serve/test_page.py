"""The page of ``niwt serve`` in a real browser (Debian's Chromium through Playwright), on the small
run the suite trains: drop an image and see its ranking and map; teach a class from its attribute
values and see it ranked; a reload keeps it; forget it; a bad upload shows its message; and every
request the page makes goes to the server itself."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from niwt.serve.server import RunServer, ServeOptions
from tests.serve._browser import launch, require_browser
from tests.serve._helpers import shape_png

pytestmark = pytest.mark.browser

DISC = {"shape:disc": "0.9", "colour:yellow": "0.02", "pattern:stripes": "0.9", "size:large": "0.9"}


@pytest.fixture(scope="module")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture()
def server(tmp_path, small_run_dir):
    source = Path(shutil.copytree(small_run_dir, tmp_path / "run"))
    with RunServer(source, ServeOptions(port=0)) as running:
        yield running


def _open(browser, server, width: int = 1280):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready=true]")
    return context, page, requests, errors


def _drop(page, data: bytes, name: str) -> None:
    """Drop a file on the page's drop zone, as a person dragging it from a file manager does."""
    page.evaluate("""([b64, name]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, {type: "image/png"}));
        document.getElementById("drop").dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""", [base64.b64encode(data).decode(), name])


def _only_own_origin(requests: list[str], server) -> None:
    assert requests, "the page made no request"
    foreign = [u for u in requests if not (u.startswith(server.origin + "/") or u.startswith("data:"))]
    assert not foreign, f"requests that leave the server: {foreign}"


def test_drop_an_image_teach_a_class_reload_forget_it_and_a_bad_upload(browser, server):
    from playwright.sync_api import expect

    context, page, requests, errors = _open(browser, server)
    try:
        page.get_by_label("Classes listed per image").fill("20")
        _drop(page, shape_png(), "disc.png")
        card = page.locator("article.result").first
        expect(card.locator("img.overlay")).to_be_visible()
        expect(card.locator(".ranking li")).to_have_count(11)  # every class of the run, ranked
        expect(card.locator(".ranking button").first).to_have_attribute("aria-pressed", "true")
        expect(card.locator(".terms li")).to_have_count(5)
        expect(card.locator(".meta")).to_contain_text("96 x 96 PNG")
        other = card.locator(".ranking button").nth(3)
        name = other.text_content()
        other.click()
        expect(card.locator("img.overlay")).to_have_attribute("alt", f"Grad-CAM map of {name} over disc.png")
        expect(other).to_have_attribute("aria-pressed", "true")

        page.get_by_label("Class name").fill("striped-yellow-disc")
        for attribute, value in DISC.items():
            page.get_by_label(attribute, exact=True).fill(value)
        page.get_by_role("button", name="Teach").click()
        expect(page.locator("#teach-status")).to_contain_text("Taught striped-yellow-disc", timeout=60_000)
        expect(page.locator("#teach-status")).to_contain_text(str(server.session.source) + "-taught")
        taught = card.locator(".ranking li.class-taught")
        expect(taught).to_have_count(1)
        expect(taught).to_contain_text("striped-yellow-disc")
        expect(card.locator(".ranking li")).to_have_count(12)
        expect(page.locator("#classes")).to_contain_text("striped-yellow-disc")

        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        expect(page.locator("#classes tr", has_text="striped-yellow-disc")).to_contain_text("taught")
        card = page.locator("article.result").first  # the image is shown again, the taught class ranked
        expect(card.locator(".ranking li.class-taught")).to_contain_text("striped-yellow-disc")

        page.get_by_label("Class to forget").select_option("striped-yellow-disc")
        page.get_by_role("button", name="Forget").click()
        expect(page.locator("#forget-status")).to_contain_text("Forgot striped-yellow-disc", timeout=60_000)
        expect(card.locator(".ranking li.class-taught")).to_have_count(0)
        expect(page.locator("#classes")).not_to_contain_text("striped-yellow-disc")

        page.get_by_label("Images (PNG or JPEG, any size)").set_input_files(
            files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a picture at all\n"}])
        bad = page.locator("article.result.failed").first
        expect(bad.locator(".error")).to_contain_text("'notes.txt' is not a PNG or JPEG image")
        expect(bad.locator(".meta")).to_contain_text("nothing was changed")
        expect(page.locator("article.result")).to_have_count(2)
        assert not errors, errors
    finally:
        context.close()
    _only_own_origin(requests, server)


def test_a_bad_class_shows_its_message_and_the_page_fits_400_pixels(browser, server):
    from playwright.sync_api import expect

    context, page, requests, errors = _open(browser, server, width=400)
    try:
        page.get_by_label("Images (PNG or JPEG, any size)").set_input_files(
            files=[{"name": "disc.png", "mimeType": "image/png", "buffer": shape_png()}])
        expect(page.locator("article.result img.overlay")).to_be_visible()
        page.get_by_label("Class name").fill("a/b")
        page.get_by_label("shape:disc", exact=True).fill("1")
        page.get_by_role("button", name="Teach").click()
        expect(page.locator("#teach-status")).to_contain_text("class name 'a/b' holds /")
        expect(page.locator("#teach-status")).to_have_class("status error")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 400, f"the page is {width} px wide in a 400 px window"
        assert server.session.saved_to is None and not errors
        response = page.goto(server.origin + "/api/state?token=wrong")
        assert response.status == 403
    finally:
        context.close()
    _only_own_origin(requests, server)
