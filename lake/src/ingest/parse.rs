//! Parsing and validating ingest batches. Every message names the 0-based
//! row and the JSON field, so a client can fix its batch without guessing.

use chrono::DateTime;
use serde_json::{Map, Value};

use super::{IngestContext, IngestError};
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

/// How much of an offending value a message quotes.
const SHOWN_CHARS: usize = 80;

/// Calls `each` with every object of a JSON array or of NDJSON (values
/// separated by whitespace, so blank lines and pretty-printed objects are
/// fine), with its 0-based row number. Also reads table batches.
pub(crate) fn for_each_object(
    body: &[u8],
    mut each: impl FnMut(usize, &Map<String, Value>) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    if start.is_some_and(|i| body[i] == b'[') {
        let values: Vec<Value> = serde_json::from_slice(body)
            .map_err(|e| IngestError::Malformed(format!("body is not a valid JSON array: {e}")))?;
        for (row, value) in values.iter().enumerate() {
            let object = value.as_object().ok_or_else(|| {
                IngestError::Malformed(format!(
                    "row {row}: expected a JSON object, found {}",
                    shown(value)
                ))
            })?;
            each(row, object)?;
        }
        return Ok(());
    }
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    let mut row = 0;
    loop {
        let before = values.byte_offset();
        let Some(value) = values.next() else {
            return Ok(());
        };
        let value =
            value.map_err(|e| IngestError::Malformed(format!("row {row}: invalid JSON: {e}")))?;
        let Some(object) = value.as_object() else {
            let at = before
                + body[before..]
                    .iter()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count();
            let line = 1 + body[..at].iter().filter(|&&b| b == b'\n').count();
            return Err(IngestError::Malformed(format!(
                "row {row} (line {line}): expected a JSON object, found {}",
                shown(&value)
            )));
        };
        each(row, object)?;
        row += 1;
    }
}

/// A value as quoted in a message, cut short if long.
pub(crate) fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// A field name the caller sent, as a message names it: bare, or quoted
/// and cut short when long.
fn field_name(name: &str) -> String {
    if name.chars().count() <= SHOWN_CHARS / 2 {
        name.to_owned()
    } else {
        shown(&Value::String(name.to_owned()))
    }
}

/// Field access on one row, producing [`IngestError::InvalidRow`]s.
struct Row<'a> {
    index: usize,
    object: &'a Map<String, Value>,
}

impl<'a> Row<'a> {
    /// Rejects fields outside `known`, naming the first one.
    fn new(
        index: usize,
        object: &'a Map<String, Value>,
        known: &[&str],
    ) -> Result<Self, IngestError> {
        let row = Self { index, object };
        match object.keys().find(|k| !known.contains(&k.as_str())) {
            Some(unknown) => Err(row.invalid(
                &field_name(unknown),
                format!("unknown field; expected one of {}", known.join(", ")),
            )),
            None => Ok(row),
        }
    }

    fn invalid(&self, field: &str, message: impl Into<String>) -> IngestError {
        IngestError::InvalidRow {
            row: self.index,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// The field's value; null counts as absent.
    fn value(&self, field: &str) -> Option<&'a Value> {
        self.object.get(field).filter(|v| !v.is_null())
    }

    fn required(&self, field: &str) -> Result<&'a Value, IngestError> {
        self.value(field)
            .ok_or_else(|| self.invalid(field, "is required"))
    }

    /// An optional string; empty counts as absent, as it renders the same.
    fn optional_string(&self, field: &str) -> Result<Option<String>, IngestError> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(self.invalid(field, format!("expected a string, found {}", shown(other))))
            }
        }
    }

    fn required_string(&self, field: &str) -> Result<String, IngestError> {
        match self.required(field)? {
            Value::String(s) if s.is_empty() => Err(self.invalid(field, "must not be empty")),
            Value::String(s) => Ok(s.clone()),
            other => Err(self.invalid(field, format!("expected a string, found {}", shown(other)))),
        }
    }

    fn one_of(&self, field: &str, allowed: &[&str]) -> Result<String, IngestError> {
        let value = self.required(field)?;
        match value.as_str() {
            Some(s) if allowed.contains(&s) => Ok(s.to_owned()),
            _ => Err(self.invalid(
                field,
                format!("{} is not one of {}", shown(value), allowed.join(", ")),
            )),
        }
    }

    /// ISO-8601 with a zone (`Z`, `+02:00` or `+0200`) or epoch milliseconds.
    fn time_ms(&self, field: &str) -> Result<i64, IngestError> {
        let value = self.required(field)?;
        let parsed = match value {
            Value::Number(n) => n
                .as_i64()
                .filter(|&ms| DateTime::from_timestamp_millis(ms).is_some()),
            Value::String(s) => DateTime::parse_from_rfc3339(s)
                .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
                .ok()
                .map(|t| t.timestamp_millis()),
            _ => None,
        };
        parsed.ok_or_else(|| {
            self.invalid(
                field,
                format!(
                    "{} is not an ISO-8601 time with zone or epoch milliseconds",
                    shown(value)
                ),
            )
        })
    }

    /// An optional JSON object, kept as compact JSON text in field order.
    fn optional_object(&self, field: &str) -> Result<Option<String>, IngestError> {
        match self.value(field) {
            None => Ok(None),
            Some(object @ Value::Object(_)) => Ok(Some(object.to_string())),
            Some(other) => Err(self.invalid(
                field,
                format!("expected a JSON object, found {}", shown(other)),
            )),
        }
    }
}

/// Parses a JSON array or NDJSON of audit entries (SPEC §6).
pub(super) fn audit_entries(
    body: &[u8],
    ctx: &IngestContext,
) -> Result<Vec<AuditRow>, IngestError> {
    let mut rows = Vec::new();
    for_each_object(body, |index, object| {
        let row = Row::new(index, object, &AUDIT_FIELDS)?;
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
    for_each_object(body, |index, object| {
        let row = Row::new(index, object, &RUN_FIELDS)?;
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
