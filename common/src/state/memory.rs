//! The in-process state store of the embedded default, kept on disk in the
//! data folder when opened with [`MemoryStore::open`] (see [`super::journal`]).
//!
//! It mirrors Redis where callers could tell the difference: a key holds one
//! kind of value (using it as another kind is an error, like Redis'
//! `WRONGTYPE`), emptied collections disappear, and fencing counters outlive
//! their leases so tokens keep growing. Lease expiry uses
//! [`tokio::time::Instant`] so that tests with a paused clock can expire
//! leases without sleeping.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::journal::{Journal, Op, Stored};
use super::{token_interval, Guard, Lease, StateError, StateResult, StateStore, Write};

/// State kept in memory for one process: lost when the process exits
/// ([`MemoryStore::new`]), or journaled to a folder and read back on the
/// next start ([`MemoryStore::open`]).
#[derive(Default)]
pub struct MemoryStore {
    data: Mutex<Data>,
}

impl MemoryStore {
    /// A store that lives as long as the process.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store kept in `dir`: the state its journal holds is loaded, and
    /// every change is journaled before the call that makes it returns.
    /// Fails if another process has `dir` open.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let (journal, ops) = Journal::open(dir)?;
        let mut data = Data::default();
        let replayed = ops.len();
        for op in ops {
            data.apply(op);
        }
        data.journal = Some(journal);
        data.compact()?;
        tracing::info!(
            dir = %dir.display(),
            replayed,
            keys = data.entries.len(),
            "state store opened"
        );
        Ok(Self {
            data: Mutex::new(data),
        })
    }

    /// Every journaled entry (leases and rate-limit buckets excepted) as
    /// one line of text, sorted: what a reopened store must hold again.
    #[doc(hidden)]
    pub fn durable_view(&self) -> Vec<String> {
        let data = self.lock();
        let mut lines: Vec<String> = data
            .entries
            .iter()
            .filter_map(|(key, entry)| stored(entry).map(|s| format!("{key} = {s:?}")))
            .collect();
        lines.extend(
            data.fences
                .iter()
                .map(|(key, token)| format!("fence {key} = {token}")),
        );
        lines.sort();
        lines
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        // A panic elsewhere cannot leave `Data` half-updated: every change is
        // a single map operation, so the poisoned state is still consistent.
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Default)]
struct Data {
    entries: HashMap<String, Entry>,
    /// Last fencing token handed out per lease key; never deleted.
    fences: HashMap<String, u64>,
    /// Token buckets: the theoretical arrival time of the next call (GCRA).
    buckets: HashMap<String, Instant>,
    /// Where changes are journaled, if the store is kept on disk.
    journal: Option<Journal>,
}

/// The journaled form of `entry`; `None` for leases.
fn stored(entry: &Entry) -> Option<Stored> {
    Some(match entry {
        Entry::Value(value) => Stored::Value {
            value: value.clone(),
        },
        Entry::Hash(fields) => Stored::Hash {
            fields: fields.clone(),
        },
        Entry::List(items) => Stored::List {
            items: items.clone(),
        },
        Entry::Log { ids, entries } => {
            let mut ids: Vec<String> = ids.iter().cloned().collect();
            ids.sort();
            Stored::Log {
                ids,
                entries: entries.clone(),
            }
        }
        Entry::Set(members) => Stored::Set {
            members: members.clone(),
        },
        Entry::Index(scores) => Stored::Index {
            scores: scores.clone(),
        },
        Entry::Lease { .. } => return None,
    })
}

fn unstored(stored: Stored) -> Entry {
    match stored {
        Stored::Value { value } => Entry::Value(value),
        Stored::Hash { fields } => Entry::Hash(fields),
        Stored::List { items } => Entry::List(items),
        Stored::Log { ids, entries } => Entry::Log {
            ids: ids.into_iter().collect(),
            entries,
        },
        Stored::Set { members } => Entry::Set(members),
        Stored::Index { scores } => Entry::Index(scores),
    }
}

enum Entry {
    Value(Vec<u8>),
    Hash(BTreeMap<String, Vec<u8>>),
    List(Vec<String>),
    Log {
        ids: std::collections::HashSet<String>,
        entries: Vec<Vec<u8>>,
    },
    Set(BTreeSet<String>),
    /// Member → score.
    Index(BTreeMap<String, i64>),
    Lease {
        owner: String,
        token: u64,
        expires_at: Instant,
    },
}

fn put_value(key: &str, value: &[u8]) -> Op {
    Op::Put {
        key: key.to_string(),
        entry: Stored::Value {
            value: value.to_vec(),
        },
    }
}

fn wrong_type(key: &str) -> StateError {
    StateError::Other(format!("key {key} holds a value of another kind"))
}

impl Data {
    /// Journals a change already made in memory. A failed write is reported
    /// as the store being unavailable: the caller retries, and every change
    /// is one a retry may repeat.
    fn record(&mut self, op: Op) -> StateResult<()> {
        let Some(journal) = self.journal.as_mut() else {
            return Ok(());
        };
        journal
            .append(&op)
            .map_err(|e| StateError::Unavailable(format!("state journal: {e}")))?;
        if journal.wants_compaction() {
            self.compact()
                .map_err(|e| StateError::Unavailable(format!("state journal: {e}")))?;
        }
        Ok(())
    }

    /// Rewrites the journal as a snapshot of the live state.
    fn compact(&mut self) -> std::io::Result<()> {
        let Some(mut journal) = self.journal.take() else {
            return Ok(());
        };
        let entries = self.entries.iter().filter_map(|(key, entry)| {
            stored(entry).map(|entry| Op::Put {
                key: key.clone(),
                entry,
            })
        });
        let fences = self.fences.iter().map(|(key, token)| Op::Fence {
            key: key.clone(),
            token: *token,
        });
        let outcome = journal.rewrite(entries.chain(fences));
        self.journal = Some(journal);
        outcome
    }

    /// Replays one journaled change. Changes were valid when made, so a
    /// mismatch of kinds cannot happen; if it did, the later change wins.
    fn apply(&mut self, op: Op) {
        match op {
            Op::Put { key, entry } => {
                self.entries.insert(key, unstored(entry));
            }
            Op::Delete { keys } => {
                for key in keys {
                    self.entries.remove(&key);
                }
            }
            Op::HashSet { key, field, value } => {
                if let Ok(hash) = self.collection(&key, || Entry::Hash(BTreeMap::new()), hash) {
                    hash.entry(field).or_insert(value);
                }
            }
            Op::LogAppend { key, id, value } => {
                if !matches!(self.entries.get(&key), Some(Entry::Log { .. })) {
                    self.entries.insert(
                        key.clone(),
                        Entry::Log {
                            ids: Default::default(),
                            entries: Vec::new(),
                        },
                    );
                }
                if let Some(Entry::Log { ids, entries }) = self.entries.get_mut(&key) {
                    if ids.insert(id) {
                        entries.push(value);
                    }
                }
            }
            Op::ListPush { key, value } => {
                if let Ok(list) = self.collection(&key, || Entry::List(Vec::new()), list) {
                    list.push(value);
                }
            }
            Op::ListRemove { key, value } => {
                if let Ok(Some(list)) = self.existing(&key, list) {
                    list.retain(|v| *v != value);
                }
                self.drop_if_empty(&key);
            }
            Op::SetAdd { key, members } => {
                if let Ok(set) = self.collection(&key, || Entry::Set(BTreeSet::new()), set) {
                    set.extend(members);
                }
            }
            Op::SetRemove { key, members } => {
                if let Ok(Some(set)) = self.existing(&key, set) {
                    for member in &members {
                        set.remove(member);
                    }
                }
                self.drop_if_empty(&key);
            }
            Op::IndexAdd { key, score, member } => {
                if let Ok(index) = self.collection(&key, || Entry::Index(BTreeMap::new()), index) {
                    index.insert(member, score);
                }
            }
            Op::IndexRemove { key, member } => {
                if let Ok(Some(index)) = self.existing(&key, index) {
                    index.remove(&member);
                }
                self.drop_if_empty(&key);
            }
            Op::Fence { key, token } => {
                let fence = self.fences.entry(key).or_default();
                *fence = (*fence).max(token);
            }
            Op::Batch { ops } => ops.into_iter().for_each(|op| self.apply(op)),
        }
    }

    /// The live entry of `key`, dropping an expired lease first.
    fn entry(&mut self, key: &str) -> Option<&mut Entry> {
        if let Some(Entry::Lease { expires_at, .. }) = self.entries.get(key) {
            if *expires_at <= Instant::now() {
                self.entries.remove(key);
            }
        }
        self.entries.get_mut(key)
    }

    fn value(&mut self, key: &str) -> StateResult<Option<&Vec<u8>>> {
        match self.entry(key) {
            None => Ok(None),
            Some(Entry::Value(value)) => Ok(Some(value)),
            Some(_) => Err(wrong_type(key)),
        }
    }

    /// The live lease of `key`, if any.
    fn lease(&mut self, key: &str) -> StateResult<Option<(&str, u64)>> {
        match self.entry(key) {
            None => Ok(None),
            Some(Entry::Lease { owner, token, .. }) => Ok(Some((owner.as_str(), *token))),
            Some(_) => Err(wrong_type(key)),
        }
    }

    fn holds(&mut self, lease: &Lease) -> StateResult<bool> {
        Ok(self
            .lease(&lease.key)?
            .is_some_and(|(owner, token)| owner == lease.owner && token == lease.token))
    }

    /// The collection of `key`; `None` if the key does not exist.
    fn existing<T>(
        &mut self,
        key: &str,
        pick: fn(&mut Entry) -> Option<&mut T>,
    ) -> StateResult<Option<&mut T>> {
        match self.entry(key) {
            None => Ok(None),
            Some(entry) => pick(entry).map(Some).ok_or_else(|| wrong_type(key)),
        }
    }

    /// The collection of `key`, created empty by `make` if absent.
    fn collection<T>(
        &mut self,
        key: &str,
        make: fn() -> Entry,
        pick: fn(&mut Entry) -> Option<&mut T>,
    ) -> StateResult<&mut T> {
        if self.entry(key).is_none() {
            self.entries.insert(key.to_string(), make());
        }
        self.existing(key, pick)?.ok_or_else(|| wrong_type(key))
    }

    /// Redis deletes a collection when its last element goes; so do we.
    fn drop_if_empty(&mut self, key: &str) {
        let empty = match self.entries.get(key) {
            Some(Entry::Hash(h)) => h.is_empty(),
            Some(Entry::List(l)) => l.is_empty(),
            Some(Entry::Set(s)) => s.is_empty(),
            Some(Entry::Index(i)) => i.is_empty(),
            _ => false,
        };
        if empty {
            self.entries.remove(key);
        }
    }
}

fn hash(entry: &mut Entry) -> Option<&mut BTreeMap<String, Vec<u8>>> {
    match entry {
        Entry::Hash(h) => Some(h),
        _ => None,
    }
}

fn list(entry: &mut Entry) -> Option<&mut Vec<String>> {
    match entry {
        Entry::List(l) => Some(l),
        _ => None,
    }
}

fn log(entry: &mut Entry) -> Option<(&mut std::collections::HashSet<String>, &mut Vec<Vec<u8>>)> {
    match entry {
        Entry::Log { ids, entries } => Some((ids, entries)),
        _ => None,
    }
}

fn set(entry: &mut Entry) -> Option<&mut BTreeSet<String>> {
    match entry {
        Entry::Set(s) => Some(s),
        _ => None,
    }
}

fn index(entry: &mut Entry) -> Option<&mut BTreeMap<String, i64>> {
    match entry {
        Entry::Index(i) => Some(i),
        _ => None,
    }
}

impl Data {
    /// Whether `write` may be applied to what its key holds now.
    fn fits(&mut self, write: &Write) -> bool {
        let entry = self.entry(write.key());
        matches!(
            (write, entry),
            (_, None)
                | (Write::Set(..), _)
                | (Write::Delete(_), _)
                | (
                    Write::IndexAdd { .. } | Write::IndexRemove(..),
                    Some(Entry::Index(_))
                )
                | (
                    Write::ListPush(..) | Write::ListRemove(..),
                    Some(Entry::List(_))
                )
                | (
                    Write::SetAdd(..) | Write::SetRemove(..),
                    Some(Entry::Set(_))
                )
        )
    }

    /// Applies one write of a batch whose kinds were checked, as the
    /// journal will replay it.
    fn write(&mut self, write: Write) -> Op {
        let op = match write {
            Write::Set(key, value) => put_value(&key, &value),
            Write::Delete(key) => Op::Delete { keys: vec![key] },
            Write::IndexAdd { key, score, member } => Op::IndexAdd { key, score, member },
            Write::ListPush(key, value) => Op::ListPush { key, value },
            Write::ListRemove(key, value) => Op::ListRemove { key, value },
            Write::SetAdd(key, member) => Op::SetAdd {
                key,
                members: vec![member],
            },
            Write::SetRemove(key, member) => Op::SetRemove {
                key,
                members: vec![member],
            },
            Write::IndexRemove(key, member) => Op::IndexRemove { key, member },
        };
        self.apply(op.clone());
        op
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn apply_atomically(&self, guard: Guard, writes: Vec<Write>) -> StateResult<bool> {
        let mut data = self.lock();
        match &guard {
            Guard::Always => {}
            Guard::Absent(key) => {
                if data.entry(key).is_some() {
                    return Ok(false);
                }
            }
            Guard::Equals(key, expected) => {
                if data.value(key)? != Some(expected) {
                    return Ok(false);
                }
            }
            Guard::Held(lease) => {
                if !data.holds(lease)? {
                    return Err(StateError::LeaseLost(lease.key.clone()));
                }
            }
        }
        if let Some(bad) = writes.iter().find(|w| !data.fits(w)) {
            return Err(wrong_type(bad.key()));
        }
        let ops: Vec<Op> = writes.into_iter().map(|w| data.write(w)).collect();
        data.record(Op::Batch { ops })?;
        Ok(true)
    }

    async fn get(&self, key: &str) -> StateResult<Option<Vec<u8>>> {
        Ok(self.lock().value(key)?.cloned())
    }

    async fn set(&self, key: &str, value: &[u8]) -> StateResult<()> {
        // Like Redis SET: replaces whatever kind of value the key held.
        let mut data = self.lock();
        data.entries
            .insert(key.to_string(), Entry::Value(value.to_vec()));
        data.record(put_value(key, value))
    }

    async fn set_if_absent(&self, key: &str, value: &[u8]) -> StateResult<bool> {
        let mut data = self.lock();
        if data.entry(key).is_some() {
            return Ok(false);
        }
        data.entries
            .insert(key.to_string(), Entry::Value(value.to_vec()));
        data.record(put_value(key, value))?;
        Ok(true)
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> StateResult<bool> {
        let mut data = self.lock();
        if data.value(key)?.map(Vec::as_slice) != expected {
            return Ok(false);
        }
        data.entries
            .insert(key.to_string(), Entry::Value(value.to_vec()));
        data.record(put_value(key, value))?;
        Ok(true)
    }

    async fn set_fenced(&self, lease: &Lease, key: &str, value: &[u8]) -> StateResult<()> {
        let mut data = self.lock();
        if !data.holds(lease)? {
            return Err(StateError::LeaseLost(lease.key.clone()));
        }
        data.entries
            .insert(key.to_string(), Entry::Value(value.to_vec()));
        data.record(put_value(key, value))
    }

    async fn delete(&self, keys: &[String]) -> StateResult<()> {
        let mut data = self.lock();
        for key in keys {
            data.entries.remove(key);
        }
        if keys.is_empty() {
            return Ok(());
        }
        data.record(Op::Delete {
            keys: keys.to_vec(),
        })
    }

    async fn hash_set_if_absent(&self, key: &str, field: &str, value: &[u8]) -> StateResult<bool> {
        let mut data = self.lock();
        let hash = data.collection(key, || Entry::Hash(BTreeMap::new()), hash)?;
        if hash.contains_key(field) {
            return Ok(false);
        }
        hash.insert(field.to_string(), value.to_vec());
        data.record(Op::HashSet {
            key: key.to_string(),
            field: field.to_string(),
            value: value.to_vec(),
        })?;
        Ok(true)
    }

    async fn hash_get_all(&self, key: &str) -> StateResult<Vec<(String, Vec<u8>)>> {
        let mut data = self.lock();
        let fields = data
            .existing(key, hash)?
            .map(|h| h.iter().map(|(f, v)| (f.clone(), v.clone())).collect());
        Ok(fields.unwrap_or_default())
    }

    async fn log_append_once(&self, key: &str, id: &str, value: &[u8]) -> StateResult<bool> {
        let mut data = self.lock();
        if data.entry(key).is_none() {
            let empty = Entry::Log {
                ids: Default::default(),
                entries: Vec::new(),
            };
            data.entries.insert(key.to_string(), empty);
        }
        let (ids, entries) = data
            .entry(key)
            .and_then(log)
            .ok_or_else(|| wrong_type(key))?;
        if !ids.insert(id.to_string()) {
            return Ok(false);
        }
        entries.push(value.to_vec());
        data.record(Op::LogAppend {
            key: key.to_string(),
            id: id.to_string(),
            value: value.to_vec(),
        })?;
        Ok(true)
    }

    async fn log_read(&self, key: &str, from: u64, max: usize) -> StateResult<Vec<Vec<u8>>> {
        let mut data = self.lock();
        let Some(entry) = data.entry(key) else {
            return Ok(Vec::new());
        };
        let (_, entries) = log(entry).ok_or_else(|| wrong_type(key))?;
        let from = (from as usize).min(entries.len());
        Ok(entries[from..].iter().take(max).cloned().collect())
    }

    async fn list_push(&self, key: &str, value: &str) -> StateResult<()> {
        let mut data = self.lock();
        data.collection(key, || Entry::List(Vec::new()), list)?
            .push(value.to_string());
        data.record(Op::ListPush {
            key: key.to_string(),
            value: value.to_string(),
        })
    }

    async fn list_all(&self, key: &str) -> StateResult<Vec<String>> {
        let mut data = self.lock();
        Ok(data
            .existing(key, list)?
            .map(|l| l.clone())
            .unwrap_or_default())
    }

    async fn list_len(&self, key: &str) -> StateResult<u64> {
        let mut data = self.lock();
        Ok(data.existing(key, list)?.map_or(0, |l| l.len() as u64))
    }

    async fn list_first(&self, key: &str) -> StateResult<Option<String>> {
        let mut data = self.lock();
        Ok(data.existing(key, list)?.and_then(|l| l.first().cloned()))
    }

    async fn list_remove(&self, key: &str, value: &str) -> StateResult<()> {
        let mut data = self.lock();
        if let Some(list) = data.existing(key, list)? {
            list.retain(|v| v != value);
        }
        data.drop_if_empty(key);
        data.record(Op::ListRemove {
            key: key.to_string(),
            value: value.to_string(),
        })
    }

    async fn set_add(&self, key: &str, members: &[String]) -> StateResult<u64> {
        if members.is_empty() {
            return Ok(0);
        }
        let mut data = self.lock();
        let set = data.collection(key, || Entry::Set(BTreeSet::new()), set)?;
        let added: Vec<String> = members
            .iter()
            .filter(|m| set.insert(m.to_string()))
            .cloned()
            .collect();
        let count = added.len() as u64;
        if !added.is_empty() {
            data.record(Op::SetAdd {
                key: key.to_string(),
                members: added,
            })?;
        }
        Ok(count)
    }

    async fn set_remove(&self, key: &str, members: &[String]) -> StateResult<()> {
        let mut data = self.lock();
        if let Some(set) = data.existing(key, set)? {
            for member in members {
                set.remove(member);
            }
        }
        data.drop_if_empty(key);
        data.record(Op::SetRemove {
            key: key.to_string(),
            members: members.to_vec(),
        })
    }

    async fn set_members(&self, key: &str) -> StateResult<Vec<String>> {
        let mut data = self.lock();
        Ok(data
            .existing(key, set)?
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn set_contains(&self, key: &str, members: &[String]) -> StateResult<Vec<bool>> {
        let mut data = self.lock();
        let set = data.existing(key, set)?;
        Ok(members
            .iter()
            .map(|m| set.as_ref().is_some_and(|s| s.contains(m)))
            .collect())
    }

    async fn index_add(&self, key: &str, score: i64, member: &str) -> StateResult<()> {
        let mut data = self.lock();
        data.collection(key, || Entry::Index(BTreeMap::new()), index)?
            .insert(member.to_string(), score);
        data.record(Op::IndexAdd {
            key: key.to_string(),
            score,
            member: member.to_string(),
        })
    }

    async fn index_all(&self, key: &str) -> StateResult<Vec<String>> {
        let mut data = self.lock();
        let Some(index) = data.existing(key, index)? else {
            return Ok(Vec::new());
        };
        let mut scored: Vec<(i64, &String)> = index
            .iter()
            .map(|(member, score)| (*score, member))
            .collect();
        scored.sort();
        Ok(scored
            .into_iter()
            .map(|(_, member)| member.clone())
            .collect())
    }

    async fn index_up_to(&self, key: &str, max_score: i64, max: usize) -> StateResult<Vec<String>> {
        let mut data = self.lock();
        let Some(index) = data.existing(key, index)? else {
            return Ok(Vec::new());
        };
        let mut scored: Vec<(i64, &String)> = index
            .iter()
            .filter(|(_, score)| **score <= max_score)
            .map(|(member, score)| (*score, member))
            .collect();
        scored.sort();
        Ok(scored
            .into_iter()
            .take(max)
            .map(|(_, member)| member.clone())
            .collect())
    }

    async fn index_remove(&self, key: &str, member: &str) -> StateResult<()> {
        let mut data = self.lock();
        if let Some(index) = data.existing(key, index)? {
            index.remove(member);
        }
        data.drop_if_empty(key);
        data.record(Op::IndexRemove {
            key: key.to_string(),
            member: member.to_string(),
        })
    }

    async fn take_token(
        &self,
        key: &str,
        per_sec: f64,
        burst: u32,
    ) -> StateResult<Option<Duration>> {
        let mut data = self.lock();
        let now = Instant::now();
        let interval = token_interval(per_sec);
        // Buckets that have filled up again are forgotten, like Redis' TTL.
        data.buckets.retain(|_, tat| *tat > now);
        let tat = data.buckets.get(key).copied().unwrap_or(now).max(now);
        let next = tat + interval;
        let allowed_at = next.checked_sub(interval * burst.max(1)).unwrap_or(now);
        if allowed_at > now {
            return Ok(Some(allowed_at - now));
        }
        data.buckets.insert(key.to_string(), next);
        Ok(None)
    }

    async fn try_acquire_lease(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> StateResult<Option<Lease>> {
        let mut data = self.lock();
        let expires_at = Instant::now() + ttl;
        let token = match data.lease(key)? {
            Some((holder, _)) if holder != owner => return Ok(None),
            Some((_, token)) => token,
            None => {
                let fence = data.fences.entry(key.to_string()).or_default();
                *fence += 1;
                let token = *fence;
                data.record(Op::Fence {
                    key: key.to_string(),
                    token,
                })?;
                token
            }
        };
        data.entries.insert(
            key.to_string(),
            Entry::Lease {
                owner: owner.to_string(),
                token,
                expires_at,
            },
        );
        Ok(Some(Lease {
            key: key.to_string(),
            owner: owner.to_string(),
            token,
        }))
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> StateResult<bool> {
        let mut data = self.lock();
        if !data.holds(lease)? {
            return Ok(false);
        }
        if let Some(Entry::Lease { expires_at, .. }) = data.entries.get_mut(&lease.key) {
            *expires_at = Instant::now() + ttl;
        }
        Ok(true)
    }

    async fn release_lease(&self, lease: &Lease) -> StateResult<()> {
        let mut data = self.lock();
        if data.holds(lease)? {
            data.entries.remove(&lease.key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_journal_that_grows_is_compacted_and_still_replays() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::open(dir.path()).unwrap();
        store
            .lock()
            .journal
            .as_mut()
            .unwrap()
            .set_compact_from(16 << 10);
        // Churn: the same few keys rewritten thousands of times.
        for i in 0..5_000u32 {
            let key = format!("job/{}", i % 10);
            store
                .set(&key, format!("state {i}").as_bytes())
                .await
                .unwrap();
            store.list_push("queue", &key).await.unwrap();
            store.list_remove("queue", &key).await.unwrap();
        }
        store
            .log_append_once("reports", "chunk-1", b"r1")
            .await
            .unwrap();
        let journal_len = store.lock().journal.as_ref().unwrap().len();
        assert!(
            journal_len < 64 << 10,
            "journal not compacted: {journal_len} bytes"
        );
        let view = store.durable_view();
        assert!(
            view.iter().any(|line| line.starts_with("job/9 = ")),
            "{view:?}"
        );
        drop(store);
        let reopened = MemoryStore::open(dir.path()).unwrap();
        assert_eq!(reopened.durable_view(), view);
        assert_eq!(
            reopened.get("job/9").await.unwrap().as_deref(),
            Some(&b"state 4999"[..])
        );
        assert!(reopened.list_all("queue").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn leases_are_not_kept_but_their_tokens_keep_growing() {
        let dir = tempfile::tempdir().unwrap();
        let ttl = Duration::from_secs(600);
        let first = {
            let store = MemoryStore::open(dir.path()).unwrap();
            store
                .try_acquire_lease("l", "old-process", ttl)
                .await
                .unwrap()
                .unwrap()
        };
        let store = MemoryStore::open(dir.path()).unwrap();
        let second = store
            .try_acquire_lease("l", "new-process", ttl)
            .await
            .unwrap()
            .expect("a restarted process does not wait for its previous life's lease");
        assert!(second.token > first.token);
    }

    #[tokio::test(start_paused = true)]
    async fn leases_expire_on_the_paused_clock() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(30);
        let first = store
            .try_acquire_lease("l", "a", ttl)
            .await
            .unwrap()
            .expect("free lease");
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(store.try_acquire_lease("l", "b", ttl).await.unwrap(), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        let second = store
            .try_acquire_lease("l", "b", ttl)
            .await
            .unwrap()
            .expect("expired lease");
        assert!(second.token > first.token);
        assert!(!store.renew_lease(&first, ttl).await.unwrap());
    }
}
