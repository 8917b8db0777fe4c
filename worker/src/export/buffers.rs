//! Render buffers kept for the next chunk (see [`auditx_common::buffers`]).
//!
//! A chunk renders into one buffer of 10–20 MB that lives until its
//! staging upload is sent; a profile of a 5 M-row export had 7 % of its CPU
//! in the page faults of a new buffer per chunk. The process keeps two,
//! shared by its worker loops (one each with the default two loops).

use auditx_common::buffers::Pool;
use bytes::Bytes;

static RENDERED: Pool = Pool::new(2, 64 << 20);

/// An empty buffer of at least `capacity` bytes.
pub fn take(capacity: usize) -> Vec<u8> {
    RENDERED.take(capacity)
}

/// The bytes of `buffer`, kept for another chunk once they are dropped.
pub fn into_bytes(buffer: Vec<u8>) -> Bytes {
    RENDERED.into_bytes(buffer)
}
