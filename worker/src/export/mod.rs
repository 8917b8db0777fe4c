//! Export tasks: render a chunk of the lake into a staging object, and
//! assemble an output file from staged ranges as S3 multipart parts, in
//! CSV, JSON Lines or Parquet.

pub mod assemble;
pub mod buffers;
pub mod chunk;
pub mod columnar;
pub mod csv;
pub mod jsonl;
pub mod parquet;
pub mod parts;
pub mod render;
pub mod sha256;
