//! The auditx worker: consumes export tasks from the task queue, renders
//! chunks of the audit lake into staging objects ([`render_chunk`]) and
//! assembles output files from them as S3 multipart parts
//! ([`assemble_file`]), reporting every result back to the schedulers.
//!
//! Workers hold no state: every task carries what it needs, results are
//! deterministic, and a task is acknowledged only after its report is
//! published, so redeliveries after a crash are always safe.

mod assemble;
pub mod csv;
mod error;
mod health;
mod metrics;
mod parts;
mod render;
mod run;

pub use assemble::assemble_file;
pub use error::WorkerError;
pub use health::serve_health;
pub use parts::PartSplitter;
pub use render::{order_rows, render_chunk, render_csv, RenderedChunk};
pub use run::run;
