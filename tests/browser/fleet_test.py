"""The console's Fleet page against a distributed run (tests/tests/console.rs):
signs in with a token, waits until two workers are listed and the
throughput chart holds the CONSOLE_EXPECT_ROWS rows of the export the Rust
test ran, writes the workers' pids to CONSOLE_SIGNAL (the Rust test then
kills one), waits until one is left, and writes what it saw to
CONSOLE_RESULT."""

import json
import os
import time

from playwright.sync_api import sync_playwright

API = os.environ["CONSOLE_API"]
TOKEN = os.environ["CONSOLE_TOKEN"]
SIGNAL = os.environ["CONSOLE_SIGNAL"]
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")
EXPECT_ROWS = int(os.environ.get("CONSOLE_EXPECT_ROWS", "1"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

result = {"console_errors": []}


def pids(page):
    return sorted(int(p) for p in page.locator("[data-worker]").evaluate_all("l => l.map(e => e.dataset.pid)"))


# Pixels of the rows bars (#1f4e79) between the legend and the x axis: a
# minute without rows has no bar, a minute's rows draw one up the chart.
BAR_PIXELS = """c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const top = Math.floor(c.height * 0.15), bottom = Math.floor(c.height * 0.7);
    let n = 0;
    for (let y = top; y < bottom; y++) for (let x = 0; x < c.width; x++) {
        const i = (y * c.width + x) * 4;
        if (d[i + 3] > 200 && Math.abs(d[i] - 31) < 40 && Math.abs(d[i + 1] - 78) < 40 && Math.abs(d[i + 2] - 121) < 40) n++;
    }
    return n; }"""


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
        page.wait_for_function(
            "n => Number(document.querySelector('[data-throughput-rows]')?.dataset.throughputRows) >= n",
            arg=EXPECT_ROWS)
        page.wait_for_timeout(300)  # the chart draws after the numbers
        # The export has ended: both workers are idle (a worker waiting for
        # its next task holds a free slot, which is not a task in flight).
        page.wait_for_selector("text=2 workers, 0 of 4 task slots busy", timeout=15_000)
        result["workers_text"] = page.inner_text("[data-workers-count]")
        totals = page.locator("[data-throughput-rows]")
        result["throughput_rows"] = int(totals.get_attribute("data-throughput-rows"))
        result["throughput_tasks"] = int(totals.get_attribute("data-throughput-tasks"))
        result["throughput_bar_pixels"] = page.locator("[data-throughput-chart]").evaluate(BAR_PIXELS)
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
