//! Generated ids: one space per kind of thing, unique and stable per seed.

use sha2::{Digest, Sha256};

/// The splitmix64 finalizer: a bijection of u64, so distinct inputs give
/// distinct ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(crate) fn digest(seed: u64, name: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(seed.to_le_bytes());
    hash.update(name.as_bytes());
    hash.finalize().into()
}

/// Ids of one kind of thing (the rows of a table, accounts, contacts...):
/// `gen-` and 32 hex digits, unique per index within the space. The
/// `gen-` prefix keeps them apart from the ids clients ingest (Zuora ids
/// are 32 hex digits), since generate does not record its ids in the
/// ingest id set.
#[derive(Clone, Debug)]
pub(crate) struct IdSpace {
    key: u64,
    salt: u64,
}

impl IdSpace {
    pub(crate) fn new(seed: u64, kind: &str) -> Self {
        let d = digest(seed, kind);
        let word = |i: usize| u64::from_le_bytes(d[i..i + 8].try_into().expect("8 bytes"));
        Self {
            key: word(0),
            salt: word(8),
        }
    }

    pub(crate) fn id(&self, index: u64) -> String {
        let low = mix(index ^ self.key);
        let high = mix(low ^ self.salt);
        format!("gen-{high:016x}{low:016x}")
    }
}

/// The ids of the things audit events refer to.
pub(crate) struct Refs {
    /// The users who log in and make changes (by index into their list).
    pub user: IdSpace,
    pub account: IdSpace,
    pub contact: IdSpace,
    pub product: IdSpace,
    pub rate_plan: IdSpace,
    pub charge: IdSpace,
    pub tier: IdSpace,
    /// Login tokens, by session and user (see `super::events`).
    pub token: IdSpace,
}

impl Refs {
    /// Each space is the one of its table's `id` column (see `TableRows`).
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            user: IdSpace::new(seed, "user"),
            account: IdSpace::new(seed, "account"),
            contact: IdSpace::new(seed, "contact"),
            product: IdSpace::new(seed, "product"),
            rate_plan: IdSpace::new(seed, "productrateplan"),
            charge: IdSpace::new(seed, "productrateplancharge"),
            tier: IdSpace::new(seed, "productrateplanchargetier"),
            token: IdSpace::new(seed, "token"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_unique_prefixed_hex() {
        let space = IdSpace::new(7, "contact");
        let ids: HashSet<String> = (0..100_000).map(|i| space.id(i)).collect();
        assert_eq!(ids.len(), 100_000);
        let id = space.id(0);
        assert_eq!(id.len(), 36);
        assert!(id.starts_with("gen-"));
        assert!(id[4..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(IdSpace::new(8, "contact").id(0), id);
        assert_ne!(IdSpace::new(7, "product").id(0), id);
    }
}
