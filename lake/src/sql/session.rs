//! One DataFusion session per query, holding nothing but the caller
//! tenant's tables — and of those, for a caller limited to some entities
//! or orgs, only their rows.
//!
//! Tenant isolation does not rest on the guard alone: the session's catalog
//! has exactly the tenant's eight tables, each a listing of
//! `s3://<lake>/<table>/tenant=<t>/`; its object store registry answers for
//! the lake bucket only (no local files); information_schema and URL tables
//! are off; and planning forbids DDL, DML and statements.
//!
//! Entity/org scope: table files carry trailing `entity` and `org` columns
//! (NULL in files written before them). For a scoped caller each table name
//! is a view of its listing, `WHERE entity IN (...) AND org IN (...)` on the
//! restricted axes, projecting the table's own columns only: the query can
//! neither see other entities' rows nor the two columns. A tenant-wide
//! caller gets the listing itself, with the table's own columns.

use std::num::NonZeroUsize;
use std::sync::Arc;

use auditx_common::config::S3Config;
use auditx_proto::{Scope, TenantId};
use datafusion::catalog::TableProvider;
use datafusion::common::{exec_datafusion_err, Result as DFResult};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{ident, lit, Expr};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;
use url::Url;

use super::decorrelate::DistinctCorrelatedColumns;
use super::functions::date_udf;
use super::{check_query, classify, CheckedQuery, SqlError};
use crate::tables::{TableDef, ENTITY_COLUMN, ORG_COLUMN, TABLES};

/// Resources one query may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Memory pool of the query's operators; spilling sorts and aggregates
    /// spill to a temp dir first, a query that still needs more fails with
    /// [`SqlError::MemoryLimit`].
    pub memory_limit_bytes: usize,
}

/// The lake bucket as an `object_store` S3 store: the configured endpoint
/// (path-style as configured, plain HTTP allowed for `http://` endpoints),
/// region and static keys; with no keys configured, the AWS environment and
/// instance credentials that `object_store` finds itself.
pub fn lake_object_store(s3: &S3Config) -> Result<Arc<dyn ObjectStore>, SqlError> {
    build_lake_store(lake_store_builder(s3))
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
        lake_store_builder(s3)
            .with_http_connector(object_store::client::SpawnedReqwestConnector::new(io)),
    )
}

fn build_lake_store(builder: AmazonS3Builder) -> Result<Arc<dyn ObjectStore>, SqlError> {
    let store = builder
        .build()
        .map_err(|e| SqlError::Execution(format!("lake object store configuration: {e}")))?;
    Ok(Arc::new(store))
}

fn lake_store_builder(s3: &S3Config) -> AmazonS3Builder {
    let has_keys = !s3.access_key_id.is_empty() && !s3.secret_access_key.is_empty();
    let mut builder = if has_keys {
        AmazonS3Builder::new()
            .with_access_key_id(&s3.access_key_id)
            .with_secret_access_key(&s3.secret_access_key)
    } else {
        AmazonS3Builder::from_env()
    };
    builder = builder
        .with_bucket_name(&s3.lake_bucket)
        .with_region(&s3.region)
        .with_virtual_hosted_style_request(!s3.force_path_style);
    if let Some(endpoint) = s3.endpoint.as_deref().filter(|e| !e.is_empty()) {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    builder
}

/// Checks `query` again, plans it in a fresh session over `tenant`'s
/// tables in `lake` (the store of `lake_bucket`), holding only the rows of
/// `scope`, and starts it. The caller pulls batches one at a time and maps
/// their errors with [`classify`].
pub async fn run_query(
    lake: Arc<dyn ObjectStore>,
    lake_bucket: &str,
    tenant: &TenantId,
    scope: &Scope,
    query: &CheckedQuery,
    limits: &QueryLimits,
) -> Result<SendableRecordBatchStream, SqlError> {
    let checked = check_query(&query.sql)?;
    let ctx = tenant_session(lake, lake_bucket, tenant, scope, limits)?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = ctx
        .sql_with_options(&checked.sql, options)
        .await
        .map_err(|e| classify(e, limits))?;
    frame
        .execute_stream()
        .await
        .map_err(|e| classify(e, limits))
}

fn tenant_session(
    lake: Arc<dyn ObjectStore>,
    lake_bucket: &str,
    tenant: &TenantId,
    scope: &Scope,
    limits: &QueryLimits,
) -> Result<SessionContext, SqlError> {
    let internal = |e| classify(e, limits);
    let bucket_url = bucket_url(lake_bucket)?;
    let pool = TrackConsumersPool::new(
        FairSpillPool::new(limits.memory_limit_bytes),
        NonZeroUsize::new(5).expect("5 is not zero"),
    );
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .with_object_store_registry(Arc::new(LakeOnly {
            bucket_url: bucket_url.clone(),
            store: lake,
        }))
        .build_arc()
        .map_err(internal)?;
    let config = SessionConfig::new().with_information_schema(false);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    ctx.register_udf(date_udf());
    ctx.add_analyzer_rule(Arc::new(DistinctCorrelatedColumns));
    for def in TABLES {
        let url = table_url(&bucket_url, def.name, tenant)?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let schema = match scope.is_unrestricted() {
            true => def.schema(),
            false => def.stored_schema(),
        };
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        let table: Arc<dyn TableProvider> =
            Arc::new(ListingTable::try_new(config).map_err(internal)?);
        let table = match scope.is_unrestricted() {
            true => table,
            false => scoped_view(&ctx, def, table, scope).map_err(internal)?,
        };
        ctx.register_table(def.name, table).map_err(internal)?;
    }
    Ok(ctx)
}

/// `table` (a listing of the stored schema) as a view holding only the
/// rows of `scope`'s entities and orgs, with the table's own columns.
fn scoped_view(
    ctx: &SessionContext,
    def: &TableDef,
    table: Arc<dyn TableProvider>,
    scope: &Scope,
) -> DFResult<Arc<dyn TableProvider>> {
    let within = |column: &str, values: &[String]| -> Expr {
        ident(column).in_list(values.iter().map(|v| lit(v.as_str())).collect(), false)
    };
    let mut frame = ctx.read_table(table)?;
    if !scope.entities.is_empty() {
        frame = frame.filter(within(ENTITY_COLUMN, &scope.entities))?;
    }
    if !scope.orgs.is_empty() {
        frame = frame.filter(within(ORG_COLUMN, &scope.orgs))?;
    }
    let own_columns: Vec<Expr> = def.columns.iter().map(|(name, _)| ident(*name)).collect();
    Ok(frame.select(own_columns)?.into_view())
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
