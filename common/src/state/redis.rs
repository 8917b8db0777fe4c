//! The Redis state store of the distributed mode.
//!
//! Every multi-step operation is one Lua script, so it is atomic on the
//! server. `ConnectionManager` reconnects after a dropped connection but
//! fails the command that hit it, so each call retries transient failures
//! with backoff (behind Redis Sentinel, on the primary the sentinels name
//! then: [`super::redis_primary`]); the operations are idempotent or safe
//! to repeat for their callers (a repeated `list_push` after a lost reply
//! is the exception).
//!
//! A lease is a hash `{owner, token}` with a TTL; its fencing token comes
//! from `INCR` of a counter key beside it (`<lease key>:fencing`) that never
//! expires, so tokens keep growing across holders.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::{Cmd, FromRedisValue, Script, ScriptInvocation};

use super::redis_error::classify;
use super::redis_primary::Primary;
use super::{token_interval, Guard, Lease, StateError, StateResult, StateStore, Write};
use crate::config::RedisConfig;
use crate::retry::{retry, Backoff};
use crate::tls::ClientTls;

/// KEYS: key. ARGV: has_expected (0|1), expected, value.
static COMPARE_AND_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local current = redis.call('GET', KEYS[1])
        if ARGV[1] == '0' then
            if current then return 0 end
        elseif current ~= ARGV[2] then
            return 0
        end
        redis.call('SET', KEYS[1], ARGV[3])
        return 1",
    )
});

/// KEYS: lease, target. ARGV: owner, token, value.
static SET_FENCED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local held = redis.call('HMGET', KEYS[1], 'owner', 'token')
        if held[1] ~= ARGV[1] or held[2] ~= ARGV[2] then return 0 end
        redis.call('SET', KEYS[2], ARGV[3])
        return 1",
    )
});

/// KEYS: lease, fencing counter. ARGV: owner, ttl in ms.
/// Returns the token, or nil if someone else holds the lease.
static TRY_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local held = redis.call('HMGET', KEYS[1], 'owner', 'token')
        if held[1] == ARGV[1] then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            return tonumber(held[2])
        end
        if held[1] then return false end
        local token = redis.call('INCR', KEYS[2])
        redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token)
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return token",
    )
});

/// KEYS: lease. ARGV: owner, token, ttl in ms.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local held = redis.call('HMGET', KEYS[1], 'owner', 'token')
        if held[1] ~= ARGV[1] or held[2] ~= ARGV[2] then return 0 end
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        return 1",
    )
});

/// KEYS: lease. ARGV: owner, token.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local held = redis.call('HMGET', KEYS[1], 'owner', 'token')
        if held[1] ~= ARGV[1] or held[2] ~= ARGV[2] then return 0 end
        redis.call('DEL', KEYS[1])
        return 1",
    )
});

/// GCRA on the server's clock. KEYS: bucket. ARGV: microseconds per token,
/// burst. Returns 0 if the call is admitted, else microseconds to wait.
static TAKE_TOKEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local interval = tonumber(ARGV[1])
        local burst = tonumber(ARGV[2])
        local tat = tonumber(redis.call('GET', KEYS[1])) or now
        if tat < now then tat = now end
        local next_tat = tat + interval
        local allowed_at = next_tat - burst * interval
        if allowed_at > now then return math.max(1, math.ceil(allowed_at - now)) end
        redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX',
            math.ceil((next_tat - now) / 1000) + 1)
        return 0",
    )
});

/// A log is one hash: `len`, the entries `at:<n>` and the ids seen
/// `id:<id>`, so that deleting the key deletes it all.
/// KEYS: log. ARGV: id, value. Returns 1 if appended.
static LOG_APPEND_ONCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('HSETNX', KEYS[1], 'id:' .. ARGV[1], '') == 0 then return 0 end
        local n = redis.call('HINCRBY', KEYS[1], 'len', 1)
        redis.call('HSET', KEYS[1], 'at:' .. (n - 1), ARGV[2])
        return 1",
    )
});

/// KEYS: log. ARGV: from, max (small enough for one HMGET).
static LOG_READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local n = tonumber(redis.call('HGET', KEYS[1], 'len') or '0')
        local from = tonumber(ARGV[1])
        local to = math.min(n, from + tonumber(ARGV[2]))
        if to <= from then return {} end
        local fields = {}
        for i = from, to - 1 do fields[#fields + 1] = 'at:' .. i end
        return redis.call('HMGET', KEYS[1], unpack(fields))",
    )
});

/// An atomic batch. KEYS: the guard's key (unless `always`), then one key
/// per write. ARGV: guard kind (`always`|`absent`|`equals`|`held`), its
/// arguments (`equals`: the value; `held`: owner, token), then per write its
/// op and arguments. Kinds are checked before anything is written (a Lua
/// error does not undo earlier writes). Returns 1 applied, 0 condition
/// false, -1 lease lost.
static APPLY_ATOMICALLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local guard = ARGV[1]
        local a, k = 2, 1
        if guard == 'absent' then
            if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
            k = 2
        elseif guard == 'equals' then
            if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
            a, k = 3, 2
        elseif guard == 'held' then
            local held = redis.call('HMGET', KEYS[1], 'owner', 'token')
            if held[1] ~= ARGV[2] or held[2] ~= ARGV[3] then return -1 end
            a, k = 4, 2
        end
        local arity = {set = 1, del = 0, zadd = 2, zrem = 1, rpush = 1, lrem = 1, sadd = 1, srem = 1}
        local kind = {zadd = 'zset', zrem = 'zset', rpush = 'list', lrem = 'list', sadd = 'set',
            srem = 'set'}
        local i, j = a, k
        while i <= #ARGV do
            local op = ARGV[i]
            local want = kind[op]
            if want then
                local have = redis.call('TYPE', KEYS[j]).ok
                if have ~= 'none' and have ~= want then
                    return redis.error_reply('WRONGTYPE key ' .. KEYS[j] .. ' holds a ' .. have)
                end
            end
            i, j = i + 1 + arity[op], j + 1
        end
        i, j = a, k
        while i <= #ARGV do
            local op, key = ARGV[i], KEYS[j]
            if op == 'set' then redis.call('SET', key, ARGV[i + 1])
            elseif op == 'del' then redis.call('DEL', key)
            elseif op == 'zadd' then redis.call('ZADD', key, ARGV[i + 1], ARGV[i + 2])
            elseif op == 'zrem' then redis.call('ZREM', key, ARGV[i + 1])
            elseif op == 'rpush' then redis.call('RPUSH', key, ARGV[i + 1])
            elseif op == 'lrem' then redis.call('LREM', key, 0, ARGV[i + 1])
            elseif op == 'sadd' then redis.call('SADD', key, ARGV[i + 1])
            elseif op == 'srem' then redis.call('SREM', key, ARGV[i + 1])
            end
            i, j = i + 1 + arity[op], j + 1
        end
        return 1",
    )
});

/// Entries one `log_read` round trip asks for at most (Lua's `unpack`
/// takes a few thousand arguments).
const LOG_READ_BATCH: usize = 1_000;

/// State in Redis, every key under one prefix.
#[derive(Clone)]
pub struct RedisStore {
    primary: Arc<Primary>,
    prefix: String,
    /// Behind Sentinel: each call waits until a replica has its writes
    /// (`WAIT 1`), so a failover cannot promote a replica that lacks a
    /// write the caller was told succeeded.
    confirm: Option<Duration>,
}

/// How long a write waits for a replica's acknowledgement behind Sentinel
/// before the call counts as failed (and is retried, on the primary the
/// sentinels name then).
const REPLICA_ACK: Duration = Duration::from_secs(2);

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`; `rediss://` for TLS,
    /// trusting the system's CAs); `key_prefix` is put in front of every
    /// key verbatim (include a separator, e.g. `auditx:`).
    pub async fn connect(url: &str, key_prefix: &str) -> StateResult<RedisStore> {
        Self::connect_with(url, key_prefix, &ClientTls::default()).await
    }

    async fn connect_with(url: &str, key_prefix: &str, tls: &ClientTls) -> StateResult<RedisStore> {
        let primary = retry(Backoff::default(), StateError::is_transient, || {
            Primary::direct(url, tls)
        })
        .await?;
        Ok(RedisStore {
            primary: Arc::new(primary),
            prefix: key_prefix.to_string(),
            confirm: None,
        })
    }

    /// Connects as `config` says: to `url`, or to the primary of
    /// `sentinel` (following it through failovers); over TLS with its CA
    /// and client certificate files for a `rediss://` URL.
    pub async fn open(config: &RedisConfig) -> StateResult<RedisStore> {
        let tls = config.tls().map_err(|e| StateError::Other(e.to_string()))?;
        let Some(sentinel) = &config.sentinel else {
            return Self::connect_with(&config.url, &config.prefix, &tls).await;
        };
        let primary = retry(Backoff::default(), StateError::is_transient, || {
            Primary::through_sentinels(&config.url, sentinel, &tls)
        })
        .await?;
        let primary = Arc::new(primary);
        primary.watch();
        Ok(RedisStore {
            primary,
            prefix: config.prefix.clone(),
            confirm: Some(REPLICA_ACK),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> StateResult<T> {
        retry(Backoff::default(), StateError::is_transient, || async {
            let (generation, mut conn) = self.primary.get();
            let result = cmd.query_async(&mut conn).await.map_err(classify);
            let result = self.confirmed(&mut conn, result).await;
            self.after(generation, result).await
        })
        .await
    }

    async fn invoke<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> StateResult<T> {
        retry(Backoff::default(), StateError::is_transient, || async {
            let (generation, mut conn) = self.primary.get();
            let result = invocation.invoke_async(&mut conn).await.map_err(classify);
            let result = self.confirmed(&mut conn, result).await;
            self.after(generation, result).await
        })
        .await
    }

    /// `result`, once a replica has everything written so far (behind
    /// Sentinel); a write no replica acknowledged in time is a transient
    /// failure: a failover may be under way and could drop it.
    async fn confirmed<T>(
        &self,
        conn: &mut redis::aio::ConnectionManager,
        result: StateResult<T>,
    ) -> StateResult<T> {
        let Some(wait) = self.confirm.filter(|_| result.is_ok()) else {
            return result;
        };
        let replicas: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(wait.as_millis() as u64)
            .query_async(conn)
            .await
            .map_err(classify)?;
        if replicas < 1 {
            return Err(StateError::Unavailable(format!(
                "no replica acknowledged the write within {} ms (a failover may be under way)",
                wait.as_millis()
            )));
        }
        result
    }

    /// Lets the primary be looked up again after a transient failure.
    async fn after<T>(&self, generation: u64, result: StateResult<T>) -> StateResult<T> {
        if result.as_ref().is_err_and(StateError::is_transient) {
            self.primary.failed(generation).await;
        }
        result
    }

    fn keys(&self, keys: &[String]) -> Vec<String> {
        keys.iter().map(|k| self.key(k)).collect()
    }
}

fn millis(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

#[async_trait]
impl StateStore for RedisStore {
    async fn apply_atomically(&self, guard: Guard, writes: Vec<Write>) -> StateResult<bool> {
        let mut invocation = APPLY_ATOMICALLY.prepare_invoke();
        let lease_key = match &guard {
            Guard::Always => {
                invocation.arg("always");
                None
            }
            Guard::Absent(key) => {
                invocation.key(self.key(key)).arg("absent");
                None
            }
            Guard::Equals(key, value) => {
                invocation
                    .key(self.key(key))
                    .arg("equals")
                    .arg(value.as_slice());
                None
            }
            Guard::Held(lease) => {
                invocation
                    .key(self.key(&lease.key))
                    .arg("held")
                    .arg(&lease.owner)
                    .arg(lease.token);
                Some(lease.key.clone())
            }
        };
        for write in &writes {
            invocation.key(self.key(write.key()));
            match write {
                Write::Set(_, value) => invocation.arg("set").arg(value.as_slice()),
                Write::Delete(_) => invocation.arg("del"),
                Write::IndexAdd { score, member, .. } => {
                    invocation.arg("zadd").arg(*score).arg(member)
                }
                Write::ListPush(_, value) => invocation.arg("rpush").arg(value),
                Write::ListRemove(_, value) => invocation.arg("lrem").arg(value),
                Write::SetAdd(_, member) => invocation.arg("sadd").arg(member),
                Write::SetRemove(_, member) => invocation.arg("srem").arg(member),
                Write::IndexRemove(_, member) => invocation.arg("zrem").arg(member),
            };
        }
        match self.invoke::<i64>(&invocation).await? {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(StateError::LeaseLost(lease_key.unwrap_or_default())),
        }
    }

    async fn get(&self, key: &str) -> StateResult<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(self.key(key))).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> StateResult<()> {
        self.query(redis::cmd("SET").arg(self.key(key)).arg(value))
            .await
    }

    async fn set_if_absent(&self, key: &str, value: &[u8]) -> StateResult<bool> {
        let reply: Option<String> = self
            .query(redis::cmd("SET").arg(self.key(key)).arg(value).arg("NX"))
            .await?;
        Ok(reply.is_some())
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> StateResult<bool> {
        let mut invocation = COMPARE_AND_SET.key(self.key(key));
        invocation
            .arg(u8::from(expected.is_some()))
            .arg(expected.unwrap_or_default())
            .arg(value);
        self.invoke(&invocation).await
    }

    async fn set_fenced(&self, lease: &Lease, key: &str, value: &[u8]) -> StateResult<()> {
        let mut invocation = SET_FENCED.key(self.key(&lease.key));
        invocation
            .key(self.key(key))
            .arg(&lease.owner)
            .arg(lease.token)
            .arg(value);
        if self.invoke(&invocation).await? {
            Ok(())
        } else {
            Err(StateError::LeaseLost(lease.key.clone()))
        }
    }

    async fn delete(&self, keys: &[String]) -> StateResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.query(redis::cmd("DEL").arg(self.keys(keys))).await
    }

    async fn hash_set_if_absent(&self, key: &str, field: &str, value: &[u8]) -> StateResult<bool> {
        self.query(
            redis::cmd("HSETNX")
                .arg(self.key(key))
                .arg(field)
                .arg(value),
        )
        .await
    }

    async fn hash_get_all(&self, key: &str) -> StateResult<Vec<(String, Vec<u8>)>> {
        let mut fields: Vec<(String, Vec<u8>)> =
            self.query(redis::cmd("HGETALL").arg(self.key(key))).await?;
        fields.sort();
        Ok(fields)
    }

    async fn log_append_once(&self, key: &str, id: &str, value: &[u8]) -> StateResult<bool> {
        let mut invocation = LOG_APPEND_ONCE.key(self.key(key));
        invocation.arg(id).arg(value);
        self.invoke(&invocation).await
    }

    async fn log_read(&self, key: &str, from: u64, max: usize) -> StateResult<Vec<Vec<u8>>> {
        let mut entries = Vec::new();
        while entries.len() < max {
            let batch = (max - entries.len()).min(LOG_READ_BATCH);
            let mut invocation = LOG_READ.key(self.key(key));
            invocation.arg(from + entries.len() as u64).arg(batch);
            let read: Vec<Option<Vec<u8>>> = self.invoke(&invocation).await?;
            let full = read.len() == batch;
            // An entry is written in the same script as the length: never missing.
            entries.extend(read.into_iter().flatten());
            if !full {
                break;
            }
        }
        Ok(entries)
    }

    async fn list_push(&self, key: &str, value: &str) -> StateResult<()> {
        self.query(redis::cmd("RPUSH").arg(self.key(key)).arg(value))
            .await
    }

    async fn list_all(&self, key: &str) -> StateResult<Vec<String>> {
        self.query(redis::cmd("LRANGE").arg(self.key(key)).arg(0).arg(-1))
            .await
    }

    async fn list_len(&self, key: &str) -> StateResult<u64> {
        self.query(redis::cmd("LLEN").arg(self.key(key))).await
    }

    async fn list_first(&self, key: &str) -> StateResult<Option<String>> {
        self.query(redis::cmd("LINDEX").arg(self.key(key)).arg(0))
            .await
    }

    async fn list_remove(&self, key: &str, value: &str) -> StateResult<()> {
        self.query(redis::cmd("LREM").arg(self.key(key)).arg(0).arg(value))
            .await
    }

    async fn set_add(&self, key: &str, members: &[String]) -> StateResult<u64> {
        if members.is_empty() {
            return Ok(0);
        }
        self.query(redis::cmd("SADD").arg(self.key(key)).arg(members))
            .await
    }

    async fn set_remove(&self, key: &str, members: &[String]) -> StateResult<()> {
        if members.is_empty() {
            return Ok(());
        }
        self.query(redis::cmd("SREM").arg(self.key(key)).arg(members))
            .await
    }

    async fn set_members(&self, key: &str) -> StateResult<Vec<String>> {
        let mut members: Vec<String> = self
            .query(redis::cmd("SMEMBERS").arg(self.key(key)))
            .await?;
        members.sort();
        Ok(members)
    }

    async fn set_contains(&self, key: &str, members: &[String]) -> StateResult<Vec<bool>> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        self.query(redis::cmd("SMISMEMBER").arg(self.key(key)).arg(members))
            .await
    }

    async fn index_add(&self, key: &str, score: i64, member: &str) -> StateResult<()> {
        self.query(redis::cmd("ZADD").arg(self.key(key)).arg(score).arg(member))
            .await
    }

    async fn index_all(&self, key: &str) -> StateResult<Vec<String>> {
        self.query(redis::cmd("ZRANGE").arg(self.key(key)).arg(0).arg(-1))
            .await
    }

    async fn index_up_to(&self, key: &str, max_score: i64, max: usize) -> StateResult<Vec<String>> {
        self.query(
            redis::cmd("ZRANGE")
                .arg(self.key(key))
                .arg("-inf")
                .arg(max_score)
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(max),
        )
        .await
    }

    async fn index_remove(&self, key: &str, member: &str) -> StateResult<()> {
        self.query(redis::cmd("ZREM").arg(self.key(key)).arg(member))
            .await
    }

    async fn take_token(
        &self,
        key: &str,
        per_sec: f64,
        burst: u32,
    ) -> StateResult<Option<Duration>> {
        let mut invocation = TAKE_TOKEN.key(self.key(key));
        invocation
            .arg(token_interval(per_sec).as_micros() as u64)
            .arg(burst.max(1));
        let wait_micros: u64 = self.invoke(&invocation).await?;
        Ok((wait_micros > 0).then(|| Duration::from_micros(wait_micros)))
    }

    async fn try_acquire_lease(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> StateResult<Option<Lease>> {
        let mut invocation = TRY_ACQUIRE.key(self.key(key));
        invocation
            .key(self.key(&format!("{key}:fencing")))
            .arg(owner)
            .arg(millis(ttl));
        let token: Option<u64> = self.invoke(&invocation).await?;
        Ok(token.map(|token| Lease {
            key: key.to_string(),
            owner: owner.to_string(),
            token,
        }))
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> StateResult<bool> {
        let mut invocation = RENEW.key(self.key(&lease.key));
        invocation
            .arg(&lease.owner)
            .arg(lease.token)
            .arg(millis(ttl));
        self.invoke(&invocation).await
    }

    async fn release_lease(&self, lease: &Lease) -> StateResult<()> {
        let mut invocation = RELEASE.key(self.key(&lease.key));
        invocation.arg(&lease.owner).arg(lease.token);
        self.invoke::<bool>(&invocation).await.map(drop)
    }
}
