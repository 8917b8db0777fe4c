//! What the scheduler's two in-process test benches share (`api_support`,
//! the API driven through its router; `harness`, schedulers and workers
//! running jobs): an embedded S3 endpoint on a temp folder holding both
//! buckets, a configuration pointed at it that takes tokens signed with
//! [`SECRET`], and such tokens.

#![allow(dead_code)] // each test binary uses its own subset

use auditx_common::config::{Config, S3Config};
use auditx_common::embedded_s3::EmbeddedS3;
use auditx_common::s3::ObjectStore;
use auditx_scheduler::api::auth::{mint_token, Claims};
use tempfile::TempDir;

/// The secret the benches' configuration checks tokens with.
pub const SECRET: &str = "api-test-secret";

/// The endpoint, the configuration and the S3 client of a bench.
pub struct Backends {
    pub config: Config,
    pub store: ObjectStore,
    pub s3: EmbeddedS3,
    pub dir: TempDir,
}

/// Starts the endpoint; `adjust` changes the configuration before the
/// buckets are made.
pub async fn start_backends(adjust: impl FnOnce(&mut Config)) -> anyhow::Result<Backends> {
    let dir = tempfile::tempdir()?;
    let s3 = EmbeddedS3::start(
        dir.path(),
        "127.0.0.1:0".parse()?,
        "test-access",
        "test-secret",
    )
    .await?;
    let mut config = Config {
        jwt_secret: Some(SECRET.into()),
        s3: s3.client_config(&S3Config::default()),
        ..Config::default()
    };
    adjust(&mut config);
    let store = ObjectStore::new(&config.s3);
    store.ensure_bucket(&config.s3.lake_bucket).await?;
    store.ensure_bucket(&config.s3.export_bucket).await?;
    Ok(Backends {
        config,
        store,
        s3,
        dir,
    })
}

/// A token of `tenant` limited to `entities` and `orgs` (none: all),
/// expiring at `exp` (epoch seconds).
pub fn token_for(tenant: &str, entities: &[&str], orgs: &[&str], exp: i64) -> String {
    let claims = Claims {
        entities: entities.iter().map(|s| s.to_string()).collect(),
        orgs: orgs.iter().map(|s| s.to_string()).collect(),
        ..Claims::new("tester", tenant, exp)
    };
    mint_token(SECRET, &claims).expect("token")
}

pub fn in_an_hour() -> i64 {
    chrono::Utc::now().timestamp() + 3600
}
