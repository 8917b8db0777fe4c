//! What can go wrong with a data query, in words a user can act on.

use datafusion::error::DataFusionError;

use super::{clip, QueryLimits};

/// Longest error message kept from DataFusion or the parser.
const MAX_MESSAGE: usize = 500;

/// Failures of a data query; [`SqlError::is_transient`] says which are worth a retry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SqlError {
    /// The text is not valid SQL (the parser's message).
    #[error("syntax error: {0}")]
    Syntax(String),
    /// Valid SQL that data queries do not allow.
    #[error("{0}")]
    Refused(String),
    /// The query cannot be planned: unknown column, wrong types, ...
    #[error("{0}")]
    Plan(String),
    #[error("query exceeded its memory limit of {} (query.memory_limit_mb)", mib(*limit_bytes))]
    MemoryLimit { limit_bytes: u64 },
    #[error(
        "the data queries of this worker together exceeded their memory of {} \
         (worker.query_memory_mb); retry when fewer run",
        mib(*limit_bytes)
    )]
    ProcessMemoryLimit { limit_bytes: u64 },
    /// The query failed while running (bad cast, invalid date, ...).
    #[error("{0}")]
    Execution(String),
    /// The lake's object store could not be reached or answered an error.
    #[error("lake storage error: {0}")]
    Storage(String),
}

impl SqlError {
    /// Worth a retry: storage trouble, or the process's memory held by
    /// other queries (they end, the retry finds it free).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SqlError::Storage(_) | SqlError::ProcessMemoryLimit { .. }
        )
    }
}

/// `12 MiB`, or `0.06 MiB` for limits that are not whole MiB (tests).
fn mib(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{:.2} MiB", bytes as f64 / MIB as f64)
    }
}

/// Maps a DataFusion failure of a query run under `limits` to its kind:
/// memory pool exhaustion, object store trouble, planning errors a user can
/// fix, and everything else as an execution error. Stream errors returned
/// by [`super::start_query`]'s batches go through here too.
pub fn classify(e: DataFusionError, limits: &QueryLimits) -> SqlError {
    let root = e.find_root();
    if let DataFusionError::ResourcesExhausted(refusal) = root {
        return match super::memory::process_limit() {
            Some(process) if !refusal.contains(super::memory::QUERY_LIMIT_REFUSAL) => {
                SqlError::ProcessMemoryLimit {
                    limit_bytes: process as u64,
                }
            }
            _ => SqlError::MemoryLimit {
                limit_bytes: limits.memory_limit_bytes as u64,
            },
        };
    }
    if let Some(store_error) = object_store_error(&e) {
        return SqlError::Storage(message(&store_error.to_string()));
    }
    match root {
        DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::SQL(..)
        | DataFusionError::NotImplemented(_) => SqlError::Plan(message(&root.message())),
        DataFusionError::Internal(description) => {
            SqlError::Execution(message(&format!("internal error: {description}")))
        }
        _ => SqlError::Execution(message(&root.message())),
    }
}

/// The object store error somewhere in `e`'s source chain.
fn object_store_error(e: &DataFusionError) -> Option<&object_store::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = current {
        if let Some(store_error) = error.downcast_ref::<object_store::Error>() {
            return Some(store_error);
        }
        current = error.source();
    }
    None
}

/// A message without backtrace, clipped.
pub(super) fn message(text: &str) -> String {
    let text = text
        .split(DataFusionError::BACK_TRACE_SEP)
        .next()
        .unwrap_or_default()
        .trim();
    clip(text, MAX_MESSAGE)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::error::ArrowError;

    use super::*;

    const LIMITS: QueryLimits = QueryLimits {
        memory_limit_bytes: 64 << 20,
    };

    #[test]
    fn memory_exhaustion_is_reported_with_the_limit_however_deep() {
        let deep = DataFusionError::ArrowError(
            Box::new(ArrowError::ExternalError(Box::new(
                DataFusionError::ResourcesExhausted("Failed to allocate".into()).context("sort"),
            ))),
            None,
        );
        let e = classify(deep, &LIMITS);
        assert_eq!(
            e,
            SqlError::MemoryLimit {
                limit_bytes: 64 << 20
            }
        );
        assert_eq!(
            e.to_string(),
            "query exceeded its memory limit of 64 MiB (query.memory_limit_mb)"
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn object_store_errors_are_transient_storage_errors() {
        let store = object_store::Error::Generic {
            store: "S3",
            source: "connection refused".into(),
        };
        let e = classify(
            DataFusionError::Shared(Arc::new(DataFusionError::ObjectStore(Box::new(store)))),
            &LIMITS,
        );
        assert!(
            matches!(&e, SqlError::Storage(m) if m.contains("connection refused")),
            "{e:?}"
        );
        assert!(e.is_transient());
    }

    #[test]
    fn planning_errors_lose_their_prefix_and_are_clipped() {
        let e = classify(DataFusionError::Plan("x".repeat(2000)), &LIMITS);
        let SqlError::Plan(m) = &e else {
            panic!("{e:?}")
        };
        assert!(m.starts_with("xxx") && m.chars().count() == MAX_MESSAGE + 1);
        assert!(!e.is_transient());
        let e = classify(DataFusionError::Execution("boom".into()), &LIMITS);
        assert_eq!(e, SqlError::Execution("boom".into()));
    }
}
