//! Row types and Arrow schemas of the lake tables.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Every status a meter run can have (`meter_runs.status`).
pub const RUN_STATUSES: [&str; 13] = [
    "NEVER_RUN",
    "TESTING",
    "TESTING_FAILED",
    "TESTING_PASSED",
    "RUNNING",
    "PAUSED",
    "COMPLETED",
    "FAILED",
    "CANCELED",
    "INITIALIZING",
    "USAGE_PUSHING",
    "PUSH_COMPLETED",
    "CONSUME_COMPLETED",
];

/// One row of `meter_audit_trail`: a record a meter's operator emitted in a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    pub tenant: String,
    pub entity: Option<String>,
    pub org: Option<String>,
    pub meter_id: i64,
    /// The run id, e.g. `R-00002283`.
    pub session_id: String,
    /// `NORMAL` or `DEBUG`.
    pub run_type: String,
    /// `SAMPLE` or `ERROR`.
    pub record_type: String,
    pub operator_id: Option<String>,
    pub operator_type: Option<String>,
    pub operator_name: Option<String>,
    /// Unique per meter.
    pub event_id: String,
    pub trace_id: Option<String>,
    /// Epoch milliseconds, UTC.
    pub event_time_ms: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Compact JSON text of the payload object.
    pub payload: Option<String>,
}

/// One row of `meter_runs`: a status change of a run. A run's status is its
/// latest row (by `updated_at_ms`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRow {
    pub tenant: String,
    pub meter_id: i64,
    pub session_id: String,
    pub run_type: String,
    pub status: String,
    pub updated_at_ms: i64,
}

/// Column names of `meter_audit_trail`, in schema order.
pub mod audit_columns {
    pub const TENANT: &str = "tenant";
    pub const ENTITY: &str = "entity";
    pub const ORG: &str = "org";
    pub const METER_ID: &str = "meterId";
    pub const SESSION_ID: &str = "sessionId";
    pub const RUN_TYPE: &str = "runType";
    pub const RECORD_TYPE: &str = "recordType";
    pub const OPERATOR_ID: &str = "operatorId";
    pub const OPERATOR_TYPE: &str = "operatorType";
    pub const OPERATOR_NAME: &str = "operatorName";
    pub const EVENT_ID: &str = "eventId";
    pub const TRACE_ID: &str = "traceId";
    pub const EVENT_TIME: &str = "eventTime";
    pub const ERROR_CODE: &str = "errorCode";
    pub const ERROR_MESSAGE: &str = "errorMessage";
    pub const PAYLOAD: &str = "payload";
}

/// Column names of `meter_runs`.
pub mod run_columns {
    pub const TENANT: &str = "tenant";
    pub const METER_ID: &str = "meterId";
    pub const SESSION_ID: &str = "sessionId";
    pub const RUN_TYPE: &str = "runType";
    pub const STATUS: &str = "status";
    pub const UPDATED_AT: &str = "updatedAt";
}

fn utc_millis() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Arrow schema of `meter_audit_trail`.
pub fn audit_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            use audit_columns::*;
            let utf8 = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
            Arc::new(Schema::new(vec![
                utf8(TENANT, false),
                utf8(ENTITY, true),
                utf8(ORG, true),
                Field::new(METER_ID, DataType::Int64, false),
                utf8(SESSION_ID, false),
                utf8(RUN_TYPE, false),
                utf8(RECORD_TYPE, false),
                utf8(OPERATOR_ID, true),
                utf8(OPERATOR_TYPE, true),
                utf8(OPERATOR_NAME, true),
                utf8(EVENT_ID, false),
                utf8(TRACE_ID, true),
                Field::new(EVENT_TIME, utc_millis(), false),
                utf8(ERROR_CODE, true),
                utf8(ERROR_MESSAGE, true),
                utf8(PAYLOAD, true),
            ]))
        })
        .clone()
}

/// Arrow schema of `meter_runs`.
pub fn runs_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            use run_columns::*;
            Arc::new(Schema::new(vec![
                Field::new(TENANT, DataType::Utf8, false),
                Field::new(METER_ID, DataType::Int64, false),
                Field::new(SESSION_ID, DataType::Utf8, false),
                Field::new(RUN_TYPE, DataType::Utf8, false),
                Field::new(STATUS, DataType::Utf8, false),
                Field::new(UPDATED_AT, utc_millis(), false),
            ]))
        })
        .clone()
}
