//! Lake files are content-addressed: a file's name is the hash of its
//! bytes, so a retried write lands on the same key and adds nothing.

use sha2::{Digest, Sha256};

/// Hex characters of the SHA-256 kept in a file name: 128 bits, plenty
/// against collisions and short enough to read in a listing.
const HASH_CHARS: usize = 32;

/// Name of a lake file with these bytes (without prefix and extension).
pub fn content_hash(bytes: &[u8]) -> String {
    let mut hex = hex::encode(Sha256::digest(bytes));
    hex.truncate(HASH_CHARS);
    hex
}

/// The key of a lake file whose content hashes to `content_hash`.
pub fn file_key(prefix: &str, content_hash: &str) -> String {
    format!("{prefix}{content_hash}.parquet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_is_a_short_stable_hex_name() {
        assert_eq!(content_hash(b"abc"), "ba7816bf8f01cfea414140de5dae2223");
    }
}
