//! One bounded retry policy for S3: a call that keeps failing with 503 is
//! sent exactly `s3.max_attempts` times, by the SDK client (exports, lake
//! reads) and by the query engine's object store alike — no retry loop
//! around another.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use auditx_common::config::S3Config;
use auditx_common::s3::{ObjectStore, StorageError};
use auditx_lake::sql::lake_object_store;
use object_store::ObjectStoreExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An S3 endpoint that answers every request `503 Slow Down` and counts
/// the requests.
async fn always_unavailable() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    // GETs carry no body: a request ends with its headers.
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        counted.fetch_add(1, Ordering::SeqCst);
                        let body =
                            "<Error><Code>SlowDown</Code><Message>try later</Message></Error>";
                        let answer = format!(
                            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), count)
}

fn config(endpoint: &str, max_attempts: u32) -> S3Config {
    S3Config {
        endpoint: Some(endpoint.to_owned()),
        access_key_id: "key".into(),
        secret_access_key: "secret".into(),
        force_path_style: true,
        lake_bucket: "lake".into(),
        max_attempts,
        ..S3Config::default()
    }
}

#[tokio::test]
async fn an_sdk_call_is_sent_max_attempts_times_then_fails_transiently() {
    let (endpoint, count) = always_unavailable().await;
    let store = ObjectStore::new(&config(&endpoint, 3));
    let error = store
        .get_range("lake", "a.parquet", 0..10)
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::Transient(_)), "{error}");
    assert_eq!(count.load(Ordering::SeqCst), 3, "attempts of one call");

    let (endpoint, count) = always_unavailable().await;
    let store = ObjectStore::new(&config(&endpoint, 1));
    store.get("lake", "a.parquet").await.unwrap_err();
    assert_eq!(count.load(Ordering::SeqCst), 1, "max_attempts 1: no retry");
}

#[tokio::test]
async fn a_query_engine_read_is_sent_max_attempts_times() {
    let (endpoint, count) = always_unavailable().await;
    let store = lake_object_store(&config(&endpoint, 3)).unwrap();
    let error = store
        .get(&object_store::path::Path::from("acme/a.parquet"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("503"), "{error}");
    assert_eq!(count.load(Ordering::SeqCst), 3, "attempts of one read");
}
