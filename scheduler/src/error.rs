//! The scheduler's failure kinds: a job's driver retries transient ones,
//! fails the job with permanent ones and stops at once when its lease is gone.

use auditx_common::queue::QueueError;
use auditx_common::s3::StorageError;
use auditx_common::state::StateError;
use auditx_lake::LakeError;

use crate::fleet::job_records::RecordError;

/// Failures while driving a job.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// The lease was lost or the process is shutting down: stop, touch nothing.
    #[error("driver stopped: tenant lease lost or shutting down")]
    Stopped,
    /// Store, queue or S3 trouble: retried with backoff.
    #[error("{0}")]
    Transient(String),
    /// The job cannot go on; it fails with this message.
    #[error("{0}")]
    Permanent(String),
}

impl From<StateError> for DriveError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::LeaseLost(_) => DriveError::Stopped,
            e if e.is_transient() => DriveError::Transient(e.to_string()),
            e => DriveError::Permanent(e.to_string()),
        }
    }
}

impl From<RecordError> for DriveError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::State(e) => e.into(),
            e => DriveError::Permanent(e.to_string()),
        }
    }
}

macro_rules! classified {
    ($($error:ty),*) => {$(
        impl From<$error> for DriveError {
            fn from(e: $error) -> Self {
                if e.is_transient() {
                    DriveError::Transient(e.to_string())
                } else {
                    DriveError::Permanent(e.to_string())
                }
            }
        }
    )*};
}
classified!(QueueError, StorageError, LakeError);
