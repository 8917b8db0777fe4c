"""Drives the auditx console in Debian's Chromium with Playwright.

Run by tests/tests/console.rs against a running `auditx standalone`; it
reads its inputs from the environment and writes what the user saw (texts,
downloaded bytes as SHA-256 and text, pixel counts) as JSON to
CONSOLE_RESULT. The Rust test asserts on that; this script only fails on
what it cannot do at all (an element never appearing).
"""

import base64
import csv
import hashlib
import io
import json
import os
import sys
import time

from playwright.sync_api import sync_playwright

LINK = os.environ["CONSOLE_LINK"]
API = os.environ["CONSOLE_API"]
TOKEN = os.environ["CONSOLE_TOKEN"]
SEED_SQL = open(os.environ["CONSOLE_SEED_SQL"]).read()
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")
OTHER_IDS = [i for i in os.environ.get("CONSOLE_OTHER_IDS", "").split(",") if i]
NARROW_TOKEN = os.environ.get("CONSOLE_NARROW_TOKEN")
METER = os.environ.get("CONSOLE_METER", "1001")
DAY = os.environ.get("CONSOLE_DAY", "2025-07-01")
# A meter with enough rows (and the server's small chunks) that its export
# runs for a while: the progress bar is watched, then the export cancelled.
BIG_METER = os.environ.get("CONSOLE_BIG_METER")
# A query the server accepts and that then fails while it runs.
FAILING_SQL = os.environ.get("CONSOLE_FAILING_SQL")
TIMEOUT = 60_000

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]

result = {"steps": [], "console_errors": [], "other_tenant_seen": []}


def step(name):
    result["steps"].append(name)
    print(f"step: {name}", flush=True)


def shot(page, name):
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def watch(page, allowed):
    """Records console errors and page errors; `allowed` is a list the
    current step may append expected messages to."""

    def on_console(msg):
        if msg.type == "error":
            text = msg.text
            if allowed and any(a in text for a in allowed):
                return
            result["console_errors"].append(text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: result["console_errors"].append(f"pageerror: {e}"))


def popup_bytes(page, context, click):
    """Clicks a control opening a presigned URL in a new tab; the bytes the
    browser downloads (Chromium reports a download started from a new tab
    on the page that opened it), or if it shows the file instead, the bytes
    of the URL it shows."""
    got = []
    popups = []

    def on_download(download):
        got.append(download)

    def on_page(new_page):
        popups.append(new_page)
        new_page.on("download", on_download)

    page.on("download", on_download)
    context.on("page", on_page)
    try:
        click()
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            shown = [p for p in popups if not p.is_closed() and p.url.startswith("http")]
            if shown:
                try:
                    shown[0].wait_for_load_state(timeout=2000)
                    page.wait_for_timeout(500)
                except Exception:
                    pass
                if not got:
                    break
            page.wait_for_timeout(100)
        if got:
            data = open(got[0].path(), "rb").read()
        elif shown:
            data = context.request.get(shown[0].url).body()
        else:
            raise RuntimeError("the click opened no download and no page")
    finally:
        page.remove_listener("download", on_download)
        context.remove_listener("page", on_page)
    for p in popups:
        if not p.is_closed():
            p.close()
    return data


def digest(data):
    return {"sha256": hashlib.sha256(data).hexdigest(), "len": len(data),
            "b64": base64.b64encode(data).decode() if len(data) < 200_000 else None}


# Pixels of the throughput chart's rows bars (#1f4e79) between the legend
# and the x axis: a minute without rows has no bar, a minute's rows draw
# one up the chart.
BAR_PIXELS = """c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const top = Math.floor(c.height * 0.15), bottom = Math.floor(c.height * 0.7);
    let n = 0;
    for (let y = top; y < bottom; y++) for (let x = 0; x < c.width; x++) {
        const i = (y * c.width + x) * 4;
        if (d[i + 3] > 200 && Math.abs(d[i] - 31) < 40 && Math.abs(d[i + 1] - 78) < 40 && Math.abs(d[i + 2] - 121) < 40) n++;
    }
    return n; }"""


# What an export's row shows: its status, and its progress bar (value, max,
# label, the percentage written next to it) while it has one.
PROGRESS_SAMPLE = """sel => {
    const row = document.querySelector(sel);
    const bar = row && row.querySelector('progress');
    const badge = row && row.querySelector('.badge');
    return {status: badge ? badge.textContent : null, value: bar ? bar.value : null,
            max: bar ? bar.max : null, label: bar ? bar.getAttribute('aria-label') : null,
            text: bar ? bar.parentElement.textContent : null, t: Date.now()}; }"""


def new_export_id(page, previous):
    """The request id of the export just created, from the notice that
    replaces the one naming `previous`."""
    page.wait_for_function(
        "old => { const p = document.querySelector('p.ok');"
        " return p && p.textContent.startsWith('Export ') && !p.textContent.includes(old); }", arg=previous)
    return page.inner_text("p.ok").split()[1]


def check_other_tenant(page, where):
    body = page.content()
    for other in OTHER_IDS:
        if other in body:
            result["other_tenant_seen"].append(f"{other} on {where}")


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
        context.set_default_timeout(TIMEOUT)
        page = context.new_page()
        allowed = []
        watch(page, allowed)
        page.on("dialog", lambda d: d.accept())
        # Everything the console's pages load comes from the server itself;
        # only the downloads (presigned URLs) go to the S3 endpoint.
        result["foreign_requests"] = []
        context.on("request", lambda r: r.url.startswith((API + "/", "data:", "blob:")) or
                   result["foreign_requests"].append({"url": r.url, "type": r.resource_type,
                                                      "navigation": r.is_navigation_request()}))

        # Sign in through the printed link; the code leaves the address bar.
        step("sign in with the printed link")
        page.goto(LINK)
        page.wait_for_selector("[data-tenant]")
        result["tenant"] = page.inner_text("[data-tenant]")
        result["url_after_signin"] = page.url
        result["session_token_matches"] = page.evaluate("sessionStorage.getItem('auditx.token')") == TOKEN
        # The link works once.
        page2 = context.new_page()
        page2.goto(LINK)
        page2.wait_for_selector(".signin .error")
        result["second_use"] = page2.inner_text(".signin .error")
        shot(page2, "signin")
        page2.close()

        # Data Query: type a seed query, pick options, run, download.
        step("data query from the editor")
        page.wait_for_selector(".cm-content")
        shot(page, "data-query")
        page.click(".cm-content")
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(SEED_SQL)
        # Completion offers the schema's names.
        page.keyboard.type(" ")
        page.keyboard.press("Enter")
        page.keyboard.type("-- auditlog")
        page.keyboard.press("Backspace")
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.type("SELECT * FROM auditlogin")
        page.keyboard.press("Control+Space")
        page.wait_for_selector(".cm-tooltip-autocomplete")
        result["completion"] = page.inner_text(".cm-tooltip-autocomplete")
        page.keyboard.press("Escape")
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(SEED_SQL)
        result["highlighted_keywords"] = page.locator(".cm-content span").count()
        page.select_option("select[name=outputFormat]", "CSV")
        page.select_option("select[name=compression]", "NONE")
        page.select_option("select[name=warehouseSize]", "xsmall")
        page.click("[data-run]")
        page.wait_for_selector("[data-download]", timeout=TIMEOUT)
        result["query_status"] = page.inner_text("section[aria-label='Query job'] .badge")
        result["query_id"] = page.get_attribute("[data-query-id]", "data-query-id")
        result["query_rows"] = page.inner_text("[data-output-rows]")
        shot(page, "data-query-completed")
        data = popup_bytes(page, context, lambda: page.click("[data-download]"))
        result["query_download"] = digest(data)

        # The other options of the form reach the job: JSON Lines, read
        # deleted, index join, the warehouse as source.
        step("query options")
        page.select_option("select[name=outputFormat]", "JSON")
        page.check("input[name=readDeleted]")
        page.check("input[name=useIndexJoin]")
        page.select_option("select[name=sourceData]", "WAREHOUSE")
        page.click("[data-run]")
        page.wait_for_function(
            "known => { const s = document.querySelector('[data-query-id]');"
            " return s && s.dataset.queryId !== known; }", arg=result["query_id"])
        result["options_query_id"] = page.get_attribute("[data-query-id]", "data-query-id")
        page.wait_for_selector("section[aria-label='Query job'] .badge-completed", timeout=TIMEOUT)
        page.select_option("select[name=outputFormat]", "CSV")
        page.uncheck("input[name=readDeleted]")
        page.uncheck("input[name=useIndexJoin]")
        page.select_option("select[name=sourceData]", "LIVE")

        # A refused query: the message names the problem.
        step("refused query")
        allowed.append("status of 400")
        page.click(".cm-content")
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text("DELETE FROM auditloginevent")
        page.click("[data-run]")
        page.wait_for_selector("p.error[role=alert]")
        result["refused_message"] = page.inner_text("p.error[role=alert]")
        allowed.clear()

        # A query accepted, then failing while it runs: the job's status
        # goes live from accepted to failed, and the message names the
        # problem.
        if FAILING_SQL:
            step("failed query")
            page.click(".cm-content")
            page.keyboard.press("Control+A")
            page.keyboard.press("Delete")
            page.keyboard.insert_text(FAILING_SQL)
            page.keyboard.press("Escape")  # closes the completion list
            page.evaluate("""() => {
                window.__statuses = [];
                const seen = () => {
                    const b = document.querySelector("section[aria-label='Query job'] .badge");
                    const s = b && b.textContent;
                    if (s && window.__statuses[window.__statuses.length - 1] !== s) window.__statuses.push(s);
                };
                new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, characterData: true});
            }""")
            page.click("[data-run]")
            page.wait_for_function(
                "known => { const s = document.querySelector('[data-query-id]');"
                " return s && s.dataset.queryId !== known; }", arg=result["options_query_id"])
            result["failed_query_id"] = page.get_attribute("[data-query-id]", "data-query-id")
            page.wait_for_selector("section[aria-label='Query job'] .badge-failed", timeout=TIMEOUT)
            result["failed_status"] = page.inner_text("section[aria-label='Query job'] .badge")
            result["failed_message"] = page.inner_text("section[aria-label='Query job'] p.error[role=alert]")
            result["failed_statuses_seen"] = page.evaluate("window.__statuses")
            result["failed_has_download"] = page.locator("[data-download]").count()
            shot(page, "data-query-failed")

        # Save, rename, run and delete a saved query.
        step("saved queries")
        page.click(".cm-content")
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(SEED_SQL)
        # Options saved with it: DSV with its separator, GZIP.
        page.select_option("select[name=outputFormat]", "DSV")
        page.fill("input[name=columnSeparator]", ";")
        page.select_option("select[name=compression]", "GZIP")
        page.fill("input[name=saveName]", "Logins Q2 2019")
        page.click("text=Save query")
        page.wait_for_selector("p.ok")
        page.click("nav >> text=Saved queries")
        page.wait_for_selector("[data-saved='Logins Q2 2019']")
        result["saved_after_save"] = page.locator("[data-saved]").evaluate_all("rows => rows.map(r => r.dataset.saved)")
        check_other_tenant(page, "saved queries")
        shot(page, "saved-queries")
        row = page.locator("[data-saved='Logins Q2 2019']")
        row.locator("text=Rename").click()
        page.fill("[data-saved='Logins Q2 2019'] input", "Logins, second quarter")
        page.click("[data-saved='Logins Q2 2019'] button[type=submit]")
        page.wait_for_selector("[data-saved='Logins, second quarter']")
        result["saved_after_rename"] = page.locator("[data-saved]").evaluate_all("rows => rows.map(r => r.dataset.saved)")
        page.locator("[data-saved='Logins, second quarter']").locator("text=Run").click()
        page.wait_for_selector("[data-download]", timeout=TIMEOUT)
        result["saved_run_status"] = page.inner_text("section[aria-label='Query job'] .badge")
        result["saved_run_query_id"] = page.get_attribute("[data-query-id]", "data-query-id")
        page.click("nav >> text=Saved queries")
        page.locator("[data-saved='Logins, second quarter']").locator("text=Delete").click()
        page.wait_for_selector("text=No saved queries yet.")
        result["saved_after_delete"] = page.locator("[data-saved]").count()

        # Query history: the tenant's jobs, filtered; re-run one.
        step("query history")
        page.click("nav >> text=Query history")
        page.wait_for_selector("[data-job]")
        result["history_ids"] = page.locator("[data-job]").evaluate_all("rows => rows.map(r => r.dataset.job)")
        check_other_tenant(page, "history")
        # Paging: the next page holds older jobs, the previous one the first again.
        page.click("nav[aria-label='query history pages'] >> text=Next")
        page.wait_for_function("id => document.querySelector('[data-job]') && document.querySelector('[data-job]').dataset.job !== id",
                               arg=result["history_ids"][0])
        result["history_page2_ids"] = page.locator("[data-job]").evaluate_all("rows => rows.map(r => r.dataset.job)")
        check_other_tenant(page, "history page 2")
        page.click("nav[aria-label='query history pages'] >> text=Previous")
        page.wait_for_function("id => document.querySelector('[data-job]') && document.querySelector('[data-job]').dataset.job === id",
                               arg=result["history_ids"][0])
        page.select_option("select >> nth=0", "failed")
        # The filtered list has replaced the page of 20 (the one failed query).
        page.wait_for_function("() => { const n = document.querySelectorAll('[data-job]').length; return n > 0 && n < 20; }")
        result["history_failed_rows"] = page.locator("[data-job]").count()
        result["history_failed_ids"] = page.locator("[data-job]").evaluate_all("rows => rows.map(r => r.dataset.job)")
        result["history_failed_text"] = page.inner_text("table[aria-label='Data query jobs']") if result["history_failed_rows"] else ""
        page.select_option("select >> nth=0", "completed")
        # Wait for the completed list itself, not the failed one still shown.
        page.wait_for_function(
            "failed => { const rows = [...document.querySelectorAll('[data-job]')];"
            " return rows.length >= 2 && rows.every(r => !failed.includes(r.dataset.job)); }",
            arg=result["history_failed_ids"])
        result["history_completed_rows"] = page.locator("[data-job]").count()
        shot(page, "query-history")
        # Download and re-run from the list.
        row = f"[data-job='{result['query_id']}']"
        data = popup_bytes(page, context, lambda: page.click(f"{row} >> text=Download"))
        result["history_download"] = digest(data)
        page.click(f"{row} >> text=Re-run")
        page.wait_for_function(
            "known => { const s = document.querySelector('[data-query-id]');"
            " return s && !known.includes(s.dataset.queryId) && document.querySelector('[data-download]'); }",
            arg=[result["query_id"], result["saved_run_query_id"]], timeout=TIMEOUT)
        result["history_rerun_id"] = page.get_attribute("[data-query-id]", "data-query-id")
        result["history_rerun_status"] = page.inner_text("section[aria-label='Query job'] .badge")

        # Schema browser: search and sort.
        step("schema browser")
        page.click("nav >> text=Schema")
        page.wait_for_selector("[data-table]")
        result["schema_all"] = page.locator("[data-table]").evaluate_all("l => l.map(e => e.dataset.table)")
        page.select_option("section.schema select", "desc")
        result["schema_desc"] = page.locator("[data-table]").evaluate_all("l => l.map(e => e.dataset.table)")
        page.fill("section.schema input[type=search]", "login")
        result["schema_search"] = page.locator("[data-table]").evaluate_all("l => l.map(e => e.dataset.table)")
        page.click("[data-table=auditloginevent] .table-toggle")
        result["schema_columns"] = page.locator("[data-table=auditloginevent] table.columns tbody tr").count()
        shot(page, "schema")
        page.click("[data-table=auditloginevent] .table-toggle")
        result["schema_columns_collapsed"] = page.locator("[data-table=auditloginevent] table.columns").count()
        page.fill("section.schema input[type=search]", "")
        page.click("section.schema >> text=Expand all")
        result["schema_expanded_all"] = page.locator("[data-table] table.columns").count()
        page.click("section.schema >> text=Collapse all")
        result["schema_collapsed_all"] = page.locator("[data-table] table.columns").count()

        # Download Center: create an export, watch it finish, download a file.
        step("download center")
        page.click("nav >> text=Download Center")
        page.fill("input[name=meter]", METER)
        page.click("form.row button[type=submit]")
        page.click("text=New export")
        page.fill("input[name=from]", f"{DAY}T00:00")
        page.fill("input[name=to]", f"{DAY}T23:59")
        page.select_option("select[name=exportType]", "SAMPLE")
        page.select_option("select[name=format]", "csv")
        page.click("text=Create export")
        page.wait_for_selector("p.ok")
        created = page.inner_text("p.ok")
        request_id = created.split()[1]
        result["export_id"] = request_id
        row = f"[data-export='{request_id}']"
        page.wait_for_selector(f"{row} .badge-finished", timeout=TIMEOUT)
        result["export_count"] = page.inner_text(f"{row} [data-count]")
        file_key = page.get_attribute(f"{row} [data-file]", "data-file")
        result["export_file_key"] = file_key
        check_other_tenant(page, "download center")
        data = popup_bytes(page, context, lambda: page.click(f"{row} [data-file]"))
        result["export_download"] = digest(data)

        # Every filter and another format: the session, operator and run
        # status of the first export's first row, as JSON Lines.
        step("download center: an export with every filter")
        first_row = next(csv.DictReader(io.StringIO(data.decode())))
        result["filter"] = {k: first_row[k] for k in ("sessionId", "operatorId", "runStatus")}
        page.click("text=New export")
        page.fill("input[name=from]", f"{DAY}T00:00")
        page.fill("input[name=to]", f"{DAY}T23:59")
        page.select_option("select[name=exportType]", "SAMPLE")
        page.select_option("select[name=runType]", "NORMAL")
        page.fill("input[name=sessionIds]", first_row["sessionId"])
        page.fill("input[name=operatorIds]", first_row["operatorId"])
        page.select_option("select[name=runStatuses]", [first_row["runStatus"]])
        page.select_option("select[name=format]", "jsonl")
        page.click("text=Create export")
        filtered_id = new_export_id(page, request_id)
        result["filtered_id"] = filtered_id
        frow = f"[data-export='{filtered_id}']"
        page.wait_for_selector(f"{frow} .badge-finished", timeout=TIMEOUT)
        result["filtered_count"] = page.inner_text(f"{frow} [data-count]")
        result["filtered_row_text"] = page.inner_text(frow)
        data = popup_bytes(page, context, lambda: page.click(f"{frow} [data-file]"))
        result["filtered_lines"] = [
            {k: line.get(k) for k in ("sessionId", "operatorId", "runStatus", "runType")}
            for line in map(json.loads, data.decode().splitlines())]
        shot(page, "download-center")

        # A long export: its progress bar moves while it runs; cancelled
        # from its row, it ends CANCELED with no files.
        if BIG_METER:
            step("download center: progress and cancel")
            page.fill("input[name=meter]", BIG_METER)
            page.click("form.row button[type=submit]")
            page.wait_for_selector(f"text=No exports of meter {BIG_METER}.")
            page.click("text=New export")
            page.fill("input[name=from]", f"{DAY}T00:00")
            page.fill("input[name=to]", f"{DAY}T23:59")
            page.select_option("select[name=exportType]", "SAMPLE")
            page.select_option("select[name=format]", "csv")
            page.click("text=Create export")
            big_id = new_export_id(page, filtered_id)
            result["big_export_id"] = big_id
            brow = f"[data-export='{big_id}']"
            page.wait_for_selector(f"{brow} progress")
            samples = []
            shot_taken = False
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                sample = page.evaluate(PROGRESS_SAMPLE, brow)
                samples.append(sample)
                if sample["status"] not in ("PENDING", "RUNNING"):
                    break
                moving = sorted({s["value"] for s in samples if s["value"]})
                if moving and not shot_taken:
                    shot(page, "download-center-running")
                    shot_taken = True
                if len(moving) >= 2:
                    break
                page.wait_for_timeout(250)
            result["progress_samples"] = samples
            page.click(f"{brow} button.danger")
            page.wait_for_selector("p.ok >> text=Cancel requested")
            result["cancel_notice"] = page.inner_text("p.ok")
            page.wait_for_selector(f"{brow} .badge-canceled", timeout=TIMEOUT)
            result["canceled_row"] = page.evaluate(PROGRESS_SAMPLE, brow)
            result["canceled_row_files"] = page.locator(f"{brow} [data-file]").count()
            result["canceled_row_cancel_buttons"] = page.locator(f"{brow} button.danger").count()
            check_other_tenant(page, "download center, second meter")

        # Audit trail: entries with cursor paging, payload JSON, the summary chart.
        step("audit trail")
        page.click("nav >> text=Audit trail")
        page.fill("form[aria-label='Audit trail filters'] input[name=meter]", METER)
        page.fill("form[aria-label='Audit trail filters'] input[name=from]", f"{DAY}T00:00")
        page.fill("form[aria-label='Audit trail filters'] input[name=to]", f"{DAY}T23:59")
        page.select_option("form[aria-label='Audit trail filters'] select[name=pageSize]", "10")
        page.click("form[aria-label='Audit trail filters'] button[type=submit]")
        page.wait_for_selector("[data-entry]")
        page.wait_for_selector("[data-summary-chart]")
        first = page.locator("[data-entry]").evaluate_all("l => l.map(e => e.dataset.entry)")
        page.click("nav[aria-label='entry pages'] >> text=Next")
        page.wait_for_function("ids => document.querySelector('[data-entry]') && document.querySelector('[data-entry]').dataset.entry !== ids[0]", arg=first)
        second = page.locator("[data-entry]").evaluate_all("l => l.map(e => e.dataset.entry)")
        page.click("nav[aria-label='entry pages'] >> text=Previous")
        page.wait_for_function("id => document.querySelector('[data-entry]').dataset.entry === id", arg=first[0])
        result["entries_page1"] = first
        result["entries_page2"] = second
        page.locator("[data-entry] >> text=Show payload").first.click()
        result["payload_text"] = page.inner_text("pre.json")
        result["chart_label"] = page.get_attribute("[data-summary-chart]", "aria-label")
        result["chart_pixels"] = page.evaluate("""() => {
            const c = document.querySelector('[data-summary-chart]');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
        result["summary_rows"] = page.locator("table[aria-label='Summary table'] tbody tr").count()
        shot(page, "audit-trail")
        # A filter of the API: one session's entries only.
        page.fill("form[aria-label='Audit trail filters'] input[name=sessionId]", result["filter"]["sessionId"])
        page.select_option("form[aria-label='Audit trail filters'] select[name=pageSize]", "100")
        # (The day's first entries are that session's too: wait for the
        # filtered page itself.)
        with page.expect_response(lambda r: "/auditTrail/entries?" in r.url and "sessionId=" in r.url):
            page.click("form[aria-label='Audit trail filters'] button[type=submit]")
        page.wait_for_function(
            "s => { const rows = [...document.querySelectorAll('[data-entry]')];"
            " return rows.length > 10 && rows.every(r => r.children[1].textContent === s); }",
            arg=result["filter"]["sessionId"])
        result["entries_filtered_sessions"] = page.locator("[data-entry]").evaluate_all(
            "l => l.map(e => e.children[1].textContent)")

        step("fleet")
        page.click("nav >> text=Fleet")
        page.wait_for_selector("[data-metric]")
        # The last hour from the server: the export and queries run above.
        # Workers flush their counts every 5 s and the page reads every 5 s:
        # wait until the export's rows and two queries are in.
        exported = int(result["export_count"].replace(",", ""))
        page.wait_for_function(
            "(rows) => { const t = document.querySelector('[data-throughput-rows]')?.dataset;"
            " return t && Number(t.throughputRows) >= rows && Number(t.throughputQueries) >= 2; }",
            arg=exported, timeout=30000)
        page.wait_for_timeout(300)
        totals = page.locator("[data-throughput-rows]")
        result["throughput"] = {k: int(totals.get_attribute(f"data-throughput-{k}")) for k in ("rows", "tasks", "queries")}
        result["throughput_bar_pixels"] = page.locator("[data-throughput-chart]").evaluate(BAR_PIXELS)
        result["fleet_text"] = page.inner_text("main")
        shot(page, "fleet")

        # The console at /console/index.html too (this tab keeps its token).
        step("index.html")
        page.goto(API + "/console/index.html#/schema")
        page.wait_for_selector("[data-table]")
        result["index_html_tables"] = page.locator("[data-table]").count()

        # A token without ops:read: no Fleet in the menu, and the page
        # (reached by its address) says which scope is missing.
        if NARROW_TOKEN:
            step("token without ops:read")
            narrow = browser.new_context(viewport={"width": 1366, "height": 900})
            nw = narrow.new_page()
            watch(nw, allowed)
            nw.goto(API + "/console/")
            nw.fill("textarea[name=token]", NARROW_TOKEN)
            nw.click("button[type=submit]")
            nw.wait_for_selector("[data-tenant]")
            result["narrow_nav"] = nw.locator("nav#nav a").all_inner_texts()
            allowed.append("status of 403")
            nw.goto(API + "/console/#/fleet")
            nw.wait_for_selector(".card p.error[role=alert]")
            result["narrow_fleet_error"] = nw.locator("p.error[role=alert]").first.inner_text()
            narrow.close()
            allowed.remove("status of 403")

        # Keyboard only: sign in with the token, run a query, reach its download.
        step("keyboard only")
        kb = context.new_page()
        watch(kb, allowed)
        kb.goto(API + "/console/")
        kb.evaluate("sessionStorage.clear()")
        kb.reload()
        kb.wait_for_selector("textarea[name=token]")
        kb.keyboard.insert_text(TOKEN)  # the token field has the focus
        kb.keyboard.press("Tab")
        kb.keyboard.press("Enter")
        kb.wait_for_selector("[data-tenant]")
        kb.wait_for_selector(".cm-content")
        reached = False
        for _ in range(40):
            kb.keyboard.press("Tab")
            if kb.evaluate("document.activeElement && document.activeElement.classList.contains('cm-content')"):
                reached = True
                break
        result["keyboard_reached_editor"] = reached
        kb.keyboard.press("Control+A")
        kb.keyboard.press("Delete")
        kb.keyboard.insert_text("SELECT count(*) AS n FROM auditloginevent")
        kb.keyboard.press("Control+Enter")
        kb.wait_for_selector("[data-download]", timeout=TIMEOUT)
        found = False
        for _ in range(60):
            kb.keyboard.press("Tab")
            if kb.evaluate("document.activeElement && document.activeElement.hasAttribute('data-download')"):
                found = True
                break
        result["keyboard_reached_download"] = found
        # Back up to the menu, open the schema browser, expand a table.
        for _ in range(80):
            kb.keyboard.press("Shift+Tab")
            if kb.evaluate("document.activeElement && document.activeElement.matches('nav#nav a') && document.activeElement.textContent === 'Schema'"):
                break
        kb.keyboard.press("Enter")
        kb.wait_for_selector("[data-table]")
        result["keyboard_page"] = kb.evaluate("location.hash")
        expanded = False
        for _ in range(40):
            kb.keyboard.press("Tab")
            if kb.evaluate("document.activeElement && document.activeElement.classList.contains('table-toggle')"):
                kb.keyboard.press("Enter")
                expanded = kb.evaluate("document.activeElement.getAttribute('aria-expanded') === 'true'"
                                       " && document.querySelectorAll('table.columns').length === 1")
                break
        result["keyboard_expanded_table"] = expanded
        kb.close()

        # A phone-sized viewport.
        step("phone viewport")
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        ph = phone.new_page()
        watch(ph, allowed)
        ph.goto(API + "/console/")
        ph.wait_for_selector("textarea[name=token]")
        ph.fill("textarea[name=token]", TOKEN)
        ph.click("button[type=submit]")
        ph.wait_for_selector("[data-tenant]")
        # Every page fits the phone's width (wide tables scroll in their box).
        result["phone_overflow_by_page"] = {}
        for page_id, ready in [("query", ".cm-content"), ("saved", "main h1"), ("history", "[data-job]"),
                               ("schema", "[data-table]"), ("audit", "main form"), ("fleet", "[data-throughput-chart]")]:
            ph.goto(API + f"/console/#/{page_id}")
            ph.wait_for_selector(ready)
            ph.wait_for_timeout(300)
            result["phone_overflow_by_page"][page_id] = ph.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        ph.goto(API + "/console/#/downloads")
        ph.wait_for_selector("[data-export]")
        result["phone_overflow"] = ph.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        result["phone_nav_hidden"] = not ph.is_visible("nav#nav a >> nth=0")
        ph.click("button.menu")
        result["phone_nav_opens"] = ph.is_visible("nav#nav a >> nth=0")
        shot(ph, "phone-download-center")
        phone.close()

        # Back to the first page: no token in the URL, none in the history.
        result["final_url"] = page.url
        browser.close()
    step("done")


if __name__ == "__main__":
    try:
        main()
    finally:
        with open(os.environ["CONSOLE_RESULT"], "w") as f:
            json.dump(result, f, indent=1)
