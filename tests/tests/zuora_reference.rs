//! Zuora's API reference, replayed against a running `auditx standalone`
//! (issue 17): the reference's request samples of the audit-trail routes
//! are accepted, the answers carry every field of the reference's response
//! samples (`tests/fixtures/zuora/`) with the same JSON types, every kind of
//! 4xx has its Zuora code, every answer has a `Zuora-Request-Id`, and
//! `Idempotency-Key` replays the first answer and refuses another request.

use std::time::Duration;

use auditx_tests::processes::run_auditx;
use auditx_tests::Fleet;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

const METER: i64 = 709;
const OPERATOR: &str = "4610a876-61ee-4e5e-a634-152e7a635f75";

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/zuora/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A running `auditx standalone` on its own data folder, with a token.
struct Standalone {
    _dir: tempfile::TempDir,
    data: String,
    _server: Fleet,
    base: String,
    http: reqwest::Client,
    token: String,
}

impl Standalone {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data = data.to_str().unwrap().to_owned();
        let server = Fleet::standalone(&data).start().await;
        let token = run_auditx(&["token", "--data-dir", &data, "--tenant", "zuora"]).await;
        Self {
            _dir: dir,
            data,
            base: server.api.clone(),
            _server: server,
            http: reqwest::Client::new(),
            token: token.trim().to_owned(),
        }
    }

    /// A token of another tenant.
    async fn token_of(&self, tenant: &str) -> String {
        run_auditx(&["token", "--data-dir", &self.data, "--tenant", tenant])
            .await
            .trim()
            .to_owned()
    }

    /// A request with the reference samples' headers.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_as(&self.token, method, path)
    }

    fn request_as(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("Accept-Encoding", "gzip")
            .header("Content-Type", "application/json")
            .header("Zuora-Track-Id", "reference-replay")
    }

    async fn send(&self, request: RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: Method, path: &str) -> Answer {
        self.send(self.request(method, path)).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Answer {
        self.send(
            self.request(Method::POST, path)
                .body(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    /// Ingests `entries` into the meter; the ingest's `data`.
    async fn ingest(&self, entries: &Value) -> Value {
        let answer = self
            .post_json(&format!("/meters/{METER}/auditTrail/entries"), entries)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body["data"].clone()
    }

    async fn wait_finished(&self, request_id: &str) -> Value {
        for _ in 0..600 {
            let answer = self
                .call(
                    Method::GET,
                    &format!("/meters/{METER}/auditTrail/export/{request_id}"),
                )
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            let job = answer.body["data"].clone();
            match job["status"].as_str() {
                Some("FINISHED") => return job,
                Some("FAILED" | "CANCELED") => panic!("{job}"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("export {request_id} did not finish");
    }
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    /// Asserts Zuora's error body with these `(code, message start)`
    /// reasons, and that `processId` is the head of `Zuora-Request-Id`.
    #[track_caller]
    fn assert_error(&self, status: StatusCode, reasons: &[(u64, &str)]) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_shape(&fixture("error_400.json"), &self.body, "error");
        let mut keys: Vec<&str> = self
            .body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["processId", "reasons", "success"], "{}", self.body);
        let request_id = self.request_id();
        assert_eq!(
            self.body["processId"],
            request_id.replace('-', "")[..16].to_ascii_uppercase(),
        );
        let got = self.body["reasons"].as_array().unwrap();
        assert_eq!(got.len(), reasons.len(), "{}", self.body);
        for (reason, (code, message)) in got.iter().zip(reasons) {
            assert_eq!(reason["code"], *code, "{}", self.body);
            let text = reason["message"].as_str().unwrap();
            assert!(text.starts_with(message), "{text:?} vs {message:?}");
        }
    }

    fn request_id(&self) -> String {
        let id = self
            .headers
            .get("zuora-request-id")
            .expect("a Zuora-Request-Id header")
            .to_str()
            .unwrap()
            .to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        id
    }
}

/// Every field of the reference's `sample` is in `got` with the same JSON
/// type (a null in the sample stands for any type); arrays compare each of
/// `got`'s items with the sample's first.
#[track_caller]
fn assert_shape(sample: &Value, got: &Value, path: &str) {
    match (sample, got) {
        (Value::Null, _) => {}
        (Value::Object(fields), Value::Object(have)) => {
            for (name, value) in fields {
                let inner = format!("{path}.{name}");
                let Some(theirs) = have.get(name) else {
                    panic!("{inner} is missing: {got}");
                };
                assert_shape(value, theirs, &inner);
            }
        }
        (Value::Array(items), Value::Array(have)) => {
            if let Some(first) = items.first() {
                for (i, item) in have.iter().enumerate() {
                    assert_shape(first, item, &format!("{path}[{i}]"));
                }
            }
        }
        (Value::Bool(_), Value::Bool(_)) | (Value::String(_), Value::String(_)) => {}
        (Value::Number(a), Value::Number(b)) => {
            assert_eq!(a.is_i64() || a.is_u64(), b.is_i64() || b.is_u64(), "{path}");
        }
        _ => panic!("{path}: the reference has {sample}, auditx {got}"),
    }
}

/// Entries of the sessions and operator the reference's samples name, in
/// October and November 2025, with times in the reference's forms.
fn entries() -> Value {
    let mut rows = Vec::new();
    for (i, session) in ["R-00002247", "R-00002293", "R-00009999"]
        .iter()
        .enumerate()
    {
        for n in 0..6 {
            let error = n % 3 == 0;
            let mut row = json!({
                "eventId": format!("601f65ca-67f5-11f0-9e3a-5d9d6cbeef3e|{i}{n}"),
                "eventTime": format!("2025-10-{:02}T{:02}00+0000", 2 + n, 10 + i),
                "sessionId": session,
                "runType": "NORMAL",
                "recordType": if error { "ERROR" } else { "SAMPLE" },
                "operatorId": if n == 5 { "another-operator" } else { OPERATOR },
                "operatorType": "BILLING-RATING",
                "operatorName": "Rating",
                "traceId": format!("601f65ca|{i}{n}_a_b_e_d_o7normal"),
                "payload": {"event time": "2025-07-01", "charge number": "C-00000017", "qty": 10, "ratedAmount": "10.0"},
            });
            if error {
                row["errorCode"] = json!("E-RATING");
                row["errorMessage"] = json!("no price for the charge");
            }
            rows.push(row);
        }
    }
    // Basic and extended forms with offsets: both taken at ingest.
    rows[1]["eventTime"] = json!("20251003T120000.5+0530");
    rows[2]["eventTime"] = json!("2025-10-04T12:00:00-03");
    Value::Array(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_references_samples_are_accepted_and_answered_in_its_shapes() {
    let auditx = Standalone::start().await;
    assert_eq!(auditx.ingest(&entries()).await["accepted"], 18);

    // createAuditTrailExportJob, with the reference's time forms.
    let create = format!(
        "/meters/{METER}/auditTrail/export?exportType=SAMPLE&runType=NORMAL\
         &sessionIds=R-00002247&sessionIds=R-00002293&operatorIds={OPERATOR}\
         &queryFromTime=2025-07-01T00:00:00%2B0530&queryToTime=2025-11-17T23:59:59%2B0000&format=csv"
    );
    let created = auditx.call(Method::POST, &create).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_shape(&fixture("create_export_200.json"), &created.body, "create");
    assert_eq!(created.headers["zuora-track-id"], "reference-replay");
    let request_id = created.body["data"]["requestId"].as_str().unwrap();
    let job = auditx.wait_finished(request_id).await;
    // Two sessions, five rows each of the operator, a third of them errors.
    assert_eq!(job["count"], 6, "{job}");

    // getAuditTrailExportJobs with the reference's query.
    let list = auditx
        .call(
            Method::GET,
            &format!(
                "/meters/{METER}/auditTrail/export?exportType=SAMPLE&sessionIds=R-00002247\
                 &pageSize=30&page=1"
            ),
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_shape(&fixture("list_export_jobs_200.json"), &list.body, "list");
    let data = &list.body["data"];
    assert_eq!(
        (data["page"].clone(), data["pageSize"].clone()),
        (json!(1), json!(30))
    );
    let listed = &data["jobs"][0];
    assert_eq!(listed["requestId"], request_id);
    assert_eq!(listed["query"]["statuses"], Value::Null);
    assert_eq!(listed["query"]["queryFromTime"], "2025-07-01T00:00:00+0530");
    for time in ["creationTime", "completionTime"] {
        let text = listed[time].as_str().unwrap();
        assert_eq!(text.len(), 20, "{time}: {text}");
        assert!(text.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(text).is_ok());
    }
    let file = listed["fileList"][0].as_str().unwrap();
    assert!(file.starts_with(&format!("{request_id}/")), "{file}");
    assert_eq!(list.body["previousPage"], Value::Null);
    assert_eq!(list.body["nextPage"], Value::Null);
    // The key as listed is what the presign route takes.
    let url = auditx
        .call(
            Method::GET,
            &format!("/meters/auditTrail/presignedUrl?fileKey={file}"),
        )
        .await;
    assert_eq!(url.status, StatusCode::OK, "{}", url.body);
    let csv = reqwest::get(url.body["data"].as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    // Page links: a link to the next page, with the filters.
    let paged = auditx
        .call(
            Method::GET,
            &format!("/meters/{METER}/auditTrail/export?pageSize=1"),
        )
        .await;
    assert_eq!(paged.body["nextPage"], Value::Null, "{}", paged.body);
    auditx.call(Method::POST, &create).await;
    let paged = auditx
        .call(
            Method::GET,
            &format!("/meters/{METER}/auditTrail/export?pageSize=1"),
        )
        .await;
    let next = paged.body["nextPage"].as_str().unwrap().to_owned();
    assert_eq!(
        next,
        format!("/meters/{METER}/auditTrail/export?page=2&pageSize=1")
    );
    let second = auditx.call(Method::GET, &next).await;
    assert_eq!(second.body["data"]["jobs"][0]["requestId"], request_id);
    assert_eq!(
        second.body["previousPage"],
        format!("/meters/{METER}/auditTrail/export?page=1&pageSize=1")
    );

    // getAuditTrailEntriesForMeter: single sessionId and operatorId.
    let query = format!(
        "exportType=ERROR&runType=NORMAL&sessionId=R-00002247&operatorId={OPERATOR}\
         &queryFromTime=2025-07-01T00:00:00%2B0530&queryToTime=2025-11-17T23:59:59Z"
    );
    let entries = auditx
        .call(
            Method::GET,
            &format!("/meters/{METER}/auditTrail/entries?{query}&pageSize=1"),
        )
        .await;
    assert_eq!(entries.status, StatusCode::OK, "{}", entries.body);
    assert_shape(&fixture("entries_200.json"), &entries.body, "entries");
    let entry = &entries.body["data"][0];
    assert_eq!(entry["errorCode"], "E-RATING");
    assert_eq!(entry["operatorId"], OPERATOR);
    let error_time: i64 = entry["errorTime"].as_str().unwrap().parse().unwrap();
    assert_eq!(error_time, 1_759_399_200_000, "2025-10-02T10:00:00Z");
    let cursor = entries.body["nextPage"].as_str().unwrap();
    let next = auditx
        .send(
            auditx
                .request(
                    Method::GET,
                    &format!("/meters/{METER}/auditTrail/entries?{query}"),
                )
                .query(&[("pageSize", "30"), ("cursor", cursor)]),
        )
        .await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.body);
    assert_eq!(
        next.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        next.body
    );
    assert_eq!(next.body["nextPage"], Value::Null);
    // A success entry has empty error fields.
    let samples = auditx
        .call(
            Method::GET,
            &format!(
                "/meters/{METER}/auditTrail/entries?exportType=SAMPLE&runType=NORMAL\
                 &sessionId=R-00002247&queryFromTime=2025-10-01T0000%2B0000\
                 &queryToTime=2025-11-17T23:59:59%2B0000"
            ),
        )
        .await;
    assert_eq!(samples.status, StatusCode::OK, "{}", samples.body);
    let data = samples.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 4, "{}", samples.body);
    assert_eq!(
        (
            data[0]["errorCode"].clone(),
            data[0]["errorMessage"].clone()
        ),
        (json!(""), json!(""))
    );

    // retrieveMeterSummaryData with the reference's body.
    let summary = auditx
        .post_json(
            &format!("/meters/{METER}/summary"),
            &fixture("summary_request.json"),
        )
        .await;
    assert_eq!(summary.status, StatusCode::OK, "{}", summary.body);
    assert_shape(&fixture("summary_200.json"), &summary.body, "summary");
    let data = &summary.body["data"];
    assert_eq!(data["query"]["runType"], "NORMAL");
    assert_eq!(
        data["query"]["groupBy"],
        json!(["errorCode", "processorId", "sessionId"])
    );
    assert_eq!(data["query"]["queryFromTime"], "2025-10-01T0000+0000");
    let mut rows: Vec<(Value, u64, u64)> = data["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["dimensions"].clone(),
                row["output"].as_u64().unwrap(),
                row["totalErrorCount"].as_u64().unwrap(),
            )
        })
        .collect();
    rows.sort_by_key(|row| row.0.to_string());
    let group = |code: Option<&str>, session: &str| json!({"errorCode": code, "processorId": OPERATOR, "sessionId": session});
    let mut expected = [
        (group(None, "R-00002247"), 3, 0),
        (group(None, "R-00002293"), 3, 0),
        (group(Some("E-RATING"), "R-00002247"), 0, 2),
        (group(Some("E-RATING"), "R-00002293"), 0, 2),
    ];
    expected.sort_by_key(|row| row.0.to_string());
    assert_eq!(rows, expected);
    // Every field is optional: an empty body counts the whole meter.
    let all = auditx
        .post_json(&format!("/meters/{METER}/summary"), &json!({}))
        .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(
        all.body["data"]["output"],
        json!([{"dimensions": {}, "output": 12, "totalErrorCount": 6}])
    );
    assert_eq!(all.body["data"]["query"]["runType"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_error_has_its_zuora_code_and_every_answer_a_request_id() {
    let auditx = Standalone::start().await;
    auditx.ingest(&entries()).await;
    let export = format!("/meters/{METER}/auditTrail/export");
    let times = "queryFromTime=2025-10-01T00:00:00Z&queryToTime=2025-11-01T00:00:00Z";

    // 23 missing parameter, 20 invalid value, 21 unknown parameter: all of
    // a request's problems at once.
    auditx
        .call(
            Method::POST,
            &format!("{export}?runType=FAST&{times}&colour=red&queryToTime=x"),
        )
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            &[
                (50_000_021, "unknown query parameter: colour"),
                (58_100_323, "exportType: required"),
                (58_101_120, "queryToTime: given more than once"),
                (58_100_420, "runType: \"FAST\" is not one of NORMAL, DEBUG"),
            ],
        );
    // A zone-less time names its field.
    auditx
        .call(
            Method::POST,
            &format!(
                "{export}?exportType=SAMPLE&runType=NORMAL&queryFromTime=2025-10-01T00:00:00\
                 &queryToTime=2025-11-01T00:00:00Z"
            ),
        )
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            &[(
                58_101_020,
                "queryFromTime: \"2025-10-01T00:00:00\" has no time zone",
            )],
        );
    // 22 missing field (an ingest row's), and an ingest body of whitespace.
    let missing = auditx
        .post_json(
            &format!("/meters/{METER}/auditTrail/entries"),
            &json!([{"eventTime": "2025-10-01T00:00:00Z", "sessionId": "R-1",
                     "runType": "NORMAL", "recordType": "SAMPLE"}]),
        )
        .await;
    missing.assert_error(
        StatusCode::BAD_REQUEST,
        &[(58_103_022, "row 0: eventId: is required")],
    );
    let blank = auditx
        .send(
            auditx
                .request(Method::POST, &format!("/meters/{METER}/auditTrail/entries"))
                .body(" \n\t \n"),
        )
        .await;
    blank.assert_error(
        StatusCode::BAD_REQUEST,
        &[(58_102_022, "body: empty or only whitespace")],
    );
    // 90 malformed JSON, 21 unknown body field.
    let summary = format!("/meters/{METER}/summary");
    auditx
        .send(auditx.request(Method::POST, &summary).body("{\"runType\":"))
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            &[(58_102_090, "body: not valid JSON")],
        );
    auditx
        .post_json(&summary, &json!({"runType": "NORMAL", "colour": "red"}))
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            &[(50_000_021, "unknown field: \"colour\"")],
        );
    // 20 for a body that is not JSON at all (415).
    auditx
        .send(
            auditx
                .http
                .post(format!("{}{summary}", auditx.base))
                .bearer_auth(&auditx.token)
                .header("Content-Type", "text/plain")
                .body("{}"),
        )
        .await
        .assert_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &[(
                58_102_120,
                "Content-Type: \"text/plain\" is not application/json",
            )],
        );
    // 40 not found, 45 unsupported method, 11 authentication.
    auditx
        .call(Method::GET, &format!("{export}/no-such-job"))
        .await
        .assert_error(
            StatusCode::NOT_FOUND,
            &[(58_100_240, "requestId: \"no-such-job\" not found")],
        );
    auditx
        .call(Method::GET, "/no/such/route")
        .await
        .assert_error(
            StatusCode::NOT_FOUND,
            &[(50_000_040, "no route for /no/such/route")],
        );
    auditx.call(Method::PUT, &export).await.assert_error(
        StatusCode::METHOD_NOT_ALLOWED,
        &[(50_000_045, "PUT is not allowed")],
    );
    let anonymous = auditx
        .send(auditx.http.get(format!("{}{export}", auditx.base)))
        .await;
    anonymous.assert_error(
        StatusCode::UNAUTHORIZED,
        &[(50_000_011, "missing bearer token")],
    );
    // 30: canceling a job that has ended.
    let created = auditx
        .call(
            Method::POST,
            &format!("{export}?exportType=SAMPLE&runType=NORMAL&{times}"),
        )
        .await;
    let id = created.body["data"]["requestId"]
        .as_str()
        .unwrap()
        .to_owned();
    auditx.wait_finished(&id).await;
    auditx
        .call(Method::DELETE, &format!("{export}/{id}"))
        .await
        .assert_error(
            StatusCode::CONFLICT,
            &[(50_000_030, "job already FINISHED")],
        );

    // Every answer carries a Zuora-Request-Id, each its own.
    let mut ids = std::collections::BTreeSet::new();
    let page = format!("{export}?pageSize=1");
    for (method, path) in [
        (Method::GET, "/healthz"),
        (Method::GET, "/readyz"),
        (Method::GET, "/metrics"),
        (Method::GET, "/openapi.json"),
        (Method::GET, "/query/jobs"),
        (Method::GET, "/query/jobs/no-such-query"),
        (Method::GET, page.as_str()),
        (Method::GET, "/nowhere"),
    ] {
        let answer = auditx.call(method, path).await;
        assert!(ids.insert(answer.request_id()), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_request() {
    let auditx = Standalone::start().await;
    let export = format!(
        "/meters/{METER}/auditTrail/export?exportType=SAMPLE&runType=NORMAL\
         &queryFromTime=2025-10-01T00:00:00Z&queryToTime=2025-11-01T00:00:00Z"
    );
    let keyed = |method: Method, path: &str, key: &str| {
        auditx.request(method, path).header("Idempotency-Key", key)
    };

    // An export create: retried, the same answer and one job.
    let first = auditx.send(keyed(Method::POST, &export, "create-1")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = auditx.send(keyed(Method::POST, &export, "create-1")).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let list = auditx
        .call(Method::GET, &format!("/meters/{METER}/auditTrail/export"))
        .await;
    assert_eq!(
        list.body["data"]["jobs"].as_array().unwrap().len(),
        1,
        "{}",
        list.body
    );
    // The same key for another request: 422, nothing created.
    let other = auditx
        .send(keyed(
            Method::POST,
            &format!("{export}&sessionIds=R-1"),
            "create-1",
        ))
        .await;
    other.assert_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        &[(
            58_102_320,
            "Idempotency-Key: already used for another request",
        )],
    );
    let list = auditx
        .call(Method::GET, &format!("/meters/{METER}/auditTrail/export"))
        .await;
    assert_eq!(list.body["data"]["jobs"].as_array().unwrap().len(), 1);
    // Without a key, a second create is a second job.
    let unkeyed = auditx.call(Method::POST, &export).await;
    assert_ne!(unkeyed.body, first.body);

    // An ingest: the retry is not ingested again (without the key it would
    // count duplicates).
    let ingest = format!("/meters/{METER}/auditTrail/entries");
    let batch = serde_json::to_vec(&entries()).unwrap();
    let first = auditx
        .send(keyed(Method::POST, &ingest, "ingest-1").body(batch.clone()))
        .await;
    assert_eq!(first.body["data"]["accepted"], 18, "{}", first.body);
    let again = auditx
        .send(keyed(Method::POST, &ingest, "ingest-1").body(batch.clone()))
        .await;
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let mut changed = entries();
    changed[0]["eventId"] = json!("another");
    auditx
        .send(keyed(Method::POST, &ingest, "ingest-1").body(serde_json::to_vec(&changed).unwrap()))
        .await
        .assert_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &[(
                58_102_320,
                "Idempotency-Key: already used for another request",
            )],
        );
    let unkeyed = auditx
        .send(auditx.request(Method::POST, &ingest).body(batch))
        .await;
    assert_eq!(unkeyed.body["data"]["duplicates"], 18, "{}", unkeyed.body);

    // A Data Query submit.
    let submit = json!({"query": "SELECT count(*) AS n FROM auditloginevent"});
    let first = auditx
        .send(keyed(Method::POST, "/query/jobs", "query-1").body(submit.to_string()))
        .await;
    assert!(first.status.is_success(), "{}", first.body);
    let again = auditx
        .send(keyed(Method::POST, "/query/jobs", "query-1").body(submit.to_string()))
        .await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    assert_eq!(again.headers["idempotent-replayed"], "true");

    // Keys are the tenant's own: another tenant's create-1 is its own job.
    let token = auditx.token_of("someone-else").await;
    let theirs = auditx
        .send(
            auditx
                .request_as(&token, Method::POST, &export)
                .header("Idempotency-Key", "create-1"),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.body);
    assert!(theirs.headers.get("idempotent-replayed").is_none());
    // A key of 255 characters is refused.
    auditx
        .send(keyed(Method::POST, &export, &"k".repeat(255)))
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            &[(58_102_320, "Idempotency-Key: must be 1 to 254 characters")],
        );
}
