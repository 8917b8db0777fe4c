//! What the ingest of both data sets (the meters' audit trail and the audit
//! tables) shares: a batch body decoded (gzip bounded), read one object and
//! one field at a time ([`stream`]), quoted in errors ([`json`]); the
//! error and summary of an ingest call. (The ingest lease and the ids
//! already ingested are the ledger's: [`crate::ledger`].)

pub(crate) mod json;
pub(crate) mod stream;

use std::borrow::Cow;
use std::io::Read;

use flate2::read::GzDecoder;

use crate::LakeError;

/// Why a batch was rejected. The whole batch is rejected; nothing is written.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A row is invalid: `row` is its 0-based position in the batch,
    /// `field` the offending field (JSON name).
    #[error("row {row}: {field}: {message}")]
    InvalidRow {
        row: usize,
        field: String,
        message: String,
    },
    /// The body is not a JSON array or NDJSON of objects (or bad gzip).
    #[error("{0}")]
    Malformed(String),
    /// The body is larger than allowed (after decompression).
    #[error("request body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Lake(#[from] LakeError),
}

/// What an ingest call did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestSummary {
    pub received: u64,
    pub accepted: u64,
    /// Rows whose eventId was already ingested (or repeated in the batch).
    pub duplicates: u64,
}

/// Gunzips `body` if `gzipped`, refusing output over `max_bytes` (the
/// bytes are read as they inflate: a bomb stops at `max_bytes + 1`).
pub fn decode_body(
    body: &[u8],
    gzipped: bool,
    max_bytes: usize,
) -> Result<Cow<'_, [u8]>, IngestError> {
    if !gzipped {
        if body.len() > max_bytes {
            return Err(IngestError::TooLarge { limit: max_bytes });
        }
        return Ok(Cow::Borrowed(body));
    }
    // The gzip trailer's size (mod 2^32, and the client's word only) sizes
    // the buffer up front, so it is not regrown (and copied) while filling.
    let hint = match body.len().checked_sub(4) {
        Some(at) => u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]),
        None => 0,
    };
    let mut decoded = Vec::with_capacity((hint as usize).min(max_bytes) + 1);
    // Read one byte past the limit to tell "exactly at" from "over".
    GzDecoder::new(body)
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut decoded)
        .map_err(|e| IngestError::Malformed(format!("body is not valid gzip: {e}")))?;
    if decoded.len() > max_bytes {
        return Err(IngestError::TooLarge { limit: max_bytes });
    }
    Ok(Cow::Owned(decoded))
}
