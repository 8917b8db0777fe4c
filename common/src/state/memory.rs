//! The in-process state store of the embedded default.
//!
//! It mirrors Redis where callers could tell the difference: a key holds one
//! kind of value (using it as another kind is an error, like Redis'
//! `WRONGTYPE`), emptied collections disappear, and fencing counters outlive
//! their leases so tokens keep growing. Lease expiry uses
//! [`tokio::time::Instant`] so that tests with a paused clock can expire
//! leases without sleeping.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{token_interval, Lease, StateError, StateResult, StateStore};

/// State kept in memory for one process; lost when the process exits.
#[derive(Default)]
pub struct MemoryStore {
    data: Mutex<Data>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
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

fn wrong_type(key: &str) -> StateError {
    StateError::Other(format!("key {key} holds a value of another kind"))
}

impl Data {
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

#[async_trait]
impl StateStore for MemoryStore {
    async fn get(&self, key: &str) -> StateResult<Option<Vec<u8>>> {
        Ok(self.lock().value(key)?.cloned())
    }

    async fn set(&self, key: &str, value: &[u8]) -> StateResult<()> {
        // Like Redis SET: replaces whatever kind of value the key held.
        self.lock()
            .entries
            .insert(key.to_string(), Entry::Value(value.to_vec()));
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: &[u8]) -> StateResult<bool> {
        let mut data = self.lock();
        if data.entry(key).is_some() {
            return Ok(false);
        }
        data.entries
            .insert(key.to_string(), Entry::Value(value.to_vec()));
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
        Ok(true)
    }

    async fn set_fenced(&self, lease: &Lease, key: &str, value: &[u8]) -> StateResult<()> {
        let mut data = self.lock();
        if !data.holds(lease)? {
            return Err(StateError::LeaseLost(lease.key.clone()));
        }
        data.entries
            .insert(key.to_string(), Entry::Value(value.to_vec()));
        Ok(())
    }

    async fn delete(&self, keys: &[String]) -> StateResult<()> {
        let mut data = self.lock();
        for key in keys {
            data.entries.remove(key);
        }
        Ok(())
    }

    async fn hash_set_if_absent(&self, key: &str, field: &str, value: &[u8]) -> StateResult<bool> {
        let mut data = self.lock();
        let hash = data.collection(key, || Entry::Hash(BTreeMap::new()), hash)?;
        if hash.contains_key(field) {
            return Ok(false);
        }
        hash.insert(field.to_string(), value.to_vec());
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
        Ok(())
    }

    async fn list_all(&self, key: &str) -> StateResult<Vec<String>> {
        let mut data = self.lock();
        Ok(data
            .existing(key, list)?
            .map(|l| l.clone())
            .unwrap_or_default())
    }

    async fn list_remove(&self, key: &str, value: &str) -> StateResult<()> {
        let mut data = self.lock();
        if let Some(list) = data.existing(key, list)? {
            list.retain(|v| v != value);
        }
        data.drop_if_empty(key);
        Ok(())
    }

    async fn set_add(&self, key: &str, members: &[String]) -> StateResult<u64> {
        if members.is_empty() {
            return Ok(0);
        }
        let mut data = self.lock();
        let set = data.collection(key, || Entry::Set(BTreeSet::new()), set)?;
        Ok(members.iter().filter(|m| set.insert(m.to_string())).count() as u64)
    }

    async fn set_remove(&self, key: &str, members: &[String]) -> StateResult<()> {
        let mut data = self.lock();
        if let Some(set) = data.existing(key, set)? {
            for member in members {
                set.remove(member);
            }
        }
        data.drop_if_empty(key);
        Ok(())
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
        Ok(())
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
                *fence
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
