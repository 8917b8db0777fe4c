//! The audit lake: Parquet files in an S3 bucket, partitioned so an export
//! finds its files by listing prefixes, rows sorted by time inside a file.
//!
//! ```text
//! meter_audit_trail/tenant=<t>/meter=<m>/date=<YYYY-MM-DD>/<name>.parquet
//! meter_runs/tenant=<t>/meter=<m>/<name>.parquet
//! ```
//!
//! Files are immutable and named by a hash of their content, so a retried
//! write lands on the same key and a planned export sees a stable snapshot.

mod convert;
pub mod generate;
pub mod ingest;
pub mod layout;
pub mod read;
pub mod schema;
pub mod sql;
pub mod tables;
pub mod write;

pub use schema::{AuditRow, RunRow, RUN_STATUSES};

/// Failures reading or writing the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error(transparent)]
    Storage(#[from] auditx_common::s3::StorageError),
    #[error(transparent)]
    State(#[from] auditx_common::state::StateError),
    /// A lake file that cannot be decoded (permanent).
    #[error("corrupt lake file {key}: {message}")]
    Corrupt { key: String, message: String },
    #[error("parquet: {0}")]
    Parquet(String),
}

impl LakeError {
    pub fn is_transient(&self) -> bool {
        match self {
            LakeError::Storage(e) => e.is_transient(),
            LakeError::State(e) => e.is_transient(),
            LakeError::Corrupt { .. } | LakeError::Parquet(_) => false,
        }
    }
}

pub type LakeResult<T> = Result<T, LakeError>;
