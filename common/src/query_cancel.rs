//! The cancel flag of a data query, the one piece of a query's state that
//! both sides touch: the scheduler's query store raises it (a cancel call,
//! or a query the store lost and restored as failed), and a worker running
//! the query polls it and stops. Its key, `query/<id>/cancel`, is built
//! here only.

use auditx_proto::QueryId;

use crate::state::{StateResult, StateStore, Write};

fn key(id: &QueryId) -> String {
    format!("query/{id}/cancel")
}

/// Raises the flag: every worker running `id` stops at its next poll.
pub async fn raise(state: &dyn StateStore, id: &QueryId) -> StateResult<()> {
    state.set(&key(id), b"1").await
}

/// Whether the flag of `id` is raised.
pub async fn is_raised(state: &dyn StateStore, id: &QueryId) -> StateResult<bool> {
    Ok(state.get(&key(id)).await?.is_some())
}

/// The write that drops the flag, for a batch that forgets the query.
pub fn forget(id: &QueryId) -> Write {
    Write::Delete(key(id))
}
