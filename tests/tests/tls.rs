//! TLS on every connection, against real servers the test starts itself
//! with certificates it makes (`openssl`): a `redis-server` with a TLS port
//! only and a RabbitMQ node with a TLS listener only, both requiring a
//! client certificate (mutual TLS), and S3 over HTTPS (the embedded
//! endpoint behind a TLS proxy), all signed by the test's private CA. An
//! `auditx scheduler` and an `auditx worker` process export through them;
//! the user downloads the files over HTTPS and gets exactly the expected
//! rows. A wrong CA, a missing client certificate or a missing file stops
//! a process with a message naming the setting and the server. Behind a
//! TLS-only Redis Sentinel, the state store finds its primary with the
//! same files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use auditx::client::ExportRequest;
use auditx_common::config::{RedisConfig, S3Config, SentinelConfig};
use auditx_common::s3::ObjectStore;
use auditx_common::state::{RedisStore, StateStore};
use auditx_lake::audit_trail::generate::{audit_rows, run_rows, GenerateSpec};
use auditx_lake::tables::{generate::generate_table, AUDIT_LOGIN_EVENT};
use auditx_proto::{MeterId, TenantId};
use auditx_tests::expect::{self, Query};
use auditx_tests::processes::{auditx_output, free_port};
use auditx_tests::sandbox::JWT_SECRET;
use auditx_tests::tls_servers::{TestCa, TlsProxy, TlsRabbit, TlsRedis, TlsSentinel};
use auditx_tests::{Adapters, Fleet, Sandbox, SandboxOptions};
use chrono::DateTime;
use serde_json::Value;

const FROM: &str = "2025-07-01T00:00:00Z";
const TO: &str = "2025-07-02T00:00:00Z";
const METER: i64 = 21;
const TENANT: &str = "tls";
const FILE_ROWS: u64 = 15_000;
/// Rows of the tenant's `auditloginevent` table (read by a data query).
const TABLE_ROWS: u64 = 1_000;

/// The servers of the test and the sandbox whose lake they serve.
struct Servers {
    ca: TestCa,
    redis: TlsRedis,
    rabbit: TlsRabbit,
    s3: TlsProxy,
    sandbox: Sandbox,
    unique: String,
}

/// Which client certificate files a configuration names.
#[derive(Clone, Copy, PartialEq)]
enum ClientCerts {
    Both,
    NotForRedis,
}

impl Servers {
    /// A configuration file for the roles: every connection over TLS with
    /// the test's CA and (`certs`) client certificate.
    fn config(&self, dir: &Path, api_port: u16, worker_port: u16, certs: ClientCerts) -> PathBuf {
        let c = &self.sandbox.config;
        let ca = &self.ca;
        let identity = format!(
            "client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
            ca.client_cert.display(),
            ca.client_key.display()
        );
        let redis_identity = match certs {
            ClientCerts::Both => identity.as_str(),
            ClientCerts::NotForRedis => "",
        };
        let text = format!(
            r#"listen = "127.0.0.1:{api_port}"
jwt_secret = "{JWT_SECRET}"

[s3]
endpoint = "{s3}"
access_key_id = "{ak}"
secret_access_key = "{sk}"
lake_bucket = "{lake}"
export_bucket = "{exports}"
ca_file = "{ca_file}"

[rabbitmq]
url = "{amqps}"
prefix = "auditx-tls-{unique}"
delivery_limit = 5
ca_file = "{ca_file}"
{identity}
[redis]
url = "{rediss}"
prefix = "auditx-tls-{unique}:"
ca_file = "{ca_file}"
{redis_identity}
[export]
max_rows_per_file = {FILE_ROWS}
chunk_rows = 2000
lease_ttl_secs = 3

[worker]
concurrency = 2
listen = "127.0.0.1:{worker_port}"

[telemetry]
log_format = "json"
log_level = "warn"
"#,
            s3 = self.s3.endpoint(),
            ak = c.s3.access_key_id,
            sk = c.s3.secret_access_key,
            lake = c.s3.lake_bucket,
            exports = c.s3.export_bucket,
            ca_file = ca.ca.display(),
            amqps = self.rabbit.url(),
            rediss = self.redis.url(),
            unique = self.unique,
        );
        let path = dir.join(format!("auditx-{api_port}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn spec() -> GenerateSpec {
    GenerateSpec {
        tenant: TenantId::from(TENANT),
        meter: MeterId(METER),
        rows: 40_000,
        from_ms: DateTime::parse_from_rfc3339(FROM)
            .unwrap()
            .timestamp_millis(),
        to_ms: DateTime::parse_from_rfc3339(TO).unwrap().timestamp_millis(),
        error_rate: 0.02,
        seed: 21,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_distributed_export_runs_with_redis_rabbitmq_and_s3_all_over_tls() {
    let ca = TestCa::create("auditx test CA");
    let (redis, rabbit) = tokio::join!(TlsRedis::start(&ca), TlsRabbit::start(&ca));
    // The lake is written straight to the embedded endpoint; every role
    // reaches it only through HTTPS.
    let sandbox = Sandbox::start(SandboxOptions {
        adapters: Adapters::InProcess,
        start_roles: false,
        row_group_rows: 5_000,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let spec = spec();
    sandbox.generate(&spec, 20_000).await.unwrap();
    let written = generate_table(
        &sandbox.backends.store,
        &sandbox.config.s3.lake_bucket,
        &TenantId::from(TENANT),
        &AUDIT_LOGIN_EVENT,
        TABLE_ROWS,
        3,
        5_000,
    )
    .await
    .unwrap();
    assert_eq!(written, TABLE_ROWS);
    let s3 = TlsProxy::start(&ca, sandbox.s3.addr).await;
    let servers = Servers {
        ca,
        redis,
        rabbit,
        s3,
        sandbox,
        unique: uuid::Uuid::new_v4().simple().to_string(),
    };

    let dir = tempfile::tempdir().unwrap();
    let config = servers.config(dir.path(), free_port(), free_port(), ClientCerts::Both);
    let fleet = Fleet::configured(&config).workers(1).start().await;

    // The worker's readiness probes all three over TLS.
    let readiness = ready(fleet.workers[0].port).await;
    for dependency in ["broker", "stateStore", "s3"] {
        assert_eq!(
            readiness["dependencies"][dependency]["up"], true,
            "{readiness}"
        );
    }

    let client = fleet
        .client(&servers.sandbox.token(TENANT))
        .trusting(&servers.ca.ca)
        .unwrap();
    let request = ExportRequest {
        meter_id: METER,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: FROM.into(),
        query_to_time: TO.into(),
        ..ExportRequest::default()
    };
    let request_id = client.create_export(&request).await.unwrap();
    let job = client
        .wait(METER, &request_id, Duration::from_secs(300), |_| {})
        .await
        .unwrap();
    let query = Query {
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        from_ms: spec.from_ms,
        to_ms: spec.to_ms,
        ..Query::default()
    };
    let expected = expect::expected_lines(audit_rows(&spec), &run_rows(&spec), &query);
    assert_eq!(job["status"], "FINISHED", "{job}");
    assert_eq!(job["count"], expected.len() as u64, "{job}");
    let keys: Vec<&str> = job["fileList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        keys.len() >= 2,
        "{} rows in files of {FILE_ROWS}: {job}",
        expected.len()
    );

    // The files download over HTTPS (presigned URLs of the TLS endpoint),
    // trusting the private CA; a client that does not trust it is refused.
    let mut lines = Vec::new();
    for key in &keys {
        let url = client.presigned_url(key).await.unwrap();
        assert!(
            url.starts_with(&format!("{}/", servers.s3.endpoint())),
            "{url}"
        );
        let response = client.http().get(&url).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        let text = response.text().await.unwrap();
        let mut file_lines = expect::split_lines(&text);
        assert_eq!(file_lines.remove(0), expect::HEADER, "header of {key}");
        lines.extend(file_lines);
    }
    assert_eq!(lines.len(), expected.len(), "rows in the files");
    assert!(lines == expected, "rows lost, duplicated or reordered");
    let untrusting = reqwest::get(client.presigned_url(keys[0]).await.unwrap()).await;
    assert!(untrusting.is_err(), "a client without the CA was served");

    // The job's state went to the TLS-only Redis.
    let state_keys = servers.redis.cli(
        &servers.ca,
        &["KEYS", &format!("auditx-tls-{}:*", servers.unique)],
    );
    assert!(
        !state_keys.is_empty(),
        "no keys of the roles in the TLS redis"
    );

    // A data query reads the lake through the query engine's own S3
    // client (object_store), over HTTPS too; its result downloads likewise.
    let query = client
        .submit_query("SELECT count(*) AS n FROM auditloginevent", "CSV", "NONE")
        .await
        .unwrap();
    let query = client
        .wait_query(query["id"].as_str().unwrap(), Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(query["queryStatus"], "completed", "{query}");
    let result = client
        .http()
        .get(query["dataFile"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(result, format!("n\n{TABLE_ROWS}\n"));

    // `auditx export --ca-file`: what a user runs downloads the same bytes.
    let out = dir.path().join("downloads");
    let output = auditx_output(
        &[
            "export",
            "--url",
            &fleet.api,
            "--meter",
            &METER.to_string(),
            "--from",
            FROM,
            "--to",
            TO,
            "--ca-file",
            &servers.ca.ca.display().to_string(),
            "--out",
            &out.display().to_string(),
        ],
        &[("AUDITX_TOKEN", servers.sandbox.token(TENANT))],
    )
    .await;
    assert!(
        output.status.success(),
        "auditx export: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut cli_lines = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "csv"))
        .collect();
    names.sort();
    for path in names {
        let mut file_lines = expect::split_lines(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(file_lines.remove(0), expect::HEADER, "{}", path.display());
        cli_lines.extend(file_lines);
    }
    assert!(cli_lines == expected, "auditx export downloaded other rows");

    refusals(&servers, dir.path()).await;
}

/// What a user sees when TLS is set up wrong: each process stops with the
/// server and the setting named.
async fn refusals(servers: &Servers, dir: &Path) {
    let other = TestCa::create("some other CA");
    let other_ca = other.ca.display().to_string();
    let config = servers.config(dir, free_port(), free_port(), ClientCerts::Both);

    // Redis' certificate checked against a CA that did not sign it.
    let message = worker_fails(&config, &[("AUDITX_REDIS__CA_FILE", other_ca.clone())]).await;
    let redis_host = format!("rediss://127.0.0.1:{}/", servers.redis.port);
    assert!(
        message.contains(&format!("connecting to redis at {redis_host}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("redis.ca_file = {other_ca}")),
        "{message}"
    );
    assert!(message.to_lowercase().contains("certificate"), "{message}");

    // The broker's, likewise.
    let message = worker_fails(&config, &[("AUDITX_RABBITMQ__CA_FILE", other_ca.clone())]).await;
    let rabbit_host = format!("amqps://localhost:{}/%2f", servers.rabbit.port);
    assert!(
        message.contains(&format!("connecting to rabbitmq at {rabbit_host}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("rabbitmq.ca_file = {other_ca}")),
        "{message}"
    );
    assert!(
        !message.contains("guest:guest"),
        "credentials in a message: {message}"
    );

    // Redis requires a client certificate: without one, no connection.
    let without = servers.config(dir, free_port(), free_port(), ClientCerts::NotForRedis);
    let message = worker_fails(&without, &[]).await;
    assert!(
        message.contains(&format!("connecting to redis at {redis_host}")),
        "{message}"
    );

    // A client certificate signed by a CA the broker does not trust.
    let message = worker_fails(
        &config,
        &[
            (
                "AUDITX_RABBITMQ__CLIENT_CERT_FILE",
                other.client_cert.display().to_string(),
            ),
            (
                "AUDITX_RABBITMQ__CLIENT_KEY_FILE",
                other.client_key.display().to_string(),
            ),
        ],
    )
    .await;
    assert!(
        message.contains(&format!("connecting to rabbitmq at {rabbit_host}")),
        "{message}"
    );

    // Files that cannot be used are named before anything connects.
    let missing = dir.join("no-such-ca.pem").display().to_string();
    let message = worker_fails(&config, &[("AUDITX_S3__CA_FILE", missing.clone())]).await;
    assert!(
        message.contains(&format!(
            "configuration: s3.ca_file: cannot read {missing}: "
        )),
        "{message}"
    );
    let message = worker_fails(
        &config,
        &[("AUDITX_REDIS__CLIENT_KEY_FILE", other_ca.clone())],
    )
    .await;
    assert!(
        message.contains("configuration: redis.client_key_file: "),
        "{message}"
    );
    let message = worker_fails(
        &config,
        &[(
            "AUDITX_RABBITMQ__CLIENT_KEY_FILE",
            other.client_key.display().to_string(),
        )],
    )
    .await;
    assert!(
        message.contains("configuration: rabbitmq.client_cert_file: "),
        "{message}"
    );

    // S3 over HTTPS with a CA that did not sign the endpoint's certificate.
    let c = &servers.sandbox.config;
    let store = ObjectStore::new(&S3Config {
        endpoint: Some(servers.s3.endpoint()),
        access_key_id: c.s3.access_key_id.clone(),
        secret_access_key: c.s3.secret_access_key.clone(),
        ca_file: Some(other.ca.clone()),
        max_attempts: 1,
        ..S3Config::default()
    });
    let error = store
        .list(&c.s3.lake_bucket, "")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

/// Runs `auditx worker --config <config>` with `env`, expects it to fail
/// and returns what it printed.
async fn worker_fails(config: &Path, env: &[(&str, String)]) -> String {
    let output = auditx_output(&["worker", "--config", &config.display().to_string()], env).await;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "the worker started: {printed}");
    eprintln!("worker with {env:?}: {printed}");
    printed
}

/// The worker's `/readyz` once it answers 200.
async fn ready(port: u16) -> Value {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(response) = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if response.status().is_success() {
                return response.json().await.unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the worker on port {port} did not become ready");
}

/// `redis.sentinel` with a `rediss://` URL: the sentinel and the primary it
/// names are reached over TLS with the CA and client certificate files;
/// writes wait for the TLS replica, as behind any sentinel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_store_finds_its_primary_through_a_tls_sentinel() {
    let ca = TestCa::create("auditx test CA");
    let primary = TlsRedis::start(&ca).await;
    let replica_of = primary.port.to_string();
    let replica = TlsRedis::start_with(&ca, &["--replicaof", "127.0.0.1", &replica_of]).await;
    // Writes wait for the replica's acknowledgement (`WAIT 1`).
    for _ in 0..600 {
        if replica
            .cli(&ca, &["INFO", "replication"])
            .contains("master_link_status:up")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sentinel = TlsSentinel::start(&ca, primary.port, replica.port).await;
    let config = RedisConfig {
        // Only the scheme (TLS), user, password and db of the URL count.
        url: "rediss://127.0.0.1:1/".into(),
        prefix: "auditx-tls-sentinel:".into(),
        sentinel: Some(SentinelConfig {
            master_name: TlsSentinel::MASTER.into(),
            addresses: vec![format!("127.0.0.1:{}", sentinel.port)],
            password: None,
        }),
        ca_file: Some(ca.ca.clone()),
        client_cert_file: Some(ca.client_cert.clone()),
        client_key_file: Some(ca.client_key.clone()),
    };
    let store = RedisStore::open(&config).await.unwrap();
    store.set("greeting", b"over tls").await.unwrap();
    assert_eq!(
        store.get("greeting").await.unwrap().as_deref(),
        Some(&b"over tls"[..])
    );
    assert_eq!(
        primary.cli(&ca, &["GET", "auditx-tls-sentinel:greeting"]),
        "over tls"
    );

    // The sentinel requires a client certificate too.
    let without = RedisConfig {
        client_cert_file: None,
        client_key_file: None,
        ..config
    };
    assert!(RedisStore::open(&without).await.is_err());
}
