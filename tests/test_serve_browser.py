"""The playground in a real browser: headless Debian chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from serve_helpers import make_modules  # noqa: E402
from loracompose.compose.methods import SERVED_METHODS  # noqa: E402
from loracompose.serve.background import serve_in_background  # noqa: E402

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser")
                             or "") if p and Path(p).is_file()), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium; .ci/run does)")


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    modules_dir = make_modules(tiny_model_dir, tmp_path_factory.mktemp("browser-modules"))
    with serve_in_background(str(tiny_model_dir), str(modules_dir), api_key="k3y", judges="none") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def open_with_key(served, browser):
    """(page, list of its script errors): the playground opened, the API key typed (its change event lists the models)."""
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(served)
    page.fill("#api-key", "k3y")
    page.locator("#api-key").blur()
    return page, errors


def test_move_a_slider_generate_and_see_streamed_text(served, browser):
    page, errors = open_with_key(served, browser)
    slider = page.locator("input[data-module='positive@tiny']")
    slider.wait_for()
    assert page.locator("#sliders input[type=range]").count() == 2
    assert slider.get_attribute("min") == "-1" and slider.get_attribute("max") == "2"
    box = slider.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)  # a click moves the thumb there
    for _ in range(3):
        slider.press("ArrowRight")  # and the keyboard nudges it by 0.1 a press
    weight = float(slider.input_value())
    assert 0.5 < weight <= 2
    assert page.locator("#sliders output").first.text_content() == f"{weight:.1f}"
    # the methods offered are the server's (its registry, via /v1/models), not a list in the page
    page.wait_for_function("document.querySelectorAll('#method option').length > 1")
    assert page.eval_on_selector_all("#method option", "els => els.map(e => e.value)") == list(SERVED_METHODS)
    page.select_option("#method", "output-mean")
    page.fill("#max-tokens", "24")
    # Count the text's growth as the stream arrives.
    page.evaluate("""() => { window.__updates = 0; new MutationObserver(() => window.__updates++)
        .observe(document.getElementById('output'), {subtree: true, childList: true, characterData: true}); }""")
    with page.expect_request("**/v1/completions") as sent:
        page.click("#generate")
    body = json.loads(sent.value.post_data)
    assert body["stream"] is True and body["max_tokens"] == 24
    assert body["composition"] == {"modules": {"positive@tiny": weight}, "method": "output-mean"}
    assert sent.value.headers["authorization"] == "Bearer k3y"
    page.wait_for_function("document.getElementById('status').textContent === 'done'", timeout=30_000)
    text = page.locator("#generated").text_content()
    assert len(text.strip()) > 0
    assert page.evaluate("window.__updates") > 3  # the text arrived in pieces, not at once
    page.wait_for_function("document.getElementById('judges').textContent.includes('no judges')", timeout=10_000)
    assert errors == []


def test_the_page_shows_the_servers_error_message(served, browser):
    page = browser.new_page()
    page.goto(served)
    page.wait_for_function("document.getElementById('sliders').textContent.includes('missing or wrong API key')")
    page.fill("#api-key", "k3y")
    page.locator("#api-key").blur()
    page.locator("input[data-module='sport@tiny']").wait_for()
    page.fill("#max-tokens", "100000")
    page.click("#generate")
    page.wait_for_function("document.getElementById('status').textContent.includes('max_tokens 100000 is out of "
                           "range')")


def test_an_attribute_control_sends_steer(served, browser):
    page, errors = open_with_key(served, browser)
    control = page.locator("input[data-attribute='topic']")
    control.wait_for()
    assert page.locator("#attributes input[type=range]").count() == 2  # sentiment and topic
    assert page.locator("#v-topic option").all_text_contents() == ["sport"]
    for _ in range(15):
        control.press("ArrowRight")  # 0.1 a press: strength 1.5
    assert page.locator("#attributes output").nth(1).text_content() == "sport 1.5"
    with page.expect_request("**/v1/completions") as sent:
        page.click("#generate")
    body = json.loads(sent.value.post_data)
    assert body["steer"] == {"targets": {"topic": "sport"}, "strength": {"topic": 1.5}}
    assert "composition" not in body
    page.wait_for_function("document.getElementById('status').textContent === 'done'", timeout=30_000)
    # both kinds at once are refused on the page, before any request
    page.locator("input[data-module='positive@tiny']").press("ArrowRight")
    page.click("#generate")
    assert "not both" in page.locator("#status").text_content()
    assert errors == []


def test_compare_view_shows_base_and_composed_side_by_side(served, browser):
    page, errors = open_with_key(served, browser)
    slider = page.locator("input[data-module='positive@tiny']")
    slider.wait_for()
    page.click("#compare")  # nothing composed yet: said on the page, no request
    assert "nothing to compare" in page.locator("#status").text_content()
    assert page.locator("#compare-view").is_hidden()
    page.fill("#prompt", "The road")
    page.fill("#max-tokens", "12")
    page.fill("#seed", "5")
    for _ in range(10):
        slider.press("ArrowRight")  # weight 1.0
    sent = []
    page.on("request", lambda r: sent.append(json.loads(r.post_data)) if r.url.endswith("/v1/completions") else None)
    page.click("#compare")
    page.wait_for_function("document.getElementById('status').textContent === 'compared'", timeout=30_000)
    assert len(sent) == 2
    base, composed = sorted(sent, key=lambda body: "composition" in body)
    assert "composition" not in base and "steer" not in base
    assert composed["composition"] == {"modules": {"positive@tiny": 1.0}, "method": "output-sum"}
    assert {k: base[k] for k in ("prompt", "seed", "max_tokens")} == {k: composed[k] for k in ("prompt", "seed",
                                                                                                "max_tokens")}
    assert base["seed"] == 5 and base["prompt"] == "The road"
    shown = {"base": page.locator("#compare-base").text_content(),
             "composed": page.locator("#compare-composed").text_content()}
    # each column is what the API answers for that request on its own (same seed, same text)
    for name, body in (("base", base), ("composed", composed)):
        alone = page.request.post(served.rstrip("/") + "/v1/completions", data=body,
                                  headers={"Authorization": "Bearer k3y"}).json()
        assert shown[name] == "The road" + alone["choices"][0]["text"]
    assert shown["base"] != shown["composed"]  # the module changes the continuation
    assert "positive@tiny 1" in page.locator("#compare-what").text_content()
    for box in ("#compare-base-judges", "#compare-composed-judges"):
        page.wait_for_function(f"document.querySelector('{box}').textContent.includes('no judges')", timeout=10_000)
    assert page.locator("#compare-view").is_visible() and page.locator("#output").is_hidden()
    page.click("#generate")  # back to one streamed continuation: the compare view steps aside
    page.wait_for_function("document.getElementById('status').textContent === 'done'", timeout=30_000)
    assert page.locator("#compare-view").is_hidden() and page.locator("#output").is_visible()
    assert errors == []
