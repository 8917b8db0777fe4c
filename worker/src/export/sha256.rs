//! SHA-256 that can be paused and resumed elsewhere: a file assembled in
//! stages by different workers ([`auditx_proto::Task::AssemblePrefix`])
//! is hashed in one pass over its bytes, each stage carrying the
//! computation on from the state the previous stage reported.
//!
//! `sha2`'s hasher cannot hand out its state, so the blocks are fed to
//! its compression function (the same one, SHA-NI where the CPU has it)
//! and the state, the length and the begun block are kept here.

use auditx_proto::Sha256Midstate;

const BLOCK: usize = 64;

/// The initial state words (FIPS 180-4, 5.3.3).
const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A SHA-256 computation under way.
#[derive(Clone, Debug)]
pub struct ResumableSha256 {
    state: [u32; 8],
    bytes: u64,
    block: [u8; BLOCK],
    /// Bytes of `block` filled (`bytes % 64`).
    filled: usize,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        Self::new()
    }
}

/// A midstate that no computation could have paused at.
#[derive(Debug, thiserror::Error)]
#[error(
    "the SHA-256 midstate holds {pending} pending bytes after {bytes} bytes (expected bytes % 64)"
)]
pub struct BadMidstate {
    pending: usize,
    bytes: u64,
}

impl ResumableSha256 {
    pub fn new() -> Self {
        Self {
            state: INITIAL,
            bytes: 0,
            block: [0; BLOCK],
            filled: 0,
        }
    }

    /// Resumes the computation `midstate` paused.
    pub fn resume(midstate: &Sha256Midstate) -> Result<Self, BadMidstate> {
        let filled = midstate.pending.len();
        if filled as u64 != midstate.bytes % BLOCK as u64 {
            return Err(BadMidstate {
                pending: filled,
                bytes: midstate.bytes,
            });
        }
        let mut block = [0; BLOCK];
        block[..filled].copy_from_slice(&midstate.pending);
        Ok(Self {
            state: midstate.state,
            bytes: midstate.bytes,
            block,
            filled,
        })
    }

    /// Bytes hashed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.bytes += data.len() as u64;
        if self.filled > 0 {
            let take = (BLOCK - self.filled).min(data.len());
            self.block[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled < BLOCK {
                return;
            }
            compress(&mut self.state, &self.block);
            self.filled = 0;
        }
        let mut blocks = data.chunks_exact(BLOCK);
        for block in &mut blocks {
            compress(&mut self.state, block);
        }
        let rest = blocks.remainder();
        self.block[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    /// The computation paused here, to resume with [`Self::resume`].
    pub fn midstate(&self) -> Sha256Midstate {
        Sha256Midstate {
            state: self.state,
            bytes: self.bytes,
            pending: self.block[..self.filled].to_vec(),
        }
    }

    /// The digest of every byte fed, from the start.
    pub fn finalize(mut self) -> [u8; 32] {
        let bits = self.bytes.wrapping_mul(8);
        let mut tail = [0u8; 2 * BLOCK];
        tail[..self.filled].copy_from_slice(&self.block[..self.filled]);
        tail[self.filled] = 0x80;
        // The length goes in the last 8 bytes of the first block with room.
        let len = if self.filled < BLOCK - 8 {
            BLOCK
        } else {
            2 * BLOCK
        };
        tail[len - 8..len].copy_from_slice(&bits.to_be_bytes());
        for block in tail[..len].chunks_exact(BLOCK) {
            compress(&mut self.state, block);
        }
        let mut digest = [0u8; 32];
        for (out, word) in digest.chunks_exact_mut(4).zip(self.state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        digest
    }
}

/// `sha2` 0.10's block function takes its blocks as generic-array 0.14
/// arrays, which that crate now marks deprecated.
#[allow(deprecated)]
fn compress(state: &mut [u32; 8], block: &[u8]) {
    use sha2::digest::generic_array::GenericArray;
    sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    use super::*;

    fn reference(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    #[test]
    fn known_digests() {
        assert_eq!(
            hex::encode(ResumableSha256::new().finalize()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut abc = ResumableSha256::new();
        abc.update(b"abc");
        assert_eq!(
            hex::encode(abc.finalize()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Lengths around the padding's edges: 55, 56, 63, 64, 65 bytes.
        for len in [55, 56, 63, 64, 65, 119, 120, 128] {
            let data = vec![b'a'; len];
            let mut hasher = ResumableSha256::new();
            hasher.update(&data);
            assert_eq!(hasher.finalize(), reference(&data), "{len} bytes");
        }
    }

    #[test]
    fn a_midstate_that_does_not_add_up_is_refused() {
        let midstate = Sha256Midstate {
            state: INITIAL,
            bytes: 70,
            pending: vec![0; 5],
        };
        let error = ResumableSha256::resume(&midstate).unwrap_err();
        assert!(
            error.to_string().contains("5 pending bytes after 70"),
            "{error}"
        );
    }

    proptest! {
        /// Paused anywhere, carried through its wire form and resumed (any
        /// number of times), the hash is the one-pass hash of the bytes.
        #[test]
        fn paused_and_resumed_it_is_the_hash_of_the_bytes(
            data in prop::collection::vec(any::<u8>(), 0..700),
            cuts in prop::collection::vec(0usize..700, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut hasher = ResumableSha256::new();
            let mut at = 0;
            for cut in cuts {
                hasher.update(&data[at..cut]);
                at = cut;
                let wire = auditx_proto::encode(&hasher.midstate()).unwrap();
                let midstate: Sha256Midstate = auditx_proto::decode(&wire).unwrap();
                prop_assert_eq!(midstate.bytes, at as u64);
                hasher = ResumableSha256::resume(&midstate).unwrap();
            }
            hasher.update(&data[at..]);
            prop_assert_eq!(hasher.finalize(), reference(&data));
        }
    }
}
