//! Failures of worker tasks, classified as transient (retry) or permanent
//! (report the task as failed with a message the user can act on).

use auditx_common::s3::StorageError;
use auditx_lake::sql::SqlError;
use auditx_lake::LakeError;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("reading the audit lake: {0}")]
    Lake(#[from] LakeError),
    #[error("export storage: {0}")]
    Storage(#[from] StorageError),
    /// A staged chunk is gone or does not hold the bytes the plan expects:
    /// the export's staging data was removed or rewritten.
    #[error("staged chunk {key} {problem}; run the export again")]
    Staging { key: String, problem: String },
    /// A row or a staged chunk cannot be rendered in the export's format
    /// (e.g. a payload that is not JSON); retrying would fail the same way.
    #[error("rendering failed: {0}")]
    Render(String),
    /// The task contradicts itself; a scheduler bug or an incompatible version.
    #[error("invalid task: {0}")]
    InvalidTask(String),
    /// A data query that was refused, could not be planned or failed.
    #[error("{0}")]
    Query(#[from] SqlError),
    #[error("query exceeded its time limit of {secs} s (query.time_limit_secs)")]
    TimeLimit { secs: f64 },
    #[error("cancelled by request")]
    Cancelled,
    /// The worker is shutting down: the query stopped and its task goes
    /// back to the queue to run again (on another worker, or after a
    /// restart), with no report.
    #[error("interrupted: the worker is shutting down")]
    Interrupted,
}

impl WorkerError {
    pub fn is_transient(&self) -> bool {
        match self {
            WorkerError::Lake(e) => e.is_transient(),
            WorkerError::Storage(e) => e.is_transient(),
            WorkerError::Query(e) => e.is_transient(),
            WorkerError::Staging { .. }
            | WorkerError::Render(_)
            | WorkerError::InvalidTask(_)
            | WorkerError::TimeLimit { .. }
            | WorkerError::Cancelled
            | WorkerError::Interrupted => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_storage_and_lake_failures_are_retried() {
        let transient = StorageError::Transient("SlowDown".into());
        assert!(WorkerError::from(StorageError::Transient("SlowDown".into())).is_transient());
        assert!(WorkerError::from(LakeError::Storage(transient)).is_transient());
        let missing = StorageError::NotFound {
            bucket: "b".into(),
            key: "k".into(),
        };
        assert!(!WorkerError::from(LakeError::Storage(missing)).is_transient());
        let corrupt = LakeError::Corrupt {
            key: "k".into(),
            message: "bad footer".into(),
        };
        assert!(!WorkerError::from(corrupt).is_transient());
        let staging = WorkerError::Staging {
            key: "k".into(),
            problem: "is missing".into(),
        };
        assert!(!staging.is_transient());
        assert_eq!(
            staging.to_string(),
            "staged chunk k is missing; run the export again"
        );
    }
}
