//! What rendering one chunk produces, whatever the format.

/// The rendered data rows of one chunk (no header): the staging object.
#[derive(Debug, PartialEq, Eq)]
pub struct RenderedChunk {
    pub bytes: Vec<u8>,
    pub rows: u64,
    /// `row_offsets[i]` is the byte offset of row `i * stride`.
    pub row_offsets: Vec<u64>,
    /// The rows' bytes at the start of `bytes`: all of it, but for Parquet,
    /// whose chunk footer follows (see [`super::parquet`]).
    pub data_len: u64,
}

/// The payload among [`Fields::optional`].
pub const PAYLOAD: usize = 6;

/// The fields of one export row, borrowed from the lake's columns: absent
/// values `None`.
#[derive(Clone, Copy, Debug)]
pub struct Fields<'a> {
    pub event_id: &'a str,
    pub event_time_ms: i64,
    pub session_id: &'a str,
    pub run_type: &'a str,
    /// The status of the row's run, from the runs table.
    pub run_status: Option<&'a str>,
    /// operatorId, operatorType, operatorName, errorCode, errorMessage,
    /// traceId, payload.
    pub optional: [Option<&'a str>; 7],
}

impl Fields<'_> {
    pub fn payload(&self) -> Option<&str> {
        self.optional[PAYLOAD]
    }
}
