//! S3 credentials without keys in the configuration: the `auditx` binary
//! then uses AWS's default credential chain (here: the environment
//! variables, as a pod with IRSA or pod identity gets its own), against the
//! embedded S3 endpoint with SigV4 on. Right keys write the lake; wrong
//! keys and no keys at all fail with a message naming the problem.
//! `tests/tests/metrics.rs` runs a whole export (and presigned downloads)
//! with scheduler and worker processes configured this way.

use std::path::{Path, PathBuf};

use auditx_tests::processes::auditx_output;
use auditx_tests::{Adapters, Sandbox, SandboxOptions};

/// A configuration with the sandbox's endpoint and buckets, and no keys.
fn keyless_config(sandbox: &Sandbox, dir: &Path) -> PathBuf {
    let s3 = &sandbox.config.s3;
    let text = format!(
        "[s3]\nendpoint = \"{}\"\nlake_bucket = \"{}\"\nexport_bucket = \"{}\"\n",
        s3.endpoint.as_deref().unwrap(),
        s3.lake_bucket,
        s3.export_bucket
    );
    let path = dir.join("keyless.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The environment of a process with nothing but `keys` to find: no
/// profile files, no instance metadata.
fn env(dir: &Path, keys: Option<(&str, &str)>) -> Vec<(&'static str, String)> {
    let nowhere = dir.join("no-such-file").display().to_string();
    let mut env = vec![
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_CONFIG_FILE", nowhere.clone()),
        ("AWS_SHARED_CREDENTIALS_FILE", nowhere),
    ];
    if let Some((id, secret)) = keys {
        env.push(("AWS_ACCESS_KEY_ID", id.to_owned()));
        env.push(("AWS_SECRET_ACCESS_KEY", secret.to_owned()));
    }
    env
}

async fn generate(config: &Path, tenant: &str, env: &[(&str, String)]) -> std::process::Output {
    let config = config.to_str().unwrap();
    let args = [
        "generate", "--config", config, "--tenant", tenant, "--meter", "1", "--rows", "2000",
    ];
    auditx_output(&args, env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configured_keys_the_default_chain_signs_with_the_environment_keys() {
    let sandbox = Sandbox::start(SandboxOptions {
        adapters: Adapters::InProcess,
        start_roles: false,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = keyless_config(&sandbox, dir.path());
    let s3 = &sandbox.config.s3;
    let lake = &s3.lake_bucket;

    let output = generate(
        &config,
        "chain",
        &env(dir.path(), Some((&s3.access_key_id, &s3.secret_access_key))),
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = sandbox.backends.store.list(lake, "").await.unwrap();
    assert!(
        written.iter().any(|o| o.key.contains("chain")),
        "no lake object of tenant chain: {written:?}"
    );

    let output = generate(
        &config,
        "wrong",
        &env(dir.path(), Some((&s3.access_key_id, "not-the-secret"))),
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "wrong keys were accepted");
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");

    let output = generate(&config, "nokeys", &env(dir.path(), None)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "no keys were accepted");
    assert!(stderr.to_lowercase().contains("credentials"), "{stderr}");

    let written = sandbox.backends.store.list(lake, "").await.unwrap();
    assert!(
        !written
            .iter()
            .any(|o| o.key.contains("wrong") || o.key.contains("nokeys")),
        "{written:?}"
    );
    sandbox.stop().await.unwrap();
}
