//! Online entries and summaries end to end on Redis + RabbitMQ + S3 over
//! HTTP: rows go in through the ingest API, and what the entries pages and
//! the summaries answer is compared with expectations computed from the
//! test's own rows.

use std::collections::{BTreeMap, HashMap};

use auditx_lake::audit_trail::generate::{audit_rows, run_rows, GenerateSpec};
use auditx_proto::{MeterId, TenantId};
use auditx_tests::expect;
use auditx_tests::sandbox::JWT_SECRET;
use auditx_tests::{Sandbox, SandboxOptions};
use chrono::{TimeZone, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const METER: i64 = 77;
/// 2025-07-23T00:00:00Z
const DAY_MS: i64 = 1_753_228_800_000;
const HOUR_MS: i64 = 3_600_000;
const FROM: &str = "2025-07-23T01:00:00Z";
const TO: &str = "2025-07-23T20:00:00Z";
const FROM_MS: i64 = DAY_MS + HOUR_MS;
const TO_MS: i64 = DAY_MS + 20 * HOUR_MS;

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A row the test ingested, as it knows it.
#[derive(Clone, Debug)]
struct Row {
    event_id: String,
    time_ms: i64,
    session: String,
    record_type: &'static str,
    run_type: &'static str,
    operator: Option<String>,
    error_code: Option<String>,
}

impl Row {
    fn key(&self) -> (i64, &str) {
        (self.time_ms, self.event_id.as_str())
    }

    fn payload(&self) -> Value {
        json!({"id": self.event_id, "nested": {"n": self.time_ms % 97}, "text": "a,\"b\"\nc"})
    }

    /// The body of an ingest of this row (absent values left out).
    fn ingest_json(&self) -> Value {
        let mut entry = self.entry(&BTreeMap::new());
        let fields = entry.as_object_mut().unwrap();
        fields.retain(|_, v| !v.is_null() && v != "");
        fields.remove("runStatus");
        fields.remove("errorTime");
        fields.insert("eventTime".into(), json!(self.time_ms));
        fields.insert("recordType".into(), json!(self.record_type));
        entry
    }

    /// The entry the API should answer for this row: the reference's
    /// fields (errorTime in epoch milliseconds as a string, errorCode and
    /// errorMessage empty when absent), then auditx's.
    fn entry(&self, statuses: &BTreeMap<String, String>) -> Value {
        json!({
            "errorTime": self.time_ms.to_string(),
            "eventId": self.event_id,
            "eventTime": iso(self.time_ms),
            "sessionId": self.session,
            "runType": self.run_type,
            "runStatus": statuses.get(&self.session),
            "operatorId": self.operator,
            "operatorType": self.operator.as_ref().map(|_| "TRANSFORM"),
            "operatorName": self.operator.as_ref().map(|o| format!("name of {o}")),
            "errorCode": self.error_code.clone().unwrap_or_default(),
            "errorMessage": self.error_code.as_ref().map_or(String::new(), |c| format!("failed with {c}")),
            "traceId": format!("trace-{}", self.event_id),
            "payload": self.payload(),
        })
    }
}

/// Deterministic pseudo-random rows `<prefix>-<n>` spread over the day
/// (some outside the queried range), several per millisecond at times.
fn rows(prefix: &str, count: usize, seed: u64, span: (i64, i64)) -> Vec<Row> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut next = move |bound: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % bound
    };
    (0..count)
        .map(|n| {
            // Coarse times so that some rows share a millisecond.
            let time_ms = span.0 + (next(((span.1 - span.0) / 250) as u64) as i64) * 250;
            let operator = match next(5) {
                0 => None,
                k => Some(format!("op-{k}")),
            };
            let record_type = if next(3) == 0 { "ERROR" } else { "SAMPLE" };
            let error_code = (record_type == "ERROR")
                .then(|| format!("E{}", next(3) + 1))
                .filter(|_| next(6) != 0);
            Row {
                event_id: format!("{prefix}-{n:05}"),
                time_ms,
                session: format!("R-{}", next(5) + 1),
                record_type,
                run_type: if next(6) == 0 { "DEBUG" } else { "NORMAL" },
                operator,
                error_code,
            }
        })
        .collect()
}

/// Runs R-1..R-4 with statuses (R-5 has none).
fn runs() -> (Value, BTreeMap<String, String>) {
    let changes = [
        ("R-1", "RUNNING", 1),
        ("R-1", "COMPLETED", 2),
        ("R-2", "FAILED", 1),
        ("R-3", "RUNNING", 1),
        ("R-4", "COMPLETED", 5),
    ];
    let body = changes
        .iter()
        .map(|(s, status, at)| {
            json!({"sessionId": s, "runType": "NORMAL", "status": status, "updatedAt": DAY_MS + at})
        })
        .collect();
    let latest = [
        ("R-1", "COMPLETED"),
        ("R-2", "FAILED"),
        ("R-3", "RUNNING"),
        ("R-4", "COMPLETED"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    (Value::Array(body), latest)
}

/// The filters of a test query, as the test evaluates them itself.
#[derive(Clone, Debug)]
struct Filters {
    export_type: &'static str,
    run_type: &'static str,
    sessions: Vec<&'static str>,
    run_statuses: Vec<&'static str>,
    operators: Vec<&'static str>,
}

impl Filters {
    fn matches(&self, row: &Row, statuses: &BTreeMap<String, String>) -> bool {
        row.time_ms >= FROM_MS
            && row.time_ms < TO_MS
            && row.record_type == self.export_type
            && row.run_type == self.run_type
            && (self.sessions.is_empty() || self.sessions.contains(&row.session.as_str()))
            && (self.run_statuses.is_empty()
                || statuses
                    .get(&row.session)
                    .is_some_and(|s| self.run_statuses.contains(&s.as_str())))
            && (self.operators.is_empty()
                || row
                    .operator
                    .as_deref()
                    .is_some_and(|o| self.operators.contains(&o)))
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![
            ("exportType", self.export_type.to_owned()),
            ("runType", self.run_type.to_owned()),
            ("queryFromTime", FROM.to_owned()),
            ("queryToTime", TO.to_owned()),
        ];
        for s in &self.sessions {
            query.push(("sessionIds", s.to_string()));
        }
        for s in &self.run_statuses {
            query.push(("runStatuses[]", s.to_string()));
        }
        if !self.operators.is_empty() {
            query.push(("operatorIds", self.operators.join(",")));
        }
        query
    }

    fn body(&self, group_by: &[&str]) -> Value {
        json!({
            "exportType": self.export_type,
            "runType": self.run_type,
            "queryFromTime": FROM,
            "queryToTime": TO,
            "sessionIds": self.sessions,
            "runStatuses": self.run_statuses,
            "operatorIds": self.operators,
            "groupBy": group_by,
        })
    }
}

fn samples() -> Filters {
    Filters {
        export_type: "SAMPLE",
        run_type: "NORMAL",
        sessions: vec![],
        run_statuses: vec![],
        operators: vec![],
    }
}

/// A caller with a token of some entities, plus optional headers.
struct Client<'a> {
    sandbox: &'a Sandbox,
    token: String,
    headers: Vec<(&'static str, String)>,
    http: reqwest::Client,
}

impl<'a> Client<'a> {
    fn new(sandbox: &'a Sandbox, tenant: &str, entities: &[&str]) -> Self {
        let entities: Vec<String> = entities.iter().map(|e| e.to_string()).collect();
        Self {
            sandbox,
            token: auditx::commands::tools::mint(JWT_SECRET, tenant, &entities, &[], 1).unwrap(),
            headers: Vec::new(),
            http: reqwest::Client::new(),
        }
    }

    fn with_entities(mut self, value: &str) -> Self {
        self.headers.push(("Zuora-Entity-Ids", value.to_owned()));
        self
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.sandbox.api))
            .bearer_auth(&self.token)
            .query(query);
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, body)
    }

    async fn ingest(&self, meter: i64, rows: &[Row]) {
        let body: Vec<Value> = rows.iter().map(Row::ingest_json).collect();
        let path = format!("/meters/{meter}/auditTrail/entries");
        let bytes = serde_json::to_vec(&body).unwrap();
        let (status, body) = self
            .call(Method::POST, &path, &[], Some(("application/json", bytes)))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["accepted"], rows.len(), "{body}");
    }

    async fn ingest_runs(&self, meter: i64, runs: &Value) {
        let path = format!("/meters/{meter}/runs");
        let bytes = serde_json::to_vec(runs).unwrap();
        let (status, body) = self
            .call(Method::POST, &path, &[], Some(("application/json", bytes)))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn page(
        &self,
        meter: i64,
        query: &[(&'static str, String)],
        page_size: Option<u32>,
        cursor: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut query = query.to_vec();
        if let Some(size) = page_size {
            query.push(("pageSize", size.to_string()));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        let path = format!("/meters/{meter}/auditTrail/entries");
        self.call(Method::GET, &path, &query, None).await
    }

    /// Every page of a query; `between` runs after each page with the
    /// last entry returned so far.
    async fn all_pages(
        &self,
        meter: i64,
        query: &[(&'static str, String)],
        page_size: u32,
        mut between: impl AsyncFnMut(Option<&Value>),
    ) -> (Vec<Value>, usize) {
        let mut entries: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let (status, body) = self
                .page(meter, query, Some(page_size), cursor.as_deref())
                .await;
            assert_eq!(status, StatusCode::OK, "page {pages}: {body}");
            assert_eq!(body["success"], true);
            assert_eq!(body["previousPage"], Value::Null);
            let data = body["data"].as_array().unwrap();
            assert!(data.len() <= page_size as usize);
            pages += 1;
            entries.extend(data.iter().cloned());
            match body["nextPage"].as_str() {
                Some(next) => {
                    assert_eq!(
                        data.len(),
                        page_size as usize,
                        "only the last page is short"
                    );
                    cursor = Some(next.to_owned());
                    between(entries.last()).await;
                }
                None => return (entries, pages),
            }
        }
    }

    async fn summary(&self, meter: i64, body: &Value) -> (StatusCode, Value) {
        let path = format!("/meters/{meter}/summary");
        let bytes = serde_json::to_vec(body).unwrap();
        self.call(Method::POST, &path, &[], Some(("application/json", bytes)))
            .await
    }
}

fn expected_entries<'r>(
    rows: impl IntoIterator<Item = &'r Row>,
    filters: &Filters,
    statuses: &BTreeMap<String, String>,
) -> Vec<Value> {
    let mut matching: Vec<&Row> = rows
        .into_iter()
        .filter(|r| filters.matches(r, statuses))
        .collect();
    matching.sort_by(|a, b| a.key().cmp(&b.key()));
    matching.iter().map(|r| r.entry(statuses)).collect()
}

fn entry_key(entry: &Value) -> (String, String) {
    (
        entry["eventTime"].as_str().unwrap().to_owned(),
        entry["eventId"].as_str().unwrap().to_owned(),
    )
}

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions {
        // Small row groups: a page spans several row groups and files.
        row_group_rows: 64,
        ..SandboxOptions::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_hold_every_row_once_in_order_while_rows_are_ingested() {
    let sandbox = sandbox().await;
    let client = Client::new(&sandbox, "paging", &[]);
    let (run_body, statuses) = runs();
    client.ingest_runs(METER, &run_body).await;
    // Four batches over the whole day: files overlapping in time.
    let mut initial = Vec::new();
    for batch in 0..4 {
        let part = rows(
            &format!("a{batch}"),
            400,
            batch,
            (DAY_MS, DAY_MS + 24 * HOUR_MS),
        );
        client.ingest(METER, &part).await;
        initial.extend(part);
    }
    let filters = samples();
    let before = expected_entries(&initial, &filters, &statuses);
    assert!(before.len() > 500, "{} rows", before.len());

    // Between pages, ingest rows into the range: some sort after the last
    // entry returned (the walk must return them), some before it (the walk
    // has passed them and must not return them, nor repeat anything).
    let mut added: Vec<Row> = Vec::new();
    let mut visible_later: Vec<Row> = Vec::new();
    let mut batch = 0u64;
    let (entries, pages) = client
        .all_pages(METER, &filters.query(), 37, async |last: Option<&Value>| {
            batch += 1;
            let last = last.expect("a full page has a last entry");
            let last_ms = chrono::DateTime::parse_from_rfc3339(last["eventTime"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            let last_id = last["eventId"].as_str().unwrap().to_owned();
            let mut new = rows(&format!("b{batch:03}"), 6, 100 + batch, (FROM_MS, TO_MS));
            // One in the very millisecond of the last entry, after it.
            new[0].time_ms = last_ms;
            new[0].record_type = "SAMPLE";
            new[0].run_type = "NORMAL";
            client.ingest(METER, &new).await;
            for row in &new {
                if (row.time_ms, row.event_id.as_str()) > (last_ms, last_id.as_str()) {
                    visible_later.push(row.clone());
                }
            }
            added.extend(new);
        })
        .await;
    assert!(pages >= 15, "{pages} pages");
    let expected = expected_entries(initial.iter().chain(&visible_later), &filters, &statuses);
    let behind = expected_entries(&added, &filters, &statuses).len()
        - expected_entries(&visible_later, &filters, &statuses).len();
    assert!(behind > 0, "some rows were ingested behind the walk");
    assert!(
        expected.len() > before.len(),
        "some rows were ingested ahead of the walk"
    );
    let keys: Vec<_> = entries.iter().map(entry_key).collect();
    for pair in keys.windows(2) {
        assert!(pair[0] < pair[1], "not strictly ordered: {pair:?}");
    }
    assert_eq!(entries.len(), expected.len());
    assert_eq!(entries, expected);

    // A new walk sees every row, the ones ingested behind the first walk too.
    let all = expected_entries(initial.iter().chain(&added), &filters, &statuses);
    let (again, _) = client
        .all_pages(METER, &filters.query(), 500, async |_: Option<&Value>| {})
        .await;
    assert_eq!(again, all);

    // Narrow filters and the default page size.
    let narrow = Filters {
        export_type: "ERROR",
        run_type: "NORMAL",
        sessions: vec!["R-1", "R-2", "R-4", "R-5"],
        run_statuses: vec!["COMPLETED", "FAILED"],
        operators: vec!["op-1", "op-3"],
    };
    let rows_now: Vec<Row> = initial.iter().chain(&added).cloned().collect();
    let expected = expected_entries(&rows_now, &narrow, &statuses);
    assert!(!expected.is_empty());
    let (status, body) = client.page(METER, &narrow.query(), None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first: Vec<Value> = body["data"].as_array().unwrap().clone();
    // The reference's default page size, 30.
    assert_eq!(first, expected[..expected.len().min(30)]);
    assert_eq!(body["nextPage"].is_null(), expected.len() <= 30);

    // Another tenant's meter of the same id is empty.
    let other = Client::new(&sandbox, "someone-else", &[]);
    let (status, body) = other.page(METER, &filters.query(), None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!([]));
    assert_eq!(body["nextPage"], Value::Null);
    sandbox.stop().await.unwrap();
}

fn assert_400(what: &str, (status, body): (StatusCode, Value), starts: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert_eq!(body["success"], false, "{what}: {body}");
    let message = body["reasons"][0]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with(starts), "{what}: {message:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_parameters_and_foreign_or_altered_cursors_are_400s() {
    let sandbox = sandbox().await;
    let client = Client::new(&sandbox, "cursors", &[]);
    let rows = rows("c", 300, 7, (FROM_MS, TO_MS));
    client.ingest(METER, &rows).await;
    client.ingest(METER + 1, &rows).await;
    let query = samples().query();

    for size in ["0", "501", "abc", "-1", ""] {
        let mut q = query.clone();
        q.push(("pageSize", size.to_owned()));
        let path = format!("/meters/{METER}/auditTrail/entries");
        assert_400(
            &format!("pageSize={size}"),
            client.call(Method::GET, &path, &q, None).await,
            "pageSize: ",
        );
    }
    let path = format!("/meters/{METER}/auditTrail/entries");
    let without = |name: &str| -> Vec<(&'static str, String)> {
        query.iter().filter(|(n, _)| *n != name).cloned().collect()
    };
    assert_400(
        "no exportType",
        client
            .call(Method::GET, &path, &without("exportType"), None)
            .await,
        "exportType: required",
    );
    let mut q = without("runType");
    q.push(("runType", "FAST".into()));
    assert_400(
        "bad runType",
        client.call(Method::GET, &path, &q, None).await,
        "runType: \"FAST\" is not one of",
    );
    let mut q = without("queryToTime");
    q.push(("queryToTime", FROM.into()));
    assert_400(
        "empty range",
        client.call(Method::GET, &path, &q, None).await,
        "queryFromTime: must be before queryToTime",
    );
    let mut q = query.clone();
    q.push(("page", "2".into()));
    assert_400(
        "page",
        client.call(Method::GET, &path, &q, None).await,
        "unknown query parameter: page",
    );
    assert_400(
        "meterId",
        client
            .call(Method::GET, "/meters/abc/auditTrail/entries", &query, None)
            .await,
        "meterId: ",
    );

    let (status, body) = client.page(METER, &query, Some(10), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cursor = body["nextPage"].as_str().unwrap().to_owned();
    let (status, second) = client.page(METER, &query, Some(10), Some(&cursor)).await;
    assert_eq!(status, StatusCode::OK, "{second}");

    let mut altered = cursor.clone().into_bytes();
    let at = altered.len() / 2;
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let truncated = &cursor[..cursor.len() - 4];
    for (what, bad) in [
        ("altered", altered.as_str()),
        ("truncated", truncated),
        ("garbage", "%%%not-a-cursor"),
        ("empty", ""),
    ] {
        assert_400(
            what,
            client.page(METER, &query, Some(10), Some(bad)).await,
            "cursor: ",
        );
    }
    let foreign = "cursor: issued for another query";
    assert_400(
        "other meter",
        client
            .page(METER + 1, &query, Some(10), Some(&cursor))
            .await,
        foreign,
    );
    let other_tenant = Client::new(&sandbox, "cursors-2", &[]);
    other_tenant.ingest(METER, &rows).await;
    assert_400(
        "other tenant",
        other_tenant
            .page(METER, &query, Some(10), Some(&cursor))
            .await,
        foreign,
    );
    let mut other_filters = query.clone();
    other_filters.push(("operatorIds", "op-1".into()));
    assert_400(
        "other filters",
        client
            .page(METER, &other_filters, Some(10), Some(&cursor))
            .await,
        foreign,
    );
    // The page size may change between pages.
    let (status, body) = client.page(METER, &query, Some(3), Some(&cursor)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"].as_array().unwrap()[..],
        second["data"].as_array().unwrap()[..3]
    );

    // A summary over one file (no re-sent events to drop).
    let (status, body) = client
        .summary(METER + 1, &samples().body(&["operatorId"]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["output"],
        expected_summary(&rows, &samples(), &BTreeMap::new(), &["operatorId"])
    );

    // Summary: bad bodies name the field.
    let summary = async |body: Value| client.summary(METER, &body).await;
    assert_400(
        "groupBy",
        summary(samples().body(&["sessionId", "tenant"])).await,
        "groupBy: \"tenant\" is not one of sessionId, operatorId, errorCode, processorId",
    );
    let mut body = samples().body(&[]);
    body["exportType"] = json!(5);
    assert_400(
        "exportType",
        summary(body).await,
        "exportType: must be a string",
    );
    let mut body = samples().body(&[]);
    body["pageSize"] = json!(5);
    assert_400(
        "unknown",
        summary(body).await,
        "unknown field: \"pageSize\"",
    );
    let (status, body) = client
        .call(
            Method::POST,
            &format!("/meters/{METER}/summary"),
            &[],
            Some(("text/plain", b"{}".to_vec())),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_400(
        "not JSON",
        client
            .call(
                Method::POST,
                &format!("/meters/{METER}/summary"),
                &[],
                Some(("application/json", b"{\"exportType\":".to_vec())),
            )
            .await,
        "body: not valid JSON",
    );
    sandbox.stop().await.unwrap();
}

/// The summary rows (`output`) by `group_by` as the API should answer
/// them: success entries in `output`, error entries in `totalErrorCount`,
/// largest first; without `group_by` one row of totals.
fn expected_summary(
    rows: &[Row],
    filters: &Filters,
    statuses: &BTreeMap<String, String>,
    group_by: &[&str],
) -> Value {
    let mut counts: HashMap<Vec<Option<String>>, (u64, u64)> = HashMap::new();
    for row in rows.iter().filter(|r| filters.matches(r, statuses)) {
        let key = group_by
            .iter()
            .map(|field| match *field {
                "sessionId" => Some(row.session.clone()),
                "operatorId" | "processorId" => row.operator.clone(),
                _ => row.error_code.clone(),
            })
            .collect();
        let entry = counts.entry(key).or_default();
        if row.record_type == "ERROR" {
            entry.1 += 1;
        } else {
            entry.0 += 1;
        }
    }
    if group_by.is_empty() && counts.is_empty() {
        counts.insert(Vec::new(), (0, 0));
    }
    let mut groups: Vec<_> = counts.into_iter().collect();
    groups.sort_by(|a, b| {
        (b.1 .0 + b.1 .1)
            .cmp(&(a.1 .0 + a.1 .1))
            .then_with(|| a.0.cmp(&b.0))
    });
    groups
        .into_iter()
        .map(|(key, (output, errors))| {
            let mut dimensions = serde_json::Map::new();
            for (field, value) in group_by.iter().zip(key) {
                dimensions.insert(field.to_string(), json!(value));
            }
            json!({"dimensions": dimensions, "output": output, "totalErrorCount": errors})
        })
        .collect()
}

/// The number of entries the summary rows count.
fn summed(output: &Value) -> u64 {
    output
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["output"].as_u64().unwrap() + row["totalErrorCount"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn summaries_count_by_every_grouping() {
    let sandbox = sandbox().await;
    let client = Client::new(&sandbox, "summary", &[]);
    let (run_body, statuses) = runs();
    client.ingest_runs(METER, &run_body).await;
    let mut all = Vec::new();
    for batch in 0..3 {
        let part = rows(
            &format!("s{batch}"),
            700,
            40 + batch,
            (DAY_MS, DAY_MS + 24 * HOUR_MS),
        );
        client.ingest(METER, &part).await;
        all.extend(part);
    }
    let errors = Filters {
        export_type: "ERROR",
        ..samples()
    };
    let narrow = Filters {
        export_type: "ERROR",
        run_type: "NORMAL",
        sessions: vec!["R-1", "R-2", "R-3", "R-5"],
        run_statuses: vec!["COMPLETED", "RUNNING"],
        operators: vec!["op-1", "op-2", "op-4"],
    };
    let groupings: [&[&str]; 8] = [
        &[],
        &["sessionId"],
        &["operatorId"],
        &["errorCode"],
        &["sessionId", "errorCode"],
        &["errorCode", "operatorId"],
        &["operatorId", "errorCode", "sessionId"],
        &["sessionId", "sessionId"],
    ];
    for filters in [&samples(), &errors, &narrow] {
        for group_by in groupings {
            let (status, body) = client.summary(METER, &filters.body(group_by)).await;
            assert_eq!(status, StatusCode::OK, "{group_by:?}: {body}");
            let mut distinct: Vec<&str> = Vec::new();
            for field in group_by {
                if !distinct.contains(field) {
                    distinct.push(field);
                }
            }
            let expected = expected_summary(&all, filters, &statuses, &distinct);
            assert!(summed(&expected) > 0, "{filters:?}");
            assert_eq!(
                body["data"]["output"], expected,
                "{filters:?} by {group_by:?}"
            );
        }
    }
    // groupBy as one comma separated string, and absent.
    let mut body = errors.body(&[]);
    body["groupBy"] = json!("errorCode, sessionId");
    let (status, answer) = client.summary(METER, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["data"]["output"],
        expected_summary(&all, &errors, &statuses, &["errorCode", "sessionId"])
    );
    body.as_object_mut().unwrap().remove("groupBy");
    let (_, answer) = client.summary(METER, &body).await;
    assert_eq!(
        answer["data"]["output"],
        expected_summary(&all, &errors, &statuses, &[])
    );
    assert_eq!(answer["data"]["output"][0]["output"], 0, "{answer}");
    // Without exportType, success and error entries per group in one call;
    // processorId groups by the operator.
    let mut both = samples().body(&["processorId", "sessionId"]);
    both.as_object_mut().unwrap().remove("exportType");
    let (status, answer) = client.summary(METER, &both).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut expected = Vec::new();
    for filters in [&samples(), &errors] {
        expected.extend(
            expected_summary(&all, filters, &statuses, &["processorId", "sessionId"])
                .as_array()
                .unwrap()
                .clone(),
        );
    }
    let mut merged: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for row in &expected {
        let counts = merged.entry(row["dimensions"].to_string()).or_default();
        counts.0 += row["output"].as_u64().unwrap();
        counts.1 += row["totalErrorCount"].as_u64().unwrap();
    }
    let got: BTreeMap<String, (u64, u64)> = answer["data"]["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["dimensions"].to_string(),
                (
                    row["output"].as_u64().unwrap(),
                    row["totalErrorCount"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, merged);
    assert!(
        got.values().any(|(ok, errors)| *ok > 0 && *errors > 0),
        "{answer}"
    );
    // No run has the status: nothing matches.
    let none = Filters {
        run_statuses: vec!["PAUSED"],
        ..errors.clone()
    };
    let (_, answer) = client.summary(METER, &none.body(&["sessionId"])).await;
    assert_eq!(answer["data"]["output"], json!([]));
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn summaries_of_generated_data_match_the_generator() {
    let sandbox = sandbox().await;
    let spec = GenerateSpec {
        tenant: TenantId::from("generated"),
        meter: MeterId(METER),
        rows: 30_000,
        from_ms: DAY_MS,
        to_ms: DAY_MS + 2 * 24 * HOUR_MS,
        error_rate: 0.3,
        seed: 5,
    };
    sandbox.generate(&spec, 7_000).await.unwrap();
    let statuses = expect::latest_statuses(&run_rows(&spec));
    let client = Client::new(&sandbox, "generated", &[]);
    for (from, to) in [
        ("2025-07-23T00:00:00Z", "2025-07-25T00:00:00Z"),
        ("2025-07-23T05:00:00Z", "2025-07-23T17:30:00Z"),
    ] {
        let (from_ms, to_ms) = (
            chrono::DateTime::parse_from_rfc3339(from)
                .unwrap()
                .timestamp_millis(),
            chrono::DateTime::parse_from_rfc3339(to)
                .unwrap()
                .timestamp_millis(),
        );
        let query = expect::Query {
            export_type: "ERROR".into(),
            run_type: "NORMAL".into(),
            from_ms,
            to_ms,
            ..Default::default()
        };
        let mut counts: BTreeMap<Option<String>, u64> = BTreeMap::new();
        for row in audit_rows(&spec).filter(|r| expect::matches(r, &query, &statuses)) {
            *counts.entry(row.error_code.clone()).or_default() += 1;
        }
        let total: u64 = counts.values().sum();
        assert!(total > 1_000, "{total}");
        let body = json!({
            "exportType": "ERROR", "runType": "NORMAL",
            "queryFromTime": from, "queryToTime": to, "groupBy": ["errorCode"],
        });
        let (status, answer) = client.summary(METER, &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(summed(&answer["data"]["output"]), total, "{from}..{to}");
        let got: BTreeMap<Option<String>, u64> = answer["data"]["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["dimensions"]["errorCode"].as_str().map(str::to_owned),
                    g["totalErrorCount"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, counts, "{from}..{to}");
        // The first entries page of the range, against the generator.
        let expected: Vec<String> = audit_rows(&spec)
            .filter(|r| expect::matches(r, &query, &statuses))
            .take(20)
            .map(|r| r.event_id)
            .collect();
        let q = vec![
            ("exportType", "ERROR".to_owned()),
            ("runType", "NORMAL".to_owned()),
            ("queryFromTime", from.to_owned()),
            ("queryToTime", to.to_owned()),
        ];
        let (status, page) = client.page(METER, &q, Some(20), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let ids: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["eventId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, expected);
    }
    sandbox.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_and_summaries_hold_only_the_callers_entities() {
    let sandbox = sandbox().await;
    let both = Client::new(&sandbox, "scoped", &["e1", "e2"]);
    let e1 = Client::new(&sandbox, "scoped", &["e1", "e2"]).with_entities("e1");
    let e2 = Client::new(&sandbox, "scoped", &["e1", "e2"]).with_entities("e2");
    let rows1 = rows("e1", 200, 1, (FROM_MS, TO_MS));
    let rows2 = rows("e2", 150, 2, (FROM_MS, TO_MS));
    e1.ingest(METER, &rows1).await;
    e2.ingest(METER, &rows2).await;
    let statuses = BTreeMap::new();
    let filters = samples();
    let query = filters.query();

    for (client, rows) in [
        (&e1, rows1.clone()),
        (&e2, rows2.clone()),
        (&both, [rows1.clone(), rows2.clone()].concat()),
    ] {
        let (entries, _) = client
            .all_pages(METER, &query, 50, async |_: Option<&Value>| {})
            .await;
        assert_eq!(entries, expected_entries(&rows, &filters, &statuses));
        let (status, body) = client.summary(METER, &filters.body(&["sessionId"])).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["data"]["output"],
            expected_summary(&rows, &filters, &statuses, &["sessionId"])
        );
    }
    // A cursor of one entity's walk is not valid for another's.
    let (_, page) = e1.page(METER, &query, Some(5), None).await;
    let cursor = page["nextPage"].as_str().unwrap();
    assert_400(
        "other entity",
        e2.page(METER, &query, Some(5), Some(cursor)).await,
        "cursor: issued for another query",
    );
    // An entity outside the token's is refused.
    let e3 = Client::new(&sandbox, "scoped", &["e1", "e2"]).with_entities("e3");
    let (status, body) = e3.page(METER, &query, None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = e3.summary(METER, &filters.body(&[])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    sandbox.stop().await.unwrap();
}
