"""The profile page's screenshot for the docs: serve a store, sign in as one user with a new token, wait
for the background worker to write their profile, save a PNG at phone and desktop widths.

    .venv/bin/python eval/page_screenshot.py --store S --user 1 --out docs/img
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from http_servers import tasteprint_server
from playwright.sync_api import sync_playwright

from tasteprint import Tasteprint

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    tp = Tasteprint(store=args.store)
    token = tp.db.tokens.create(args.user)
    tp.close()
    args.out.mkdir(parents=True, exist_ok=True)
    with tasteprint_server(args.store, "screenshot-admin") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        for name, width, height in (("page-desktop.png", 1100, 1400), ("page-phone.png", 390, 1600)):
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url + "/")
            page.get_by_test_id("token-input").fill(token)
            page.get_by_test_id("sign-in").click()
            deadline = time.time() + 600
            while page.get_by_test_id("interest").count() == 0 and time.time() < deadline:
                time.sleep(5)
                page.reload()
            page.screenshot(path=str(args.out / name), full_page=False)
            print(f"wrote {args.out / name}")
        browser.close()


if __name__ == "__main__":
    main()
