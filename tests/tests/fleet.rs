//! The fleet routes on real Redis and RabbitMQ: `GET /fleet/workers` lists
//! the sandbox's two workers, and `GET /fleet/throughput` holds what they
//! finished in the last hour — every rendered row of an export and the data
//! query run beside it, summed over both workers — for a token with the
//! `ops:read` scope only.

use std::time::Duration;

use auditx::client::{ApiClient, ExportRequest};
use auditx::commands::tools::{mint_with, TokenSpec};
use auditx_common::config::AuthConfig;
use auditx_lake::audit_trail::generate::GenerateSpec;
use auditx_proto::{MeterId, TenantId};
use auditx_scheduler::api::auth::Scope;
use auditx_tests::fleet::completed_query;
use auditx_tests::sandbox::JWT_SECRET;
use auditx_tests::{export_and_download, Sandbox, SandboxOptions};
use chrono::DateTime;
use serde_json::Value;

const FROM: &str = "2025-07-01T00:00:00Z";
const TO: &str = "2025-07-02T00:00:00Z";

async fn get(url: &str, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

fn total(minutes: &[Value], field: &str) -> u64 {
    minutes.iter().map(|m| m[field].as_u64().unwrap()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_routes_show_both_workers_and_the_last_hour_of_their_work() {
    let sandbox = Sandbox::start(SandboxOptions {
        workers: 2,
        chunk_rows: 2_000,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let spec = GenerateSpec {
        tenant: TenantId::from("busy"),
        meter: MeterId(7),
        rows: 20_000,
        from_ms: DateTime::parse_from_rfc3339(FROM)
            .unwrap()
            .timestamp_millis(),
        to_ms: DateTime::parse_from_rfc3339(TO).unwrap().timestamp_millis(),
        error_rate: 0.0,
        seed: 7,
    };
    sandbox.generate(&spec, 10_000).await.unwrap();
    let ops = mint_with(
        JWT_SECRET,
        &AuthConfig::default(),
        &TokenSpec {
            scopes: &[Scope::OpsRead],
            ..TokenSpec::new("ops", 1)
        },
    )
    .unwrap();
    let throughput = format!("{}/fleet/throughput", sandbox.api);

    // Both workers are listed.
    let (status, workers) = get(&format!("{}/fleet/workers", sandbox.api), &ops).await;
    assert_eq!(status, 200, "{workers}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut listed = workers["data"].as_array().unwrap().len();
    while listed < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, workers) = get(&format!("{}/fleet/workers", sandbox.api), &ops).await;
        listed = workers["data"].as_array().unwrap().len();
    }
    assert_eq!(listed, 2);

    // A fresh fleet has done nothing: 60 empty minutes, the last one now.
    let (status, before) = get(&throughput, &ops).await;
    assert_eq!(status, 200, "{before}");
    let minutes = before["data"].as_array().unwrap();
    assert_eq!(minutes.len(), 60, "{before}");
    assert_eq!(total(minutes, "rows") + total(minutes, "tasks"), 0);
    let last = DateTime::parse_from_rfc3339(minutes[59]["minute"].as_str().unwrap()).unwrap();
    let first = DateTime::parse_from_rfc3339(minutes[0]["minute"].as_str().unwrap()).unwrap();
    assert_eq!((last - first).num_minutes(), 59);
    let age = chrono::Utc::now().signed_duration_since(last);
    assert!(age.num_seconds() >= 0 && age.num_seconds() < 62, "{age}");

    // An export and a data query.
    let exported = export_and_download(
        &sandbox,
        "busy",
        &ExportRequest {
            meter_id: 7,
            export_type: "SAMPLE".into(),
            run_type: "NORMAL".into(),
            query_from_time: FROM.into(),
            query_to_time: TO.into(),
            ..ExportRequest::default()
        },
    )
    .await
    .unwrap();
    let rows = exported.data_lines().len() as u64;
    assert!(rows > 10_000, "{rows}");
    let client = ApiClient::new(&sandbox.api, &sandbox.token("busy"));
    completed_query(&client, "SELECT 1 AS n").await;

    // Within a flush or two (every 5 s) the last hour holds every row
    // rendered, by whichever worker, and the query.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let minutes = loop {
        let (status, body) = get(&throughput, &ops).await;
        assert_eq!(status, 200, "{body}");
        let minutes = body["data"].as_array().unwrap().clone();
        if total(&minutes, "rows") >= rows && total(&minutes, "queries") >= 1 {
            break minutes;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the counts never arrived: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(total(&minutes, "rows"), rows);
    assert_eq!(total(&minutes, "queries"), 1);
    // At least one render task per 2,000-row chunk, an assemble, the query.
    assert!(total(&minutes, "tasks") >= rows / 2_000 + 2, "{minutes:?}");
    let busy: Vec<&Value> = minutes.iter().filter(|m| m["tasks"] != 0).collect();
    assert!(
        !busy.is_empty() && busy.len() <= 2,
        "the work of the last seconds is in the last minute or two: {busy:?}"
    );

    // Only for tokens with ops:read.
    let (status, refused) = get(&throughput, &sandbox.token("busy")).await;
    assert_eq!(status, 200, "every scope includes ops:read: {refused}");
    let narrow = mint_with(
        JWT_SECRET,
        &AuthConfig::default(),
        &TokenSpec {
            scopes: &[Scope::QueryRead, Scope::ExportRead],
            ..TokenSpec::new("busy", 1)
        },
    )
    .unwrap();
    let (status, refused) = get(&throughput, &narrow).await;
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused.to_string().contains("ops:read"),
        "the refusal names the scope: {refused}"
    );
    sandbox.stop().await.unwrap();
}
