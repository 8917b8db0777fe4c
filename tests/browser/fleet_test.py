"""The console's Fleet page against a distributed run (tests/tests/console.rs):
signs in with a token, waits until two workers are listed, writes their
pids to CONSOLE_SIGNAL (the Rust test then kills one), waits until one is
left, and writes what it saw to CONSOLE_RESULT."""

import json
import os
import time

from playwright.sync_api import sync_playwright

API = os.environ["CONSOLE_API"]
TOKEN = os.environ["CONSOLE_TOKEN"]
SIGNAL = os.environ["CONSOLE_SIGNAL"]
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

result = {"console_errors": []}


def pids(page):
    return sorted(int(p) for p in page.locator("[data-worker]").evaluate_all("l => l.map(e => e.dataset.pid)"))


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.set_default_timeout(60_000)
        page.on("console", lambda m: m.type == "error" and result["console_errors"].append(m.text))
        page.on("pageerror", lambda e: result["console_errors"].append(f"pageerror: {e}"))
        page.goto(API + "/console/#/fleet")
        page.fill("textarea[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-workers-count='2']")
        result["before"] = pids(page)
        if SHOTS:
            os.makedirs(SHOTS, exist_ok=True)
            page.screenshot(path=os.path.join(SHOTS, "fleet-distributed.png"), full_page=True)
        with open(SIGNAL, "w") as f:
            json.dump(result["before"], f)
        started = time.monotonic()
        page.wait_for_selector("[data-workers-count='1']", timeout=60_000)
        result["seconds_to_drop"] = time.monotonic() - started
        result["after"] = pids(page)
        browser.close()


if __name__ == "__main__":
    try:
        main()
    finally:
        with open(os.environ["CONSOLE_RESULT"], "w") as f:
            json.dump(result, f, indent=1)
