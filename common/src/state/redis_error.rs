//! Which Redis errors are worth retrying.

use redis::{ErrorKind, RedisError, ServerErrorKind};

use super::StateError;

/// Connection trouble, timeouts and a server that is loading or failing
/// over are transient; anything else (wrong type, script error) is not.
pub(super) fn classify(e: RedisError) -> StateError {
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::ReadOnly
            )
        );
    if transient {
        StateError::Unavailable(e.to_string())
    } else {
        StateError::Other(e.to_string())
    }
}
