//! The tenant audit tables as a client and a data query see them: what a
//! batch may contain, the message a bad batch gets, the Parquet file an
//! accepted batch becomes, idempotent retries, and generated data.

mod support;

use std::io::Write;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMillisecondType};
use auditx_common::config::S3Config;
use auditx_common::s3::ObjectStore;
use auditx_common::state::MemoryStore;
use auditx_lake::batch::{decode_body, IngestError, IngestSummary};
use auditx_lake::tables::generate::{generate_table, table_rows};
use auditx_lake::tables::ingest::{ingest_table_rows, parse_table_rows};
use auditx_lake::tables::{table, Cell, ColumnType, RowOwner, TableDef, TABLES};
use auditx_proto::TenantId;
use flate2::write::GzEncoder;
use flate2::Compression;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Value};
use support::{lake, tenant, Lake};

const ROW_GROUP_ROWS: usize = 1_000;

fn def(name: &str) -> &'static TableDef {
    table(name).unwrap()
}

fn login(id: &str, extra: Value) -> Value {
    let mut row = json!({
        "id": id,
        "username": "audit-trail@example.com",
        "logintype": "PASSWORD",
        "status": "Success",
        "timestamp": "2019-06-30T04:29:06.571Z",
        "createddate": "2019-06-30T04:29:06.571Z",
    });
    row.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    row
}

fn setting(id: &str, extra: Value) -> Value {
    let mut row = json!({
        "id": id,
        "username": "audittraile2e@example.com",
        "action": "UPDATED",
        "settingtype": "Role",
        "timestamp": "2019-11-18T07:00:10.286Z",
        "sequencenumber": 1,
    });
    row.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    row
}

fn array(rows: &[Value]) -> Vec<u8> {
    serde_json::to_vec(rows).unwrap()
}

fn ndjson(rows: &[Value]) -> Vec<u8> {
    rows.iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n\n")
        .into_bytes()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The message a client gets for a batch of `table` with `bad` as row 1.
fn rejection(table: &str, bad: Value) -> String {
    let good = match table {
        "auditloginevent" => login("ok", json!({})),
        _ => setting("ok", json!({})),
    };
    let err = parse_table_rows(def(table), &array(&[good, bad])).unwrap_err();
    assert!(
        matches!(err, IngestError::InvalidRow { row: 1, .. }),
        "{err:?}"
    );
    err.to_string()
}

#[test]
fn a_bad_row_is_reported_by_row_and_column() {
    let columns: Vec<&str> = def("auditloginevent")
        .columns
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        rejection(
            "auditloginevent",
            login("a", json!({ "browser": "Chrome" }))
        ),
        format!(
            "row 1: browser: unknown column of auditloginevent; expected one of {}",
            columns.join(", ")
        )
    );
    assert_eq!(
        rejection("auditloginevent", login("a", json!({ "UserName": "x" }))),
        "row 1: UserName: unknown column; column names are lowercase (username)"
    );
    assert_eq!(
        rejection(
            "auditloginevent",
            login("a", json!({ "browserversion": 77.0 }))
        ),
        "row 1: browserversion: expected a string, found 77.0"
    );
    assert_eq!(
        rejection("auditloginevent", login("a", json!({ "status": true }))),
        "row 1: status: expected a string, found true"
    );
    for (value, shown) in [(json!(1.5), "1.5"), (json!("3"), "\"3\"")] {
        assert_eq!(
            rejection(
                "auditsettingchangeevent",
                setting("a", json!({ "sequencenumber": value }))
            ),
            format!("row 1: sequencenumber: expected an integer, found {shown}")
        );
    }
    // JSON Schema's "integer" includes 2.0: a whole-number float is that integer.
    let whole = setting("a", json!({ "sequencenumber": 2.0 }));
    let batch = parse_table_rows(def("auditsettingchangeevent"), &array(&[whole])).unwrap();
    let column = def("auditsettingchangeevent")
        .columns
        .iter()
        .position(|(n, _)| *n == "sequencenumber")
        .unwrap();
    assert_eq!(batch.rows()[0][column], Cell::Int(2));
    assert_eq!(
        rejection(
            "auditsettingchangeevent",
            setting(
                "a",
                json!({ "sequencenumber": 18_446_744_073_709_551_615_u64 })
            )
        ),
        "row 1: sequencenumber: 18446744073709551615 is out of the 64-bit integer range"
    );
    assert_eq!(
        rejection(
            "auditloginevent",
            login("a", json!({ "timestamp": "2019-06-30T04:29:06.571" }))
        ),
        "row 1: timestamp: \"2019-06-30T04:29:06.571\" has no zone; add Z or an offset such as +02:00"
    );
    assert_eq!(
        rejection(
            "auditloginevent",
            login("a", json!({ "createddate": "yesterday" }))
        ),
        "row 1: createddate: \"yesterday\" is not an ISO-8601 time with zone"
    );
    assert_eq!(
        rejection(
            "auditloginevent",
            login("a", json!({ "createddate": 1_561_868_946_571_i64 }))
        ),
        "row 1: createddate: expected an ISO-8601 time with zone (a string), found 1561868946571"
    );
    assert_eq!(
        rejection("auditloginevent", login("a", json!({ "month": 13 }))),
        "row 1: month: 13 is not a valid month (1 to 12)"
    );
    assert_eq!(
        rejection("auditloginevent", login("a", json!({ "year": "2019" }))),
        "row 1: year: expected an integer, found \"2019\""
    );
    assert_eq!(
        rejection(
            "auditloginevent",
            login("a", json!({ "day": 4_294_967_296_i64 }))
        ),
        "row 1: day: 4294967296 is out of the 32-bit integer range"
    );
    assert_eq!(
        rejection("auditloginevent", login("a", json!({ "deleted": "no" }))),
        "row 1: deleted: expected true or false, found \"no\""
    );
}

#[test]
fn date_parts_are_derived_from_createddate_unless_given() {
    let def = def("auditloginevent");
    let rows = [
        // 2019-06-30T23:30:00-02:00 is July 1st in UTC.
        login("a", json!({ "createddate": "2019-06-30T23:30:00-02:00" })),
        login("b", json!({ "year": 2020, "day": 2 })),
        login("c", json!({ "createddate": null })),
        // Nothing to derive from: what is given, NULL for the rest.
        login(
            "d",
            json!({ "createddate": null, "timestamp": null, "year": 2019 }),
        ),
    ];
    let batch = parse_table_rows(def, &array(&rows)).unwrap();
    let parts = |row: &[Cell]| -> Vec<Cell> {
        ["year", "month", "day"]
            .iter()
            .map(|c| row[def.index(c).unwrap()].clone())
            .collect()
    };
    let int = |n| Cell::Int(n);
    assert_eq!(parts(&batch.rows()[0]), [int(2019), int(7), int(1)]);
    assert_eq!(parts(&batch.rows()[1]), [int(2020), int(6), int(2)]);
    assert_eq!(parts(&batch.rows()[2]), [int(2019), int(6), int(30)]);
    assert_eq!(parts(&batch.rows()[3]), [int(2019), Cell::Null, Cell::Null]);
}

#[test]
fn every_row_needs_a_non_empty_string_id() {
    let mut missing = login("a", json!({}));
    missing.as_object_mut().unwrap().remove("id");
    assert_eq!(
        rejection("auditloginevent", missing),
        "row 1: id: is required"
    );
    assert_eq!(
        rejection("auditloginevent", login("a", json!({ "id": null }))),
        "row 1: id: is required"
    );
    assert_eq!(
        rejection("auditloginevent", login("", json!({}))),
        "row 1: id: must not be empty"
    );
    assert_eq!(
        rejection("auditloginevent", login("a", json!({ "id": 7 }))),
        "row 1: id: expected a string, found 7"
    );
}

#[test]
fn bodies_that_are_not_json_objects_are_malformed() {
    let def = def("auditloginevent");
    let err = parse_table_rows(def, b"{\"id\":\"a\"}\n{oops").unwrap_err();
    assert!(err.to_string().starts_with("row 1: invalid JSON:"), "{err}");
    let err = parse_table_rows(def, b"[{\"id\":\"a\"}, 3]").unwrap_err();
    assert_eq!(err.to_string(), "row 1: expected a JSON object, found 3");
    let err = parse_table_rows(def, b"[{\"id\":\"a\"}").unwrap_err();
    assert!(matches!(err, IngestError::Malformed(_)), "{err:?}");
}

#[test]
fn arrays_ndjson_and_gzip_read_the_same() {
    let def = def("auditsettingchangeevent");
    let rows = [
        setting(
            "s1",
            json!({ "timestamp": "2019-11-18T09:00:10.286+02:00" }),
        ),
        setting("s2", json!({ "oldvalue": "", "newvalue": null })),
    ];
    let from_array = parse_table_rows(def, &array(&rows)).unwrap();
    let from_ndjson = parse_table_rows(def, &ndjson(&rows)).unwrap();
    let gzipped = gzip(&ndjson(&rows));
    let inflated = decode_body(&gzipped, true, 1 << 20).unwrap();
    let from_gzip = parse_table_rows(def, &inflated).unwrap();
    assert_eq!(from_array.rows(), from_ndjson.rows());
    assert_eq!(from_array.rows(), from_gzip.rows());
    assert_eq!(from_array.len(), 2);
    let column = |name: &str| def.columns.iter().position(|(n, _)| *n == name).unwrap();
    let first = &from_array.rows()[0];
    // The zone is applied: 09:00+02:00 is 07:00Z.
    assert_eq!(first[column("timestamp")], Cell::Time(1_574_060_410_286));
    assert_eq!(first[column("sequencenumber")], Cell::Int(1));
    assert_eq!(first[column("namespace")], Cell::Null);
    let second = &from_array.rows()[1];
    // An empty string stays a string: the seed's queries tell '' from NULL.
    assert_eq!(second[column("oldvalue")], Cell::Text(String::new()));
    assert_eq!(second[column("newvalue")], Cell::Null);
    assert!(parse_table_rows(def, b"").unwrap().is_empty());
    assert!(parse_table_rows(def, b" [ ] ").unwrap().is_empty());
}

/// Every row of every file under `prefix`, as cells, file by file in key
/// order, rows in file order; and the number of row groups.
async fn read_table(lake: &Lake, def: &TableDef, prefix: &str) -> (Vec<Vec<Cell>>, usize) {
    let mut rows = Vec::new();
    let mut groups = 0;
    for key in lake.keys(prefix).await {
        let bytes = lake.store.get(lake.bucket, &key).await.unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        assert_eq!(reader.schema(), &def.stored_schema(), "{key}");
        groups += reader.metadata().num_row_groups();
        for batch in reader.build().unwrap() {
            rows.extend(cells(def, &batch.unwrap()));
        }
    }
    (rows, groups)
}

fn cells(def: &TableDef, batch: &RecordBatch) -> Vec<Vec<Cell>> {
    (0..batch.num_rows())
        .map(|i| {
            def.columns
                .iter()
                .enumerate()
                .map(|(c, (_, ty))| {
                    let column = batch.column(c);
                    if column.is_null(i) {
                        return Cell::Null;
                    }
                    match ty {
                        ColumnType::Text => Cell::Text(column.as_string::<i32>().value(i).into()),
                        ColumnType::Timestamp => {
                            Cell::Time(column.as_primitive::<TimestampMillisecondType>().value(i))
                        }
                        ColumnType::Integer => {
                            Cell::Int(column.as_primitive::<Int64Type>().value(i))
                        }
                        ColumnType::Int32 => {
                            Cell::Int(column.as_primitive::<Int32Type>().value(i).into())
                        }
                        ColumnType::Boolean => Cell::Bool(column.as_boolean().value(i)),
                    }
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn an_ingested_batch_is_one_parquet_file_of_the_table_schema() {
    let lake = lake().await;
    let state = MemoryStore::new();
    let def = def("auditsettingchangeevent");
    let rows = [
        setting(
            "s1",
            json!({
                "eventid": "e-1", "userid": "u-1", "settingobjectname": "34084+user@zuora.com",
                "namespace": "UserManagement", "attributename": "roles",
                "oldvalue": "Administrator", "newvalue": null,
                "action": "REMOVED_FROM_COLLECTION", "settingtype": "User",
                "timestamp": "2019-11-18T09:00:10.286+02:00",
                "createddate": "2019-11-18T07:00:10.286Z",
                "transactionid": "tu-01", "sequencenumber": 2,
                "attributeid": "roles", "createdbyid": "u-1", "tokenid": "t-1",
                "deleted": false,
            }),
        ),
        // No createddate: year, month and day come from the timestamp.
        setting(
            "s2",
            json!({ "oldvalue": "", "sequencenumber": null, "deleted": null }),
        ),
    ];
    let batch = parse_table_rows(def, &array(&rows)).unwrap();
    let summary = ingest_table_rows(
        &lake.store,
        &state,
        lake.bucket,
        &tenant(),
        &RowOwner::default(),
        batch,
        ROW_GROUP_ROWS,
    )
    .await
    .unwrap();
    assert_eq!(
        summary,
        IngestSummary {
            received: 2,
            accepted: 2,
            duplicates: 0
        }
    );

    let keys = lake.keys("auditsettingchangeevent/").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let name = keys[0]
        .strip_prefix("auditsettingchangeevent/tenant=acme/year=2019/month=11/")
        .and_then(|k| k.strip_suffix(".parquet"))
        .unwrap_or_else(|| panic!("{}", keys[0]));
    assert!(
        name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );

    let (read, groups) = read_table(&lake, def, &def.tenant_prefix(&tenant())).await;
    assert_eq!(groups, 1);
    let text = |s: &str| Cell::Text(s.into());
    let time = Cell::Time(1_574_060_410_286); // 2019-11-18T07:00:10.286Z
    #[rustfmt::skip]
    let expected = vec![
        vec![
            text("s1"), text("e-1"), text("audittraile2e@example.com"), text("u-1"),
            text("REMOVED_FROM_COLLECTION"), text("User"), text("roles"),
            text("34084+user@zuora.com"), text("UserManagement"), text("Administrator"),
            Cell::Null, time.clone(), time.clone(), text("tu-01"), Cell::Int(2),
            text("roles"), text("u-1"), text("t-1"), Cell::Int(2019), Cell::Int(11),
            Cell::Int(18), Cell::Bool(false),
        ],
        vec![
            text("s2"), Cell::Null, text("audittraile2e@example.com"), Cell::Null,
            text("UPDATED"), text("Role"), Cell::Null, Cell::Null, Cell::Null, text(""),
            Cell::Null, time, Cell::Null, Cell::Null, Cell::Null,
            Cell::Null, Cell::Null, Cell::Null, Cell::Int(2019), Cell::Int(11),
            Cell::Int(18), Cell::Null,
        ],
    ];
    assert_eq!(read, expected);
}

#[tokio::test]
async fn ids_are_ingested_once_per_tenant_and_table() {
    let lake = lake().await;
    let state = MemoryStore::new();
    let def = def("auditloginevent");
    let ingest = |tenant: TenantId, rows: Vec<Value>| {
        let (lake, state) = (&lake, &state);
        async move {
            let batch = parse_table_rows(def, &ndjson(&rows)).unwrap();
            ingest_table_rows(
                &lake.store,
                state,
                lake.bucket,
                &tenant,
                &RowOwner::default(),
                batch,
                ROW_GROUP_ROWS,
            )
            .await
            .unwrap()
        }
    };
    let counts = |received, accepted, duplicates| IngestSummary {
        received,
        accepted,
        duplicates,
    };
    let batch = vec![
        login("l1", json!({})),
        login("l2", json!({})),
        login("l1", json!({ "status": "AuthFail" })),
    ];
    // The repeat inside the batch is dropped; the first row is kept.
    assert_eq!(ingest(tenant(), batch.clone()).await, counts(3, 2, 1));
    let prefix = def.tenant_prefix(&tenant());
    let first_keys = lake.keys(&prefix).await;
    assert_eq!(first_keys.len(), 1);

    // A retry writes nothing new.
    assert_eq!(ingest(tenant(), batch).await, counts(3, 0, 3));
    assert_eq!(lake.keys(&prefix).await, first_keys);

    let more = vec![login("l2", json!({})), login("l3", json!({}))];
    assert_eq!(ingest(tenant(), more).await, counts(2, 1, 1));
    let (rows, _) = read_table(&lake, def, &prefix).await;
    let mut ids: Vec<&Cell> = rows.iter().map(|r| &r[0]).collect();
    ids.sort_by_key(|c| format!("{c:?}"));
    let text = |s: &str| Cell::Text(s.into());
    assert_eq!(ids, [&text("l1"), &text("l2"), &text("l3")]);
    let status = def
        .columns
        .iter()
        .position(|(n, _)| *n == "status")
        .unwrap();
    assert!(rows.iter().all(|r| r[status] == text("Success")));

    // Another tenant, and another table, have ids of their own.
    let globex = TenantId::from("globex");
    assert_eq!(
        ingest(globex.clone(), vec![login("l1", json!({}))]).await,
        counts(1, 1, 0)
    );
    assert_eq!(lake.keys(&def.tenant_prefix(&globex)).await.len(), 1);
    let contact = table("contact").unwrap();
    let batch = parse_table_rows(contact, br#"{"id":"l1","firstname":"John"}"#).unwrap();
    let summary = ingest_table_rows(
        &lake.store,
        &state,
        lake.bucket,
        &tenant(),
        &RowOwner::default(),
        batch,
        10,
    )
    .await
    .unwrap();
    assert_eq!(summary, counts(1, 1, 0));
}

#[tokio::test]
async fn ids_of_a_failed_write_are_not_recorded_so_a_retry_writes_them() {
    let lake = lake().await;
    let state = MemoryStore::new();
    let def = def("auditloginevent");
    let body = ndjson(&[login("l1", json!({})), login("l2", json!({}))]);
    let batch = || parse_table_rows(def, &body).unwrap();
    let acme = tenant();
    // A store whose writes fail: nothing listens on port 1.
    let unreachable = ObjectStore::new(&S3Config {
        endpoint: Some("http://127.0.0.1:1".into()),
        access_key_id: "k".into(),
        secret_access_key: "s".into(),
        force_path_style: true,
        ..S3Config::default()
    });
    let err = ingest_table_rows(
        &unreachable,
        &state,
        lake.bucket,
        &acme,
        &RowOwner::default(),
        batch(),
        10,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, IngestError::Lake(_)), "{err:?}");
    let owner = RowOwner::default();
    let retry = ingest_table_rows(&lake.store, &state, lake.bucket, &acme, &owner, batch(), 10);
    let summary = tokio::time::timeout(std::time::Duration::from_secs(5), retry)
        .await
        .expect("the failed ingest released its lease")
        .unwrap();
    assert_eq!(summary.accepted, 2);
    assert_eq!(lake.keys(&def.tenant_prefix(&acme)).await.len(), 1);
}

#[tokio::test]
async fn a_rejected_batch_writes_nothing() {
    let lake = lake().await;
    let def = def("auditloginevent");
    let body = ndjson(&[login("l1", json!({})), login("l2", json!({ "status": 1 }))]);
    let err = parse_table_rows(def, &body).unwrap_err();
    assert_eq!(err.to_string(), "row 1: status: expected a string, found 1");
    assert!(lake.keys("").await.is_empty());
}

#[tokio::test]
async fn generated_tables_are_deterministic_and_have_the_rows_asked_for() {
    let lake = lake().await;
    let acme = tenant();
    let def = def("auditobjectchangeevent");
    let generate =
        |seed: u64| generate_table(&lake.store, lake.bucket, &acme, def, 2_500, seed, 1_000);
    assert_eq!(generate(7).await.unwrap(), 2_500);
    let prefix = def.tenant_prefix(&acme);
    let keys = lake.keys(&prefix).await;
    // Rows over 2019 and 2020: a file a month, in its year=/month= directory.
    assert_eq!(keys.len(), 24, "{keys:?}");
    let january = def.partition_prefix(&acme, 2019, 1);
    assert_eq!(
        january,
        "auditobjectchangeevent/tenant=acme/year=2019/month=1/"
    );
    assert_eq!(lake.keys(&january).await.len(), 1);
    assert_eq!(
        lake.keys(&def.partition_prefix(&acme, 2020, 12))
            .await
            .len(),
        1
    );
    let (mut rows, groups) = read_table(&lake, def, &prefix).await;
    assert_eq!(groups, 24);
    let by_id = |r: &Vec<Cell>| format!("{:?}", r[0]);
    rows.sort_by_key(by_id);
    let mut expected: Vec<Vec<Cell>> = table_rows(def, 2_500, 7).collect();
    expected.sort_by_key(by_id);
    assert_eq!(rows, expected);

    // The same seed writes the same files again; another seed adds some.
    assert_eq!(generate(7).await.unwrap(), 2_500);
    assert_eq!(lake.keys(&prefix).await, keys);
    assert_eq!(generate(8).await.unwrap(), 2_500);
    assert_eq!(lake.keys(&prefix).await.len(), 48);

    // What the seed's queries filter on is there.
    let column = |name: &str| def.columns.iter().position(|(n, _)| *n == name).unwrap();
    let values = |name: &str| -> Vec<String> {
        let mut values: Vec<String> = expected
            .iter()
            .filter_map(|r| match &r[column(name)] {
                Cell::Text(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        values.sort();
        values.dedup();
        values
    };
    assert_eq!(
        values("objecttype"),
        [
            "Account",
            "ProductRatePlan",
            "ProductRatePlanCharge",
            "ProductRatePlanChargeTier",
            "WorkflowVersion"
        ]
    );
    assert_eq!(values("action"), ["CREATED", "DELETED", "UPDATED"]);
    assert!(values("namespace").contains(&"Workflow".to_owned()));
    let id = match &expected[0][0] {
        Cell::Text(id) => id.clone(),
        other => panic!("{other:?}"),
    };
    assert!(id.starts_with("gen-") && id.len() == 36, "{id}");
}

#[test]
fn generated_rows_fill_every_column() {
    for def in TABLES {
        let rows: Vec<Vec<Cell>> = table_rows(def, 2_000, 5).collect();
        for (i, (name, _)) in def.columns.iter().enumerate() {
            assert!(
                rows.iter().any(|r| r[i] != Cell::Null),
                "{}.{name} is never filled",
                def.name
            );
        }
    }
    // Logins have every column in every row, the creation's date parts and
    // values of the docs' value sets.
    let login = table("auditloginevent").unwrap();
    let column = |name: &str| login.index(name).unwrap();
    for (n, row) in table_rows(login, 2_000, 5).enumerate() {
        assert!(row.iter().all(|c| *c != Cell::Null), "{row:?}");
        let Cell::Time(created) = row[column("createddate")] else {
            panic!("{row:?}")
        };
        let date = chrono::DateTime::from_timestamp_millis(created).unwrap();
        use chrono::Datelike;
        let parts = [date.year(), date.month() as i32, date.day() as i32];
        for (part, value) in ["year", "month", "day"].iter().zip(parts) {
            assert_eq!(row[column(part)], Cell::Int(value.into()), "{part}");
        }
        assert_eq!(row[column("createdbyid")], row[column("userid")]);
        assert_eq!(row[column("sequencenumber")], Cell::Int(n as i64 + 1));
        assert_eq!(row[column("deleted")], Cell::Bool(false));
        let Cell::Text(status) = &row[column("status")] else {
            panic!("{row:?}")
        };
        assert!(["Success", "AuthFail", "PasswordExpired"].contains(&status.as_str()));
        let Cell::Text(kind) = &row[column("logintype")] else {
            panic!("{row:?}")
        };
        assert!(
            ["CLIENT_CREDENTIALS", "SSO", "PASSWORD", "SWITCH_ENTITY_UI"].contains(&kind.as_str())
        );
    }
}

#[test]
fn generated_events_refer_to_generated_reference_rows() {
    let seed = 3;
    let ids = |name: &str, rows: u64| -> std::collections::HashSet<String> {
        table_rows(table(name).unwrap(), rows, seed)
            .map(|r| match &r[0] {
                Cell::Text(id) => id.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let contacts = ids("contact", 2_000);
    let plans = ids("productrateplan", 300);
    let def = table("auditobjectchangeevent").unwrap();
    let column = |name: &str| def.columns.iter().position(|(n, _)| *n == name).unwrap();
    let (mut bill_to, mut plan_events) = (0, 0);
    for row in table_rows(def, 5_000, seed) {
        let text = |name: &str| match &row[column(name)] {
            Cell::Text(s) => s.clone(),
            _ => String::new(),
        };
        if text("attributeid") == "BillToId" {
            bill_to += 1;
            assert!(contacts.contains(&text("newvalue")), "{row:?}");
        }
        if text("objecttype") == "ProductRatePlan" {
            plan_events += 1;
            assert!(plans.contains(&text("objectid")), "{row:?}");
        }
    }
    assert!(bill_to > 0 && plan_events > 0);
    // And every table generates: login events use the seed's value sets.
    for def in TABLES {
        assert_eq!(table_rows(def, 10, seed).count(), 10, "{}", def.name);
    }
    let login = table("auditloginevent").unwrap();
    let browser = login
        .columns
        .iter()
        .position(|(n, _)| *n == "browsertype")
        .unwrap();
    let browsers: std::collections::HashSet<Cell> = table_rows(login, 1_000, seed)
        .map(|r| r[browser].clone())
        .collect();
    assert!(browsers.contains(&Cell::Text("Chrome".into())));
    assert!(browsers.contains(&Cell::Text("RestBiz".into())));
}
