"""The profile page as a person uses it, in Debian's Chromium driven by Playwright, against a real
`tasteprint serve` on the embedded model: sign in, see picks whose explanations cite their history,
say "not interested" in a label and see it gone without a reload, see the profile the background
worker writes, all on a phone-width screen."""

from __future__ import annotations

import shutil
import time

import pytest
from http_servers import tasteprint_server

from tasteprint import Tasteprint
from tasteprint.cli.demo import BUILT_IN

pytestmark = [pytest.mark.slow, pytest.mark.model]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root, Chromium needs --no-sandbox; the rest keep it off this machine's closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_sign_in_see_picks_and_steer_them(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    store = tmp_path / "store"
    tp = Tasteprint(store=store)
    tp.ingest(BUILT_IN)
    tp.fit(progress=False)
    history = {tp.db.items([i])[i].title for i in tp.facts("ana").history_item_ids}
    token = tp.db.tokens.create("ana")
    tp.close()
    with tasteprint_server(store, "admin-for-the-page-test") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        page.set_default_timeout(60_000)  # the embedded model shares the cores with the tests under load
        expect.set_options(timeout=60_000)
        page.goto(url + "/")
        page.get_by_test_id("token-input").fill(token)
        page.get_by_test_id("sign-in").click()
        picks = page.get_by_test_id("pick")
        expect(picks.first).to_be_visible()
        assert picks.count() >= 5
        for n in range(picks.count()):
            pick = picks.nth(n)
            assert pick.get_by_test_id("pick-explanation").inner_text().strip()
            cited = pick.get_by_test_id("pick-evidence").inner_text()
            assert any(title in cited for title in history), cited
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll

        label = picks.first.get_by_test_id("pick-label").first.get_attribute("data-label")
        page.evaluate("window.notReloaded = true")
        picks.first.locator(f'[data-testid="not-interested"][data-label="{label}"]').click()
        expect(page.get_by_test_id("edit").first).to_contain_text(f"not interested: {label}")
        assert page.evaluate("window.notReloaded === true")  # the picks changed in place
        expect(page.locator(f'[data-testid="pick-label"][data-label="{label}"]')).to_have_count(0)
        assert page.get_by_test_id("pick").count() >= 1

        deadline = time.time() + 300  # the background worker writes the profile with the embedded model
        while page.get_by_test_id("interest").count() == 0 and time.time() < deadline:
            time.sleep(3)
            page.reload()
        interests = page.get_by_test_id("interest")
        assert interests.count() >= 1 and page.get_by_test_id("summary").inner_text().strip()
        assert "shown by:" in interests.first.inner_text()
        browser.close()
