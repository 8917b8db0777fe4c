//! The row filter pushed into the Parquet reader: it sees only the filter
//! columns, and rows it rejects are never decoded in the other columns.

use std::collections::HashSet;

use arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use arrow::buffer::BooleanBuffer;
use arrow::error::ArrowError;
use auditx_proto::{RowFilter, Scope};

use crate::audit_trail::convert::Columns;
use crate::audit_trail::schema::{audit_columns as ac, audit_schema};

/// `eventTime ∈ [from, to)`, `runType`, `recordType`, the optional
/// session and operator sets of a chunk, and the export's entity/org scope.
pub(crate) struct Predicate {
    from_ms: i64,
    to_ms: i64,
    run_type: &'static str,
    record_type: &'static str,
    sessions: Option<HashSet<String>>,
    operators: Option<HashSet<String>>,
    scope: Scope,
    /// `eventId ∈ [from, to)` (either side open when `None`): a hot
    /// millisecond split by eventId.
    event_ids: Option<EventIdRange>,
}

/// A range of eventIds, `[from, to)`, either side open when `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventIdRange {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl EventIdRange {
    pub fn is_unbounded(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.from.as_deref().is_none_or(|from| id >= from)
            && self.to.as_deref().is_none_or(|to| id < to)
    }
}

impl Predicate {
    pub(crate) fn new(from_ms: i64, to_ms: i64, filter: &RowFilter) -> Self {
        let set = |ids: &Option<Vec<String>>| ids.as_ref().map(|ids| ids.iter().cloned().collect());
        Self {
            from_ms,
            to_ms,
            run_type: filter.run_type.as_str(),
            record_type: filter.record_type.as_str(),
            sessions: set(&filter.session_ids),
            operators: set(&filter.operator_ids),
            scope: filter.scope.clone(),
            event_ids: None,
        }
    }

    /// Keeps only the rows whose eventId is in `range`.
    pub(crate) fn with_event_ids(mut self, range: &EventIdRange) -> Self {
        self.event_ids = (!range.is_unbounded()).then(|| range.clone());
        self
    }

    /// Schema positions of the columns the predicate reads.
    pub(crate) fn column_indices(&self) -> Vec<usize> {
        let mut names = vec![ac::EVENT_TIME, ac::RUN_TYPE, ac::RECORD_TYPE];
        if self.sessions.is_some() {
            names.push(ac::SESSION_ID);
        }
        if self.operators.is_some() {
            names.push(ac::OPERATOR_ID);
        }
        if !self.scope.entities.is_empty() {
            names.push(ac::ENTITY);
        }
        if !self.scope.orgs.is_empty() {
            names.push(ac::ORG);
        }
        if self.event_ids.is_some() {
            names.push(ac::EVENT_ID);
        }
        let schema = audit_schema();
        names
            .into_iter()
            .map(|n| schema.index_of(n).expect("audit column"))
            .collect()
    }

    /// Which rows of `batch` (holding the predicate columns) match.
    pub(crate) fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray, ArrowError> {
        let invalid = |e: crate::LakeError| ArrowError::SchemaError(e.to_string());
        let columns = Columns::new(batch, "row filter");
        let times = columns.millis(ac::EVENT_TIME).map_err(invalid)?.values();
        let run_types = columns.strings(ac::RUN_TYPE).map_err(invalid)?;
        let record_types = columns.strings(ac::RECORD_TYPE).map_err(invalid)?;
        let sessions = match &self.sessions {
            Some(set) => Some((set, columns.strings(ac::SESSION_ID).map_err(invalid)?)),
            None => None,
        };
        let operators = match &self.operators {
            Some(set) => Some((set, columns.strings(ac::OPERATOR_ID).map_err(invalid)?)),
            None => None,
        };
        // Only the restricted axes' columns were read.
        let entities = match self.scope.entities.is_empty() {
            true => None,
            false => Some(columns.strings(ac::ENTITY).map_err(invalid)?),
        };
        let orgs = match self.scope.orgs.is_empty() {
            true => None,
            false => Some(columns.strings(ac::ORG).map_err(invalid)?),
        };
        let event_ids = match &self.event_ids {
            Some(range) => Some((range, columns.strings(ac::EVENT_ID).map_err(invalid)?)),
            None => None,
        };
        let matches = BooleanBuffer::collect_bool(batch.num_rows(), |i| {
            let time = times[i];
            time >= self.from_ms
                && time < self.to_ms
                && record_types.value(i) == self.record_type
                && run_types.value(i) == self.run_type
                && sessions.is_none_or(|(set, ids)| set.contains(ids.value(i)))
                && operators.is_none_or(|(set, ids)| ids.is_valid(i) && set.contains(ids.value(i)))
                && self.scope.admits(value_at(entities, i), value_at(orgs, i))
                && event_ids.is_none_or(|(range, ids)| range.contains(ids.value(i)))
        });
        Ok(BooleanArray::new(matches, None))
    }
}

/// Row `i` of an optional column (None if absent or NULL).
fn value_at(column: Option<&StringArray>, i: usize) -> Option<&str> {
    column.filter(|c| c.is_valid(i)).map(|c| c.value(i))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::TimestampMillisecondArray;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use auditx_proto::{RecordType, RunType};

    use super::*;

    fn batch() -> RecordBatch {
        let utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let schema = Schema::new(vec![
            Field::new(ac::EVENT_TIME, utc, false),
            Field::new(ac::RUN_TYPE, DataType::Utf8, false),
            Field::new(ac::RECORD_TYPE, DataType::Utf8, false),
            Field::new(ac::SESSION_ID, DataType::Utf8, false),
            Field::new(ac::OPERATOR_ID, DataType::Utf8, true),
            Field::new(ac::ENTITY, DataType::Utf8, true),
            Field::new(ac::ORG, DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(
                    TimestampMillisecondArray::from(vec![9, 10, 11, 12, 20]).with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec![
                    "NORMAL", "NORMAL", "DEBUG", "NORMAL", "NORMAL",
                ])),
                Arc::new(StringArray::from(vec![
                    "ERROR", "ERROR", "ERROR", "SAMPLE", "ERROR",
                ])),
                Arc::new(StringArray::from(vec!["R-1", "R-1", "R-1", "R-1", "R-2"])),
                Arc::new(StringArray::from(vec![
                    Some("op-1"),
                    None,
                    Some("op-1"),
                    Some("op-1"),
                    Some("op-2"),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("e1"),
                    Some("e2"),
                    Some("e1"),
                    Some("e1"),
                    None,
                ])),
                Arc::new(StringArray::from(vec![
                    Some("o1"),
                    Some("o1"),
                    None,
                    Some("o2"),
                    Some("o1"),
                ])),
            ],
        )
        .unwrap()
    }

    fn matches(filter: RowFilter, from: i64, to: i64) -> Vec<bool> {
        Predicate::new(from, to, &filter)
            .evaluate(&batch())
            .unwrap()
            .iter()
            .map(Option::unwrap)
            .collect()
    }

    fn errors_of(run_type: RunType) -> RowFilter {
        RowFilter {
            run_type,
            record_type: RecordType::Error,
            session_ids: None,
            operator_ids: None,
            scope: Scope::default(),
        }
    }

    #[test]
    fn event_id_ranges_are_half_open_and_open_ended_when_unset() {
        let range = |from: Option<&str>, to: Option<&str>| EventIdRange {
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
        };
        let split = range(Some("e-10"), Some("e-20"));
        assert!(split.contains("e-10") && split.contains("e-19x"));
        assert!(!split.contains("e-20") && !split.contains("e-09"));
        assert!(range(None, Some("b")).contains("a") && !range(None, Some("b")).contains("b"));
        assert!(range(Some("b"), None).contains("zzz"));
        assert!(range(None, None).is_unbounded() && range(None, None).contains(""));
    }

    #[test]
    fn time_range_is_half_open_and_types_must_match() {
        assert_eq!(
            matches(errors_of(RunType::Normal), 10, 20),
            [false, true, false, false, false]
        );
        assert_eq!(
            matches(errors_of(RunType::Normal), 0, 21),
            [true, true, false, false, true]
        );
        assert_eq!(
            matches(errors_of(RunType::Debug), 0, 21),
            [false, false, true, false, false]
        );
    }

    #[test]
    fn session_and_operator_sets_narrow_and_null_operators_never_match() {
        let filter = RowFilter {
            session_ids: Some(vec!["R-2".into()]),
            ..errors_of(RunType::Normal)
        };
        assert_eq!(matches(filter, 0, 100), [false, false, false, false, true]);
        let filter = RowFilter {
            operator_ids: Some(vec!["op-1".into()]),
            ..errors_of(RunType::Normal)
        };
        assert_eq!(matches(filter, 0, 100), [true, false, false, false, false]);
    }

    #[test]
    fn scoped_filters_keep_only_rows_of_their_entities_and_orgs() {
        let scoped = |entities: &[&str], orgs: &[&str]| RowFilter {
            scope: Scope::new(
                entities.iter().map(|e| e.to_string()).collect(),
                orgs.iter().map(|o| o.to_string()).collect(),
            ),
            ..errors_of(RunType::Normal)
        };
        // Rows 0, 1 and 4 are NORMAL errors: entities e1, e2 and none.
        assert_eq!(
            matches(scoped(&["e1"], &[]), 0, 100),
            [true, false, false, false, false]
        );
        assert_eq!(
            matches(scoped(&["e1", "e2"], &[]), 0, 100),
            [true, true, false, false, false]
        );
        assert_eq!(
            matches(scoped(&[], &["o1"]), 0, 100),
            [true, true, false, false, true]
        );
        assert_eq!(
            matches(scoped(&["e2"], &["o1"]), 0, 100),
            [false, true, false, false, false]
        );
        assert_eq!(
            matches(scoped(&[], &[]), 0, 100),
            [true, true, false, false, true]
        );
    }
}
