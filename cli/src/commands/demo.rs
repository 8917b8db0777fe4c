//! `auditx demo`: the main job on the embedded default, start to finish.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auditx_common::s3::ObjectStore;
use auditx_lake::audit_trail::generate::GenerateSpec;
use auditx_proto::{MeterId, TenantId};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{load_config, parse_time, tools};
use crate::client::{ApiClient, ExportRequest};
use crate::{runtime, secrets};

const TENANT: &str = "demo";
const METER: i64 = 1001;
const FROM: &str = "2025-07-01T00:00:00Z";
const TO: &str = "2025-07-03T00:00:00Z";
/// Rows of `auditloginevent` the demo generates for its data query.
const LOGIN_ROWS: u64 = 20_000;
/// The seed's first sample query (Zuora's "login events" example), run
/// next to the export.
const SEED_QUERY: &str = "SELECT username AS Username, logintype AS Type, status AS Status, \
     timestamp AS Timestamp, browsertype AS Browser, browserversion AS BrowserVersion, \
     ipaddress AS IPAddress FROM auditloginevent \
     WHERE createddate > Date('2019-04-01') AND createddate < Date('2019-07-01') \
     ORDER BY timestamp DESC LIMIT 100000";

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Folder for the lake and the exports (default: a new temporary folder, kept).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Sample rows to generate.
    #[arg(long, default_value_t = 200_000)]
    pub rows: u64,
    /// Worker loops.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Keep serving the API and the console after the demo (until Ctrl-C),
    /// with a console link that signs in as the demo's tenant.
    #[arg(long)]
    pub serve: bool,
    /// Address of the API when serving (default: a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let mut config = load_config(None)?;
    config.telemetry.log_format = "text".into();
    config.telemetry.log_level = "warn".into();
    let _telemetry = auditx_common::telemetry::init(&config.telemetry, "demo")?;
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => tempfile_dir()?,
    };
    println!("auditx demo — data folder {}", data_dir.display());

    let secret = secrets::jwt_secret(config.jwt_secret.as_deref(), &data_dir)?;
    config.jwt_secret = Some(secret.clone());
    let token = tools::mint_with(&secret, &config.auth, &tools::TokenSpec::new(TENANT, 24))?;
    let embedded = runtime::embedded(&mut config, &data_dir, "127.0.0.1:0".parse()?).await?;
    println!(
        "1. started the embedded S3 endpoint on http://{}",
        embedded.s3.addr
    );

    let spec = GenerateSpec {
        tenant: TenantId::from(TENANT),
        meter: MeterId(METER),
        rows: args.rows,
        from_ms: parse_time("from", FROM)?.timestamp_millis(),
        to_ms: parse_time("to", TO)?.timestamp_millis(),
        error_rate: 0.02,
        seed: 7,
    };
    let store = ObjectStore::new(&config.s3);
    tools::generate_with(
        &store,
        &config.s3.lake_bucket,
        &spec,
        config.ingest.row_group_rows,
    )
    .await?;
    let logins = auditx_lake::tables::table("auditloginevent").expect("a known table");
    auditx_lake::tables::generate::generate_table(
        &store,
        &config.s3.lake_bucket,
        &TenantId::from(TENANT),
        logins,
        LOGIN_ROWS,
        7,
        config.ingest.table_row_group_rows,
    )
    .await?;
    println!(
        "2. generated {} sample rows for tenant {TENANT}, meter {METER}, {FROM} .. {TO}, \
         and {LOGIN_ROWS} rows of the audit table auditloginevent",
        args.rows
    );

    let listener = TcpListener::bind(args.listen).await?;
    let api = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(runtime::run_all_in_one(
        Arc::new(runtime::fit_to_local_workers(&config, args.workers)),
        embedded.backends,
        listener,
        args.workers,
        shutdown.clone(),
    ));
    println!(
        "3. started the API, the scheduler and {} workers on http://{api}",
        args.workers
    );

    let client = ApiClient::new(&format!("http://{api}"), &token);
    let request = ExportRequest {
        meter_id: METER,
        export_type: "SAMPLE".into(),
        run_type: "NORMAL".into(),
        query_from_time: FROM.into(),
        query_to_time: TO.into(),
        ..ExportRequest::default()
    };
    println!("4. exporting: POST /meters/{METER}/auditTrail/export?exportType=SAMPLE&runType=NORMAL&queryFromTime={FROM}&queryToTime={TO}");
    println!("   and a data query: POST /query/jobs {{\"query\": \"SELECT username ... FROM auditloginevent ...\"}}");
    let downloads = data_dir.join("downloads");
    let (result, query) = tokio::join!(
        tools::run_export(&client, &request, &downloads, Duration::from_secs(1800)),
        run_seed_query(&client, &downloads),
    );
    let keep_serving = args.serve && result.is_ok() && query.is_ok();
    let server = if keep_serving {
        Some(server)
    } else {
        shutdown.cancel();
        let _ = server.await;
        None
    };
    let job = result?;
    let query_file = query?;

    println!(
        "5. files (downloaded through their presigned URLs) in {}:",
        downloads.display()
    );
    for key in job["fileList"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str())
    {
        let path = downloads.join(key.rsplit('/').next().unwrap_or(key));
        println!("   {}", path.display());
        let file = std::io::BufReader::new(std::fs::File::open(&path)?);
        for line in file.lines().take(3) {
            let line = line?;
            let shown: String = line.chars().take(160).collect();
            println!(
                "     | {shown}{}",
                if shown.len() < line.len() { " …" } else { "" }
            );
        }
    }
    println!("   manifest: {}", downloads.join("manifest.json").display());
    println!("   data query result: {}", query_file.display());
    let result = std::fs::read_to_string(&query_file)?;
    for line in result.lines().take(3) {
        println!("     | {line}");
    }
    if let Some(server) = server {
        println!(
            "6. the console (signs in as tenant {TENANT}; the link works once, for 15 minutes):\n   {}",
            auditx_scheduler::api::console::signin_link(&format!("http://{api}"), &token)
        );
        println!("   serving until Ctrl-C");
        crate::runtime::shutdown_on_signal(shutdown.clone());
        let _ = server.await;
        return Ok(());
    }
    println!(
        "done. serve this data again with: auditx standalone --data-dir {}",
        data_dir.display()
    );
    Ok(())
}

/// Runs [`SEED_QUERY`] and downloads its result into `dir`.
async fn run_seed_query(client: &ApiClient, dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let job = client.submit_query(SEED_QUERY, "CSV", "NONE").await?;
    let id = job["id"].as_str().unwrap_or_default().to_owned();
    let job = client.wait_query(&id, Duration::from_secs(600)).await?;
    anyhow::ensure!(
        job["queryStatus"] == "completed",
        "data query {id} ended {}: {}",
        job["queryStatus"],
        job["errorMessage"]
    );
    println!("data query {id} completed: {} rows", job["outputRows"]);
    std::fs::create_dir_all(dir)?;
    let path = dir.join("query_result.csv");
    let url = job["dataFile"].as_str().unwrap_or_default();
    crate::client::download(&reqwest::Client::new(), url, &path).await?;
    Ok(path)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("auditx-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
