"""`winner serve`'s page in a real browser: headless Chromium types a sentence, the entities appear.

Needs the Debian packages chromium and chromium-driver (`.ci/run` installs them) and the selenium package (the
dev extra); skips, saying which is missing, where they are absent. Set WINNER_SCREENSHOT=path.png to keep the
screenshot (the README's picture was made that way).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from winner.data.text import tokenize

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SENTENCE = "John Smith flew from Paris to New York with <script>alert(1)</script> ."

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install -y chromium "
                                                "chromium-driver; .ci/run does)"),
    pytest.mark.skipif(CHROMEDRIVER is None, reason="no chromedriver on PATH (Debian: apt-get install -y "
                                                    "chromium-driver)"),
    pytest.mark.slow,
]


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def api_entities(port: int, text: str) -> list[tuple[str, str]]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/tag", data=json.dumps({"text": text}).encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        answer = json.load(r)
    return [(e["type"], e["text"]) for s in answer["sentences"] for e in s["entities"]]


def test_typed_sentence_shows_highlighted_entities_and_explanations(small_tagger, start_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with start_server(small_tagger) as (_, port):
        browser.get(f"http://127.0.0.1:{port}/")
        box = browser.find_element(By.ID, "text")
        box.clear()
        box.send_keys(SENTENCE)
        browser.find_element(By.ID, "tag").click()
        WebDriverWait(browser, 120).until(lambda d: "sentence" in d.find_element(By.ID, "status").text)
        marks = browser.find_elements(By.CSS_SELECTOR, "#result mark.entity")
        shown = []
        for m in marks:
            label = m.find_element(By.CSS_SELECTOR, ".label").text
            assert m.get_attribute("data-type") == label
            shown.append((label, m.text.removesuffix(label).strip()))
        assert shown and shown == api_entities(port, SENTENCE)  # the DOM shows exactly what the API found
        assert ("PER", "John Smith") in shown
        text = browser.find_element(By.CSS_SELECTOR, "#result p.sentence").text
        assert "< script >" in text  # typed markup is shown as text, never run
        browser.find_element(By.ID, "explain").click()
        WebDriverWait(browser, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#result details.why"))
        browser.find_element(By.CSS_SELECTOR, "#result details.why summary").click()
        rows = browser.find_elements(By.CSS_SELECTOR, "#result table.heat tr")
        assert len(rows) == 1 + len(tokenize(SENTENCE))  # a header, then a row per token
        strips = browser.find_elements(By.CSS_SELECTOR, "#result .strip")
        assert len(strips) == 7 * len(tokenize(SENTENCE))  # a window of 5 words and the 2 document codes
        shot = tmp_path / "page.png"
        assert browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        if os.environ.get("WINNER_SCREENSHOT"):
            shutil.copyfile(shot, Path(os.environ["WINNER_SCREENSHOT"]))
