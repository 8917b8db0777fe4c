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
