//! Decompression and nesting bombs sent to `auditx scheduler`, a separate OS
//! process: each is a 400 naming row 0 (and the field), and the process's
//! peak memory stays bounded. Before ingest read batches as a stream, one
//! 63 KB gzip body inflating to a 62 MiB `[0,0,…]` took the process to
//! 2.46 GB, three at once to 6.8 GB.

use std::io::Write;
use std::time::Instant;

use auditx_tests::{Fleet, Sandbox, SandboxOptions};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::Value;

/// The inflated size of each bomb: just under `ingest.max_body_bytes`.
const BOMB_BYTES: usize = 62 * 1024 * 1024;
/// The scheduler's peak resident memory may not pass this, bombs and all.
const PEAK_RSS_BOUND_BYTES: u64 = 400 * 1024 * 1024;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// `[0,0,…,0]` of about `bytes` bytes, inside `before` and `after`.
fn zeros(before: &str, bytes: usize, after: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(before.len() + bytes + after.len() + 2);
    body.extend_from_slice(before.as_bytes());
    body.push(b'[');
    body.extend(std::iter::repeat_n(*b"0,", bytes / 2).flatten());
    body.push(b'0');
    body.push(b']');
    body.extend_from_slice(after.as_bytes());
    body
}

/// A kilobyte-entry field value, to size the legit batch.
fn filler(i: usize) -> String {
    format!("{i:08}-{}", "x".repeat(200))
}

/// The scheduler process's peak resident set (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// Posts a gzipped JSON body; the status and the envelope.
    async fn post_gzip(&self, path: &str, gzipped: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .body(gzipped)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

fn message(body: &Value) -> &str {
    body["reasons"][0]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_bombs_are_400s_and_the_scheduler_stays_small() {
    let sandbox = Sandbox::start(SandboxOptions {
        start_roles: false,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    // Three slots, so the three array bombs below really are parsed at once.
    let fleet = Fleet::distributed(&sandbox)
        .workers(0)
        .scheduler_env("AUDITX_INGEST__MAX_CONCURRENT", "3")
        .scheduler_env("AUDITX_INGEST__MAX_WAIT_MS", "120000")
        .start()
        .await;
    let pid = fleet.scheduler.id().expect("scheduler pid");
    let api = Api {
        base: fleet.api.clone(),
        token: sandbox.token("bombs"),
        http: reqwest::Client::new(),
    };
    let before = peak_rss(pid);

    // 1. Three 63 KB bodies inflating to a 62 MiB `[0,0,…]`, at once.
    let array_bomb = gzip(&zeros("", BOMB_BYTES, ""));
    assert!(array_bomb.len() < 100_000, "{}", array_bomb.len());
    let started = Instant::now();
    let answers = futures::future::join_all(
        (0..3).map(|_| api.post_gzip("/meters/1/auditTrail/entries", array_bomb.clone())),
    )
    .await;
    for (status, body) in &answers {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(
            message(body),
            "row 0: expected a JSON object, found 0",
            "{body}"
        );
    }
    let elapsed = started.elapsed();

    // 2. A valid-looking row whose payload nests a 60 MiB array, with a bad
    //    field after it; and one whose payload itself is that array.
    let row = r#"{"eventId":"e-1","eventTime":1753228800000,"sessionId":"R-1","runType":"NORMAL","payload":{"a":"#;
    let nested = gzip(&zeros(
        &format!("[{row}"),
        BOMB_BYTES - 2 * 1024 * 1024,
        r#"},"recordType":"BOGUS"}]"#,
    ));
    let (status, body) = api.post_gzip("/meters/1/auditTrail/entries", nested).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        message(&body),
        "row 0: recordType: \"BOGUS\" is not one of SAMPLE, ERROR",
        "{body}"
    );
    let row = r#"{"eventId":"e-1","eventTime":1753228800000,"sessionId":"R-1","runType":"NORMAL","recordType":"SAMPLE","payload":"#;
    let array_payload = gzip(&zeros(
        &format!("[{row}"),
        BOMB_BYTES - 2 * 1024 * 1024,
        "}]",
    ));
    let (status, body) = api
        .post_gzip("/meters/1/auditTrail/entries", array_payload)
        .await;
    assert_eq!(status, 400, "{body}");
    let text = message(&body);
    assert!(
        text.starts_with("row 0: payload: expected a JSON object, found [0,0,0,0,"),
        "{body}"
    );
    assert!(
        text.len() < 200,
        "the message quotes the value short: {text}"
    );

    // 3. A table row whose text column holds that array.
    let table_bomb = gzip(&zeros(
        r#"[{"id":"l-1","username":"#,
        BOMB_BYTES - 2 * 1024 * 1024,
        "}]",
    ));
    let (status, body) = api
        .post_gzip("/audit/tables/auditloginevent/rows", table_bomb)
        .await;
    assert_eq!(status, 400, "{body}");
    let text = message(&body);
    assert!(
        text.starts_with("row 0: username: expected a string, found [0,0,0,0,"),
        "{body}"
    );
    assert!(
        text.len() < 200,
        "the message quotes the value short: {text}"
    );

    let peak = peak_rss(pid);
    eprintln!(
        "scheduler peak rss: {} MiB before the bombs, {} MiB after (three array bombs in {elapsed:?})",
        before >> 20,
        peak >> 20
    );
    assert!(
        peak < PEAK_RSS_BOUND_BYTES,
        "the scheduler's peak rss reached {} MiB (bound {} MiB)",
        peak >> 20,
        PEAK_RSS_BOUND_BYTES >> 20
    );

    // 4. A legit large batch (about 30 MiB inflated) is still ingested.
    let rows = 100_000;
    let mut legit = Vec::with_capacity(32 << 20);
    legit.push(b'[');
    for i in 0..rows {
        if i > 0 {
            legit.push(b',');
        }
        write!(
            legit,
            r#"{{"eventId":"evt-{i:06}","eventTime":{time},"sessionId":"R-1","runType":"NORMAL","recordType":"SAMPLE","operatorName":"{name}","payload":{{"n":{i},"price":1.10,"tags":["a","b"]}}}}"#,
            time = 1_753_228_800_000_i64 + i as i64,
            name = filler(i),
        )
        .unwrap();
    }
    legit.push(b']');
    assert!(legit.len() > 25 << 20, "{}", legit.len());
    let (status, body) = api
        .post_gzip("/meters/2/auditTrail/entries", gzip(&legit))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["accepted"], rows, "{body}");
    eprintln!(
        "scheduler peak rss after a {} MiB legit batch: {} MiB",
        legit.len() >> 20,
        peak_rss(pid) >> 20
    );

    drop(fleet);
    sandbox.stop().await.unwrap();
}
