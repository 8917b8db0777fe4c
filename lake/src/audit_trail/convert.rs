//! Rows ↔ Arrow record batches of the lake schemas.
//!
//! Columns are looked up by name and type-checked, so a foreign file with a
//! different layout is reported as corrupt instead of panicking a worker.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};

use super::schema::{audit_columns as ac, audit_schema, run_columns as rc, runs_schema};
use crate::{AuditRow, LakeError, LakeResult, RunRow};

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn optional_strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

fn utc_millis(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter_values(values).with_timezone("UTC"))
}

/// One record batch of audit rows, in the order given.
pub(crate) fn audit_batch(rows: &[AuditRow]) -> LakeResult<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|r| r.tenant.as_str())),
        optional_strings(rows.iter().map(|r| r.entity.as_deref())),
        optional_strings(rows.iter().map(|r| r.org.as_deref())),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.meter_id),
        )),
        strings(rows.iter().map(|r| r.session_id.as_str())),
        strings(rows.iter().map(|r| r.run_type.as_str())),
        strings(rows.iter().map(|r| r.record_type.as_str())),
        optional_strings(rows.iter().map(|r| r.operator_id.as_deref())),
        optional_strings(rows.iter().map(|r| r.operator_type.as_deref())),
        optional_strings(rows.iter().map(|r| r.operator_name.as_deref())),
        strings(rows.iter().map(|r| r.event_id.as_str())),
        optional_strings(rows.iter().map(|r| r.trace_id.as_deref())),
        utc_millis(rows.iter().map(|r| r.event_time_ms)),
        optional_strings(rows.iter().map(|r| r.error_code.as_deref())),
        optional_strings(rows.iter().map(|r| r.error_message.as_deref())),
        optional_strings(rows.iter().map(|r| r.payload.as_deref())),
    ];
    RecordBatch::try_new(audit_schema(), columns).map_err(|e| LakeError::Parquet(e.to_string()))
}

/// One record batch of run rows, in the order given.
pub(crate) fn runs_batch(rows: &[RunRow]) -> LakeResult<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|r| r.tenant.as_str())),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.meter_id),
        )),
        strings(rows.iter().map(|r| r.session_id.as_str())),
        strings(rows.iter().map(|r| r.run_type.as_str())),
        strings(rows.iter().map(|r| r.status.as_str())),
        utc_millis(rows.iter().map(|r| r.updated_at_ms)),
    ];
    RecordBatch::try_new(runs_schema(), columns).map_err(|e| LakeError::Parquet(e.to_string()))
}

/// Typed access to the columns of a batch read from lake file `key`.
pub(crate) struct Columns<'a> {
    batch: &'a RecordBatch,
    key: &'a str,
}

impl<'a> Columns<'a> {
    pub(crate) fn new(batch: &'a RecordBatch, key: &'a str) -> Self {
        Self { batch, key }
    }

    fn column(&self, name: &str) -> LakeResult<&'a ArrayRef> {
        self.batch
            .column_by_name(name)
            .ok_or_else(|| self.corrupt(name, "is missing"))
    }

    fn corrupt(&self, name: &str, what: &str) -> LakeError {
        LakeError::Corrupt {
            key: self.key.to_owned(),
            message: format!("column {name} {what}"),
        }
    }

    pub(crate) fn strings(&self, name: &str) -> LakeResult<&'a StringArray> {
        self.column(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| self.corrupt(name, "is not utf8"))
    }

    pub(crate) fn int64(&self, name: &str) -> LakeResult<&'a Int64Array> {
        self.column(name)?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| self.corrupt(name, "is not int64"))
    }

    pub(crate) fn millis(&self, name: &str) -> LakeResult<&'a TimestampMillisecondArray> {
        self.column(name)?
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| self.corrupt(name, "is not a millisecond timestamp"))
    }
}

fn owned(array: &StringArray, i: usize) -> String {
    array.value(i).to_owned()
}

fn optional(array: &StringArray, i: usize) -> Option<String> {
    array.is_valid(i).then(|| array.value(i).to_owned())
}

/// Appends the rows of an audit batch read from lake file `key` to `out`.
pub(crate) fn push_audit_rows(
    batch: &RecordBatch,
    key: &str,
    out: &mut Vec<AuditRow>,
) -> LakeResult<()> {
    let c = Columns::new(batch, key);
    let (tenant, entity, org) = (
        c.strings(ac::TENANT)?,
        c.strings(ac::ENTITY)?,
        c.strings(ac::ORG)?,
    );
    let meter_id = c.int64(ac::METER_ID)?;
    let session_id = c.strings(ac::SESSION_ID)?;
    let (run_type, record_type) = (c.strings(ac::RUN_TYPE)?, c.strings(ac::RECORD_TYPE)?);
    let operator_id = c.strings(ac::OPERATOR_ID)?;
    let operator_type = c.strings(ac::OPERATOR_TYPE)?;
    let operator_name = c.strings(ac::OPERATOR_NAME)?;
    let (event_id, trace_id) = (c.strings(ac::EVENT_ID)?, c.strings(ac::TRACE_ID)?);
    let event_time = c.millis(ac::EVENT_TIME)?;
    let error_code = c.strings(ac::ERROR_CODE)?;
    let error_message = c.strings(ac::ERROR_MESSAGE)?;
    let payload = c.strings(ac::PAYLOAD)?;
    out.reserve(batch.num_rows());
    for i in 0..batch.num_rows() {
        out.push(AuditRow {
            tenant: owned(tenant, i),
            entity: optional(entity, i),
            org: optional(org, i),
            meter_id: meter_id.value(i),
            session_id: owned(session_id, i),
            run_type: owned(run_type, i),
            record_type: owned(record_type, i),
            operator_id: optional(operator_id, i),
            operator_type: optional(operator_type, i),
            operator_name: optional(operator_name, i),
            event_id: owned(event_id, i),
            trace_id: optional(trace_id, i),
            event_time_ms: event_time.value(i),
            error_code: optional(error_code, i),
            error_message: optional(error_message, i),
            payload: optional(payload, i),
        });
    }
    Ok(())
}

/// Appends the rows of a runs batch read from lake file `key` to `out`.
pub(crate) fn push_run_rows(
    batch: &RecordBatch,
    key: &str,
    out: &mut Vec<RunRow>,
) -> LakeResult<()> {
    let c = Columns::new(batch, key);
    let (tenant, meter_id) = (c.strings(rc::TENANT)?, c.int64(rc::METER_ID)?);
    let (session_id, run_type) = (c.strings(rc::SESSION_ID)?, c.strings(rc::RUN_TYPE)?);
    let (status, updated_at) = (c.strings(rc::STATUS)?, c.millis(rc::UPDATED_AT)?);
    out.extend((0..batch.num_rows()).map(|i| RunRow {
        tenant: owned(tenant, i),
        meter_id: meter_id.value(i),
        session_id: owned(session_id, i),
        run_type: owned(run_type, i),
        status: owned(status, i),
        updated_at_ms: updated_at.value(i),
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_rows_survive_a_batch_round_trip() {
        let rows = vec![RunRow {
            tenant: "acme".into(),
            meter_id: 7,
            session_id: "R-00000001".into(),
            run_type: "NORMAL".into(),
            status: "RUNNING".into(),
            updated_at_ms: 1_753_296_408_775,
        }];
        let batch = runs_batch(&rows).unwrap();
        let mut back = Vec::new();
        push_run_rows(&batch, "k", &mut back).unwrap();
        assert_eq!(back, rows);
    }

    #[test]
    fn a_foreign_column_type_is_reported_as_corrupt() {
        let batch = runs_batch(&[]).unwrap();
        let err = Columns::new(&batch, "k.parquet")
            .int64(rc::TENANT)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt lake file k.parquet: column tenant is not int64"
        );
    }
}
