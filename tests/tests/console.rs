//! The console (`/console`) in a real headless Chromium, driven by
//! Playwright (tests/browser/console_test.py) against `auditx standalone`
//! as a user starts it: sign in through the printed link, run one of the
//! seed's data queries from the editor and download its result, the form's
//! options on the job, a refused query and one failing as it runs, save /
//! rename / run / delete a saved query, the history (filter, paging), the
//! schema browser's search, sort and expand/collapse, an export created,
//! followed and downloaded in the Download Center, one with every filter,
//! a long one's progress bar and its cancel, entries paged by cursor and
//! filtered, the summary chart drawn, the fleet page, a keyboard-only flow,
//! a phone-sized viewport, no console errors, nothing loaded from elsewhere,
//! and never another tenant's jobs or saved queries. The screenshots it
//! takes are those of docs/console.md.
//!
//! Needs Debian's `chromium` and Playwright in a virtualenv:
//! `scripts/browser-setup.sh` (run by scripts/test.sh) installs both.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use auditx::client::{ApiClient, ExportRequest};
use auditx_lake::audit_trail::generate::GenerateSpec;
use auditx_proto::{MeterId, TenantId};
use auditx_tests::processes::{auditx_bin, free_port, run_auditx as run};
use auditx_tests::{Fleet, Sandbox, SandboxOptions};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const METER: &str = "1001";
const DAY: &str = "2025-07-01";
/// A meter whose export runs for a while: its rows in chunks of
/// [`SMALL_CHUNK_ROWS`], each its own task, upload and report.
const BIG_METER: &str = "2002";
const BIG_ROWS: &str = "300000";
/// `export.chunk_rows` of the console's server (default 50,000): small
/// chunks make [`BIG_METER`]'s export take seconds, long enough to watch its
/// progress bar move and cancel it.
const SMALL_CHUNK_ROWS: &str = "500";
/// Accepted (it plans: `ipaddress` is a string column), then failing on
/// the first row it reads: an IP address such as `67.180.238.89` is no
/// integer.
const FAILING_SQL: &str = "SELECT CAST(ipaddress AS INT) AS ip FROM auditloginevent";
/// The name of a query another tenant saved: never shown to dev.
const OTHER_SAVED: &str = "Other tenant's saved query";
/// Queries run through the API before the browser opens, so the history
/// has more than one page (20 a page).
const EARLIER_QUERIES: usize = 20;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn seed_fixture(name: &str) -> PathBuf {
    repo().join("lake/tests/fixtures/seed").join(name)
}

fn python() -> PathBuf {
    let venv = std::env::var("AUDITX_CONSOLE_VENV").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/auditx-console-venv"),
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists() && Path::new("/usr/bin/chromium").exists(),
        "the browser tests need /usr/bin/chromium and Playwright in {venv:?}: run scripts/browser-setup.sh"
    );
    python
}

/// `auditx standalone` on `data`, and the token and console link it
/// prints; `env` sets configuration (`AUDITX_*`).
async fn standalone(data: &str, env: &[(&str, &str)]) -> (Fleet, String, String) {
    let mut standalone = Fleet::standalone(data).stdout_piped();
    for (key, value) in env {
        standalone = standalone.env(key, *value);
    }
    let mut server = standalone.spawn();
    let mut lines = BufReader::new(server.scheduler.stdout.take().unwrap()).lines();
    let (mut token, mut link) = (None, None);
    let mut previous = String::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("standalone prints its link")
        .unwrap()
    {
        if previous.starts_with("development bearer token") {
            token = Some(line.trim().to_owned());
        }
        if previous.starts_with("console") {
            link = Some(line.trim().to_owned());
            break;
        }
        previous = line;
    }
    // Keep reading stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (
        server,
        token.expect("a token line"),
        link.expect("a console link"),
    )
}

async fn api_json(
    http: &reqwest::Client,
    token: &str,
    method: reqwest::Method,
    url: String,
) -> Value {
    let response = http
        .request(method, url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for (tenant, meter, rows) in [
        ("dev", METER, "4000"),
        ("other", METER, "500"),
        ("dev", BIG_METER, BIG_ROWS),
    ] {
        run(&[
            "generate",
            "--data-dir",
            data,
            "--tenant",
            tenant,
            "--meter",
            meter,
            "--rows",
            rows,
            "--from",
            "2025-07-01T00:00:00Z",
            "--to",
            "2025-07-02T00:00:00Z",
        ])
        .await;
    }
    let (server, token, link) =
        standalone(data, &[("AUDITX_EXPORT__CHUNK_ROWS", SMALL_CHUNK_ROWS)]).await;
    let (api, s3) = (server.port, server.s3_port.unwrap());
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{api}/console/#signin=")),
        "{link}"
    );
    assert!(
        !link.contains(&token),
        "the link carries a code, not the token"
    );
    server.wait_healthy().await;
    let base = server.api.clone();
    let http = reqwest::Client::new();

    // The seed's tables for tenant dev.
    for table in [
        "auditloginevent",
        "auditobjectchangeevent",
        "auditsettingchangeevent",
        "contact",
        "product",
        "productrateplan",
        "productrateplancharge",
        "productrateplanchargetier",
    ] {
        let body = std::fs::read(seed_fixture(&format!("{table}.ndjson"))).unwrap();
        let response = http
            .post(format!("{base}/audit/tables/{table}/rows"))
            .bearer_auth(&token)
            .header("Content-Type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{table}: {}",
            response.status()
        );
    }

    // Earlier queries of dev, so that the history pages.
    let client = ApiClient::new(&base, &token);
    let mut earlier = Vec::new();
    for n in 0..EARLIER_QUERIES {
        let job = client
            .submit_query(
                &format!("SELECT count(*) + {n} AS n FROM contact"),
                "CSV",
                "NONE",
            )
            .await
            .unwrap();
        let id = job["id"].as_str().unwrap().to_owned();
        let job = client
            .wait_query(&id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(job["queryStatus"], "completed", "{job}");
        earlier.push(id);
    }

    // Another tenant's export and query on the same meter: never shown.
    let other = run(&["token", "--data-dir", data, "--tenant", "other"]).await;
    let other = other.trim();
    let saved = http
        .post(format!("{base}/query/saved"))
        .bearer_auth(other)
        .json(&serde_json::json!({"name": OTHER_SAVED, "query": "SELECT 1 AS one FROM contact"}))
        .send()
        .await
        .unwrap();
    assert!(saved.status().is_success(), "{}", saved.status());
    // A token of dev without ops:read.
    let narrow = run(&[
        "token",
        "--data-dir",
        data,
        "--tenant",
        "dev",
        "--scopes",
        "query:read,query:write,export:read",
    ])
    .await;
    let narrow = narrow.trim();
    let created = api_json(
        &http,
        other,
        reqwest::Method::POST,
        format!(
            "{base}/meters/{METER}/auditTrail/export?exportType=SAMPLE&runType=NORMAL\
             &queryFromTime={DAY}T00:00:00Z&queryToTime={DAY}T12:00:00Z"
        ),
    )
    .await;
    let other_export = created["data"]["requestId"].as_str().unwrap().to_owned();
    let other_query = http
        .post(format!("{base}/query/jobs"))
        .bearer_auth(other)
        .json(&serde_json::json!({"query": "SELECT count(*) AS n FROM contact"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The console's assets: types, the CSP, no inline script.
    let index = http.get(format!("{base}/console/")).send().await.unwrap();
    assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
    let csp = index.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let js = http
        .get(format!("{base}/console/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    // /console redirects to /console/; /console/index.html is the page too.
    let index_html = http
        .get(format!("{base}/console/index.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(index_html.status(), 200);
    assert_eq!(
        index_html.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert!(index_html.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert!(index_html
        .text()
        .await
        .unwrap()
        .contains(r#"<script type="module" src="app.js">"#));
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/console"))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 301);
    assert_eq!(bare.headers()["location"], "/console/");

    let result_path = dir.path().join("result.json");
    let shots = repo().join("docs/console");
    let output = Command::new(&python)
        .arg(repo().join("tests/browser/console_test.py"))
        .env("CONSOLE_LINK", &link)
        .env("CONSOLE_API", &base)
        .env("CONSOLE_TOKEN", &token)
        .env("CONSOLE_NARROW_TOKEN", narrow)
        .env("CONSOLE_SEED_SQL", seed_fixture("q1.sql"))
        .env("CONSOLE_SCREENSHOTS", &shots)
        .env(
            "CONSOLE_OTHER_IDS",
            format!("{other_export},{other_query},{OTHER_SAVED}"),
        )
        .env("CONSOLE_METER", METER)
        .env("CONSOLE_DAY", DAY)
        .env("CONSOLE_BIG_METER", BIG_METER)
        .env("CONSOLE_FAILING_SQL", FAILING_SQL)
        .env("CONSOLE_RESULT", &result_path)
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(600), output)
        .await
        .expect("the browser run ends within 10 minutes")
        .unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&std::fs::read(&result_path).unwrap_or_default())
        .unwrap_or_default();
    assert!(
        output.status.success(),
        "the browser run failed:\n{log}\nresult: {result:#}"
    );

    // Signed in by the link as the demo tenant; the code is gone from the
    // address bar and works once.
    assert_eq!(result["tenant"], "dev");
    assert!(result["session_token_matches"].as_bool().unwrap());
    for url in [&result["url_after_signin"], &result["final_url"]] {
        let url = url.as_str().unwrap();
        assert!(!url.contains("signin=") && !url.contains(&token), "{url}");
    }
    assert!(
        result["second_use"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{}",
        result["second_use"]
    );

    // The seed query from the editor: the downloaded bytes are the API's
    // result and the seed's expected CSV.
    let completion = result["completion"].as_str().unwrap();
    assert!(completion.contains("auditloginevent"), "{completion}");
    assert!(result["highlighted_keywords"].as_u64().unwrap() > 5);
    assert_eq!(result["query_status"], "completed");
    let expected = std::fs::read(seed_fixture("q1.expected.csv")).unwrap();
    let query_id = result["query_id"].as_str().unwrap();
    let job = api_json(
        &http,
        &token,
        reqwest::Method::GET,
        format!("{base}/query/jobs/{query_id}"),
    )
    .await;
    let from_api = http
        .get(job["data"]["dataFile"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&from_api[..], &expected[..]);
    // The options picked in the form are the job's.
    assert_eq!(job["data"]["outputFormat"], "CSV", "{job}");
    assert_eq!(job["data"]["warehouseSize"], "xsmall", "{job}");
    assert_eq!(result["query_download"]["sha256"], sha256(&expected));
    // The form's other options, on the job of a second run.
    let options_id = result["options_query_id"].as_str().unwrap();
    let job = api_json(
        &http,
        &token,
        reqwest::Method::GET,
        format!("{base}/query/jobs/{options_id}"),
    )
    .await;
    assert_eq!(job["data"]["queryStatus"], "completed", "{job}");
    assert_eq!(job["data"]["outputFormat"], "JSON", "{job}");
    assert_eq!(job["data"]["readDeleted"], true, "{job}");
    assert_eq!(job["data"]["useIndexJoin"], true, "{job}");
    assert_eq!(job["data"]["sourceData"], "WAREHOUSE", "{job}");

    // A refused statement: the message says why.
    let refused = result["refused_message"].as_str().unwrap();
    assert!(
        refused.contains("DELETE") && refused.contains("read-only SELECT"),
        "{refused}"
    );

    // A query accepted and failing while it ran: the page followed it from
    // accepted to failed and shows what went wrong (the cast and the value
    // that broke it), as the API does; no download.
    let failed_id = result["failed_query_id"].as_str().unwrap();
    assert_eq!(result["failed_status"], "failed");
    let seen: Vec<&str> = result["failed_statuses_seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let accepted_at = seen
        .iter()
        .position(|s| *s == "accepted" || *s == "in_progress");
    assert!(
        accepted_at.is_some() && seen.last() == Some(&"failed"),
        "{seen:?}"
    );
    let message = result["failed_message"].as_str().unwrap();
    let job = api_json(
        &http,
        &token,
        reqwest::Method::GET,
        format!("{base}/query/jobs/{failed_id}"),
    )
    .await;
    assert_eq!(job["data"]["queryStatus"], "failed", "{job}");
    let reason = job["data"]["errorMessage"].as_str().unwrap();
    assert_eq!(message, format!("The query failed: {reason}"));
    assert!(
        reason.contains("Cannot cast string '") && reason.contains("Int32"),
        "{reason}"
    );
    assert_eq!(result["failed_has_download"], 0);

    // Saved queries: saved, renamed, run, deleted — on the server too.
    assert_eq!(
        result["saved_after_save"],
        serde_json::json!(["Logins Q2 2019"])
    );
    assert_eq!(
        result["saved_after_rename"],
        serde_json::json!(["Logins, second quarter"])
    );
    assert_eq!(result["saved_run_status"], "completed");
    assert_ne!(result["saved_run_query_id"], result["query_id"]);
    // The saved query's options were those of the form; its run from the
    // list used them.
    let saved_run = result["saved_run_query_id"].as_str().unwrap();
    let job = api_json(
        &http,
        &token,
        reqwest::Method::GET,
        format!("{base}/query/jobs/{saved_run}"),
    )
    .await;
    assert_eq!(job["data"]["outputFormat"], "DSV", "{job}");
    assert_eq!(job["data"]["columnSeparator"], ";", "{job}");
    assert_eq!(job["data"]["compression"], "GZIP", "{job}");
    assert_eq!(result["saved_after_delete"], 0);
    let saved = api_json(
        &http,
        &token,
        reqwest::Method::GET,
        format!("{base}/query/saved"),
    )
    .await;
    assert_eq!(saved["data"], serde_json::json!([]));

    // History: this tenant's queries only, filtered by status.
    let history: Vec<&str> = result["history_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // The two queries the page ran: the seed query and the saved one's run.
    assert!(history.contains(&query_id), "{history:?}");
    assert!(
        history.contains(&result["saved_run_query_id"].as_str().unwrap()),
        "{history:?}"
    );
    assert_eq!(history.len(), 20, "{history:?}");
    // Paging: the second page holds the earliest queries, none twice.
    let page2: Vec<&str> = result["history_page2_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(!page2.is_empty(), "{page2:?}");
    assert!(page2.iter().all(|id| !history.contains(id)), "{page2:?}");
    assert!(page2.contains(&earlier[0].as_str()), "{page2:?}");
    // The status filter: the failed query alone, with its message.
    assert_eq!(result["history_failed_ids"], serde_json::json!([failed_id]));
    assert!(
        result["history_failed_text"]
            .as_str()
            .unwrap()
            .contains("Cannot cast string '"),
        "{}",
        result["history_failed_text"]
    );
    assert!(result["history_completed_rows"].as_u64().unwrap() >= 2);
    assert_eq!(result["other_tenant_seen"], serde_json::json!([]));
    // Downloaded and re-run from the list.
    assert_eq!(result["history_download"]["sha256"], sha256(&expected));
    assert_eq!(result["history_rerun_status"], "completed");
    let rerun = result["history_rerun_id"].as_str().unwrap();
    assert!(rerun != query_id && !history.contains(&rerun), "{rerun}");

    // Schema browser: every table, sorted both ways, searched.
    let all = result["schema_all"].as_array().unwrap();
    assert_eq!(all.len(), 8);
    assert_eq!(all[0], "auditloginevent");
    let desc = result["schema_desc"].as_array().unwrap();
    assert_eq!(desc[0], "productrateplanchargetier");
    assert_eq!(
        result["schema_search"],
        serde_json::json!(["auditloginevent"])
    );
    assert!(result["schema_columns"].as_u64().unwrap() >= 10);
    assert_eq!(result["schema_columns_collapsed"], 0);
    assert_eq!(result["schema_expanded_all"], 8);
    assert_eq!(result["schema_collapsed_all"], 0);

    // Download Center: the export finished; the file downloaded in the
    // browser is the one the API presigns.
    let export_id = result["export_id"].as_str().unwrap();
    let job = api_json(
        &http,
        &token,
        reqwest::Method::GET,
        format!("{base}/meters/{METER}/auditTrail/export/{export_id}"),
    )
    .await;
    assert_eq!(job["data"]["status"], "FINISHED");
    let count = job["data"]["count"].as_u64().unwrap();
    assert!(count > 1000, "{count}");
    assert_eq!(
        result["export_count"].as_str().unwrap().replace(',', ""),
        count.to_string()
    );
    let key = result["export_file_key"].as_str().unwrap();
    let url = api_json(
        &http,
        &token,
        reqwest::Method::GET,
        format!("{base}/meters/auditTrail/presignedUrl?fileKey={key}"),
    )
    .await;
    let file = http
        .get(url["data"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(result["export_download"]["sha256"], sha256(&file));
    assert_eq!(
        std::str::from_utf8(&file).unwrap().lines().count() as u64,
        count + 1
    );

    // The export with every filter, as JSON Lines: the job holds what was
    // picked in the form, and its file only the rows of the first export
    // that match (session, operator, run status).
    let filter = &result["filter"];
    let filtered_id = result["filtered_id"].as_str().unwrap();
    let filtered = api_json(
        &http,
        &token,
        reqwest::Method::GET,
        format!("{base}/meters/{METER}/auditTrail/export/{filtered_id}"),
    )
    .await;
    let filtered = &filtered["data"];
    assert_eq!(filtered["status"], "FINISHED", "{filtered}");
    let query = &filtered["query"];
    assert_eq!(query["exportType"], "SAMPLE", "{filtered}");
    assert_eq!(query["runType"], "NORMAL", "{filtered}");
    assert_eq!(query["format"], "jsonl", "{filtered}");
    assert_eq!(
        query["sessionIds"],
        serde_json::json!([filter["sessionId"]])
    );
    assert_eq!(
        query["operatorIds"],
        serde_json::json!([filter["operatorId"]])
    );
    assert_eq!(query["statuses"], serde_json::json!([filter["runStatus"]]));
    let mut lines = csv_records(&file);
    let header = lines.remove(0);
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (session, operator, status) = (
        column("sessionId"),
        column("operatorId"),
        column("runStatus"),
    );
    let expected_rows = lines
        .iter()
        .filter(|r| {
            r[session] == filter["sessionId"]
                && r[operator] == filter["operatorId"]
                && r[status] == filter["runStatus"]
        })
        .count() as u64;
    assert!(expected_rows >= 1);
    assert_eq!(filtered["count"], expected_rows, "{filtered}");
    assert_eq!(
        result["filtered_count"].as_str().unwrap().replace(',', ""),
        expected_rows.to_string()
    );
    let downloaded = result["filtered_lines"].as_array().unwrap();
    assert_eq!(downloaded.len() as u64, expected_rows);
    for line in downloaded {
        assert_eq!(line["sessionId"], filter["sessionId"], "{line}");
        assert_eq!(line["operatorId"], filter["operatorId"], "{line}");
        assert_eq!(line["runStatus"], filter["runStatus"], "{line}");
        assert_eq!(line["runType"], "NORMAL", "{line}");
    }
    let row_text = result["filtered_row_text"].as_str().unwrap();
    assert!(
        row_text.contains(filter["sessionId"].as_str().unwrap()) && row_text.contains("JSONL"),
        "{row_text}"
    );

    // The long export: a progress bar (0-100) whose value rose while it
    // ran, then the cancel from its row; it ended CANCELED, in the list and
    // in the API, with no files.
    let samples = result["progress_samples"].as_array().unwrap();
    let mut values = Vec::new();
    for sample in samples {
        assert!(
            matches!(sample["status"].as_str(), Some("PENDING" | "RUNNING")),
            "the export ended before it was cancelled: {sample}"
        );
        assert_eq!(sample["max"], 100.0, "{sample}");
        let value = sample["value"].as_f64().unwrap();
        assert!((0.0..100.0).contains(&value), "{sample}");
        assert!(
            sample["text"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{value}%")),
            "{sample}"
        );
        assert!(
            sample["label"].as_str().unwrap().contains("progress"),
            "{sample}"
        );
        values.push(value);
    }
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "progress went back: {values:?}"
    );
    let moving: std::collections::BTreeSet<u64> = values
        .iter()
        .filter(|v| **v > 0.0)
        .map(|v| *v as u64)
        .collect();
    assert!(moving.len() >= 2, "the bar never moved: {values:?}");
    let big_id = result["big_export_id"].as_str().unwrap();
    assert!(
        result["cancel_notice"].as_str().unwrap().contains(big_id),
        "{}",
        result["cancel_notice"]
    );
    let canceled = &result["canceled_row"];
    assert_eq!(canceled["status"], "CANCELED", "{canceled}");
    assert!(canceled["value"].is_null(), "no bar once ended: {canceled}");
    assert_eq!(result["canceled_row_files"], 0);
    assert_eq!(result["canceled_row_cancel_buttons"], 0);
    let big = api_json(
        &http,
        &token,
        reqwest::Method::GET,
        format!("{base}/meters/{BIG_METER}/auditTrail/export/{big_id}"),
    )
    .await;
    assert_eq!(big["data"]["status"], "CANCELED", "{big}");
    assert_eq!(big["data"]["fileList"], serde_json::json!([]), "{big}");

    // Audit trail: two different pages of entries, a payload as JSON, the
    // summary drawn.
    let (p1, p2) = (&result["entries_page1"], &result["entries_page2"]);
    assert_eq!(p1.as_array().unwrap().len(), 10);
    assert_eq!(p2.as_array().unwrap().len(), 10);
    assert_ne!(p1[0], p2[0]);
    let payload: Value = serde_json::from_str(result["payload_text"].as_str().unwrap()).unwrap();
    assert!(payload.is_object(), "{payload}");
    assert!(
        result["chart_pixels"].as_u64().unwrap() > 1000,
        "{}",
        result["chart_pixels"]
    );
    assert!(result["summary_rows"].as_u64().unwrap() >= 1);
    // Filtered by one session: its entries only (as many as the API has).
    let sessions = result["entries_filtered_sessions"].as_array().unwrap();
    let session = result["filter"]["sessionId"].as_str().unwrap();
    let by_api = api_json(
        &http,
        &token,
        reqwest::Method::GET,
        format!(
            "{base}/meters/{METER}/auditTrail/entries?exportType=SAMPLE&runType=NORMAL\
             &queryFromTime={DAY}T00:00:00Z&queryToTime={DAY}T23:59:00Z&sessionId={session}&pageSize=100"
        ),
    )
    .await;
    assert_eq!(
        sessions.len(),
        by_api["data"].as_array().unwrap().len(),
        "{by_api}"
    );
    assert!(sessions.iter().all(|s| s == session), "{sessions:?}");

    // Fleet: the jobs and queues of /metrics, and the last hour from the
    // state store: at least the rows of this export (the other tenant's
    // export ran too), the queries run so far (the seed query, the saved
    // one's run, the other tenant's), charted.
    let fleet = result["fleet_text"].as_str().unwrap();
    for part in [
        "Workers alive",
        "Jobs not settled",
        "Task queues",
        "Dead-lettered tasks",
        "Tenant queues",
        "Throughput, last hour",
    ] {
        assert!(fleet.contains(part), "{part}: {fleet}");
    }
    let throughput = &result["throughput"];
    assert!(
        throughput["rows"].as_u64().unwrap() >= count,
        "{throughput}"
    );
    assert!(throughput["queries"].as_u64().unwrap() >= 2, "{throughput}");
    assert!(
        result["throughput_bar_pixels"].as_u64().unwrap() > 200,
        "{}",
        result["throughput_bar_pixels"]
    );
    // The page at /console/index.html.
    assert_eq!(result["index_html_tables"], 8);
    // A token without ops:read has no Fleet page in its menu, and the page
    // names the missing scope.
    let nav: Vec<&str> = result["narrow_nav"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        nav.contains(&"Data Query") && !nav.contains(&"Fleet"),
        "{nav:?}"
    );
    let refused = result["narrow_fleet_error"].as_str().unwrap();
    assert!(refused.contains("ops:read"), "{refused}");

    // Keyboard only, and a phone.
    assert_eq!(result["keyboard_reached_editor"], true);
    assert_eq!(result["keyboard_reached_download"], true);
    assert_eq!(result["keyboard_page"], "#/schema");
    assert_eq!(result["keyboard_expanded_table"], true);
    assert!(
        result["phone_overflow"].as_i64().unwrap() <= 1,
        "{}",
        result["phone_overflow"]
    );
    for (page, overflow) in result["phone_overflow_by_page"].as_object().unwrap() {
        assert!(overflow.as_i64().unwrap() <= 1, "{page}: {overflow}");
    }
    assert_eq!(
        result["phone_overflow_by_page"].as_object().unwrap().len(),
        6
    );
    assert_eq!(result["phone_nav_hidden"], true);
    assert_eq!(result["phone_nav_opens"], true);

    // Nothing loaded from outside the server: the only other address the
    // browser went to is the S3 endpoint of the presigned downloads, as
    // navigations of the tabs they open.
    let s3_base = format!("http://127.0.0.1:{s3}/");
    for request in result["foreign_requests"].as_array().unwrap() {
        assert!(
            request["url"].as_str().unwrap().starts_with(&s3_base) && request["navigation"] == true,
            "{request}"
        );
    }

    assert_eq!(result["console_errors"], serde_json::json!([]), "{log}");
}

/// The records of a CSV file (RFC 4180: quoted fields may hold commas,
/// quotes and line ends).
fn csv_records(bytes: &[u8]) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(bytes).unwrap();
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    records
}

/// The Fleet page of a distributed run (`auditx scheduler` and two `auditx
/// worker` processes on Redis and RabbitMQ) lists both workers, charts the
/// rows of an export they ran (the fleet's last hour, from the state
/// store), and drops the worker that is killed within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_page_lists_two_workers_and_drops_a_killed_one() {
    let python = python();
    let sandbox = Sandbox::start(SandboxOptions {
        start_roles: false,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::distributed(&sandbox)
        .rows(100_000, 10_000)
        .workers(2)
        .start()
        .await;
    let port = fleet.port;
    let mut first = fleet.workers.remove(0).process;
    let first_pid = first.id().unwrap();

    // An export both workers share, before the page opens: its rows are in
    // the throughput chart whichever process rendered them.
    let spec = GenerateSpec {
        tenant: TenantId::from("ops"),
        meter: MeterId(3),
        rows: 30_000,
        from_ms: 1_751_328_000_000, // 2025-07-01T00:00:00Z
        to_ms: 1_751_414_400_000,
        error_rate: 0.0,
        seed: 3,
    };
    sandbox.generate(&spec, 10_000).await.unwrap();
    let client = ApiClient::new(&format!("http://127.0.0.1:{port}"), &sandbox.token("ops"));
    let request = ExportRequest {
        meter_id: 3,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: "2025-07-01T00:00:00Z".into(),
        query_to_time: "2025-07-02T00:00:00Z".into(),
        ..ExportRequest::default()
    };
    let request_id = client.create_export(&request).await.unwrap();
    let job = client
        .wait(3, &request_id, Duration::from_secs(180), |_| {})
        .await
        .unwrap();
    assert_eq!(job["status"], "FINISHED", "{job}");
    let exported_rows = job["count"].as_u64().unwrap();

    let signal = dir.path().join("two-workers.json");
    let result_path = dir.path().join("fleet.json");
    let browser = Command::new(&python)
        .arg(repo().join("tests/browser/fleet_test.py"))
        .env("CONSOLE_API", format!("http://127.0.0.1:{port}"))
        .env("CONSOLE_TOKEN", sandbox.token("ops"))
        .env("CONSOLE_SIGNAL", &signal)
        .env("CONSOLE_EXPECT_ROWS", exported_rows.to_string())
        .env("CONSOLE_SCREENSHOTS", repo().join("docs/console"))
        .env("CONSOLE_RESULT", &result_path)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let browser = tokio::spawn(browser);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while !signal.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fleet page never listed two workers"
        );
        if browser.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    first.kill().await.unwrap();
    let output = tokio::time::timeout(Duration::from_secs(180), browser)
        .await
        .expect("the browser run ends")
        .unwrap()
        .unwrap();
    let result: Value = serde_json::from_slice(&std::fs::read(&result_path).unwrap_or_default())
        .unwrap_or_default();
    assert!(
        output.status.success(),
        "the browser run failed:\n{}\n{}\nresult: {result:#}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let before: Vec<u64> = serde_json::from_value(result["before"].clone()).unwrap();
    let after: Vec<u64> = serde_json::from_value(result["after"].clone()).unwrap();
    assert_eq!(before.len(), 2, "{result}");
    assert!(before.contains(&u64::from(first_pid)), "{result}");
    assert_eq!(after.len(), 1, "{result}");
    assert!(!after.contains(&u64::from(first_pid)), "{result}");
    assert!(
        result["seconds_to_drop"].as_f64().unwrap() < 15.0,
        "{result}"
    );
    // The chart: every row of the export, a bar up from the axis.
    assert_eq!(result["throughput_rows"], exported_rows, "{result}");
    assert!(
        result["throughput_tasks"].as_u64().unwrap() >= 2,
        "{result}"
    );
    assert!(
        result["throughput_bar_pixels"].as_u64().unwrap() > 200,
        "{result}"
    );
    assert_eq!(result["console_errors"], serde_json::json!([]));
}

/// `auditx demo --serve` (what `scripts/demo.sh` runs on a terminal): the
/// export and the seed's data query done, it prints a console link that
/// signs in as the demo's tenant, whose console shows both jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_a_console_link_signed_in_as_its_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut demo = Command::new(auditx_bin())
        .args(["demo", "--serve", "--rows", "5000", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("AUDITX_JWT_SECRET")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let link = loop {
        let line = tokio::time::timeout(Duration::from_secs(300), lines.next_line())
            .await
            .expect("the demo prints its console link")
            .unwrap()
            .unwrap_or_else(|| panic!("the demo ended without a console link:\n{printed}"));
        printed.push_str(&line);
        printed.push('\n');
        if let Some(at) = line.find("http://") {
            if line.contains("/console/#signin=") {
                break line[at..].trim().to_owned();
            }
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        link.starts_with(&format!("{base}/console/#signin=")),
        "{link}"
    );
    let code = link.split("#signin=").nth(1).unwrap();
    let http = reqwest::Client::new();
    let signed_in: Value = http
        .post(format!("{base}/console/signin"))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed_in["data"]["token"].as_str().unwrap();
    let queries = api_json(
        &http,
        token,
        reqwest::Method::GET,
        format!("{base}/query/jobs"),
    )
    .await;
    let jobs = queries["data"].as_array().unwrap();
    // The seed query read the audit table the demo loaded.
    assert!(
        jobs.iter().any(|j| j["queryStatus"] == "completed"
            && j["query"]
                .as_str()
                .unwrap()
                .contains("FROM auditloginevent")
            && j["outputRows"].as_u64().unwrap() > 0),
        "{queries}"
    );
    let exports = api_json(
        &http,
        token,
        reqwest::Method::GET,
        format!("{base}/meters/1001/auditTrail/export"),
    )
    .await;
    assert!(
        exports["data"]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["status"] == "FINISHED"),
        "{exports}"
    );
    demo.kill().await.unwrap();
}
