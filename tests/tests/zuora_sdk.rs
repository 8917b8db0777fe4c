//! Zuora's official Python SDK (`zuora-sdk` 3.21 from PyPI, in the
//! virtualenv `scripts/zuora-sdk-venv.sh` makes) drives Data Query on a
//! real `auditx standalone`: submit (the SDK always sends `output` and
//! `readDeleted`), get, list with a status filter, cancel (the SDK's
//! `delete_data_query_job`, with the id in its 64-character form), download,
//! a DSV result in a ZIP, and two errors — every response parsed by the SDK's
//! own models (`tests/python/zuora_sdk_data_query.py`).

use std::path::Path;
use std::process::Stdio;

use auditx_tests::processes::run_auditx;
use auditx_tests::Fleet;
use serde_json::{json, Value};
use tokio::process::Command;

const CHEAP_SQL: &str =
    "SELECT username, status FROM auditloginevent WHERE sequencenumber < 3 ORDER BY sequencenumber";
/// A billion joined rows: still running when it is cancelled (a max
/// over computed values, which no statistic answers).
const SLOW_SQL: &str = "SELECT max(concat(a.id, b.id, c.id)) AS m \
    FROM auditloginevent a CROSS JOIN auditloginevent b CROSS JOIN auditloginevent c";

/// The SDK's python (the script makes the virtualenv when missing).
async fn sdk_python(root: &Path) -> String {
    let output = Command::new(root.join("scripts/zuora-sdk-venv.sh"))
        .stderr(Stdio::inherit())
        .output()
        .await
        .expect("scripts/zuora-sdk-venv.sh");
    assert!(output.status.success(), "scripts/zuora-sdk-venv.sh failed");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zuoras_python_sdk_drives_data_query() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = sdk_python(&root).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let server = Fleet::standalone(data).start().await;
    let token = run_auditx(&["token", "--data-dir", data, "--tenant", "acme"]).await;
    let token = token.trim();
    let base = server.api.clone();

    let rows: Vec<Value> = (1..=1000)
        .map(|n| {
            json!({"id": format!("login-{n:05}"), "username": format!("user{n}"),
                   "status": if n % 2 == 0 { "Failed" } else { "Success" },
                   "sequencenumber": n, "timestamp": "2025-07-01T00:00:00Z",
                   "createddate": "2025-07-01T00:00:00Z"})
        })
        .collect();
    let ingested = reqwest::Client::new()
        .post(format!("{base}/audit/tables/auditloginevent/rows"))
        .bearer_auth(token)
        .json(&rows)
        .send()
        .await
        .unwrap();
    assert!(ingested.status().is_success(), "{}", ingested.status());

    let output = Command::new(&python)
        .arg(root.join("tests/python/zuora_sdk_data_query.py"))
        .args([&base, token])
        .env("CHEAP_SQL", CHEAP_SQL)
        .env("SLOW_SQL", SLOW_SQL)
        .env_remove("PYTHONPATH")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_str(stdout.trim()).expect("the script's JSON");
    assert_eq!(read["sdk"], "3.21.0");
    assert_eq!(
        read["csv"], "username,status\nuser1,Success\nuser2,Failed\n",
        "{read}"
    );
    assert_eq!(read["outputRows"], 2);
    assert_eq!(
        read["dsvInZip"],
        "username|status\nuser1|Success\nuser2|Failed\n"
    );
    assert_eq!(read["completed"].as_array().unwrap().len(), 2, "{read}");
    assert_eq!(read["cancelStatus"], "cancelled");
    assert_eq!(read["cancelledId"], read["slow"]);
    assert_eq!(read["cancelled"], json!([read["slow"].clone()]));
    assert_eq!(read["cancelAgain"]["status"], 400);
    assert_eq!(read["cancelAgain"]["code"], 400);
    assert!(
        read["cancelAgain"]["message"]
            .as_str()
            .unwrap()
            .contains("is already cancelled"),
        "{read}"
    );
    assert_eq!(read["cancelAgainById"], read["cancelAgain"]);
    assert_eq!(
        read["missing"],
        json!({"status": 404, "code": 404,
               "message": "query job \"00000000-0000-0000-0000-000000000000\" not found"})
    );
}
