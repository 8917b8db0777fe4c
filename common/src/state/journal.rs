//! The on-disk journal of the embedded default's state store: every change
//! of [`super::MemoryStore`] appended to one file in the data folder, read
//! back when the process starts again.
//!
//! Durability is Redis' `appendonly yes` + `appendfsync everysec`: each
//! change is written (one `write`) before the call returns, so it survives
//! the process being killed; a background thread `fdatasync`s the file
//! once a second, so a machine crash loses at most the last second. A torn
//! record at the end (a crash mid-write) is detected by its checksum and
//! cut off on open; everything before it is kept.
//!
//! The journal is rewritten as a snapshot of the live state when the
//! store opens and whenever it has grown to more than twice the size of the
//! last snapshot (and past [`COMPACT_FROM_BYTES`]), so it stays
//! proportional to what the store holds, not to its history.
//!
//! Leases and rate-limit buckets are not journaled: they belong to the
//! running process (a restarted process must not wait for its previous
//! life's leases to expire). Fencing counters are, so that tokens keep
//! growing across restarts. One process at a time: the file is locked.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The journal file's name inside the store's folder.
pub const JOURNAL_FILE: &str = "state.journal";

/// Below this size the journal is never compacted while running.
const COMPACT_FROM_BYTES: u64 = 64 << 20;

/// How often written changes are forced to disk.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// A record's header: payload length and checksum, both little-endian u32.
const HEADER_BYTES: usize = 8;

/// One change, in the order it was made. Replaying every record of a
/// journal yields the state the store had when the last one was written.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Op {
    /// `key` now holds `entry` (replacing whatever it held).
    Put {
        key: String,
        entry: Stored,
    },
    Delete {
        keys: Vec<String>,
    },
    HashSet {
        key: String,
        field: String,
        value: Vec<u8>,
    },
    LogAppend {
        key: String,
        id: String,
        value: Vec<u8>,
    },
    ListPush {
        key: String,
        value: String,
    },
    ListRemove {
        key: String,
        value: String,
    },
    SetAdd {
        key: String,
        members: Vec<String>,
    },
    SetRemove {
        key: String,
        members: Vec<String>,
    },
    IndexAdd {
        key: String,
        score: i64,
        member: String,
    },
    IndexRemove {
        key: String,
        member: String,
    },
    /// The last fencing token handed out for lease `key`.
    Fence {
        key: String,
        token: u64,
    },
    /// Changes made atomically: one record, so all or none are replayed.
    Batch {
        ops: Vec<Op>,
    },
}

/// A journaled value: every kind of entry but leases.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Stored {
    Value {
        value: Vec<u8>,
    },
    Hash {
        fields: BTreeMap<String, Vec<u8>>,
    },
    List {
        items: Vec<String>,
    },
    Log {
        ids: Vec<String>,
        entries: Vec<Vec<u8>>,
    },
    Set {
        members: BTreeSet<String>,
    },
    Index {
        scores: BTreeMap<String, i64>,
    },
}

/// FNV-1a, 32 bits: enough to tell a torn tail from a whole record.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

fn encode_record(op: &Op) -> io::Result<Vec<u8>> {
    let payload = rmp_serde::to_vec_named(op).map_err(io::Error::other)?;
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::other("a state change of 4 GiB or more"))?;
    let mut record = Vec::with_capacity(HEADER_BYTES + payload.len());
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&checksum(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    Ok(record)
}

/// Reads every whole record of `file` from the start; returns them and the
/// length of the valid prefix (a torn or corrupt tail is not part of it).
fn read_records(file: &mut File) -> io::Result<(Vec<Op>, u64)> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    let mut ops = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= HEADER_BYTES {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let sum = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        let start = at + HEADER_BYTES;
        let Some(payload) = bytes.get(start..start + len) else {
            break;
        };
        if checksum(payload) != sum {
            break;
        }
        match rmp_serde::from_slice::<Op>(payload) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
        at = start + len;
    }
    if at < bytes.len() {
        tracing::warn!(
            kept = at,
            dropped = bytes.len() - at,
            "state journal: cut off an incomplete record at its end (a crash mid-write)"
        );
    }
    Ok((ops, at as u64))
}

/// The open journal. Lives inside the store's mutex, so records are written
/// in the order the changes were made.
pub(super) struct Journal {
    dir: PathBuf,
    file: File,
    /// Bytes in the file.
    len: u64,
    /// Size of the last snapshot.
    snapshot_len: u64,
    /// Never compact below this size.
    compact_from: u64,
    dirty: Arc<AtomicBool>,
    /// Keeps the folder's lock; the sync thread stops when it is dropped.
    _alive: Arc<LockedFile>,
}

/// The lock file of the store's folder, held for the store's lifetime.
struct LockedFile(#[allow(dead_code)] File);

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, returning it and the
    /// changes it holds. Fails if another process has the folder open.
    pub(super) fn open(dir: &Path) -> io::Result<(Self, Vec<Op>)> {
        std::fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("state.lock"))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "the state folder {} is in use by another auditx process",
                    dir.display()
                ),
            )
        })?;
        let path = dir.join(JOURNAL_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        let (ops, valid) = read_records(&mut file)?;
        file.set_len(valid)?;
        file.seek(SeekFrom::End(0))?;
        let alive = Arc::new(LockedFile(lock));
        let dirty = Arc::new(AtomicBool::new(false));
        spawn_syncer(file.try_clone()?, dirty.clone(), Arc::downgrade(&alive));
        let journal = Self {
            dir: dir.to_path_buf(),
            file,
            len: valid,
            snapshot_len: valid,
            compact_from: COMPACT_FROM_BYTES,
            dirty,
            _alive: alive,
        };
        Ok((journal, ops))
    }

    /// Appends one change.
    pub(super) fn append(&mut self, op: &Op) -> io::Result<()> {
        let record = encode_record(op)?;
        self.file.write_all(&record)?;
        self.len += record.len() as u64;
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether the journal has grown enough to be worth rewriting.
    pub(super) fn wants_compaction(&self) -> bool {
        self.len > self.compact_from && self.len > 2 * self.snapshot_len
    }

    /// Bytes in the journal file now.
    #[cfg(test)]
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    #[cfg(test)]
    pub(super) fn set_compact_from(&mut self, bytes: u64) {
        self.compact_from = bytes;
    }

    /// Replaces the journal by `ops` (a snapshot of the live state): written
    /// to a new file, synced, then renamed over the old one, so a crash at
    /// any point leaves one whole journal.
    pub(super) fn rewrite(&mut self, ops: impl Iterator<Item = Op>) -> io::Result<()> {
        let tmp = self.dir.join(format!("{JOURNAL_FILE}.tmp"));
        let mut out = BufWriter::new(File::create(&tmp)?);
        let mut len = 0u64;
        for op in ops {
            let record = encode_record(&op)?;
            out.write_all(&record)?;
            len += record.len() as u64;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(JOURNAL_FILE))?;
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(JOURNAL_FILE))?;
        file.seek(SeekFrom::End(0))?;
        spawn_syncer(
            file.try_clone()?,
            self.dirty.clone(),
            Arc::downgrade(&self._alive),
        );
        self.file = file;
        self.len = len;
        self.snapshot_len = len;
        Ok(())
    }
}

/// `fdatasync`s `file` once a second while there are unsynced writes, until
/// the store is dropped (or the journal rewritten: the old file's thread
/// then syncs a file nobody writes to, once, and goes on idling until the
/// store goes).
fn spawn_syncer(file: File, dirty: Arc<AtomicBool>, alive: Weak<LockedFile>) {
    let spawned = std::thread::Builder::new()
        .name("auditx-state-sync".into())
        .spawn(move || loop {
            std::thread::sleep(SYNC_EVERY);
            let live = alive.upgrade().is_some();
            if dirty.swap(false, Ordering::AcqRel) {
                if let Err(error) = file.sync_data() {
                    tracing::error!(%error, "state journal: fdatasync failed");
                }
            }
            if !live {
                return;
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "state journal: no sync thread (changes reach disk when the OS writes them)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_cut_off_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut journal, ops) = Journal::open(dir.path()).unwrap();
            assert!(ops.is_empty());
            for i in 0..3 {
                journal
                    .append(&Op::ListPush {
                        key: "q".into(),
                        value: format!("item-{i}"),
                    })
                    .unwrap();
            }
        }
        let path = dir.path().join(JOURNAL_FILE);
        let whole = std::fs::metadata(&path).unwrap().len();
        // A crash in the middle of writing the third record.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(whole - 3).unwrap();
        drop(file);

        let (mut journal, ops) = Journal::open(dir.path()).unwrap();
        let items: Vec<String> = ops
            .iter()
            .map(|op| match op {
                Op::ListPush { value, .. } => value.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(items, ["item-0", "item-1"]);
        // New records go after the kept ones, not after the torn bytes.
        journal
            .append(&Op::ListPush {
                key: "q".into(),
                value: "item-3".into(),
            })
            .unwrap();
        drop(journal);
        let (_journal, ops) = Journal::open(dir.path()).unwrap();
        assert_eq!(ops.len(), 3);
    }

    #[test]
    fn a_corrupt_record_ends_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            for key in ["a", "b"] {
                journal
                    .append(&Op::Delete {
                        keys: vec![key.into()],
                    })
                    .unwrap();
            }
        }
        let path = dir.path().join(JOURNAL_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let (_journal, ops) = Journal::open(dir.path()).unwrap();
        assert_eq!(ops.len(), 1);
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (_first, _) = Journal::open(dir.path()).unwrap();
        let second = Journal::open(dir.path())
            .err()
            .expect("the folder is locked");
        assert!(
            second
                .to_string()
                .contains("in use by another auditx process"),
            "{second}"
        );
    }
}
