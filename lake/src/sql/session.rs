//! One DataFusion session per query, holding nothing but the caller
//! tenant's tables — and of those, for a caller limited to some entities
//! or orgs, only their rows.
//!
//! Tenant isolation does not rest on the guard alone: the session's catalog
//! has only tables of the tenant (those of the eight the query reads),
//! each a listing of `s3://<lake>/<table>/tenant=<t>/`; its object store registry answers for
//! the lake bucket only (no local files); information_schema and URL tables
//! are off; and planning forbids DDL, DML and statements.
//!
//! Every table name is a view of its listing:
//!
//! * Entity/org scope: table files carry trailing `entity` and `org`
//!   columns (NULL in files written before them). For a scoped caller the
//!   view is `WHERE entity IN (...) AND org IN (...)` on the restricted
//!   axes; the view projects the table's own columns only, so a query can
//!   neither see other entities' rows nor the two columns.
//! * Deleted rows (Zuora's `readDeleted`): a query that does not name the
//!   `deleted` column sees only rows not deleted (`read_deleted` false) or
//!   only deleted rows (`read_deleted` true), and not the column; a query
//!   that names it sees every row and the column.
//! * Partitions: the audit event tables' files live under
//!   `year=<y>/month=<m>/` and the listing takes the two as partition
//!   columns, so a filter on them (`year = 2022 AND month = 11`) lists and
//!   reads only the matching files. Files written before partitions (at the
//!   top of the tenant's prefix, without `year`/`month`/`day`) are still
//!   read: a second listing of just those files, whose date parts are
//!   derived from `createddate` (else `timestamp`) in UTC, as ingest does.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Schema, SchemaRef};
use auditx_common::config::S3Config;
use auditx_common::s3::credentials::ObjectStoreCredentials;
use auditx_proto::{Scope, TenantId};
use datafusion::catalog::TableProvider;
use datafusion::common::{exec_datafusion_err, Result as DFResult};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::cache::cache_manager::{
    CacheManagerConfig, CachedFileMetadata, FileMetadataCache, FileStatisticsCache,
};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::cache::TableScopedPath;
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::functions::expr_fn::{coalesce, date_part};
use datafusion::logical_expr::{cast, ident, lit, Expr};
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{Certificate, ClientOptions, ObjectStore};
use url::Url;

use super::decorrelate::DistinctCorrelatedColumns;
use super::functions::date_udf;
use super::guard::{mentions_column, parse_query, referenced_tables};
use super::memory::query_pool;
use super::outer_keys::OuterKeys;
use super::prefetch::fetching_ahead;
use super::range_cache::{RangeCache, CACHE_BYTES};
use super::scan::ScanMetrics;
use super::stop::QueryStop;
use super::{check_query, classify, CheckedQuery, SqlError};
use crate::tables::{TableDef, DELETED_COLUMN, ENTITY_COLUMN, ORG_COLUMN, TABLES};

/// Resources one query may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Memory the query's operators may hold (within the process's pool,
    /// see `memory.rs`); spilling sorts and aggregates spill to a temp dir
    /// first, a query that still needs more fails with
    /// [`SqlError::MemoryLimit`] (or [`SqlError::ProcessMemoryLimit`] when
    /// the process's queries together hold all of theirs).
    pub memory_limit_bytes: usize,
}

/// The lake bucket as an `object_store` S3 store: the configured endpoint
/// (path-style as configured, plain HTTP allowed for `http://` endpoints,
/// HTTPS trusting `s3.ca_file` besides the system's CAs) and region, signed
/// with the credentials of the SDK client's chain: the configured keys, or
/// else AWS's default chain (`auditx_common::s3::credentials`).
pub fn lake_object_store(s3: &S3Config) -> Result<Arc<dyn ObjectStore>, SqlError> {
    build_lake_store(lake_store_builder(s3)?)
}

/// [`lake_object_store`] whose HTTP requests (and their response bodies)
/// run on the runtime of `io`, whatever runtime awaits them: data queries
/// run on a pool with no I/O driver of its own (the worker's query
/// executor), and their reads go through this store.
pub fn lake_object_store_on(
    s3: &S3Config,
    io: tokio::runtime::Handle,
) -> Result<Arc<dyn ObjectStore>, SqlError> {
    build_lake_store(
        lake_store_builder(s3)?
            .with_http_connector(object_store::client::SpawnedReqwestConnector::new(io)),
    )
}

fn build_lake_store(builder: AmazonS3Builder) -> Result<Arc<dyn ObjectStore>, SqlError> {
    let store = builder
        .build()
        .map_err(|e| SqlError::Execution(format!("lake object store configuration: {e}")))?;
    // Small reads of the (immutable) table files are kept: see range_cache.rs.
    Ok(Arc::new(RangeCache::new(Arc::new(store), CACHE_BYTES)))
}

fn lake_store_builder(s3: &S3Config) -> Result<AmazonS3Builder, SqlError> {
    // Client options first: setting them replaces those set before.
    let mut builder = AmazonS3Builder::new()
        .with_client_options(client_options(s3)?)
        // The SDK client's credential chain (configured keys or AWS's
        // default chain), not a second one of object_store's own.
        .with_credentials(Arc::new(ObjectStoreCredentials::new(
            auditx_common::s3::credentials::provider(s3),
        )));
    builder = builder
        .with_bucket_name(&s3.lake_bucket)
        .with_region(&s3.region)
        .with_virtual_hosted_style_request(!s3.force_path_style)
        // The same bounded policy as every other S3 call (`s3.max_attempts`).
        .with_retry(object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: auditx_common::s3::RETRY_INITIAL_BACKOFF,
                max_backoff: auditx_common::s3::RETRY_MAX_BACKOFF,
                base: 2.0,
            },
            max_retries: s3.max_attempts.saturating_sub(1) as usize,
            retry_timeout: std::time::Duration::from_secs(60),
        });
    if let Some(endpoint) = s3.endpoint.as_deref().filter(|e| !e.is_empty()) {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    Ok(builder)
}

/// HTTP client options: the CAs of `s3.ca_file` trusted besides the
/// system's.
fn client_options(s3: &S3Config) -> Result<ClientOptions, SqlError> {
    let tls = s3
        .tls()
        .map_err(|e| SqlError::Execution(format!("lake object store configuration: {e}")))?;
    let mut options = ClientOptions::new();
    for certificate in tls.ca.iter().flat_map(|ca| &ca.certificates) {
        options =
            options.with_root_certificate(Certificate::from_der(certificate).map_err(|e| {
                SqlError::Execution(format!("lake object store configuration: s3.ca_file: {e}"))
            })?);
    }
    Ok(options)
}

/// A query [`start_query`] started: its batches, and what its scans read
/// (once the batches are drained).
pub struct RunningQuery {
    pub batches: SendableRecordBatchStream,
    plan: Arc<dyn ExecutionPlan>,
}

impl RunningQuery {
    /// What the query's table scans have read so far: after the last
    /// batch, all they read.
    pub fn scans(&self) -> ScanMetrics {
        ScanMetrics::of(&self.plan)
    }
}

/// Checks `query` again, plans it in a fresh session over `tenant`'s
/// tables in `lake` (the store of `lake_bucket`), holding only the rows of
/// `scope` — and, unless the query names the `deleted` column, only the
/// rows not deleted, or with `read_deleted` only the deleted ones — and
/// starts it, keeping the plan to tell what its scans read. The caller
/// pulls batches one at a time and maps their errors with [`classify`].
/// Once `stop` is stopped, every operator of the plan ends at its next
/// batch and the stream answers the stop's reason.
#[allow(clippy::too_many_arguments)]
pub async fn start_query(
    lake: Arc<dyn ObjectStore>,
    lake_bucket: &str,
    tenant: &TenantId,
    scope: &Scope,
    query: &CheckedQuery,
    limits: &QueryLimits,
    read_deleted: bool,
    stop: &QueryStop,
) -> Result<RunningQuery, SqlError> {
    let checked = check_query(&query.sql)?;
    let parsed = parse_query(&checked.sql)?;
    let deleted = match mentions_column(&parsed, DELETED_COLUMN) {
        true => Deleted::Shown,
        false if read_deleted => Deleted::Only,
        false => Deleted::Hidden,
    };
    let tables = referenced_tables(&parsed);
    let started = std::time::Instant::now();
    let ctx = tenant_session(
        Arc::clone(&lake),
        lake_bucket,
        tenant,
        scope,
        deleted,
        &tables,
        limits,
    )
    .await?;
    let session_ms = started.elapsed().as_secs_f64() * 1e3;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = ctx
        .sql_with_options(&checked.sql, options)
        .await
        .map_err(|e| classify(e, limits))?;
    let logical_ms = started.elapsed().as_secs_f64() * 1e3 - session_ms;
    let task = Arc::new(frame.task_ctx());
    let plan = frame
        .create_physical_plan()
        .await
        .and_then(|plan| fetching_ahead(plan, lake))
        .and_then(|plan| stop.guard(plan))
        .map_err(|e| classify(e, limits))?;
    let stream = execute_stream(Arc::clone(&plan), task).map_err(|e| classify(e, limits))?;
    tracing::debug!(
        session_ms,
        logical_ms,
        physical_ms = started.elapsed().as_secs_f64() * 1e3 - session_ms - logical_ms,
        "query planned"
    );
    Ok(RunningQuery {
        batches: stop.guard_stream(stream),
        plan,
    })
}

/// What a query's tables hold of the deleted rows and the `deleted` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deleted {
    /// Rows not deleted (`deleted` false or NULL); the column hidden.
    Hidden,
    /// Deleted rows only; the column hidden.
    Only,
    /// Every row, and the column (the query names it).
    Shown,
}

/// The session of one query: of the tenant's tables, those it reads
/// (`tables`; the guard admits no other name), each listed when the query
/// is planned, so it sees every file written before.
async fn tenant_session(
    lake: Arc<dyn ObjectStore>,
    lake_bucket: &str,
    tenant: &TenantId,
    scope: &Scope,
    deleted: Deleted,
    tables: &HashSet<&'static str>,
    limits: &QueryLimits,
) -> Result<SessionContext, SqlError> {
    let internal = |e| classify(e, limits);
    let bucket_url = bucket_url(lake_bucket)?;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(query_pool(limits.memory_limit_bytes))
        .with_cache_manager(
            CacheManagerConfig::default()
                .with_file_metadata_cache(Some(file_metadata_cache()))
                .with_metadata_cache_limit(METADATA_CACHE_BYTES),
        )
        .with_object_store_registry(Arc::new(LakeOnly {
            bucket_url: bucket_url.clone(),
            store: Arc::clone(&lake),
        }))
        .build_arc()
        .map_err(internal)?;
    let config = session_config().map_err(internal)?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    ctx.register_udf(date_udf());
    ctx.add_analyzer_rule(Arc::new(DistinctCorrelatedColumns));
    ctx.add_optimizer_rule(Arc::new(OuterKeys));
    for def in TABLES.into_iter().filter(|def| tables.contains(def.name)) {
        let url = table_url(&bucket_url, def.name, tenant)?;
        let mut frame = listing(&ctx, def, url).map_err(internal)?;
        if def.partitioned() {
            let prefix = Path::from(def.tenant_prefix(tenant).trim_end_matches('/'));
            let unpartitioned = lake
                .list_with_delimiter(Some(&prefix))
                .await
                .map_err(|e| SqlError::Execution(format!("listing {}: {e}", def.name)))?
                .objects
                .into_iter()
                .filter(|o| o.location.as_ref().ends_with(".parquet") && o.size > 0)
                .map(|o| file_url(&bucket_url, &o.location))
                .collect::<Result<Vec<_>, _>>()?;
            if !unpartitioned.is_empty() {
                let older = unpartitioned_listing(&ctx, def, unpartitioned).map_err(internal)?;
                frame = frame.union(older).map_err(internal)?;
            }
        }
        let view = table_view(def, frame, scope, deleted).map_err(internal)?;
        ctx.register_table(def.name, view).map_err(internal)?;
    }
    Ok(ctx)
}

/// The most the Parquet metadata kept between queries may take.
const METADATA_CACHE_BYTES: usize = 32 << 20;

/// The footers and page indexes of the table files the process's queries
/// read, kept between queries: a small query over many files otherwise
/// spends most of its time fetching them again. Files are named by the
/// hash of their bytes and never rewritten, and an entry is used only for
/// a listed file of the same size and time, so an entry is never stale;
/// whatever tenant's query reads the file, it reads its own file. The
/// listings themselves are not kept: each query lists the files anew and
/// sees every file written before it.
fn file_metadata_cache() -> Arc<FileMetadataCache> {
    static CACHE: OnceLock<Arc<FileMetadataCache>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        Arc::new(DefaultCache::new(METADATA_CACHE_BYTES).with_name("auditx table file metadata"))
    });
    Arc::clone(cache)
}

/// The most the file statistics kept between queries may take.
const STATISTICS_CACHE_BYTES: usize = 16 << 20;

/// Each table file's statistics and sort order as DataFusion infers them
/// from its footer when it plans a scan, kept between queries (as the
/// footers are, see [`file_metadata_cache`]): an entry is used only for a
/// listed file of the same path, size and time and a table of the same
/// schema. Inferring them again for every file of a table was most of the
/// planning of a small query.
fn file_statistics_cache() -> Arc<FileStatisticsCache> {
    static CACHE: OnceLock<Arc<FileStatisticsCache>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        Arc::new(
            DefaultCache::<TableScopedPath, CachedFileMetadata>::new(STATISTICS_CACHE_BYTES)
                .with_name("auditx table file statistics"),
        )
    });
    Arc::clone(cache)
}

/// DataFusion options that differ from its defaults, for the queries users
/// run over the audit tables (docs/performance.md says why each):
///
/// * `pushdown_filters`, `reorder_filters`: a filter is evaluated while the
///   Parquet pages are decoded, cheapest column first, and the other
///   columns are decoded only for the rows that pass (late
///   materialization): `SELECT * … WHERE ipaddress = …` decodes one column.
pub const TUNED_OPTIONS: [(&str, &str); 2] = [
    ("datafusion.execution.parquet.pushdown_filters", "true"),
    ("datafusion.execution.parquet.reorder_filters", "true"),
];

/// The session's options: DataFusion's defaults, the [`TUNED_OPTIONS`],
/// then any `DATAFUSION_*` environment variable (DataFusion's own names,
/// e.g. `DATAFUSION_EXECUTION_TARGET_PARTITIONS=4`), which wins: operators
/// can tune a deployment without a release.
fn session_config() -> DFResult<SessionConfig> {
    let mut config = SessionConfig::new();
    for (key, value) in TUNED_OPTIONS {
        config.options_mut().set(key, value)?;
    }
    for (name, value) in std::env::vars() {
        let Some(rest) = name.strip_prefix("DATAFUSION_") else {
            continue;
        };
        let key = format!("datafusion.{}", rest.to_lowercase());
        // `DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS`: the underscores
        // between the words of a key and of its path look the same, so the
        // key is the option whose environment name this is.
        let known = config
            .options()
            .entries()
            .into_iter()
            .find(|entry| entry.key.replace('.', "_") == key.replace('.', "_"));
        if let Some(entry) = known {
            config.options_mut().set(&entry.key, &value)?;
        }
    }
    Ok(config.with_information_schema(false))
}

/// The schema a query reads `def`'s files as: the stored schema with its
/// text columns as `Utf8View`. The Parquet reader then hands out views of
/// the pages' (mostly dictionary) strings instead of copying every value
/// into one buffer, and grouping, joining and comparing short strings
/// compares their 16-byte views (DataFusion's own choice for files without
/// a declared schema, `schema_force_view_types`).
fn read_schema(def: &TableDef) -> SchemaRef {
    let stored = def.stored_schema();
    let fields: Vec<_> = stored
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8View)),
            _ => f.clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The read schema ([`read_schema`]) without `columns`.
fn schema_without(def: &TableDef, columns: &[&str]) -> SchemaRef {
    let stored = read_schema(def);
    let fields: Vec<_> = stored
        .fields()
        .iter()
        .filter(|f| !columns.contains(&f.name().as_str()))
        .cloned()
        .collect();
    Arc::new(Schema::new(fields))
}

/// Every stored column of `def` (its own, then entity and org), in order.
fn stored_columns(def: &TableDef) -> Vec<Expr> {
    def.stored_schema()
        .fields()
        .iter()
        .map(|f| ident(f.name()))
        .collect()
}

/// The listing of the table's files under `url`: partitioned by `year` and
/// `month` for a partitioned table (files outside `year=/month=`
/// directories are not part of it), as every stored column in order.
fn listing(ctx: &SessionContext, def: &TableDef, url: ListingTableUrl) -> DFResult<DataFrame> {
    let mut options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let schema = if def.partitioned() {
        let partition_columns = crate::tables::PARTITION_COLUMNS;
        options = options.with_table_partition_cols(
            partition_columns
                .iter()
                .map(|c| (c.to_string(), DataType::Int32))
                .collect(),
        );
        schema_without(def, &partition_columns)
    } else {
        read_schema(def)
    };
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    let table: Arc<dyn TableProvider> =
        Arc::new(ListingTable::try_new(config)?.with_cache(Some(file_statistics_cache())));
    ctx.read_table(table)?.select(stored_columns(def))
}

/// The files of a partitioned table written before partitions, as every
/// stored column in order; `year`, `month` and `day` (absent from those
/// files) derived from `createddate`, else `timestamp`, in UTC.
fn unpartitioned_listing(
    ctx: &SessionContext,
    def: &TableDef,
    files: Vec<ListingTableUrl>,
) -> DFResult<DataFrame> {
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(files)
        .with_listing_options(options)
        .with_schema(read_schema(def));
    let table: Arc<dyn TableProvider> =
        Arc::new(ListingTable::try_new(config)?.with_cache(Some(file_statistics_cache())));
    let created = coalesce(vec![ident("createddate"), ident("timestamp")]);
    let schema = def.stored_schema();
    let columns = schema.fields().iter().map(|f| {
        let name = f.name().as_str();
        match name {
            "year" | "month" | "day" => coalesce(vec![
                ident(name),
                cast(date_part(lit(name), created.clone()), DataType::Int32),
            ])
            .alias(name),
            _ => ident(name),
        }
    });
    ctx.read_table(table)?.select(columns.collect::<Vec<_>>())
}

/// The table a query sees: `frame` (every stored column) holding only the
/// rows of `scope`'s entities and orgs and the rows `deleted` lets through,
/// with the table's own columns (`deleted` only when shown).
fn table_view(
    def: &TableDef,
    mut frame: DataFrame,
    scope: &Scope,
    deleted: Deleted,
) -> DFResult<Arc<dyn TableProvider>> {
    let within = |column: &str, values: &[String]| -> Expr {
        ident(column).in_list(values.iter().map(|v| lit(v.as_str())).collect(), false)
    };
    if !scope.entities.is_empty() {
        frame = frame.filter(within(ENTITY_COLUMN, &scope.entities))?;
    }
    if !scope.orgs.is_empty() {
        frame = frame.filter(within(ORG_COLUMN, &scope.orgs))?;
    }
    match deleted {
        Deleted::Hidden => frame = frame.filter(ident(DELETED_COLUMN).is_not_true())?,
        Deleted::Only => frame = frame.filter(ident(DELETED_COLUMN).is_true())?,
        Deleted::Shown => {}
    }
    let own_columns: Vec<Expr> = def
        .columns
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| deleted == Deleted::Shown || *name != DELETED_COLUMN)
        .map(ident)
        .collect();
    Ok(frame.select(own_columns)?.into_view())
}

/// `s3://<bucket>/<key>` of one object, as a single-file listing URL.
fn file_url(bucket: &Url, key: &Path) -> Result<ListingTableUrl, SqlError> {
    let mut url = bucket.clone();
    {
        let mut segments = url.path_segments_mut().expect("s3 URLs have a path");
        segments.clear();
        for part in key.parts() {
            segments.push(part.as_ref());
        }
    }
    ListingTableUrl::try_new(url, None)
        .map_err(|e| SqlError::Execution(format!("table file location: {}", e.message())))
}

fn bucket_url(bucket: &str) -> Result<Url, SqlError> {
    Url::parse(&format!("s3://{bucket}/"))
        .ok()
        .filter(|url| url.host_str() == Some(bucket))
        .ok_or_else(|| SqlError::Execution(format!("invalid lake bucket name {bucket:?}")))
}

/// `s3://<bucket>/<table>/tenant=<t>/`, the tenant id percent-encoded as
/// one path segment (the listing decodes it back).
fn table_url(bucket: &Url, table: &str, tenant: &TenantId) -> Result<ListingTableUrl, SqlError> {
    let tenant = tenant.as_str();
    if tenant.is_empty() || tenant.contains('/') || tenant == "." || tenant == ".." {
        return Err(SqlError::Execution(format!("invalid tenant id {tenant:?}")));
    }
    let mut url = bucket.clone();
    url.path_segments_mut()
        .expect("s3 URLs have a path")
        .clear()
        .push(table)
        .push(&format!("tenant={tenant}"))
        .push("");
    ListingTableUrl::try_new(url, None)
        .map_err(|e| SqlError::Execution(format!("table location: {}", e.message())))
}

/// The registry of a query session: the lake bucket's store, nothing else
/// (DataFusion's default registry also serves the local file system).
#[derive(Debug)]
struct LakeOnly {
    bucket_url: Url,
    store: Arc<dyn ObjectStore>,
}

impl ObjectStoreRegistry for LakeOnly {
    /// Nothing else is registered: the store is fixed when the session is made.
    fn register_store(
        &self,
        _url: &Url,
        _store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        None
    }

    fn get_store(&self, url: &Url) -> DFResult<Arc<dyn ObjectStore>> {
        if url.scheme() == self.bucket_url.scheme() && url.host_str() == self.bucket_url.host_str()
        {
            Ok(Arc::clone(&self.store))
        } else {
            Err(exec_datafusion_err!("no object store for {url}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_urls_encode_the_tenant_as_one_segment() {
        let bucket = bucket_url("lake").unwrap();
        let url = table_url(&bucket, "contact", &TenantId::from("acme")).unwrap();
        assert_eq!(url.as_str(), "s3://lake/contact/tenant=acme/");
        assert_eq!(url.prefix().as_ref(), "contact/tenant=acme");
        let url = table_url(&bucket, "contact", &TenantId::from("a b#?")).unwrap();
        assert_eq!(url.prefix().as_ref(), "contact/tenant=a b#?");
        for bad in ["", "a/b", ".."] {
            assert!(
                table_url(&bucket, "contact", &TenantId::from(bad)).is_err(),
                "{bad}"
            );
        }
        assert!(bucket_url("a/b").is_err());
    }

    #[test]
    fn the_registry_serves_the_lake_bucket_only() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let registry = LakeOnly {
            bucket_url: bucket_url("lake").unwrap(),
            store,
        };
        assert!(registry
            .get_store(&Url::parse("s3://lake/x").unwrap())
            .is_ok());
        for other in ["s3://other/x", "file:///etc/passwd", "http://lake/x"] {
            assert!(
                registry.get_store(&Url::parse(other).unwrap()).is_err(),
                "{other}"
            );
        }
    }

    /// The seed's Account query joins two contacts per change: planned as
    /// a join with the changes' own keys, never as every pair of contacts
    /// (`outer_keys.rs`).
    #[tokio::test]
    async fn the_account_query_never_multiplies_contacts() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let limits = QueryLimits {
            memory_limit_bytes: 1 << 30,
        };
        let sql = check_query(include_str!("../../tests/fixtures/seed/q4.sql"))
            .unwrap()
            .sql;
        let ctx = tenant_session(
            store,
            "lake",
            &TenantId::from("acme"),
            &Scope::default(),
            Deleted::Hidden,
            &referenced_tables(&parse_query(&sql).unwrap()),
            &limits,
        )
        .await
        .unwrap();
        let plan = ctx.sql(&sql).await.unwrap().into_optimized_plan().unwrap();
        let plan = plan.display_indent().to_string();
        assert!(!plan.contains("Cross Join"), "{plan}");
        assert!(plan.contains("__auditx_outer_keys"), "{plan}");
    }

    #[test]
    fn the_object_store_is_built_from_the_config() {
        let s3 = S3Config {
            endpoint: Some("http://127.0.0.1:9000".into()),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            ..S3Config::default()
        };
        let store = lake_object_store(&s3).unwrap();
        assert!(store.to_string().contains("auditx-lake"), "{store}");
    }
}
