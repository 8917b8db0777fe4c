//! `auditx demo`: the main job on the embedded default, start to finish.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auditx_common::s3::ObjectStore;
use auditx_lake::generate::GenerateSpec;
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
    println!(
        "2. generated {} sample rows for tenant {TENANT}, meter {METER}, {FROM} .. {TO}",
        args.rows
    );

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(runtime::run_all_in_one(
        Arc::new(config),
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
    let downloads = data_dir.join("downloads");
    let result = tools::run_export(&client, &request, &downloads, Duration::from_secs(1800)).await;
    shutdown.cancel();
    let _ = server.await;
    let job = result?;

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
    println!(
        "done. serve this data again with: auditx standalone --data-dir {}",
        data_dir.display()
    );
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("auditx-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
