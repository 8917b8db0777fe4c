//! Validating ingest batches as they are read (see [`super::stream`]).
//! Every message names the 0-based row and the JSON field, so a client can
//! fix its batch without guessing.

use auditx_common::time::parse_iso_time;
use chrono::DateTime;
use serde_json::value::RawValue;
use serde_json::Value;

use super::IngestContext;
use crate::batch::json::{compact, shown_raw};
use crate::batch::stream::{for_each_object, Fields, RawRow};
use crate::batch::IngestError;
use crate::{AuditRow, RunRow, RUN_STATUSES};

const AUDIT_FIELDS: [&str; 12] = [
    "eventId",
    "eventTime",
    "sessionId",
    "runType",
    "recordType",
    "operatorId",
    "operatorType",
    "operatorName",
    "errorCode",
    "errorMessage",
    "traceId",
    "payload",
];
const RUN_FIELDS: [&str; 4] = ["sessionId", "runType", "status", "updatedAt"];
const RUN_TYPES: [&str; 2] = ["NORMAL", "DEBUG"];
const RECORD_TYPES: [&str; 2] = ["SAMPLE", "ERROR"];

/// Validation of one row's fields, producing [`IngestError::InvalidRow`]s.
/// Scalar fields are parsed from their (small) raw text; a compound value
/// where a scalar belongs is refused without being parsed at all.
struct Row<'r, 'a>(&'r RawRow<'a>);

/// A scalar's value; `None` for an object or array.
fn scalar(raw: &RawValue) -> Option<Value> {
    match raw.get().as_bytes().first() {
        Some(b'{' | b'[') | None => None,
        Some(_) => serde_json::from_str(raw.get()).ok(),
    }
}

impl Row<'_, '_> {
    fn required(&self, field: &str) -> Result<&RawValue, IngestError> {
        self.0
            .get(field)
            .ok_or_else(|| self.0.invalid(field, "is required"))
    }

    fn not_a_string(&self, field: &str, raw: &RawValue) -> IngestError {
        self.0.invalid(
            field,
            format!("expected a string, found {}", shown_raw(raw.get())),
        )
    }

    /// An optional string; empty counts as absent, as it renders the same.
    fn optional_string(&self, field: &str) -> Result<Option<String>, IngestError> {
        let Some(raw) = self.0.get(field) else {
            return Ok(None);
        };
        match scalar(raw) {
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            _ => Err(self.not_a_string(field, raw)),
        }
    }

    fn required_string(&self, field: &str) -> Result<String, IngestError> {
        let raw = self.required(field)?;
        match scalar(raw) {
            Some(Value::String(s)) if s.is_empty() => {
                Err(self.0.invalid(field, "must not be empty"))
            }
            Some(Value::String(s)) => Ok(s),
            _ => Err(self.not_a_string(field, raw)),
        }
    }

    fn one_of(&self, field: &str, allowed: &[&str]) -> Result<String, IngestError> {
        let raw = self.required(field)?;
        match scalar(raw) {
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(s),
            _ => Err(self.0.invalid(
                field,
                format!(
                    "{} is not one of {}",
                    shown_raw(raw.get()),
                    allowed.join(", ")
                ),
            )),
        }
    }

    /// ISO-8601 with a zone, extended or basic form
    /// ([`auditx_common::time::parse_iso_time`]), or epoch milliseconds.
    fn time_ms(&self, field: &str) -> Result<i64, IngestError> {
        let raw = self.required(field)?;
        let parsed = match scalar(raw) {
            Some(Value::Number(n)) => crate::batch::json::whole_number(&n)
                .filter(|&ms| DateTime::from_timestamp_millis(ms).is_some()),
            Some(Value::String(s)) => parse_iso_time(&s).ok().map(|t| t.timestamp_millis()),
            _ => None,
        };
        parsed.ok_or_else(|| {
            self.0.invalid(
                field,
                format!(
                    "{} is not an ISO-8601 time with zone or epoch milliseconds",
                    shown_raw(raw.get())
                ),
            )
        })
    }

    /// An optional JSON object, kept as the client wrote it (numbers as
    /// written, key order kept), whitespace between tokens dropped.
    fn optional_object(&self, field: &str) -> Result<Option<String>, IngestError> {
        match self.0.get(field) {
            None => Ok(None),
            Some(raw) if raw.get().starts_with('{') => Ok(Some(compact(raw.get()))),
            Some(raw) => Err(self.0.invalid(
                field,
                format!("expected a JSON object, found {}", shown_raw(raw.get())),
            )),
        }
    }
}

fn unknown_field<'a>(known: &'a [&'a str]) -> impl Fn(&str) -> String + 'a {
    move |_| format!("unknown field; expected one of {}", known.join(", "))
}

/// Parses a JSON array or NDJSON of audit entries (SPEC §6).
pub(super) fn audit_entries(
    body: &[u8],
    ctx: &IngestContext,
) -> Result<Vec<AuditRow>, IngestError> {
    let mut rows = Vec::new();
    let fields = Fields {
        names: &AUDIT_FIELDS,
        unknown: &unknown_field(&AUDIT_FIELDS),
    };
    for_each_object(body, &fields, |raw| {
        let row = Row(&raw);
        rows.push(AuditRow {
            tenant: ctx.tenant.as_str().to_owned(),
            entity: ctx.entity.clone(),
            org: ctx.org.clone(),
            meter_id: ctx.meter.0,
            event_id: row.required_string("eventId")?,
            event_time_ms: row.time_ms("eventTime")?,
            session_id: row.required_string("sessionId")?,
            run_type: row.one_of("runType", &RUN_TYPES)?,
            record_type: row.one_of("recordType", &RECORD_TYPES)?,
            operator_id: row.optional_string("operatorId")?,
            operator_type: row.optional_string("operatorType")?,
            operator_name: row.optional_string("operatorName")?,
            error_code: row.optional_string("errorCode")?,
            error_message: row.optional_string("errorMessage")?,
            trace_id: row.optional_string("traceId")?,
            payload: row.optional_object("payload")?,
        });
        Ok(())
    })?;
    Ok(rows)
}

/// Parses a JSON array or NDJSON of run status changes.
pub(super) fn run_entries(body: &[u8], ctx: &IngestContext) -> Result<Vec<RunRow>, IngestError> {
    let mut rows = Vec::new();
    let fields = Fields {
        names: &RUN_FIELDS,
        unknown: &unknown_field(&RUN_FIELDS),
    };
    for_each_object(body, &fields, |raw| {
        let row = Row(&raw);
        rows.push(RunRow {
            tenant: ctx.tenant.as_str().to_owned(),
            meter_id: ctx.meter.0,
            session_id: row.required_string("sessionId")?,
            run_type: row.one_of("runType", &RUN_TYPES)?,
            status: row.one_of("status", &RUN_STATUSES)?,
            updated_at_ms: row.time_ms("updatedAt")?,
        });
        Ok(())
    })?;
    Ok(rows)
}
