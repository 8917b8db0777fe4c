//! Cutting a byte stream into multipart parts of exactly `part_size` bytes.

use bytes::{Bytes, BytesMut};

/// Buffers a stream of byte chunks into parts of exactly `part_size` bytes;
/// only the last part (from [`PartSplitter::finish`]) may be smaller. S3
/// rejects undersized parts other than the last, and staged chunks are
/// often much smaller than a part.
#[derive(Debug)]
pub struct PartSplitter {
    part_size: usize,
    buffer: BytesMut,
}

impl PartSplitter {
    /// `part_size` must be positive.
    pub fn new(part_size: usize) -> Self {
        assert!(part_size > 0, "part size must be positive");
        Self {
            part_size,
            buffer: BytesMut::new(),
        }
    }

    /// Takes bytes from the front of `data` until a part is full and returns
    /// it, or returns `None` once `data` is used up. Call it until `None`.
    /// A chunk that holds a whole part while nothing is buffered is split
    /// off without copying.
    pub fn next_part(&mut self, data: &mut Bytes) -> Option<Bytes> {
        if self.buffer.is_empty() && data.len() >= self.part_size {
            return Some(data.split_to(self.part_size));
        }
        if data.is_empty() {
            return None;
        }
        if self.buffer.capacity() == 0 {
            self.buffer.reserve(self.part_size);
        }
        let take = (self.part_size - self.buffer.len()).min(data.len());
        self.buffer.extend_from_slice(&data.split_to(take));
        (self.buffer.len() == self.part_size).then(|| self.buffer.split().freeze())
    }

    /// The last, possibly smaller, part; `None` if nothing is buffered.
    pub fn finish(self) -> Option<Bytes> {
        (!self.buffer.is_empty()).then(|| self.buffer.freeze())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Feeds `chunks` through a splitter and returns the parts.
    fn split(part_size: usize, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut splitter = PartSplitter::new(part_size);
        let mut parts = Vec::new();
        for chunk in chunks {
            let mut data = Bytes::copy_from_slice(chunk);
            while let Some(part) = splitter.next_part(&mut data) {
                parts.push(part.to_vec());
            }
            assert!(data.is_empty());
        }
        parts.extend(splitter.finish().map(|p| p.to_vec()));
        parts
    }

    #[test]
    fn small_chunks_are_gathered_into_full_parts() {
        let parts = split(4, &[b"ab", b"c", b"", b"defgh", b"ij"]);
        assert_eq!(parts, [b"abcd".to_vec(), b"efgh".to_vec(), b"ij".to_vec()]);
    }

    #[test]
    fn a_large_chunk_becomes_several_parts() {
        let parts = split(3, &[b"x", b"abcdefghij"]);
        assert_eq!(
            parts,
            [
                b"xab".to_vec(),
                b"cde".to_vec(),
                b"fgh".to_vec(),
                b"ij".to_vec()
            ]
        );
        let parts = split(3, &[b"abcdef"]);
        assert_eq!(parts, [b"abc".to_vec(), b"def".to_vec()]);
    }

    #[test]
    fn a_header_only_file_is_one_part() {
        assert_eq!(
            split(5 << 20, &[b"eventId,eventTime\n"]),
            [b"eventId,eventTime\n".to_vec()]
        );
        assert!(split(4, &[]).is_empty());
    }

    proptest! {
        #[test]
        fn parts_are_exactly_part_size_and_rejoin_to_the_input(
            part_size in 1usize..64,
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..20),
        ) {
            let slices: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let parts = split(part_size, &slices);
            let input = chunks.concat();
            prop_assert_eq!(parts.concat(), input.clone());
            prop_assert_eq!(parts.len(), input.len().div_ceil(part_size));
            if let Some((last, full)) = parts.split_last() {
                prop_assert!(full.iter().all(|p| p.len() == part_size));
                prop_assert!(!last.is_empty() && last.len() <= part_size);
            }
        }
    }
}
