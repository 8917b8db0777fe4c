//! The audit lake: Parquet files in an S3 bucket holding two data sets, each
//! partitioned so a reader finds its files by listing prefixes:
//!
//! ```text
//! meter_audit_trail/tenant=<t>/meter=<m>/date=<YYYY-MM-DD>/<name>.parquet  audit_trail
//! meter_runs/tenant=<t>/meter=<m>/<name>.parquet                           audit_trail
//! <table>/tenant=<t>/year=<Y>/month=<M>/<name>.parquet                     tables (Data Query)
//! ```
//!
//! [`batch`] is what both ingests share, [`files`] how files are named,
//! [`sql`] the Data Query engine over the tables. Files are immutable and named by a hash of their content, so a retried
//! write lands on the same key and a planned export sees a stable snapshot.

pub mod audit_trail;
pub mod batch;
pub mod files;
pub(crate) mod ledger;
pub mod sql;
pub mod tables;

pub use audit_trail::schema::{AuditRow, RunRow, RUN_STATUSES};

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
