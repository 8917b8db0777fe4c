//! A fault-injecting state store for tests: a fault overrides the calls
//! it changes ([`StoreFault`]'s methods) and every other call goes to the
//! store underneath, so changing one method is writing one method.

use std::time::Duration;

use auditx_common::state::{Guard, Lease, StateResult, StateStore, Write};

/// A fault over [`StoreFault::store`]: each method forwards to the store
/// unless the fault overrides it. Wrap the fault in [`Faulty`] to get a
/// [`StateStore`].
#[async_trait::async_trait]
pub trait StoreFault: Send + Sync + 'static {
    /// The store the calls not overridden go to.
    fn store(&self) -> &dyn StateStore;

    async fn apply_atomically(&self, guard: Guard, writes: Vec<Write>) -> StateResult<bool> {
        self.store().apply_atomically(guard, writes).await
    }

    async fn get(&self, key: &str) -> StateResult<Option<Vec<u8>>> {
        self.store().get(key).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> StateResult<()> {
        self.store().set(key, value).await
    }

    async fn set_if_absent(&self, key: &str, value: &[u8]) -> StateResult<bool> {
        self.store().set_if_absent(key, value).await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> StateResult<bool> {
        self.store().compare_and_set(key, expected, value).await
    }

    async fn set_fenced(&self, lease: &Lease, key: &str, value: &[u8]) -> StateResult<()> {
        self.store().set_fenced(lease, key, value).await
    }

    async fn delete(&self, keys: &[String]) -> StateResult<()> {
        self.store().delete(keys).await
    }

    async fn hash_set_if_absent(&self, key: &str, field: &str, value: &[u8]) -> StateResult<bool> {
        self.store().hash_set_if_absent(key, field, value).await
    }

    async fn hash_get_all(&self, key: &str) -> StateResult<Vec<(String, Vec<u8>)>> {
        self.store().hash_get_all(key).await
    }

    async fn log_append_once(&self, key: &str, id: &str, value: &[u8]) -> StateResult<bool> {
        self.store().log_append_once(key, id, value).await
    }

    async fn log_read(&self, key: &str, from: u64, max: usize) -> StateResult<Vec<Vec<u8>>> {
        self.store().log_read(key, from, max).await
    }

    async fn list_push(&self, key: &str, value: &str) -> StateResult<()> {
        self.store().list_push(key, value).await
    }

    async fn list_all(&self, key: &str) -> StateResult<Vec<String>> {
        self.store().list_all(key).await
    }

    async fn list_len(&self, key: &str) -> StateResult<u64> {
        self.store().list_len(key).await
    }

    async fn list_first(&self, key: &str) -> StateResult<Option<String>> {
        self.store().list_first(key).await
    }

    async fn list_remove(&self, key: &str, value: &str) -> StateResult<()> {
        self.store().list_remove(key, value).await
    }

    async fn set_add(&self, key: &str, members: &[String]) -> StateResult<u64> {
        self.store().set_add(key, members).await
    }

    async fn set_remove(&self, key: &str, members: &[String]) -> StateResult<()> {
        self.store().set_remove(key, members).await
    }

    async fn set_members(&self, key: &str) -> StateResult<Vec<String>> {
        self.store().set_members(key).await
    }

    async fn set_contains(&self, key: &str, members: &[String]) -> StateResult<Vec<bool>> {
        self.store().set_contains(key, members).await
    }

    async fn index_add(&self, key: &str, score: i64, member: &str) -> StateResult<()> {
        self.store().index_add(key, score, member).await
    }

    async fn index_all(&self, key: &str) -> StateResult<Vec<String>> {
        self.store().index_all(key).await
    }

    async fn index_up_to(&self, key: &str, max_score: i64, max: usize) -> StateResult<Vec<String>> {
        self.store().index_up_to(key, max_score, max).await
    }

    async fn index_remove(&self, key: &str, member: &str) -> StateResult<()> {
        self.store().index_remove(key, member).await
    }

    async fn take_token(
        &self,
        key: &str,
        per_sec: f64,
        burst: u32,
    ) -> StateResult<Option<Duration>> {
        self.store().take_token(key, per_sec, burst).await
    }

    async fn try_acquire_lease(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> StateResult<Option<Lease>> {
        self.store().try_acquire_lease(key, owner, ttl).await
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> StateResult<bool> {
        self.store().renew_lease(lease, ttl).await
    }

    async fn release_lease(&self, lease: &Lease) -> StateResult<()> {
        self.store().release_lease(lease).await
    }
}

/// A [`StoreFault`] as a [`StateStore`].
pub struct Faulty<F>(pub F);

#[async_trait::async_trait]
impl<F: StoreFault> StateStore for Faulty<F> {
    async fn apply_atomically(&self, guard: Guard, writes: Vec<Write>) -> StateResult<bool> {
        self.0.apply_atomically(guard, writes).await
    }

    async fn get(&self, key: &str) -> StateResult<Option<Vec<u8>>> {
        self.0.get(key).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> StateResult<()> {
        self.0.set(key, value).await
    }

    async fn set_if_absent(&self, key: &str, value: &[u8]) -> StateResult<bool> {
        self.0.set_if_absent(key, value).await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> StateResult<bool> {
        self.0.compare_and_set(key, expected, value).await
    }

    async fn set_fenced(&self, lease: &Lease, key: &str, value: &[u8]) -> StateResult<()> {
        self.0.set_fenced(lease, key, value).await
    }

    async fn delete(&self, keys: &[String]) -> StateResult<()> {
        self.0.delete(keys).await
    }

    async fn hash_set_if_absent(&self, key: &str, field: &str, value: &[u8]) -> StateResult<bool> {
        self.0.hash_set_if_absent(key, field, value).await
    }

    async fn hash_get_all(&self, key: &str) -> StateResult<Vec<(String, Vec<u8>)>> {
        self.0.hash_get_all(key).await
    }

    async fn log_append_once(&self, key: &str, id: &str, value: &[u8]) -> StateResult<bool> {
        self.0.log_append_once(key, id, value).await
    }

    async fn log_read(&self, key: &str, from: u64, max: usize) -> StateResult<Vec<Vec<u8>>> {
        self.0.log_read(key, from, max).await
    }

    async fn list_push(&self, key: &str, value: &str) -> StateResult<()> {
        self.0.list_push(key, value).await
    }

    async fn list_all(&self, key: &str) -> StateResult<Vec<String>> {
        self.0.list_all(key).await
    }

    async fn list_len(&self, key: &str) -> StateResult<u64> {
        self.0.list_len(key).await
    }

    async fn list_first(&self, key: &str) -> StateResult<Option<String>> {
        self.0.list_first(key).await
    }

    async fn list_remove(&self, key: &str, value: &str) -> StateResult<()> {
        self.0.list_remove(key, value).await
    }

    async fn set_add(&self, key: &str, members: &[String]) -> StateResult<u64> {
        self.0.set_add(key, members).await
    }

    async fn set_remove(&self, key: &str, members: &[String]) -> StateResult<()> {
        self.0.set_remove(key, members).await
    }

    async fn set_members(&self, key: &str) -> StateResult<Vec<String>> {
        self.0.set_members(key).await
    }

    async fn set_contains(&self, key: &str, members: &[String]) -> StateResult<Vec<bool>> {
        self.0.set_contains(key, members).await
    }

    async fn index_add(&self, key: &str, score: i64, member: &str) -> StateResult<()> {
        self.0.index_add(key, score, member).await
    }

    async fn index_all(&self, key: &str) -> StateResult<Vec<String>> {
        self.0.index_all(key).await
    }

    async fn index_up_to(&self, key: &str, max_score: i64, max: usize) -> StateResult<Vec<String>> {
        self.0.index_up_to(key, max_score, max).await
    }

    async fn index_remove(&self, key: &str, member: &str) -> StateResult<()> {
        self.0.index_remove(key, member).await
    }

    async fn take_token(
        &self,
        key: &str,
        per_sec: f64,
        burst: u32,
    ) -> StateResult<Option<Duration>> {
        self.0.take_token(key, per_sec, burst).await
    }

    async fn try_acquire_lease(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> StateResult<Option<Lease>> {
        self.0.try_acquire_lease(key, owner, ttl).await
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> StateResult<bool> {
        self.0.renew_lease(lease, ttl).await
    }

    async fn release_lease(&self, lease: &Lease) -> StateResult<()> {
        self.0.release_lease(lease).await
    }
}
