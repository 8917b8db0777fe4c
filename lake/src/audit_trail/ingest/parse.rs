//! Validating ingest batches as they are read ([`crate::batch::stream`]),
//! each field by its entry in [`super::fields`]. Every message names the
//! 0-based row and the JSON field, so a client can fix its batch without
//! guessing.

use auditx_common::time::parse_iso_time;
use chrono::DateTime;
use serde_json::value::RawValue;
use serde_json::Value;

use super::fields::{
    names, FieldDef, FieldKind, AUDIT_ENTRY_FIELDS, ERROR_CODE, ERROR_MESSAGE, EVENT_ID,
    EVENT_TIME, OPERATOR_ID, OPERATOR_NAME, OPERATOR_TYPE, PAYLOAD, RECORD_TYPE, RUN_STATUS,
    RUN_STATUS_FIELDS, RUN_TYPE, SESSION_ID, TRACE_ID, UPDATED_AT,
};
use super::IngestContext;
use crate::batch::json::{compact, shown_raw};
use crate::batch::stream::{for_each_object, Fields, RawRow};
use crate::batch::IngestError;
use crate::{AuditRow, RunRow};

const AUDIT_NAMES: [&str; AUDIT_ENTRY_FIELDS.len()] = names(&AUDIT_ENTRY_FIELDS);
const RUN_NAMES: [&str; RUN_STATUS_FIELDS.len()] = names(&RUN_STATUS_FIELDS);

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
    /// The field's raw text; the absence of a required field is refused.
    fn present(&self, field: &FieldDef) -> Result<Option<&RawValue>, IngestError> {
        match self.0.get(field.name) {
            None if field.required => Err(self.0.invalid(field.name, "is required")),
            raw => Ok(raw),
        }
    }

    /// A required field's value (`None` only for a field the table has as
    /// optional: refused the same way, so the test of the table sees it).
    fn required<T>(&self, field: &FieldDef, value: Option<T>) -> Result<T, IngestError> {
        value.ok_or_else(|| self.0.invalid(field.name, "is required"))
    }

    /// A [`FieldKind::Text`] or [`FieldKind::OneOf`] field.
    fn text(&self, field: &FieldDef) -> Result<Option<String>, IngestError> {
        debug_assert!(matches!(field.kind, FieldKind::Text | FieldKind::OneOf(_)));
        let Some(raw) = self.present(field)? else {
            return Ok(None);
        };
        match (field.kind, scalar(raw)) {
            (FieldKind::OneOf(allowed), Some(Value::String(s)))
                if allowed.contains(&s.as_str()) =>
            {
                Ok(Some(s))
            }
            (FieldKind::OneOf(allowed), _) => Err(self.0.invalid(
                field.name,
                format!(
                    "{} is not one of {}",
                    shown_raw(raw.get()),
                    allowed.join(", ")
                ),
            )),
            (_, Some(Value::String(s))) if s.is_empty() && field.required => {
                Err(self.0.invalid(field.name, "must not be empty"))
            }
            (_, Some(Value::String(s))) if s.is_empty() => Ok(None),
            (_, Some(Value::String(s))) => Ok(Some(s)),
            _ => Err(self.0.invalid(
                field.name,
                format!("expected a string, found {}", shown_raw(raw.get())),
            )),
        }
    }

    fn required_text(&self, field: &FieldDef) -> Result<String, IngestError> {
        let value = self.text(field)?;
        self.required(field, value)
    }

    /// A [`FieldKind::Time`] field as epoch milliseconds: ISO-8601 with a
    /// zone, extended or basic form ([`auditx_common::time::parse_iso_time`]),
    /// or epoch milliseconds.
    fn time_ms(&self, field: &FieldDef) -> Result<Option<i64>, IngestError> {
        debug_assert_eq!(field.kind, FieldKind::Time);
        let Some(raw) = self.present(field)? else {
            return Ok(None);
        };
        let parsed = match scalar(raw) {
            Some(Value::Number(n)) => crate::batch::json::whole_number(&n)
                .filter(|&ms| DateTime::from_timestamp_millis(ms).is_some()),
            Some(Value::String(s)) => parse_iso_time(&s).ok().map(|t| t.timestamp_millis()),
            _ => None,
        };
        parsed.map(Some).ok_or_else(|| {
            self.0.invalid(
                field.name,
                format!(
                    "{} is not an ISO-8601 time with zone or epoch milliseconds",
                    shown_raw(raw.get())
                ),
            )
        })
    }

    fn required_time_ms(&self, field: &FieldDef) -> Result<i64, IngestError> {
        let value = self.time_ms(field)?;
        self.required(field, value)
    }

    /// A [`FieldKind::Object`] field, kept as the client wrote it (numbers
    /// as written, key order kept), whitespace between tokens dropped.
    fn object(&self, field: &FieldDef) -> Result<Option<String>, IngestError> {
        debug_assert_eq!(field.kind, FieldKind::Object);
        match self.present(field)? {
            None => Ok(None),
            Some(raw) if raw.get().starts_with('{') => Ok(Some(compact(raw.get()))),
            Some(raw) => Err(self.0.invalid(
                field.name,
                format!("expected a JSON object, found {}", shown_raw(raw.get())),
            )),
        }
    }
}

fn unknown_field<'a>(known: &'a [&'a str]) -> impl Fn(&str) -> String + 'a {
    move |_| format!("unknown field; expected one of {}", known.join(", "))
}

/// Parses a JSON array or NDJSON of audit entries (SPEC §6): the fields of
/// [`AUDIT_ENTRY_FIELDS`].
pub(super) fn audit_entries(
    body: &[u8],
    ctx: &IngestContext,
) -> Result<Vec<AuditRow>, IngestError> {
    let mut rows = Vec::new();
    let fields = Fields {
        names: &AUDIT_NAMES,
        unknown: &unknown_field(&AUDIT_NAMES),
    };
    for_each_object(body, &fields, |raw| {
        let row = Row(&raw);
        rows.push(AuditRow {
            tenant: ctx.tenant.as_str().to_owned(),
            entity: ctx.entity.clone(),
            org: ctx.org.clone(),
            meter_id: ctx.meter.0,
            event_id: row.required_text(&EVENT_ID)?,
            event_time_ms: row.required_time_ms(&EVENT_TIME)?,
            session_id: row.required_text(&SESSION_ID)?,
            run_type: row.required_text(&RUN_TYPE)?,
            record_type: row.required_text(&RECORD_TYPE)?,
            operator_id: row.text(&OPERATOR_ID)?,
            operator_type: row.text(&OPERATOR_TYPE)?,
            operator_name: row.text(&OPERATOR_NAME)?,
            error_code: row.text(&ERROR_CODE)?,
            error_message: row.text(&ERROR_MESSAGE)?,
            trace_id: row.text(&TRACE_ID)?,
            payload: row.object(&PAYLOAD)?,
        });
        Ok(())
    })?;
    Ok(rows)
}

/// Parses a JSON array or NDJSON of run status changes: the fields of
/// [`RUN_STATUS_FIELDS`].
pub(super) fn run_entries(body: &[u8], ctx: &IngestContext) -> Result<Vec<RunRow>, IngestError> {
    let mut rows = Vec::new();
    let fields = Fields {
        names: &RUN_NAMES,
        unknown: &unknown_field(&RUN_NAMES),
    };
    for_each_object(body, &fields, |raw| {
        let row = Row(&raw);
        rows.push(RunRow {
            tenant: ctx.tenant.as_str().to_owned(),
            meter_id: ctx.meter.0,
            session_id: row.required_text(&SESSION_ID)?,
            run_type: row.required_text(&RUN_TYPE)?,
            status: row.required_text(&RUN_STATUS)?,
            updated_at_ms: row.required_time_ms(&UPDATED_AT)?,
        });
        Ok(())
    })?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use auditx_proto::{MeterId, TenantId};
    use serde_json::{json, Map};

    use super::*;

    fn ctx() -> IngestContext {
        IngestContext {
            tenant: TenantId("t".into()),
            entity: None,
            org: None,
            meter: MeterId(1),
        }
    }

    /// A valid value of `field`, from its kind alone.
    fn valid(field: &FieldDef) -> Value {
        match field.kind {
            FieldKind::Text => json!("x"),
            FieldKind::OneOf(allowed) => json!(allowed[0]),
            FieldKind::Time => json!("2025-07-01T00:00:00+0530"),
            FieldKind::Object => json!({"a": 1}),
        }
    }

    type Parse = fn(&[u8], &IngestContext) -> Result<usize, IngestError>;

    /// The parser takes exactly the table's fields, refuses a row without
    /// each required one and takes a row without each optional one, and
    /// checks each by its kind.
    fn agrees_with_its_table(fields: &[FieldDef], parse: Parse) {
        let full: Map<String, Value> = fields
            .iter()
            .map(|f| (f.name.to_owned(), valid(f)))
            .collect();
        let run = |row: &Map<String, Value>| parse(&serde_json::to_vec(&[row]).unwrap(), &ctx());
        assert_eq!(run(&full).unwrap(), 1);
        for field in fields {
            let mut without = full.clone();
            without.remove(field.name);
            match run(&without) {
                Ok(_) => assert!(!field.required, "{} is required", field.name),
                Err(e) => {
                    assert!(field.required, "{}: {e}", field.name);
                    assert_eq!(e.to_string(), format!("row 0: {}: is required", field.name));
                }
            }
            let mut wrong = full.clone();
            wrong.insert(field.name.to_owned(), json!([1]));
            let message = run(&wrong).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("row 0: {}: ", field.name)),
                "{message}"
            );
        }
        let mut extra = full.clone();
        extra.insert("bogus".into(), json!("x"));
        assert!(run(&extra)
            .unwrap_err()
            .to_string()
            .starts_with("row 0: bogus: unknown field"));
    }

    #[test]
    fn the_parsers_take_the_fields_of_their_tables() {
        agrees_with_its_table(&AUDIT_ENTRY_FIELDS, |body, ctx| {
            audit_entries(body, ctx).map(|rows| rows.len())
        });
        agrees_with_its_table(&RUN_STATUS_FIELDS, |body, ctx| {
            run_entries(body, ctx).map(|rows| rows.len())
        });
    }
}
