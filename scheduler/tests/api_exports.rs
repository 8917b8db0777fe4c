//! The export job routes as a client sees them: create, list, get, cancel
//! and presigned downloads.

mod api_support;

use std::time::Duration;

use api_support::{authed_as, TestApi, TENANT};
use auditx_proto::RequestId;
use auditx_scheduler::export::jobs::JobStatus;
use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use futures::StreamExt;
use serde_json::{json, Value};

#[tokio::test]
async fn a_created_job_is_listed_pending_with_its_query_echoed() {
    let api = TestApi::start().await;
    let uri = "/meters/42/auditTrail/export?exportType=ERROR&runType=DEBUG\
        &sessionIds=R-1&sessionIds=R-2,R-3&runStatuses[]=COMPLETED&runStatuses[]=FAILED\
        &operatorIds=op-1&queryFromTime=2025-07-01T00:00:00%2B02:00\
        &queryToTime=2025-07-01T12:00:00.500Z&format=csv";
    let created = api.call(Method::POST, uri).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let body = created.json();
    assert_eq!(body["success"], true);
    assert_eq!(
        (body["previousPage"].clone(), body["nextPage"].clone()),
        (Value::Null, Value::Null)
    );
    let id = body["data"]["requestId"].as_str().unwrap().to_owned();
    tokio::time::timeout(Duration::from_secs(1), api.services.wake.notified())
        .await
        .expect("the scheduler is woken");

    let list = api
        .call(Method::GET, "/meters/42/auditTrail/export")
        .await
        .data();
    assert_eq!(
        (list["page"].clone(), list["pageSize"].clone()),
        (json!(1), json!(30))
    );
    let jobs = list["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    let creation_time = job["creationTime"].as_str().unwrap();
    assert!(
        creation_time.len() == 20 && creation_time.ends_with('Z'),
        "ISO-8601 to the second: {creation_time}"
    );
    assert_eq!(
        job,
        &json!({
            "requestId": id,
            "meterId": 42,
            "query": {
                "exportType": "ERROR",
                "runType": "DEBUG",
                "sessionIds": ["R-1", "R-2", "R-3"],
                "statuses": ["COMPLETED", "FAILED"],
                "operatorIds": ["op-1"],
                "queryFromTime": "2025-07-01T00:00:00+02:00",
                "queryToTime": "2025-07-01T12:00:00.500Z",
                "format": "csv",
            },
            "status": "PENDING",
            "count": 0,
            "creationTime": creation_time,
            "startTime": null,
            "completionTime": null,
            "fileList": [],
            "manifestKey": null,
            "progress": {
                "percent": 0, "chunksTotal": 0, "chunksDone": 0,
                "filesTotal": 0, "filesDone": 0, "rows": 0,
            },
            "error": null,
            "cancelRequested": false,
        })
    );
    let one = api
        .call(Method::GET, &format!("/meters/42/auditTrail/export/{id}"))
        .await
        .data();
    assert_eq!(&one, job);

    let spec = api
        .services
        .jobs
        .spec(&RequestId(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (spec.from_ms, spec.to_ms),
        (1_751_320_800_000, 1_751_371_200_500)
    );
    assert_eq!(spec.tenant.as_str(), TENANT);
}

#[tokio::test]
async fn lists_page_newest_first_and_filter_by_type_and_session() {
    let api = TestApi::start().await;
    let mut ids = Vec::new();
    for (export_type, session) in [
        ("SAMPLE", "R-1"),
        ("ERROR", "R-2"),
        ("SAMPLE", "R-2,R-3"),
        ("ERROR", "R-4"),
        ("SAMPLE", "R-5"),
    ] {
        let uri = format!(
            "/meters/7/auditTrail/export?exportType={export_type}&runType=NORMAL\
             &sessionIds={session}&queryFromTime=2025-07-01T00:00:00Z&queryToTime=2025-07-02T00:00:00Z"
        );
        let response = api.call(Method::POST, &uri).await;
        ids.push(response.data()["requestId"].as_str().unwrap().to_owned());
        // Distinct creation times make "newest first" unambiguous.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    api.create(8, "").await; // another meter's job is not listed

    let page = |query: &str| {
        let api = &api;
        let uri = format!("/meters/7/auditTrail/export?{query}");
        async move {
            let body = api.call(Method::GET, &uri).await.json();
            let listed: Vec<String> = body["data"]["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|job| job["requestId"].as_str().unwrap().to_owned())
                .collect();
            (
                listed,
                body["previousPage"].clone(),
                body["nextPage"].clone(),
            )
        }
    };
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(
        page("").await,
        (newest_first.clone(), Value::Null, Value::Null)
    );
    let link = |page: u32| {
        json!(format!(
            "/meters/7/auditTrail/export?page={page}&pageSize=2"
        ))
    };
    assert_eq!(
        page("pageSize=2").await,
        (newest_first[0..2].to_vec(), Value::Null, link(2))
    );
    assert_eq!(
        page("pageSize=2&page=2").await,
        (newest_first[2..4].to_vec(), link(1), link(3))
    );
    assert_eq!(
        page("pageSize=2&page=3").await,
        (newest_first[4..5].to_vec(), link(2), Value::Null)
    );
    assert_eq!(
        page("pageSize=2&page=4").await,
        (vec![], link(3), Value::Null)
    );
    assert_eq!(
        page("pageSize=1&exportType=ERROR&sessionIds=R-2&sessionIds=R-4").await,
        (
            vec![ids[3].clone()],
            Value::Null,
            json!("/meters/7/auditTrail/export?page=2&pageSize=1&exportType=ERROR&sessionIds=R-2&sessionIds=R-4")
        )
    );
    assert_eq!(
        page("exportType=ERROR").await.0,
        vec![ids[3].clone(), ids[1].clone()]
    );
    assert_eq!(
        page("sessionIds=R-2").await.0,
        vec![ids[2].clone(), ids[1].clone()]
    );
    assert_eq!(
        page("sessionIds[]=R-3&sessionIds[]=R-1").await.0,
        vec![ids[2].clone(), ids[0].clone()]
    );
    assert_eq!(
        page("exportType=SAMPLE&sessionIds=R-2,R-4").await.0,
        vec![ids[2].clone()]
    );
}

#[tokio::test]
async fn canceling_a_pending_job_ends_it_and_announces_it() {
    let api = TestApi::start().await;
    let mut events = api.services.queue.subscribe_events("#").await.unwrap();
    let id = api.create(1, "").await;

    let canceled = api
        .call(Method::DELETE, &format!("/meters/1/auditTrail/export/{id}"))
        .await
        .data();
    assert_eq!(canceled["status"], "CANCELED");
    assert_eq!(canceled["error"], "canceled by request");
    assert_eq!(canceled["cancelRequested"], false);
    assert!(canceled["completionTime"].is_string());
    let shown = api
        .call(Method::GET, &format!("/meters/1/auditTrail/export/{id}"))
        .await
        .data();
    assert_eq!(shown, canceled);

    let delivery = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event in time")
        .expect("stream open")
        .expect("delivery");
    let event: Value = serde_json::from_slice(&delivery.message.payload).unwrap();
    assert_eq!(event["subject"], id.as_str());
    assert_eq!(event["data"]["status"], "CANCELED");
}

#[tokio::test]
async fn canceling_a_running_job_is_requested() {
    let api = TestApi::start().await;
    let id = api.create(1, "").await;
    api.set_status(&id, JobStatus::Running, |_| {}).await;

    let job = api
        .call(Method::DELETE, &format!("/meters/1/auditTrail/export/{id}"))
        .await
        .data();
    assert_eq!(
        (job["status"].clone(), job["cancelRequested"].clone()),
        (json!("RUNNING"), json!(true))
    );
}

#[tokio::test]
async fn canceling_a_finished_job_conflicts() {
    let api = TestApi::start().await;
    let id = api.create(1, "").await;
    api.set_status(&id, JobStatus::Finished, |s| s.count = 3)
        .await;

    api.call(Method::DELETE, &format!("/meters/1/auditTrail/export/{id}"))
        .await
        .assert_error(StatusCode::CONFLICT, "CONFLICT", "job already FINISHED");
}

#[tokio::test]
async fn unknown_and_foreign_jobs_are_not_found() {
    let api = TestApi::start().await;
    let id = api.create(1, "").await;
    let unknown = RequestId::generate();
    let missing = |id: &RequestId| format!("requestId: \"{id}\" not found");

    for method in [Method::GET, Method::DELETE] {
        api.call(
            method.clone(),
            &format!("/meters/1/auditTrail/export/{unknown}"),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "NOT_FOUND", &missing(&unknown));
        // The same job under another meter of the tenant.
        api.call(method.clone(), &format!("/meters/2/auditTrail/export/{id}"))
            .await
            .assert_error(StatusCode::NOT_FOUND, "NOT_FOUND", &missing(&id));
        // Another tenant, same meter.
        let request = authed_as(
            "globex",
            method,
            &format!("/meters/1/auditTrail/export/{id}"),
        );
        api.send(request.body(Body::empty()).unwrap())
            .await
            .assert_error(StatusCode::NOT_FOUND, "NOT_FOUND", &missing(&id));
    }
    let job = api
        .call(Method::GET, &format!("/meters/1/auditTrail/export/{id}"))
        .await
        .data();
    assert_eq!(job["status"], "PENDING", "a foreign cancel changed nothing");
}

#[tokio::test]
async fn presigned_urls_download_the_callers_own_files_only() {
    let api = TestApi::start().await;
    let id = api.create(1, "").await;
    let file = format!("{TENANT}/{id}/audit_trail_sample_0001.csv");
    let manifest = format!("{TENANT}/{id}/manifest.json");
    let bucket = &api.services.config.s3.export_bucket;
    let csv = Bytes::from_static(b"eventId,eventTime\ne1,2025-07-01T00:00:00.000Z\n");
    api.services
        .store
        .put(bucket, &file, csv.clone(), "text/csv")
        .await
        .unwrap();
    let (file_list, manifest_key) = (vec![file.clone()], Some(manifest.clone()));
    api.set_status(&id, JobStatus::Finished, |s| {
        s.file_list = file_list;
        s.manifest_key = manifest_key;
    })
    .await;

    let presign = |key: &str| format!("/meters/auditTrail/presignedUrl?fileKey={key}");
    let url = api.call(Method::GET, &presign(&file)).await.data();
    let downloaded = reqwest::get(url.as_str().unwrap()).await.unwrap();
    assert_eq!(downloaded.status(), 200);
    assert_eq!(downloaded.bytes().await.unwrap(), csv);
    // The job lists its files as Zuora's reference does, without the
    // tenant; that key is taken too.
    let job = api
        .call(Method::GET, &format!("/meters/1/auditTrail/export/{id}"))
        .await
        .data();
    let shown = format!("{id}/audit_trail_sample_0001.csv");
    assert!(file.ends_with(&shown), "{file}");
    assert_eq!(job["fileList"], json!([shown]));
    let url = api.call(Method::GET, &presign(&shown)).await.data();
    let downloaded = reqwest::get(url.as_str().unwrap()).await.unwrap();
    assert_eq!(downloaded.bytes().await.unwrap(), csv);
    assert!(api
        .call(Method::GET, &presign(&manifest))
        .await
        .data()
        .is_string());

    let not_found = |key: &str| format!("fileKey: \"{key}\" not found");
    let unlisted = format!("{TENANT}/{id}/audit_trail_sample_0002.csv");
    for key in [
        unlisted.as_str(),
        "acme/nope",
        "acme",
        &format!("_staging/{TENANT}/{id}/chunk-000000.csv"),
    ] {
        api.call(Method::GET, &presign(key)).await.assert_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &not_found(key),
        );
    }
    // The same key asked for by another tenant.
    let request = authed_as("globex", Method::GET, &presign(&file));
    api.send(request.body(Body::empty()).unwrap())
        .await
        .assert_error(StatusCode::NOT_FOUND, "NOT_FOUND", &not_found(&file));
    // Another tenant's key, prefixed with the caller's tenant name.
    let request = authed_as("acm", Method::GET, &presign(&file));
    api.send(request.body(Body::empty()).unwrap())
        .await
        .assert_error(StatusCode::NOT_FOUND, "NOT_FOUND", &not_found(&file));
    api.call(Method::GET, "/meters/auditTrail/presignedUrl")
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            "MISSING_PARAMETER",
            "fileKey: required",
        );
}
