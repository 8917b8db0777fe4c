//! The auditx worker: consumes tasks from the task queue — renders
//! chunks of the audit lake into staging objects ([`render_chunk`]),
//! assembles output files from them as S3 multipart parts
//! ([`assemble_file`]), runs data queries ([`query`]) — and reports every
//! result back to the schedulers.
//!
//! Workers hold no state: every task carries what it needs, results are
//! deterministic, and a task is acknowledged only after its report is
//! published, so redeliveries after a crash are always safe.

mod announce;
mod error;
pub mod export;
mod health;
mod metrics;
pub mod query;
mod run;

pub use error::WorkerError;
pub use export::assemble::{assemble_file, assemble_prefix};
pub use export::chunk::RenderedChunk;
pub use export::parts::PartSplitter;
pub use export::render::render_chunk;
pub use health::serve_health;
pub use run::run;
