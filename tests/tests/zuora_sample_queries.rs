//! Zuora's audit-trail sample queries through the Data Query API, end to
//! end (scheduler, RabbitMQ, worker, S3): every query of
//! `tests/fixtures/zuora/sample_queries/` (see its `README.md` for where
//! each comes from) completes over generated tables, and over rows ingested
//! here (`tests/fixtures/zuora/rows/`) gives the results worked out by hand
//! below — the docs' `year`/`month`/`day` columns, `createdbyid`,
//! `tokenid`, `sequencenumber` on logins, deleted rows hidden.

use std::path::{Path, PathBuf};
use std::time::Duration;

use auditx::client::ApiClient;
use auditx_lake::tables::generate::{generate_table, REFERENCED_ROWS};
use auditx_lake::tables::TABLES;
use auditx_proto::TenantId;
use auditx_tests::{Adapters, Sandbox, SandboxOptions};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

fn fixtures(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/zuora")
        .join(dir)
}

/// `(file name, query)` of every sample query, in file order.
fn sample_queries() -> Vec<(String, String)> {
    let mut queries: Vec<(String, String)> = std::fs::read_dir(fixtures("sample_queries"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().and_then(|e| e.to_str()) == Some("sql"))
        .map(|path| {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    queries.sort();
    queries
}

/// Ingests every `<table>.ndjson` of the rows fixtures for `tenant`.
async fn ingest_rows(sandbox: &Sandbox, tenant: &str) {
    let http = reqwest::Client::new();
    for entry in std::fs::read_dir(fixtures("rows")).unwrap() {
        let path = entry.unwrap().path();
        let table = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let response = http
            .post(format!("{}/audit/tables/{table}/rows", sandbox.api))
            .bearer_auth(sandbox.token(tenant))
            .header("content-type", "application/x-ndjson")
            .body(std::fs::read(&path).unwrap())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "ingest {table}: {status} {body}");
    }
}

/// Runs `sql` to its end; the finished job.
async fn run(client: &ApiClient, sql: &str) -> Value {
    let job = client.submit_query(sql, "CSV", "NONE").await.unwrap();
    assert_eq!(job["queryStatus"], "accepted", "{job}");
    client
        .wait_query(job["id"].as_str().unwrap(), WAIT)
        .await
        .unwrap()
}

/// Runs `sql`, asserts it completed and returns its CSV result.
async fn result(sandbox: &Sandbox, client: &ApiClient, name: &str, sql: &str) -> String {
    let job = run(client, sql).await;
    assert_eq!(job["queryStatus"], "completed", "{name}: {job}");
    let bytes = sandbox
        .download(job["dataFile"].as_str().expect("dataFile"))
        .await
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// What the queries give over the ingested rows, worked out by hand.
const EXPECTED: [(&str, &str); 11] = [
    (
        "01_login_history.sql",
        "Username,Type,Status,Timestamp,Browser,BrowserVersion,IPAddress\n\
         zconnect.api.9439@example.com,CLIENT_CREDENTIALS,Success,2022-10-31T22:30:00.000Z,RestBiz,0.0,54.187.61.166\n\
         audit-trail@example.com,PASSWORD,Success,2022-10-30T04:29:06.571Z,Chrome,77.0,67.180.238.89\n\
         audit-trail@example.com,PASSWORD,PasswordExpired,2022-10-17T03:29:43.207Z,Chrome,77.0,103.104.131.160\n\
         audit-trail@example.com,PASSWORD,Success,2022-10-05T12:00:00.000Z,Safari,16.0,67.180.238.89\n",
    ),
    (
        "03_user_management_setting_changes.sql",
        "UpdatedBy,Timestamp,Type,ObjectName,NewValue,OldValue,Namespace,Action,AttributeName\n\
         audittraile2e@example.com,2022-11-18T07:00:10.286Z,User,34084+user@zuora.com,,Administrator,UserManagement,REMOVED_FROM_COLLECTION,roles\n",
    ),
    (
        // The deleted Account change of November is hidden.
        "04_account_changes.sql",
        "Username,Action,ObjectType,ObjectName,Attribute,OldValue,NewValue,Timestamp,additional_info\n\
         jane.doe@example.com,UPDATED,Account,Stark Industries,BillToId,c-1,c-2,2022-11-02T08:10:00.000Z,Tony Stark -> Nick Fury\n",
    ),
    (
        "07_custom_object_changes.sql",
        "id,eventid,username,userid,action,objecttype,objectid,objectname,attributeid,namespace,\
         oldvalue,newvalue,timestamp,createddate,transactionid,sequencenumber,createdbyid,tokenid,\
         year,month,day\n\
         Z-O2,e-Z-O2,audit-trail@zuora.com,u-1,CREATED,CustomObjectRecord,rec-1,ATC,title,\
         com.zuora.custom.objects,,ATC,2022-11-04T21:56:19.025Z,2022-11-04T21:56:19.025Z,tx-o2,1,\
         u-1,tok-1,2022,11,4\n",
    ),
    (
        "08_contact_changes.sql",
        "Username,Action,ContactId,ContactName,Attribute,OldValue,NewValue,Timestamp\n\
         jane.doe@example.com,UPDATED,c-2,Nick Fury,WorkEmail,nick@example.com,fury@example.com,2022-11-02T08:20:00.000Z\n",
    ),
    (
        "10_failed_logins_per_user.sql",
        "Username,Failures,LastFailure\n\
         jane.doe@example.com,2,2022-11-20T09:00:00.000Z\n\
         audit-trail@example.com,1,2022-11-21T09:00:00.000Z\n",
    ),
    (
        "11_changes_by_login_session.sql",
        "Username,IPAddress,LoginTime,ObjectType,Action,ChangeTime\n\
         jane.doe@example.com,10.1.2.3,2022-11-02T08:00:00.000Z,Contact,UPDATED,2022-11-02T08:20:00.000Z\n\
         jane.doe@example.com,10.1.2.3,2022-11-02T08:00:00.000Z,Account,UPDATED,2022-11-02T08:10:00.000Z\n",
    ),
    (
        "12_logins_of_a_day.sql",
        "id,eventid,sequencenumber,createdbyid,userid,username,tokenid,logintype,status,browsertype,\
         browserversion,hostname,ipaddress,timestamp,createddate,year,month,day\n\
         Z-L3,e-Z-L3,3,u-2,u-2,jane.doe@example.com,tok-3,SSO,Success,FireFox,106.0,10.1.2.3,\
         10.1.2.3,2022-11-02T08:00:00.000Z,2022-11-02T08:00:00.000Z,2022,11,2\n\
         Z-L4,e-Z-L4,4,u-2,u-2,jane.doe@example.com,,PASSWORD,AuthFail,FireFox,106.0,10.1.2.3,\
         10.1.2.3,2022-11-02T07:59:00.000Z,2022-11-02T07:59:00.000Z,2022,11,2\n",
    ),
    (
        "15_payment_changes.sql",
        "Username,Action,ObjectType,ObjectId,Attribute,OldValue,NewValue,Timestamp\n\
         audit-trail@zuora.com,UPDATED,PaymentMethod,pm-1,ExpirationMonth,10,11,2022-11-09T10:00:00.000Z\n",
    ),
    (
        // Naming `deleted` reads deleted rows too (Zuora's Data Query).
        "16_deleted_contacts.sql",
        "id,firstname,lastname,deleted\nc-3,Old,Contact,true\n",
    ),
    (
        "17_changes_per_month.sql",
        "year,month,ObjectType,Changes\n\
         2022,10,Account,1\n\
         2022,11,Account,1\n\
         2022,11,Contact,1\n\
         2022,11,CustomObjectRecord,1\n\
         2022,11,PaymentMethod,1\n\
         2022,11,ProductRatePlan,1\n\
         2022,11,WorkflowVersion,1\n\
         2022,12,NotificationDefinition,1\n",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zuoras_sample_queries_run_over_ingested_and_generated_tables() {
    let sandbox = Sandbox::start(SandboxOptions {
        adapters: Adapters::Real,
        workers: 2,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let queries = sample_queries();
    assert_eq!(queries.len(), 17, "{queries:?}");

    // Rows of our own: every query completes, most with known results.
    ingest_rows(&sandbox, "zsamples").await;
    let client = sandbox.client("zsamples");
    let mut checked = 0;
    for (name, sql) in &queries {
        let got = result(&sandbox, &client, name, sql).await;
        if let Some((_, expected)) = EXPECTED.iter().find(|(n, _)| n == name) {
            assert_eq!(got, *expected, "{name}");
            checked += 1;
        } else {
            assert!(got.lines().count() >= 2, "{name}: no rows: {got}");
        }
    }
    assert_eq!(checked, EXPECTED.len());

    // Generated tables (2019 and 2020): every query completes; in the
    // generated years, the queries over every kind of row find some.
    let tenant = TenantId::from("zgen");
    for def in TABLES {
        let rows = REFERENCED_ROWS
            .iter()
            .find(|(name, _)| *name == def.name)
            .map_or(20_000, |(_, rows)| *rows);
        generate_table(
            &sandbox.backends.store,
            &sandbox.config.s3.lake_bucket,
            &tenant,
            def,
            rows,
            11,
            10_000,
        )
        .await
        .unwrap();
    }
    let client = sandbox.client("zgen");
    for (name, sql) in &queries {
        let in_2020 = sql.replace("2022", "2020");
        let got = result(&sandbox, &client, name, &in_2020).await;
        let broad = [
            "01_login_history.sql",
            "03_user_management_setting_changes.sql",
            "04_account_changes.sql",
            "13_setting_changes_all_columns.sql",
            "14_object_changes_all_columns.sql",
            "17_changes_per_month.sql",
        ];
        if broad.contains(&name.as_str()) {
            assert!(got.lines().count() > 2, "{name}: {got}");
        }
    }
    sandbox.stop().await.unwrap();
}
