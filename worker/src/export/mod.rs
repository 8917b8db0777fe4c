//! Export tasks: render a chunk of the lake into a staging object, and
//! assemble an output file from staged ranges as S3 multipart parts.

pub mod assemble;
pub mod csv;
pub mod parts;
pub mod render;
