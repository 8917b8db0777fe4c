//! Large byte buffers kept for reuse.
//!
//! The process maps allocations of 1 MiB and more on their own and unmaps
//! them when freed (`tune_malloc` in the CLI keeps the resident set low
//! that way), so a new large buffer costs a page fault and a zeroed page
//! for every 4 KiB written into it. Buffers that are made and dropped over
//! and over — a chunk's rendered bytes, a GET body gathered for the
//! Parquet reader — come from a [`Pool`] instead and go back to it when the
//! last reference to their bytes is dropped. A pool keeps a few buffers of
//! bounded size, so memory at rest stays bounded too.

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

/// A few reusable buffers.
pub struct Pool {
    buffers: Mutex<Vec<Vec<u8>>>,
    /// Buffers kept at most.
    kept: usize,
    /// A buffer larger than this is freed, not kept.
    largest: usize,
}

impl Pool {
    pub const fn new(kept: usize, largest: usize) -> Self {
        Self {
            buffers: Mutex::new(Vec::new()),
            kept,
            largest,
        }
    }

    fn buffers(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.buffers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty buffer of at least `capacity` bytes: a kept one when there
    /// is one (the largest), else a new one.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let mut buffer = {
            let mut buffers = self.buffers();
            let largest = (0..buffers.len()).max_by_key(|&i| buffers[i].capacity());
            largest.map(|i| buffers.swap_remove(i)).unwrap_or_default()
        };
        buffer.clear();
        buffer.reserve(capacity);
        buffer
    }

    /// The bytes of `buffer`, which comes back to this pool once they (and
    /// every slice of them) are dropped.
    pub fn into_bytes(&'static self, buffer: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled { buffer, pool: self })
    }

    /// Keeps `buffer` for a later [`Pool::take`] if there is room.
    pub fn give_back(&self, buffer: Vec<u8>) {
        if buffer.capacity() == 0 || buffer.capacity() > self.largest {
            return;
        }
        let mut buffers = self.buffers();
        if buffers.len() < self.kept {
            buffers.push(buffer);
        }
    }
}

struct Pooled {
    buffer: Vec<u8>,
    pool: &'static Pool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_once_its_bytes_are_dropped() {
        static POOL: Pool = Pool::new(2, 1 << 20);
        let mut buffer = POOL.take(1 << 16);
        buffer.extend_from_slice(b"rows of a chunk");
        let address = buffer.as_ptr();
        let bytes = POOL.into_bytes(buffer);
        let slice = bytes.slice(5..7);
        assert_eq!(&bytes[..], b"rows of a chunk");
        drop(bytes);
        // A slice still holds it: a new buffer is another one.
        let other = POOL.take(16);
        assert_ne!(other.as_ptr(), address);
        drop(other);
        assert_eq!(&slice[..], b"of");
        drop(slice);
        // Back, emptied, with its capacity.
        let again = POOL.take(16);
        assert_eq!(again.as_ptr(), address);
        assert!(again.is_empty() && again.capacity() >= 1 << 16);
    }

    #[test]
    fn a_full_pool_or_an_outsized_buffer_is_not_kept() {
        static POOL: Pool = Pool::new(1, 1 << 10);
        POOL.give_back(Vec::with_capacity(1 << 11));
        assert_eq!(POOL.take(0).capacity(), 0);
        let (a, b) = (Vec::with_capacity(64), Vec::with_capacity(128));
        let a_address = a.as_ptr();
        POOL.give_back(a);
        POOL.give_back(b);
        let kept = POOL.take(0);
        assert_eq!(kept.as_ptr(), a_address);
        assert_eq!(POOL.take(0).capacity(), 0);
    }
}
