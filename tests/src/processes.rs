//! The `auditx` binary: where it is, the configuration file of a
//! distributed fleet ([`crate::fleet`] starts the processes), running a
//! command to its end, and waiting for a process's health.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::sandbox::JWT_SECRET;
use crate::Sandbox;

/// The `auditx` binary: `$AUDITX_BIN`, or the one cargo built beside the
/// test executable (`target/<profile>/auditx`).
pub fn auditx_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("AUDITX_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target folder")
        .join("auditx");
    assert!(
        bin.exists(),
        "build the binary first (cargo build -p auditx): {bin:?} is missing"
    );
    bin
}

/// The bench binary (`auditx-bench`, the bench/ crate): `$AUDITX_BENCH_BIN`,
/// or the one cargo built beside the test executable.
pub fn bench_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("AUDITX_BENCH_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target folder")
        .join("auditx-bench");
    assert!(
        bin.exists(),
        "build the bench first (cargo build -p auditx-bench): {bin:?} is missing"
    );
    bin
}

/// Writes a configuration file pointing the roles at the sandbox's
/// backends, with the API on `api_port`.
pub fn config_file(
    sandbox: &Sandbox,
    dir: &Path,
    api_port: u16,
    max_rows_per_file: u64,
    chunk_rows: u64,
) -> PathBuf {
    let c = &sandbox.config;
    let text = format!(
        r#"listen = "127.0.0.1:{api_port}"
jwt_secret = "{JWT_SECRET}"

[s3]
endpoint = "{endpoint}"
access_key_id = "{ak}"
secret_access_key = "{sk}"
lake_bucket = "{lake}"
export_bucket = "{exports}"

[rabbitmq]
url = "{amqp}"
prefix = "{prefix}"
delivery_limit = {limit}

[redis]
url = "{redis}"
prefix = "{redis_prefix}"

[export]
max_rows_per_file = {max_rows_per_file}
chunk_rows = {chunk_rows}
lease_ttl_secs = 3

[worker]
concurrency = 2
listen = "127.0.0.1:0"

[telemetry]
log_format = "json"
log_level = "warn"
"#,
        endpoint = c.s3.endpoint.as_deref().expect("s3 endpoint"),
        ak = c.s3.access_key_id,
        sk = c.s3.secret_access_key,
        lake = c.s3.lake_bucket,
        exports = c.s3.export_bucket,
        amqp = c.rabbitmq.url,
        prefix = c.rabbitmq.prefix,
        limit = c.rabbitmq.delivery_limit,
        redis = c.redis.url,
        redis_prefix = c.redis.prefix,
    );
    let path = dir.join(format!("auditx-{api_port}.toml"));
    std::fs::write(&path, text).expect("writing the config file");
    path
}

/// Runs `auditx <args>` to the end as a user would (no inherited JWT
/// secret, warnings only) and returns its stdout; panics with both outputs
/// if it fails.
pub async fn run_auditx(args: &[&str]) -> String {
    let output = Command::new(auditx_bin())
        .args(args)
        .env_remove("AUDITX_JWT_SECRET")
        .env("AUDITX_TELEMETRY__LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "auditx {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Rewrites a file of [`config_file`] without the S3 keys, so that the
/// roles use AWS's default credential chain.
pub fn without_s3_keys(config: &Path) {
    let text = std::fs::read_to_string(config).expect("reading the config file");
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            !line.starts_with("access_key_id =") && !line.starts_with("secret_access_key =")
        })
        .collect();
    std::fs::write(config, kept.join("\n") + "\n").expect("writing the config file");
}

/// Runs `auditx <args>` to the end with `env` and returns its output,
/// whether it succeeded or not.
pub async fn auditx_output(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    Command::new(auditx_bin())
        .args(args)
        .env_remove("AUDITX_JWT_SECRET")
        .env("AUDITX_TELEMETRY__LOG_LEVEL", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("running auditx {args:?}: {e}"))
}

/// Sends SIGTERM to `child` (as Kubernetes stops a pod) and waits for it
/// to exit; panics if it does not within `within`.
pub async fn terminate(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let pid = child.id().expect("the process is running");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(sent.success(), "kill -TERM {pid} failed");
    tokio::time::timeout(within, child.wait())
        .await
        .unwrap_or_else(|_| panic!("process {pid} did not exit within {within:?} of SIGTERM"))
        .expect("waiting for the process")
}

/// Waits until a worker's health endpoint on `port` answers.
pub async fn wait_worker_healthy(port: u16) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        let answer = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the worker on port {port} did not come up");
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("address")
        .port()
}

/// Waits until the API on `port` answers `/healthz`.
pub async fn wait_healthy(port: u16) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        let answer = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the scheduler on port {port} did not come up");
}

/// The lines a child writes to `stream` (its piped stdout or stderr),
/// gathered as they come until it closes: the lines so far, and the task
/// reading them (await it after the child ends to have them all).
pub fn collect_lines(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    use tokio::io::AsyncBufReadExt;
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut reader = tokio::io::BufReader::new(stream).lines();
    let task = tokio::spawn({
        let lines = lines.clone();
        async move {
            while let Ok(Some(line)) = reader.next_line().await {
                lines.lock().unwrap().push(line);
            }
        }
    });
    (lines, task)
}

/// `auditx generate --table`: `rows` rows of the audit table `table` for
/// `tenant` in the standalone data folder `data`.
pub async fn generate_table(data: &str, tenant: &str, table: &str, rows: u64) {
    let rows = rows.to_string();
    run_auditx(&[
        "generate",
        "--data-dir",
        data,
        "--tenant",
        tenant,
        "--table",
        table,
        "--rows",
        &rows,
    ])
    .await;
}
