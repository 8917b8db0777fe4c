//! Secrets every replica shares, kept in the state store (their keys are
//! built here only): the key online-entries cursors are signed with,
//! created by the first replica that needs it.

use auditx_common::state::{StateResult, StateStore};

const CURSOR_KEY: &str = "api/entries-cursor-key";

/// The fleet's 32-byte cursor key: the stored one, or `fresh` stored now
/// if there is none (another replica's, if it was first). `Err` names a
/// stored value that is not 32 bytes.
pub(crate) async fn cursor_key(
    state: &dyn StateStore,
    fresh: [u8; 32],
) -> StateResult<Result<[u8; 32], String>> {
    if let Some(existing) = state.get(CURSOR_KEY).await? {
        if let Ok(key) = <[u8; 32]>::try_from(existing.as_slice()) {
            return Ok(Ok(key));
        }
    }
    if state.set_if_absent(CURSOR_KEY, &fresh).await? {
        return Ok(Ok(fresh));
    }
    // Another replica was first: use its key.
    let theirs = state.get(CURSOR_KEY).await?.unwrap_or_default();
    Ok(<[u8; 32]>::try_from(theirs.as_slice())
        .map_err(|_| format!("{CURSOR_KEY} in the state store is not 32 bytes")))
}
