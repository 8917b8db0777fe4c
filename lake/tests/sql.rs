//! Data queries below the HTTP layer: the seed's six sample queries over a
//! hand-made lake, compared byte for byte with hand-written results; tenant
//! isolation; the memory limit; TSV and JSON rendering.
//!
//! The lake is an embedded S3 endpoint read through `lake_object_store`
//! over HTTP, the way a worker reads the real one. Fixture rows are NDJSON
//! files (`tests/fixtures/seed/<table>.ndjson` for the tenant `acme`,
//! `tests/fixtures/other_tenant/` for `globex`), written to Parquet here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use arrow::record_batch::RecordBatch;
use auditx_common::embedded_s3::EmbeddedS3;
use auditx_lake::sql::{
    check_query, classify, lake_object_store, start_query, CheckedQuery, QueryLimits, QueryStop,
    ResultWriter, SqlError,
};
use auditx_lake::tables::{ColumnType, TableDef, TABLES};
use auditx_proto::{QueryOutputFormat, Scope, TenantId};
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

mod support;

use support::{endpoint, Endpoint, BUCKET};
const LIMITS: QueryLimits = QueryLimits {
    memory_limit_bytes: 64 << 20,
};

/// An embedded S3 lake holding the seed fixtures for `acme` and the other
/// tenant's fixtures for `globex`.
struct SqlLake {
    store: Arc<dyn ObjectStore>,
    /// The same lake as ingest and generate write it.
    writer: auditx_common::s3::ObjectStore,
    _s3: EmbeddedS3,
    _dir: tempfile::TempDir,
}

fn acme() -> TenantId {
    TenantId::from("acme")
}

fn globex() -> TenantId {
    TenantId::from("globex")
}

fn fixtures(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

async fn sql_lake() -> SqlLake {
    let Endpoint {
        config,
        writer,
        s3,
        dir,
    } = endpoint().await;
    let lake = SqlLake {
        store: lake_object_store(&config).unwrap(),
        writer,
        _s3: s3,
        _dir: dir,
    };
    load(&lake, &acme(), &fixtures("seed")).await;
    load(&lake, &globex(), &fixtures("other_tenant")).await;
    lake
}

/// Writes `<dir>/<table>.ndjson` of every table that has one as Parquet
/// under the tenant's prefix, at most five rows a file so tables span
/// several files.
async fn load(lake: &SqlLake, tenant: &TenantId, dir: &Path) {
    for def in TABLES {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{}.ndjson", def.name))) else {
            continue;
        };
        let rows: Vec<Map<String, Value>> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        for chunk in rows.chunks(5) {
            let bytes = parquet_file(def, chunk);
            let hash: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let key = format!("{}{hash}.parquet", def.tenant_prefix(tenant));
            lake.store
                .put(&key.as_str().into(), bytes.into())
                .await
                .unwrap();
        }
    }
}

fn parquet_file(def: &TableDef, rows: &[Map<String, Value>]) -> Vec<u8> {
    let columns = arrays(def, rows);
    let batch = RecordBatch::try_new(def.schema(), columns).unwrap();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, def.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    bytes
}

fn arrays(def: &TableDef, rows: &[Map<String, Value>]) -> Vec<ArrayRef> {
    def.columns
        .iter()
        .map(|(name, ty)| {
            let values = rows
                .iter()
                .map(|row| row.get(*name).filter(|v| !v.is_null()));
            let array: ArrayRef = match ty {
                ColumnType::Text => Arc::new(
                    values
                        .map(|v| v.map(|v| v.as_str().unwrap()))
                        .collect::<StringArray>(),
                ),
                ColumnType::Timestamp => Arc::new(
                    values
                        .map(|v| {
                            v.map(|v| {
                                chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
                                    .unwrap()
                                    .timestamp_millis()
                            })
                        })
                        .collect::<TimestampMillisecondArray>()
                        .with_timezone("UTC"),
                ),
                ColumnType::Integer => Arc::new(
                    values
                        .map(|v| v.map(|v| v.as_i64().unwrap()))
                        .collect::<Int64Array>(),
                ),
                ColumnType::Int32 => Arc::new(
                    values
                        .map(|v| v.map(|v| v.as_i64().unwrap() as i32))
                        .collect::<Int32Array>(),
                ),
                ColumnType::Boolean => Arc::new(
                    values
                        .map(|v| v.map(|v| v.as_bool().unwrap()))
                        .collect::<BooleanArray>(),
                ),
            };
            array
        })
        .collect()
}

/// Checks, runs and renders `sql` the way the worker does.
async fn query(
    lake: &SqlLake,
    tenant: &TenantId,
    sql: &str,
    format: QueryOutputFormat,
    limits: &QueryLimits,
) -> Result<String, SqlError> {
    query_in_scope(lake, tenant, &Scope::default(), sql, format, limits).await
}

async fn query_in_scope(
    lake: &SqlLake,
    tenant: &TenantId,
    scope: &Scope,
    sql: &str,
    format: QueryOutputFormat,
    limits: &QueryLimits,
) -> Result<String, SqlError> {
    let checked = check_query(sql)?;
    let mut stream = start_query(
        lake.store.clone(),
        BUCKET,
        tenant,
        scope,
        &checked,
        limits,
        false,
        &QueryStop::new(),
    )
    .await?
    .batches;
    let mut writer = ResultWriter::new(&stream.schema(), format);
    let mut out = Vec::new();
    writer.header(&mut out);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| classify(e, limits))?;
        writer.write_batch(&batch, &mut out)?;
    }
    Ok(String::from_utf8(out).unwrap())
}

async fn csv(lake: &SqlLake, tenant: &TenantId, sql: &str) -> String {
    query(lake, tenant, sql, QueryOutputFormat::Csv, &LIMITS)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn seed_query(n: usize) -> String {
    std::fs::read_to_string(fixtures("seed").join(format!("q{n}.sql"))).unwrap()
}

#[tokio::test]
async fn the_seed_queries_return_the_hand_written_results() {
    let lake = sql_lake().await;
    for n in 1..=6 {
        let expected =
            std::fs::read_to_string(fixtures("seed").join(format!("q{n}.expected.csv"))).unwrap();
        let actual = csv(&lake, &acme(), &seed_query(n)).await;
        assert_eq!(actual, expected, "q{n}.sql");
    }
}

#[tokio::test]
async fn each_tenant_sees_only_its_own_rows() {
    let lake = sql_lake().await;
    let sql = "SELECT username AS Username, count(*) AS Events FROM auditobjectchangeevent \
               GROUP BY username ORDER BY username";
    assert_eq!(
        csv(&lake, &acme(), sql).await,
        "Username,Events\naudit-trail@zuora.com,30\n"
    );
    assert_eq!(
        csv(&lake, &globex(), sql).await,
        "Username,Events\nintruder@globex.example,3\n"
    );
    // The other tenant's contacts share ids with ours: a leak would change
    // the names (`Zed ...` sorts after every name of ours under max()).
    assert_eq!(
        csv(&lake, &globex(), &seed_query(4)).await,
        "Username,Action,ObjectType,ObjectName,Attribute,OldValue,NewValue,Timestamp,additional_info\n\
         intruder@globex.example,UPDATED,Account,Globex Corp,BillToId,\
         2c92c8fb756388ec017564e530151b3a,2c92c8fb6af31db7016af7dd77dd1c36,\
         2020-11-01T00:00:00.000Z,Zed Twin -> Zed Spy\n"
    );
    // A tenant without files has empty tables, not errors.
    let nobody = TenantId::from("nobody");
    for def in TABLES {
        let sql = format!("SELECT count(*) AS n FROM {}", def.name);
        assert_eq!(csv(&lake, &nobody, &sql).await, "n\n0\n", "{}", def.name);
    }
    assert_eq!(
        csv(&lake, &nobody, &seed_query(4)).await,
        "Username,Action,ObjectType,ObjectName,Attribute,OldValue,NewValue,Timestamp,additional_info\n"
    );
}

#[tokio::test]
async fn ways_out_of_the_tenant_are_refused_even_unchecked() {
    let lake = sql_lake().await;
    for sql in [
        "SELECT * FROM datafusion.public.auditloginevent",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM 's3://lake/auditloginevent/tenant=globex/'",
        r#"SELECT * FROM "s3://lake/auditloginevent/tenant=globex/""#,
        "SELECT * FROM read_parquet('s3://lake/auditloginevent/tenant=globex/')",
        "SELECT * FROM auditloginevent; SELECT * FROM contact",
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION 's3://lake/auditloginevent/tenant=globex/'",
        "COPY (SELECT 1) TO 's3://lake/evil.parquet'",
    ] {
        // Straight to the worker's entry point, as a forged task would.
        let forged = CheckedQuery { sql: sql.into() };
        let e = start_query(
            lake.store.clone(),
            BUCKET,
            &acme(),
            &Scope::default(),
            &forged,
            &LIMITS,
            false,
            &QueryStop::new(),
        )
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(e, SqlError::Refused(_)), "{sql}: {e:?}");
    }
}

#[tokio::test]
async fn a_query_past_its_memory_limit_fails_with_the_limit() {
    let lake = sql_lake().await;
    let tiny = QueryLimits {
        memory_limit_bytes: 1024,
    };
    let sql = "SELECT a.id, b.id FROM auditobjectchangeevent a JOIN auditobjectchangeevent b \
               ON a.objecttype = b.objecttype ORDER BY a.id, b.id";
    let e = query(&lake, &acme(), sql, QueryOutputFormat::Csv, &tiny)
        .await
        .unwrap_err();
    assert_eq!(e, SqlError::MemoryLimit { limit_bytes: 1024 });
    assert!(!e.is_transient());
    // The same query within the default limit runs.
    query(&lake, &acme(), sql, QueryOutputFormat::Csv, &LIMITS)
        .await
        .unwrap();
}

#[tokio::test]
async fn json_lines_tell_null_from_empty_and_tsv_escapes() {
    let lake = sql_lake().await;
    let json = query(
        &lake,
        &acme(),
        &seed_query(4),
        QueryOutputFormat::Json,
        &LIMITS,
    )
    .await
    .unwrap();
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 11);
    // ELSE '' is an empty string; a subquery without a row is NULL.
    assert_eq!(
        lines[0],
        r#"{"Username":"audit-trail@zuora.com","Action":"DELETED","ObjectType":"Account","ObjectName":"testJoy002","Attribute":null,"OldValue":null,"NewValue":null,"Timestamp":"2020-11-09T09:04:39.046Z","additional_info":""}"#
    );
    assert_eq!(
        lines[9],
        r#"{"Username":"audit-trail@zuora.com","Action":"CREATED","ObjectType":"Account","ObjectName":"Ghost Contact Inc","Attribute":"BillToId","OldValue":null,"NewValue":"2c92c8fe000000000000000000dead01","Timestamp":"2020-10-15T08:00:00.000Z","additional_info":null}"#
    );

    let sql = "SELECT attributename AS Attribute, oldvalue AS Old, sequencenumber AS Seq, \
               timestamp AS At FROM auditsettingchangeevent \
               WHERE id IN ('S04', 'S06', 'S07') ORDER BY id";
    assert_eq!(
        query(&lake, &acme(), sql, QueryOutputFormat::Tsv, &LIMITS)
            .await
            .unwrap(),
        "Attribute\tOld\tSeq\tAt\n\
         When prorating a month, assume 30 days in a month or use actual days?\tAssume30Days\t2\t2019-12-05T17:08:53.001Z\n\
         includeNegativeInvoice\t\t1\t2019-12-05T16:56:36.000Z\n\
         Invoice template \"Default\"\tA\t1\t2019-11-30T08:00:00.000Z\n"
    );
    assert_eq!(
        query(&lake, &acme(), sql, QueryOutputFormat::Json, &LIMITS)
            .await
            .unwrap()
            .lines()
            .nth(1)
            .unwrap(),
        r#"{"Attribute":"includeNegativeInvoice","Old":null,"Seq":1,"At":"2019-12-05T16:56:36.000Z"}"#
    );
}

#[tokio::test]
async fn user_mistakes_come_back_as_plan_or_execution_errors() {
    let lake = sql_lake().await;
    let e = query(
        &lake,
        &acme(),
        "SELECT nosuchcolumn FROM contact",
        QueryOutputFormat::Csv,
        &LIMITS,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, SqlError::Plan(m) if m.contains("nosuchcolumn")),
        "{e:?}"
    );
    assert!(!e.to_string().contains("backtrace"));

    let e = query(
        &lake,
        &acme(),
        "SELECT id FROM auditloginevent WHERE createddate > Date('yesterday')",
        QueryOutputFormat::Csv,
        &LIMITS,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, SqlError::Plan(m) | SqlError::Execution(m) if m.contains("'yesterday' is not an ISO-8601 date")),
        "{e:?}"
    );
}

#[tokio::test]
async fn concat_is_case_insensitive_and_date_compares_with_timestamps() {
    let lake = sql_lake().await;
    assert_eq!(
        csv(
            &lake,
            &acme(),
            "SELECT CONCAT(firstname, '|', lastname) AS a, concat(lastname) AS b, \
             Date('2019-04-01') AS d FROM contact WHERE firstname = 'Nick'"
        )
        .await,
        "a,b,d\nNick|Fury,Fury,2019-04-01T00:00:00.000Z\n"
    );
    assert_eq!(
        csv(
            &lake,
            &acme(),
            "SELECT count(*) AS n FROM auditloginevent \
             WHERE date(createddate) = Date('2019-06-17T23:00:00-02:00')"
        )
        .await,
        "n\n0\n"
    );
    assert_eq!(
        csv(
            &lake,
            &acme(),
            "SELECT count(*) AS n FROM auditloginevent WHERE date(createddate) = Date('2019-06-17')"
        )
        .await,
        "n\n3\n"
    );
}

/// A file of `def` as written since scopes: the table's columns plus the
/// owner's entity and org on every row.
fn owned_rows_file(
    def: &TableDef,
    rows: &[Map<String, Value>],
    entity: Option<&str>,
    org: Option<&str>,
) -> Vec<u8> {
    let mut columns = arrays(def, rows);
    for value in [entity, org] {
        columns.push(Arc::new(
            vec![value; rows.len()].into_iter().collect::<StringArray>(),
        ));
    }
    let schema = def.stored_schema();
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    bytes
}

fn owned_file(def: &TableDef, ids: &[&str], entity: Option<&str>, org: Option<&str>) -> Vec<u8> {
    let rows: Vec<Map<String, Value>> = ids
        .iter()
        .map(|id| serde_json::from_value(serde_json::json!({ "id": id })).unwrap())
        .collect();
    owned_rows_file(def, &rows, entity, org)
}

#[tokio::test]
async fn the_seed_queries_read_the_same_through_an_entitys_views() {
    let lake = sql_lake().await;
    // The seed fixtures again, every row written for entity e1 and org o1.
    let tenant = TenantId::from("acme-e1");
    for def in TABLES {
        let path = fixtures("seed").join(format!("{}.ndjson", def.name));
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let rows: Vec<Map<String, Value>> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        for (n, chunk) in rows.chunks(5).enumerate() {
            let key = format!("{}{n}.parquet", def.tenant_prefix(&tenant));
            let bytes = owned_rows_file(def, chunk, Some("e1"), Some("o1"));
            lake.store
                .put(&key.as_str().into(), bytes.into())
                .await
                .unwrap();
        }
    }
    let e1 = Scope::new(vec!["e1".into()], vec!["o1".into()]);
    let e2 = Scope::new(vec!["e2".into()], vec![]);
    for n in 1..=6 {
        let expected =
            std::fs::read_to_string(fixtures("seed").join(format!("q{n}.expected.csv"))).unwrap();
        let sql = seed_query(n);
        let run = |scope: &Scope| {
            let (lake, tenant, sql, scope) = (&lake, &tenant, &sql, scope.clone());
            async move {
                query_in_scope(lake, tenant, &scope, sql, QueryOutputFormat::Csv, &LIMITS).await
            }
        };
        assert_eq!(run(&e1).await.unwrap(), expected, "q{n}.sql as e1");
        let header = expected.lines().next().unwrap();
        let as_e2 = run(&e2).await.unwrap();
        assert_eq!(as_e2.lines().next(), Some(header), "q{n}.sql as e2");
        assert!(
            as_e2 != expected || expected.lines().count() == 1,
            "q{n}.sql as e2 sees e1's rows: {as_e2}"
        );
    }
}

#[tokio::test]
async fn a_scoped_caller_sees_only_rows_of_its_entities_and_orgs_and_not_the_columns() {
    let lake = sql_lake().await;
    let tenant = TenantId::from("scoped");
    let def = auditx_lake::tables::table("contact").unwrap();
    let files = [
        // Written before scopes: no entity or org column at all.
        parquet_file(def, &[serde_json::from_str(r#"{"id": "c0"}"#).unwrap()]),
        owned_file(def, &["c1"], Some("e1"), Some("o1")),
        owned_file(def, &["c2"], Some("e2"), Some("o1")),
        owned_file(def, &["c3"], Some("e1"), None),
        owned_file(def, &["c4"], None, None),
    ];
    for (n, bytes) in files.into_iter().enumerate() {
        let key = format!("{}{n}.parquet", def.tenant_prefix(&tenant));
        lake.store
            .put(&key.as_str().into(), bytes.into())
            .await
            .unwrap();
    }
    let ids = |entities: &[&str], orgs: &[&str]| {
        let scope = Scope::new(
            entities.iter().map(|e| e.to_string()).collect(),
            orgs.iter().map(|o| o.to_string()).collect(),
        );
        let lake = &lake;
        let tenant = &tenant;
        async move {
            let sql = "SELECT id FROM contact ORDER BY id";
            query_in_scope(lake, tenant, &scope, sql, QueryOutputFormat::Csv, &LIMITS)
                .await
                .unwrap()
                .lines()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    assert_eq!(ids(&[], &[]).await, "c0 c1 c2 c3 c4");
    assert_eq!(ids(&["e1"], &[]).await, "c1 c3");
    assert_eq!(ids(&["e1", "e2"], &[]).await, "c1 c2 c3");
    assert_eq!(ids(&[], &["o1"]).await, "c1 c2");
    assert_eq!(ids(&["e1"], &["o1"]).await, "c1");
    assert_eq!(ids(&["e9"], &[]).await, "");

    // The columns are not part of what a query sees, scoped or not.
    let e1 = Scope::new(vec!["e1".into()], vec![]);
    for scope in [Scope::default(), e1.clone()] {
        let all = query_in_scope(
            &lake,
            &tenant,
            &scope,
            "SELECT * FROM contact WHERE id = 'c1'",
            QueryOutputFormat::Csv,
            &LIMITS,
        )
        .await
        .unwrap();
        assert_eq!(
            all.lines().next(),
            Some("id,firstname,lastname,workemail,accountid")
        );
        let e = query_in_scope(
            &lake,
            &tenant,
            &scope,
            "SELECT entity FROM contact",
            QueryOutputFormat::Csv,
            &LIMITS,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("entity"), "{e}");
    }
    // Joins and subqueries read the same views.
    let joined = query_in_scope(
        &lake,
        &tenant,
        &e1,
        "SELECT a.id FROM contact a JOIN contact b ON a.id = b.id \
         WHERE a.id IN (SELECT id FROM contact) ORDER BY a.id",
        QueryOutputFormat::Csv,
        &LIMITS,
    )
    .await
    .unwrap();
    assert_eq!(joined, "id\nc1\nc3\n");
}

/// A lake store that records the objects read (GETs, whole or ranges).
#[derive(Debug)]
struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    read: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl CountingStore {
    fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            read: Default::default(),
        })
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.read.lock().unwrap())
            .into_iter()
            .collect()
    }

    fn note(&self, location: &object_store::path::Path) {
        self.read.lock().unwrap().insert(location.to_string());
    }
}

impl std::fmt::Display for CountingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        if !options.head {
            self.note(location);
        }
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &object_store::path::Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.note(location);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Runs `sql` for `tenant` on `store` (read_deleted as given), as CSV.
async fn csv_on(
    store: Arc<dyn ObjectStore>,
    tenant: &TenantId,
    sql: &str,
    read_deleted: bool,
) -> String {
    let checked = check_query(sql).unwrap();
    let mut stream = start_query(
        store,
        BUCKET,
        tenant,
        &Scope::default(),
        &checked,
        &LIMITS,
        read_deleted,
        &QueryStop::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
    .batches;
    let mut writer = ResultWriter::new(&stream.schema(), QueryOutputFormat::Csv);
    let mut out = Vec::new();
    writer.header(&mut out);
    while let Some(batch) = stream.next().await {
        writer.write_batch(&batch.unwrap(), &mut out).unwrap();
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_year_and_month_filter_reads_only_that_months_files() {
    use auditx_lake::tables::generate::{generate_table, table_rows};
    use auditx_lake::tables::{Cell, AUDIT_LOGIN_EVENT};
    let lake = sql_lake().await;
    let tenant = TenantId::from("big");
    let def = &AUDIT_LOGIN_EVENT;
    let rows = 24_000;
    generate_table(&lake.writer, BUCKET, &tenant, def, rows, 9, 1_000)
        .await
        .unwrap();
    let files = lake
        .writer
        .list(BUCKET, &def.tenant_prefix(&tenant))
        .await
        .unwrap();
    assert_eq!(files.len(), 24, "a file a month over 2019 and 2020");
    let in_month = |year: i64, months: std::ops::Range<i64>| {
        let (y, m) = (def.index("year").unwrap(), def.index("month").unwrap());
        table_rows(def, rows, 9)
            .filter(|r| {
                r[y] == Cell::Int(year) && matches!(r[m], Cell::Int(n) if months.contains(&n))
            })
            .count()
    };
    let counting = CountingStore::new(lake.store.clone());
    let store: Arc<dyn ObjectStore> = counting.clone();

    // One month: its one file is read, no other.
    let n = csv_on(
        store.clone(),
        &tenant,
        "SELECT count(*) AS n FROM auditloginevent WHERE year = 2019 AND month = 11",
        false,
    )
    .await;
    assert_eq!(n, format!("n\n{}\n", in_month(2019, 11..12)));
    assert!(in_month(2019, 11..12) > 500);
    assert_eq!(counting.take(), [files_in(&files, "year=2019/month=11/")]);

    // Zuora's form: a year and a range of months.
    let sql = "SELECT username AS Username, timestamp AS Timestamp FROM auditloginevent \
               WHERE year = 2020 AND month >= 3 AND month < 5 ORDER BY timestamp DESC";
    let out = csv_on(store.clone(), &tenant, sql, false).await;
    assert_eq!(out.lines().count() - 1, in_month(2020, 3..5));
    let read = counting.take();
    assert_eq!(read.len(), 2, "{read:?}");
    assert!(read
        .iter()
        .all(|k| k.contains("/year=2020/month=3/") || k.contains("/year=2020/month=4/")));

    // A day filter reads its month's file; no filter reads every file but
    // the four read above: their footers are kept between queries
    // (`session.rs`), and `count(*)` is answered from them.
    let out = csv_on(
        store.clone(),
        &tenant,
        "SELECT count(*) AS n FROM auditloginevent WHERE year = 2020 AND month = 2 AND day = 29",
        false,
    )
    .await;
    assert_ne!(out, "n\n0\n");
    assert_eq!(counting.take().len(), 1);
    csv_on(
        store.clone(),
        &tenant,
        "SELECT count(*) AS n FROM auditloginevent",
        false,
    )
    .await;
    assert_eq!(counting.take().len(), 24 - 4);
}

/// The one key of `files` under the partition directory `dir`.
fn files_in(files: &[auditx_common::s3::ObjectMeta], dir: &str) -> String {
    let matching: Vec<&str> = files
        .iter()
        .map(|f| f.key.as_str())
        .filter(|k| k.contains(dir))
        .collect();
    assert_eq!(matching.len(), 1, "{matching:?}");
    matching[0].to_owned()
}

#[tokio::test]
async fn deleted_rows_are_hidden_unless_read_deleted_or_the_query_names_the_column() {
    let lake = sql_lake().await;
    let tenant = TenantId::from("deleting");
    let contact = auditx_lake::tables::table("contact").unwrap();
    let rows: Vec<Map<String, Value>> = [
        r#"{"id": "c1", "firstname": "Kept", "deleted": false}"#,
        r#"{"id": "c2", "firstname": "Gone", "deleted": true}"#,
        r#"{"id": "c3", "firstname": "Unsaid"}"#,
    ]
    .iter()
    .map(|r| serde_json::from_str(r).unwrap())
    .collect();
    let key = format!("{}0.parquet", contact.tenant_prefix(&tenant));
    lake.store
        .put(&key.as_str().into(), parquet_file(contact, &rows).into())
        .await
        .unwrap();
    let run = |sql: &'static str, read_deleted: bool| {
        let (store, tenant) = (lake.store.clone(), tenant.clone());
        async move { csv_on(store, &tenant, sql, read_deleted).await }
    };
    let ids = "SELECT id FROM contact ORDER BY id";
    assert_eq!(run(ids, false).await, "id\nc1\nc3\n");
    assert_eq!(run(ids, true).await, "id\nc2\n");
    // `SELECT *` has the table's columns, not `deleted`.
    assert_eq!(
        run("SELECT * FROM contact ORDER BY id", false).await,
        "id,firstname,lastname,workemail,accountid\nc1,Kept,,,\nc3,Unsaid,,,\n"
    );
    // Naming the column reads every row, whatever read_deleted says.
    for read_deleted in [false, true] {
        assert_eq!(
            run("SELECT id, deleted FROM contact ORDER BY id", read_deleted).await,
            "id,deleted\nc1,false\nc2,true\nc3,\n"
        );
        assert_eq!(
            run(
                "SELECT firstname, deleted FROM contact WHERE deleted = TRUE",
                read_deleted
            )
            .await,
            "firstname,deleted\nGone,true\n"
        );
    }
}

#[tokio::test]
async fn files_written_before_partitions_read_with_derived_date_parts() {
    // The seed fixtures are written the old way: at the top of the tenant's
    // prefix, without year, month, day or deleted values.
    let lake = sql_lake().await;
    assert_eq!(
        csv(
            &lake,
            &acme(),
            "SELECT id, year, month, day FROM auditloginevent WHERE id IN ('L01', 'L13') ORDER BY id"
        )
        .await,
        "id,year,month,day\nL01,2019,6,30\nL13,2019,5,1\n"
    );
    assert_eq!(
        csv(
            &lake,
            &acme(),
            "SELECT count(*) AS n FROM auditobjectchangeevent WHERE year = 2019 AND month = 11"
        )
        .await,
        csv(
            &lake,
            &acme(),
            "SELECT count(*) AS n FROM auditobjectchangeevent \
             WHERE createddate >= TIMESTAMP '2019-11-01T00:00:00Z' \
             AND createddate < TIMESTAMP '2019-12-01T00:00:00Z'"
        )
        .await
    );
}
