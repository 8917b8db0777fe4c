//! The keys of an identity provider's JWKS endpoint (`auth.jwks_url`).
//!
//! Fetched at start-up and every `jwks_refresh_secs` by a background task,
//! and on demand when a token names a `kid` the cached keys lack, so a new
//! key is usable as soon as the provider publishes it. Every fetch, for any
//! reason, is at least `jwks_min_refetch_secs` after the previous one:
//! tokens naming made-up keys cannot make the scheduler hammer the provider.
//! Token checks read the cached keys under a short lock and never wait for
//! a fetch, except the tokens whose key is unknown, which share the one
//! fetch under way. A fetch that fails keeps the cached keys; keys the
//! provider stopped publishing are remembered as retired so their tokens
//! are refused with that reason.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::jwks::{parse_jwks, KeySet, PublicKey};
use super::AuthError;

/// One fetch, connection included, takes at most this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document read (real ones are a few KiB).
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Retired kids remembered, newest kept.
const MAX_RETIRED: usize = 64;

pub(super) struct JwksUrl {
    url: String,
    client: reqwest::Client,
    refresh: Duration,
    min_refetch: Duration,
    state: Mutex<UrlState>,
    /// Held by the one fetch under way; tokens with unknown keys queue on it.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct UrlState {
    keys: KeySet,
    /// Whether any fetch has succeeded.
    loaded: bool,
    retired: VecDeque<String>,
    /// When the last fetch started and ended (whatever its outcome).
    started_at: Option<Instant>,
    ended_at: Option<Instant>,
}

/// Why a fetch brought no keys.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("document larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error(transparent)]
    Parse(#[from] super::jwks::JwksParseError),
    #[error("document holds no usable RS256 / ES256 signing key")]
    NoKeys,
}

impl JwksUrl {
    /// The key source, and (within a tokio runtime) its background task,
    /// which ends when the source is dropped.
    pub(super) fn start(url: &str, refresh: Duration, min_refetch: Duration) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            // Fails only when the TLS backend cannot start at all.
            .expect("an HTTP client");
        let source = Arc::new(Self {
            url: url.to_owned(),
            client,
            refresh,
            min_refetch: min_refetch.max(Duration::from_millis(1)),
            state: Mutex::new(UrlState::default()),
            fetching: tokio::sync::Mutex::new(()),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(refresh_loop(Arc::downgrade(&source)));
        }
        source
    }

    /// The cached key named `kid`, if any; an error when that key was
    /// retired or no fetch has succeeded yet.
    pub(super) fn key(&self, kid: &str) -> Result<Option<PublicKey>, AuthError> {
        let state = self.state();
        if let Some(key) = state.keys.get(kid) {
            return Ok(Some(key.clone()));
        }
        if state.retired.iter().any(|retired| retired == kid) {
            return Err(AuthError::RetiredKey);
        }
        if !state.loaded {
            return Err(AuthError::KeysUnavailable);
        }
        Ok(None)
    }

    /// Waits for a fetch that ends after this call began: the one under
    /// way, or a new one unless the last started less than
    /// `jwks_min_refetch_secs` ago. Returns whether such a fetch ended (so
    /// the keys are worth looking at again).
    pub(super) async fn refetch(&self) -> bool {
        let asked = Instant::now();
        let _fetching = self.fetching.lock().await;
        {
            let state = self.state();
            if state.ended_at.is_some_and(|ended| ended >= asked) {
                return true;
            }
            if state
                .started_at
                .is_some_and(|started| asked.duration_since(started) < self.min_refetch)
            {
                return false;
            }
        }
        self.fetch().await;
        true
    }

    /// Fetches unless another fetch is under way or one started less than
    /// `jwks_min_refetch_secs` ago.
    async fn fetch_if_allowed(&self) {
        let Ok(_fetching) = self.fetching.try_lock() else {
            return;
        };
        let recent = self
            .state()
            .started_at
            .is_some_and(|started| started.elapsed() < self.min_refetch);
        if !recent {
            self.fetch().await;
        }
    }

    /// One fetch; the caller holds `fetching`.
    async fn fetch(&self) {
        self.state().started_at = Some(Instant::now());
        let fetched = self.download().await;
        let mut state = self.state();
        state.ended_at = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                let retired: Vec<String> = state
                    .keys
                    .keys()
                    .filter(|kid| !keys.contains_key(*kid))
                    .cloned()
                    .collect();
                state.retired.retain(|kid| !keys.contains_key(kid));
                for kid in &retired {
                    tracing::info!(url = %self.url, kid = %kid, "jwks key retired");
                    state.retired.push_back(kid.clone());
                }
                while state.retired.len() > MAX_RETIRED {
                    state.retired.pop_front();
                }
                let added = keys
                    .keys()
                    .filter(|kid| !state.keys.contains_key(*kid))
                    .count();
                if added > 0 || !retired.is_empty() {
                    tracing::info!(url = %self.url, keys = keys.len(), added, retired = retired.len(), "jwks fetched");
                }
                state.keys = Arc::new(keys);
                state.loaded = true;
            }
            Err(error) => {
                tracing::error!(url = %self.url, %error, "jwks fetch failed; keeping the previous keys");
            }
        }
    }

    async fn download(&self) -> Result<HashMap<String, PublicKey>, FetchError> {
        let mut response = self
            .client
            .get(&self.url)
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status()));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let keys = parse_jwks(&body, &self.url)?;
        // An empty set is more likely a broken proxy or provider than a
        // wish to refuse every token: keep the keys in hand.
        if keys.is_empty() {
            return Err(FetchError::NoKeys);
        }
        Ok(keys)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, UrlState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Fetches at once, then every `refresh` (every `min_refetch` while no
/// fetch has succeeded), until the source is dropped.
async fn refresh_loop(source: Weak<JwksUrl>) {
    loop {
        let pause = {
            let Some(source) = source.upgrade() else {
                return;
            };
            source.fetch_if_allowed().await;
            if source.state().loaded {
                source.refresh
            } else {
                source.min_refetch
            }
        };
        tokio::time::sleep(pause).await;
    }
}
