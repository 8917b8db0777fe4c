//! The connection to the state store's Redis primary: at one address, or
//! the primary Redis Sentinel names, asked for again after a failover.
//!
//! `ConnectionManager` reconnects to the address it was made for. Behind
//! sentinels that address may now be a replica (writes answer `READONLY`)
//! or gone, so after a transient failure the store calls
//! [`Primary::failed`]: the sentinels are asked who the primary is now and
//! the next attempt uses a connection to it. A primary that was failed
//! over while still up keeps answering (and accepting writes) until the
//! sentinels demote it, so the sentinels are also asked every
//! [`WATCH_INTERVAL`] and a new primary is switched to at once.
//!
//! TLS: a `rediss://` URL connects over TLS, trusting `redis.ca_file`
//! (else the system's CAs) and presenting `redis.client_cert_file` when
//! set. Behind Sentinel the sentinels and the primary they name are spoken
//! to over TLS with the same files (the sentinels then need a `tls-port`
//! too); the crate's `SentinelClient` takes the certificates for both.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError,
    TlsCertificates, TlsMode,
};

use super::StateError;
use crate::config::SentinelConfig;
use crate::tls::ClientTls;

/// A connection (or a reconnection) to the primary takes at most this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the sentinels are asked whether the primary moved.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

pub(super) struct Primary {
    /// The connection in use, its generation (bumped on each switch) and
    /// the primary's address.
    current: RwLock<(u64, ConnectionManager, String)>,
    sentinel: Option<SentinelLookup>,
}

struct SentinelLookup {
    master_name: String,
    /// Held across a lookup and the switch it leads to.
    sentinel: tokio::sync::Mutex<SentinelClient>,
}

impl Primary {
    /// A connection to `url` (`redis://host:port/db`, or `rediss://` for
    /// TLS with the files of `tls`).
    pub(super) async fn direct(url: &str, tls: &ClientTls) -> Result<Self, StateError> {
        let invalid = |e: RedisError| {
            StateError::Other(format!("redis url {}: {e}", crate::tls::redact_url(url)))
        };
        let client = client(url.into_connection_info().map_err(invalid)?, tls).map_err(invalid)?;
        let conn = ConnectionManager::new(client)
            .await
            .map_err(super::redis_error::classify)?;
        Ok(Self {
            current: RwLock::new((0, conn, String::new())),
            sentinel: None,
        })
    }

    /// A connection to the primary `sentinels` name; `url` gives its
    /// user, password and db, and whether the sentinels and the primary
    /// speak TLS (`rediss://`, with the files of `tls`).
    pub(super) async fn through_sentinels(
        url: &str,
        sentinels: &SentinelConfig,
        tls: &ClientTls,
    ) -> Result<Self, StateError> {
        let invalid = |what: &str, e: RedisError| StateError::Other(format!("{what}: {e}"));
        let info = url
            .into_connection_info()
            .map_err(|e| invalid("redis url", e))?;
        let secure = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
        let mut addresses = Vec::new();
        for address in &sentinels.addresses {
            let (host, port) = address
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
                .ok_or_else(|| StateError::Other(format!("sentinel {address:?}: not host:port")))?;
            addresses.push(match secure {
                true => ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: false,
                    tls_params: None,
                },
                false => ConnectionAddr::Tcp(host, port),
            });
        }
        let settings = info.redis_settings();
        let mut builder = SentinelClientBuilder::new(
            addresses,
            &sentinels.master_name,
            SentinelServerType::Master,
        )
        .map_err(|e| invalid("sentinels", e))?
        .set_client_to_redis_db(settings.db())
        .set_client_to_redis_protocol(settings.protocol());
        if let Some(username) = settings.username() {
            builder = builder.set_client_to_redis_username(username);
        }
        if let Some(password) = settings.password() {
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(password) = &sentinels.password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if secure {
            crate::tls::crypto_provider();
            builder = builder
                .set_client_to_redis_tls_mode(TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(TlsMode::Secure);
            if let Some(certificates) = certificates(tls) {
                builder = builder
                    .set_client_to_redis_certificates(certificates.clone())
                    .set_client_to_sentinel_certificates(certificates);
            }
        }
        let sentinel = builder.build().map_err(|e| invalid("sentinels", e))?;
        let lookup = SentinelLookup {
            master_name: sentinels.master_name.clone(),
            sentinel: tokio::sync::Mutex::new(sentinel),
        };
        let (conn, address) = lookup.connect(&mut *lookup.sentinel.lock().await).await?;
        Ok(Self {
            current: RwLock::new((0, conn, address)),
            sentinel: Some(lookup),
        })
    }

    /// The connection in use and its generation.
    pub(super) fn get(&self) -> (u64, ConnectionManager) {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        (current.0, current.1.clone())
    }

    /// Behind sentinels: asks them every [`WATCH_INTERVAL`] whether the
    /// primary moved, until the store is dropped.
    pub(super) fn watch(self: &Arc<Self>) {
        if self.sentinel.is_none() {
            return;
        }
        let primary = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCH_INTERVAL).await;
                let Some(primary) = primary.upgrade() else {
                    return;
                };
                primary.switch_if_moved().await;
            }
        });
    }

    async fn switch_if_moved(&self) {
        let Some(lookup) = &self.sentinel else {
            return;
        };
        let mut sentinel = lookup.sentinel.lock().await;
        let Ok(client) = sentinel.async_get_client().await else {
            return;
        };
        let address = client.get_connection_info().addr().to_string();
        let generation = {
            let current = self.current.read().unwrap_or_else(|e| e.into_inner());
            if current.2 == address {
                return;
            }
            current.0
        };
        tracing::warn!(master = %lookup.master_name, %address, "redis primary moved");
        self.switch(lookup, &mut sentinel, generation).await;
    }

    /// After a transient failure on the connection of `generation`: behind
    /// sentinels, asks them for the primary and switches to it (once per
    /// generation: callers that failed on the same connection share the
    /// switch). A lookup that fails leaves the connection as it is.
    pub(super) async fn failed(&self, generation: u64) {
        let Some(lookup) = &self.sentinel else {
            return;
        };
        let mut sentinel = lookup.sentinel.lock().await;
        if self.get().0 != generation {
            return;
        }
        self.switch(lookup, &mut sentinel, generation).await;
    }

    /// Connects to the primary the sentinels name and uses it from then on
    /// (unless another switch happened since `generation`).
    async fn switch(
        &self,
        lookup: &SentinelLookup,
        sentinel: &mut SentinelClient,
        generation: u64,
    ) {
        match lookup.connect(sentinel).await {
            Ok((conn, address)) => {
                let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
                if current.0 == generation {
                    *current = (generation + 1, conn, address);
                }
            }
            Err(error) => {
                tracing::warn!(master = %lookup.master_name, %error, "redis primary not found through the sentinels");
            }
        }
    }
}

impl SentinelLookup {
    /// Asks the sentinels (in the configured order) for the primary, checks
    /// that it says it is one, and connects to it.
    async fn connect(
        &self,
        sentinel: &mut SentinelClient,
    ) -> Result<(ConnectionManager, String), StateError> {
        let client = sentinel
            .async_get_client()
            .await
            .map_err(super::redis_error::classify)?;
        let address = client.get_connection_info().addr().to_string();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(super::redis_error::classify)?;
        tracing::info!(master = %self.master_name, %address, "redis primary found through the sentinels");
        Ok((conn, address))
    }
}

/// A client for `info`, given the CA and client certificate of `tls` when
/// `info` is a TLS address (`rediss://`).
fn client(info: ConnectionInfo, tls: &ClientTls) -> Result<Client, RedisError> {
    if !matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
        return Client::open(info);
    }
    // The crate builds its rustls configuration with the process default.
    crate::tls::crypto_provider();
    match certificates(tls) {
        Some(certificates) => Client::build_with_tls(info, certificates),
        None => Client::open(info),
    }
}

/// The files of `tls` as the crate takes them; `None` when there are none
/// (the system's CAs, no client certificate).
fn certificates(tls: &ClientTls) -> Option<TlsCertificates> {
    if tls.is_default() {
        return None;
    }
    Some(TlsCertificates {
        client_tls: tls.identity.as_ref().map(|identity| ClientTlsConfig {
            client_cert: identity.cert_pem.clone(),
            client_key: identity.key_pem.clone(),
        }),
        root_cert: tls.ca.as_ref().map(|ca| ca.pem.clone().into_bytes()),
    })
}
