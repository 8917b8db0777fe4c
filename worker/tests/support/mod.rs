//! An embedded S3 endpoint on a temporary folder, with the lake and export
//! buckets created.

use auditx_common::config::S3Config;
use auditx_common::embedded_s3::EmbeddedS3;
use auditx_common::s3::ObjectStore;

pub struct TestS3 {
    pub store: ObjectStore,
    pub config: S3Config,
    _server: EmbeddedS3,
    _dir: tempfile::TempDir,
}

pub async fn start_s3() -> anyhow::Result<TestS3> {
    let dir = tempfile::tempdir()?;
    let server = EmbeddedS3::start(
        dir.path(),
        "127.0.0.1:0".parse()?,
        "test-access",
        "test-secret",
    )
    .await?;
    let config = server.client_config(&S3Config::default());
    let store = ObjectStore::new(&config);
    store.ensure_bucket(&config.lake_bucket).await?;
    store.ensure_bucket(&config.export_bucket).await?;
    Ok(TestS3 {
        store,
        config,
        _server: server,
        _dir: dir,
    })
}
