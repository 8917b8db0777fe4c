//! The wire contract between auditx schedulers and workers.
//!
//! Every message is MessagePack with named fields ([`encode`] uses
//! `rmp_serde::to_vec_named`), no type denies unknown fields, and fields added
//! later carry `#[serde(default)]`: during a rolling deploy old and new
//! versions read each other's messages.

mod event;
mod ids;
mod names;
mod query;
mod scope;
mod task;

pub use event::{CloudEvent, ExportEventData, PresignedFile, QueryEventData, EVENT_SOURCE};
pub use ids::{ChunkId, FileIndex, MeterId, QueryId, RequestId, TenantId};
pub use names::{Topology, TRACEPARENT_HEADER, TRACK_ID_HEADER};
pub use query::{Compression, QueryOutcome, QueryOutputFormat, QueryTask};
pub use scope::Scope;
pub use task::{
    AssembleOutcome, AssembleResume, AssembleTask, LakeSource, OutputFormat, PrefixOutcome,
    QueryFailure, RecordType, RenderOutcome, RenderTask, RowFilter, RunType, Segment,
    Sha256Midstate, Task, TaskFailure, TaskRef, UploadedPart, WorkerReport,
};

/// A message that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("encode: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("decode: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
}

/// Encodes a message as MessagePack with field names kept.
pub fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(rmp_serde::to_vec_named(value)?)
}

/// Decodes a MessagePack message.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Ok(rmp_serde::from_slice(bytes)?)
}
