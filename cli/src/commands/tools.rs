//! `auditx generate`, `auditx token`, `auditx export`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use auditx_common::config::AuthConfig;
use auditx_common::s3::ObjectStore;
use auditx_lake::audit_trail::generate::{generate_to_lake, GenerateSpec};
use auditx_lake::tables::generate::{generate_table, REFERENCED_ROWS};
use auditx_lake::tables::{table, TableDef, TABLES};
use auditx_proto::{MeterId, TenantId};
use auditx_scheduler::api::auth::{mint_token, scopes, Claims, Scope};
use indicatif::{ProgressBar, ProgressStyle};

use super::{load_config, parse_time};
use crate::client::{ApiClient, ExportRequest};
use crate::{runtime, secrets};

/// Rows per lake file written by `generate`.
const GENERATE_FILE_ROWS: usize = 500_000;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[arg(long)]
    pub tenant: String,
    /// Generate meter audit entries (and runs) of this meter.
    #[arg(long, required_unless_present = "table")]
    pub meter: Option<i64>,
    /// Generate rows of this tenant audit table (or reference table)
    /// instead, e.g. auditloginevent; times spread over 2019-2020.
    #[arg(long, conflicts_with_all = ["meter", "from", "to", "error_rate"])]
    pub table: Option<String>,
    #[arg(long)]
    pub rows: u64,
    /// Start of the generated time range (ISO-8601 with zone).
    #[arg(long, default_value = "2025-07-01T00:00:00Z")]
    pub from: String,
    /// End of the generated time range (exclusive).
    #[arg(long, default_value = "2025-07-08T00:00:00Z")]
    pub to: String,
    /// Share of ERROR rows, 0.0–1.0.
    #[arg(long, default_value_t = 0.02)]
    pub error_rate: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write into the embedded default's lake in this folder.
    #[arg(long, conflicts_with = "config")]
    pub data_dir: Option<PathBuf>,
    /// Write into the S3 lake of this configuration.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl GenerateArgs {
    pub fn spec(&self) -> anyhow::Result<GenerateSpec> {
        let from = parse_time("--from", &self.from)?;
        let to = parse_time("--to", &self.to)?;
        anyhow::ensure!(from < to, "--from must be before --to");
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.error_rate),
            "--error-rate must be between 0 and 1"
        );
        let meter = self.meter.context("--meter or --table is required")?;
        Ok(GenerateSpec {
            tenant: TenantId(self.tenant.clone()),
            meter: MeterId(meter),
            rows: self.rows,
            from_ms: from.timestamp_millis(),
            to_ms: to.timestamp_millis(),
            error_rate: self.error_rate,
            seed: self.seed,
        })
    }
}

fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:40}}] {{pos}}/{{len}} ({{per_sec}}, {{eta}} left)"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Writes generated data with `store` and shows a progress bar.
pub async fn generate_with(
    store: &ObjectStore,
    bucket: &str,
    spec: &GenerateSpec,
    row_group_rows: usize,
) -> anyhow::Result<u64> {
    let bar = progress_bar(spec.rows, "generating rows");
    let tick = bar.clone();
    let summary = generate_to_lake(
        store,
        bucket,
        spec,
        GENERATE_FILE_ROWS,
        row_group_rows,
        &move |n| tick.set_position(n),
    )
    .await
    .context("writing generated data to the lake")?;
    bar.finish();
    Ok(summary.rows)
}

/// The table `--table` names.
fn table_arg(name: &str) -> anyhow::Result<&'static TableDef> {
    table(name).with_context(|| {
        let known: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        format!(
            "--table: no table named {name:?}; known tables: {}",
            known.join(", ")
        )
    })
}

/// Writes generated rows of a tenant table, with a spinner.
async fn generate_table_rows(
    store: &ObjectStore,
    bucket: &str,
    args: &GenerateArgs,
    def: &'static TableDef,
    row_group_rows: usize,
) -> anyhow::Result<()> {
    let tenant = TenantId(args.tenant.clone());
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("generating {} rows of {}", args.rows, def.name));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let rows = generate_table(
        store,
        bucket,
        &tenant,
        def,
        args.rows,
        args.seed,
        row_group_rows,
    )
    .await
    .context("writing generated table rows to the lake")?;
    spinner.finish_and_clear();
    println!(
        "wrote {rows} rows of {} for tenant {tenant} into s3://{bucket}/{}",
        def.name,
        def.tenant_prefix(&tenant)
    );
    if let Some((_, needed)) = REFERENCED_ROWS.iter().find(|(name, _)| *name == def.name) {
        if args.rows < *needed {
            println!(
                "note: audit events refer to {needed} rows of {}; generate at least that many \
                 (same --seed) for every reference to resolve",
                def.name
            );
        }
    }
    Ok(())
}

/// What `generate` writes.
enum GenerateTarget {
    Meter(GenerateSpec),
    Table(&'static TableDef),
}

pub async fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let target = match args.table.as_deref() {
        Some(name) => GenerateTarget::Table(table_arg(name)?),
        None => GenerateTarget::Meter(args.spec()?),
    };
    let mut config = load_config(args.config.as_ref())?;
    let _embedded = match &args.data_dir {
        Some(dir) => Some(
            runtime::embedded_s3(&mut config, dir, "127.0.0.1:0".parse()?, "--data-dir").await?,
        ),
        None => None,
    };
    let store = ObjectStore::new(&config.s3);
    let bucket = &config.s3.lake_bucket;
    match target {
        GenerateTarget::Table(def) => {
            let row_group_rows = config.ingest.table_row_group_rows;
            generate_table_rows(&store, bucket, &args, def, row_group_rows).await
        }
        GenerateTarget::Meter(spec) => {
            let row_group_rows = config.ingest.row_group_rows;
            let rows = generate_with(&store, bucket, &spec, row_group_rows).await?;
            println!(
                "wrote {rows} rows for tenant {} meter {} into s3://{bucket}/",
                spec.tenant, spec.meter
            );
            Ok(())
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[arg(long)]
    pub tenant: String,
    /// Entities the token may act for (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub entities: Vec<String>,
    /// Orgs the token may act for (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub orgs: Vec<String>,
    /// Lifetime in hours.
    #[arg(long, default_value_t = 24)]
    pub ttl_hours: i64,
    /// Scopes the token holds (comma or space separated); every scope by
    /// default: export:read, export:write, query:read, query:write,
    /// ingest:write, ops:read.
    #[arg(long, value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// Use the secret `auditx standalone --data-dir DIR` keeps there.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// What a minted token says.
pub struct TokenSpec<'a> {
    pub tenant: &'a str,
    pub entities: &'a [String],
    pub orgs: &'a [String],
    pub ttl_hours: i64,
    pub scopes: &'a [Scope],
}

impl<'a> TokenSpec<'a> {
    /// A token of `tenant` holding every scope, for no entity or org.
    pub fn new(tenant: &'a str, ttl_hours: i64) -> Self {
        Self {
            tenant,
            entities: &[],
            orgs: &[],
            ttl_hours,
            scopes: &Scope::ALL,
        }
    }
}

/// Mints an HS256 token with `secret`, carrying the `iss` and `aud` the
/// server is configured to require.
pub fn mint_with(secret: &str, auth: &AuthConfig, spec: &TokenSpec) -> anyhow::Result<String> {
    let exp = chrono::Utc::now().timestamp() + spec.ttl_hours * 3600;
    let claims = Claims {
        entities: spec.entities.to_vec(),
        orgs: spec.orgs.to_vec(),
        scope: scopes::join(spec.scopes),
        iss: auth.issuer.clone(),
        aud: auth.audience.clone(),
        ..Claims::new(format!("{}-cli", spec.tenant), spec.tenant, exp)
    };
    Ok(mint_token(secret, &claims)?)
}

/// Mints a token for `tenant` with `secret`, holding every scope.
pub fn mint(
    secret: &str,
    tenant: &str,
    entities: &[String],
    orgs: &[String],
    ttl_hours: i64,
) -> anyhow::Result<String> {
    let spec = TokenSpec {
        entities,
        orgs,
        ..TokenSpec::new(tenant, ttl_hours)
    };
    mint_with(secret, &AuthConfig::default(), &spec)
}

/// The scopes of `--scopes` (every scope when not given).
fn parse_scopes(given: &[String]) -> anyhow::Result<Vec<Scope>> {
    let names: Vec<&str> = given.iter().flat_map(|g| g.split_whitespace()).collect();
    if given.is_empty() {
        return Ok(Scope::ALL.to_vec());
    }
    let known = || scopes::join(&Scope::ALL).replace(' ', ", ");
    anyhow::ensure!(
        !names.is_empty(),
        "--scopes: name at least one of {}",
        known()
    );
    let mut parsed = Vec::new();
    for name in names {
        let scope = Scope::parse(name)
            .ok_or_else(|| anyhow::anyhow!("--scopes: {name:?} is not one of {}", known()))?;
        if !parsed.contains(&scope) {
            parsed.push(scope);
        }
    }
    Ok(parsed)
}

pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_ref())?;
    let secret = match (&config.jwt_secret, &args.data_dir) {
        (Some(secret), _) => secret.clone(),
        (None, Some(dir)) => secrets::jwt_secret(None, dir)?,
        (None, None) => {
            anyhow::bail!("no signing secret: set AUDITX_JWT_SECRET or pass --data-dir")
        }
    };
    let scopes = parse_scopes(&args.scopes)?;
    let spec = TokenSpec {
        tenant: &args.tenant,
        entities: &args.entities,
        orgs: &args.orgs,
        ttl_hours: args.ttl_hours,
        scopes: &scopes,
    };
    println!("{}", mint_with(&secret, &config.auth, &spec)?);
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Base URL of the API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token (see `auditx token`).
    #[arg(long, env = "AUDITX_TOKEN")]
    pub token: String,
    /// PEM bundle of CAs to trust besides the system's, for the API and
    /// the download URLs (S3 behind a private CA's certificate).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    #[arg(long)]
    pub meter: i64,
    /// SAMPLE or ERROR.
    #[arg(long, default_value = "SAMPLE")]
    pub export_type: String,
    /// NORMAL or DEBUG.
    #[arg(long, default_value = "NORMAL")]
    pub run_type: String,
    #[arg(long)]
    pub from: String,
    #[arg(long)]
    pub to: String,
    #[arg(long = "session-id")]
    pub session_ids: Vec<String>,
    #[arg(long = "run-status")]
    pub run_statuses: Vec<String>,
    #[arg(long = "operator-id")]
    pub operator_ids: Vec<String>,
    /// File format: csv, jsonl or parquet (the API's default, csv, if not given).
    #[arg(long)]
    pub format: Option<String>,
    /// Where to download the files.
    #[arg(long, default_value = "auditx-export")]
    pub out: PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
}

/// Creates an export, follows it with a progress bar and downloads its files.
pub async fn run_export(
    client: &ApiClient,
    request: &ExportRequest,
    out: &std::path::Path,
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    let request_id = client.create_export(request).await?;
    println!("export {request_id} created");
    let bar = progress_bar(100, "exporting");
    let job = client
        .wait(request.meter_id, &request_id, timeout, |job| {
            bar.set_position(job["progress"]["percent"].as_u64().unwrap_or(0));
            bar.set_message(job["status"].as_str().unwrap_or("").to_owned());
        })
        .await?;
    bar.finish();
    let status = job["status"].as_str().unwrap_or("");
    anyhow::ensure!(
        status == "FINISHED",
        "export {request_id} ended {status}: {}",
        job["error"]
    );
    println!(
        "export {request_id} finished: {} rows in {} file(s)",
        job["count"],
        job["fileList"].as_array().map_or(0, Vec::len)
    );
    for file in client.download_all(&job, out).await? {
        println!(
            "  {} ({} bytes) <- {}",
            file.path.display(),
            file.bytes,
            file.file_key
        );
    }
    Ok(job)
}

pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let mut client = ApiClient::new(&args.url, &args.token);
    if let Some(ca_file) = &args.ca_file {
        client = client.trusting(ca_file)?;
    }
    let request = ExportRequest {
        meter_id: args.meter,
        export_type: args.export_type,
        run_type: args.run_type,
        query_from_time: args.from,
        query_to_time: args.to,
        session_ids: args.session_ids,
        run_statuses: args.run_statuses,
        operator_ids: args.operator_ids,
        format: args.format,
    };
    run_export(
        &client,
        &request,
        &args.out,
        Duration::from_secs(args.timeout_secs),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use auditx_common::config::Config;
    use auditx_scheduler::api::auth::TokenKeys;

    use super::*;

    #[test]
    fn scopes_default_to_all_and_can_be_narrowed() {
        assert_eq!(parse_scopes(&[]).unwrap(), Scope::ALL.to_vec());
        let given = [
            "export:read,query:read".to_owned(),
            "export:read".to_owned(),
        ]
        .iter()
        .flat_map(|g| g.split(',').map(str::to_owned))
        .collect::<Vec<_>>();
        assert_eq!(
            parse_scopes(&given).unwrap(),
            vec![Scope::ExportRead, Scope::QueryRead]
        );
        assert_eq!(
            parse_scopes(&["export:read query:write".into()]).unwrap(),
            vec![Scope::ExportRead, Scope::QueryWrite]
        );
        let err = parse_scopes(&["export:admin".into()])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "--scopes: \"export:admin\" is not one of export:read, export:write, query:read, query:write, ingest:write, ops:read"
        );
        assert!(parse_scopes(&[" ".into()]).is_err());
    }

    #[test]
    fn minted_tokens_carry_the_configured_issuer_audience_and_scopes() {
        let mut config = Config {
            jwt_secret: Some("s".into()),
            ..Config::default()
        };
        config.auth.issuer = Some("https://issuer.test".into());
        config.auth.audience = Some("auditx".into());
        let spec = TokenSpec {
            scopes: &[Scope::QueryRead],
            ..TokenSpec::new("acme", 1)
        };
        let token = mint_with("s", &config.auth, &spec).unwrap();
        let claims = TokenKeys::new(&config).verify(&token).unwrap();
        assert_eq!(claims.tenant, "acme");
        assert_eq!(claims.iss.as_deref(), Some("https://issuer.test"));
        assert_eq!(claims.scope, "query:read");
        // Without them, the same server refuses the token.
        let bare = mint("s", "acme", &[], &[], 1).unwrap();
        assert!(TokenKeys::new(&config).verify(&bare).is_err());
    }
}
