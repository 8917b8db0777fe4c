//! The query engine's lake reads (`object_store`) sign with the SDK
//! client's credential chain: with no keys configured, AWS's default chain
//! — here the environment variables, as a pod with IRSA or pod identity
//! gets its own — against the embedded S3 endpoint, which checks SigV4.
//! Right keys read the bytes the SDK client wrote, a wrong secret is
//! refused, and no credentials at all fail naming them.
//!
//! One test in this binary: it sets the process's environment.

use auditx_common::config::S3Config;
use auditx_common::embedded_s3::EmbeddedS3;
use auditx_common::s3::ObjectStore;
use auditx_lake::sql::lake_object_store;
use bytes::Bytes;
use object_store::path::Path;
use object_store::ObjectStoreExt;

const BUCKET: &str = "lake";

#[tokio::test]
async fn without_configured_keys_lake_reads_sign_with_the_default_chain() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = EmbeddedS3::start(
        dir.path(),
        "127.0.0.1:0".parse().unwrap(),
        "env-access",
        "env-secret",
    )
    .await
    .unwrap();
    let keyed = s3.client_config(&S3Config {
        lake_bucket: BUCKET.into(),
        ..S3Config::default()
    });
    let writer = ObjectStore::new(&keyed);
    writer.ensure_bucket(BUCKET).await.unwrap();
    writer
        .put(
            BUCKET,
            "acme/a.parquet",
            Bytes::from_static(b"lake bytes"),
            "application/octet-stream",
        )
        .await
        .unwrap();
    let keyless = S3Config {
        access_key_id: String::new(),
        secret_access_key: String::new(),
        ..keyed
    };
    let location = Path::from("acme/a.parquet");

    // Nothing but the environment for the chain to find.
    let nowhere = dir.path().join("no-such-file");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_CONFIG_FILE", &nowhere);
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &nowhere);

    std::env::set_var("AWS_ACCESS_KEY_ID", "env-access");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "env-secret");
    let store = lake_object_store(&keyless).unwrap();
    let bytes = store.get(&location).await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"lake bytes");

    std::env::set_var("AWS_SECRET_ACCESS_KEY", "wrong-secret");
    let store = lake_object_store(&keyless).unwrap();
    let error = store.get(&location).await.unwrap_err().to_string();
    assert!(error.contains("403"), "{error}");

    std::env::remove_var("AWS_ACCESS_KEY_ID");
    std::env::remove_var("AWS_SECRET_ACCESS_KEY");
    let store = lake_object_store(&keyless).unwrap();
    let error = store.get(&location).await.unwrap_err().to_string();
    assert!(error.contains("no S3 credentials"), "{error}");
}
