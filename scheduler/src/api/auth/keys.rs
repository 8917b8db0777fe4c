//! The keys bearer tokens are verified with: the HS256 `jwt_secret` and the
//! RS256 / ES256 public keys of a JWKS, chosen by the token's `kid`. The
//! JWKS is a file ([`JwksFile`]) or an identity provider's URL
//! ([`super::jwks_url::JwksUrl`]).
//!
//! The JWKS file is looked at (mtime and size) at most once a second while
//! tokens arrive, re-read when it changed and every `jwks_refresh_secs`
//! regardless, so publishing a new key and later removing the old one needs
//! no restart. A file that cannot be read or parsed keeps the previous keys
//! (a half-written file does not lock everyone out) and is retried.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use auditx_common::config::Config;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::jwks::{parse_jwks, JwksParseError, KeySet, PublicKey};
use super::jwks_url::JwksUrl;
use super::{AuthError, Claims};

/// Longest token looked at; anything longer is malformed.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The JWKS file's mtime is looked at no more often than this.
const JWKS_STAT_INTERVAL: Duration = Duration::from_secs(1);

/// Verifies bearer tokens against the configured keys and claims.
pub struct TokenKeys {
    secret: Option<DecodingKey>,
    jwks: Option<Jwks>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl TokenKeys {
    pub fn new(config: &Config) -> Self {
        let refresh = Duration::from_secs(config.auth.jwks_refresh_secs);
        let file = config.auth.jwks_file.as_ref().map(|path| {
            let file = JwksFile::new(path, refresh);
            // Load now so a broken file is logged at start-up, not at the
            // first request.
            file.keys();
            Jwks::File(file)
        });
        let url = config.auth.jwks_url.as_ref().map(|url| {
            let min_refetch = Duration::from_secs(config.auth.jwks_min_refetch_secs);
            Jwks::Url(JwksUrl::start(url, refresh, min_refetch))
        });
        let jwks = file.or(url);
        Self {
            secret: config
                .jwt_secret
                .as_deref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            jwks,
            issuer: config.auth.issuer.clone(),
            audience: config.auth.audience.clone(),
        }
    }

    /// Whether any key is configured at all.
    pub fn configured(&self) -> bool {
        self.secret.is_some() || self.jwks.is_some()
    }

    /// [`Self::verify`], and when the token names a `kid` the keys fetched
    /// from `auth.jwks_url` lack (or none could be fetched yet), fetches
    /// them again (at most once every `auth.jwks_min_refetch_secs`, one
    /// fetch shared by every token waiting for it) and verifies once more.
    /// Tokens whose key is known never wait for a fetch.
    pub async fn authenticate(&self, token: &str) -> Result<Claims, AuthError> {
        let result = self.verify(token);
        let unknown = matches!(
            result,
            Err(AuthError::UnknownKey | AuthError::KeysUnavailable)
        );
        let Some(Jwks::Url(url)) = &self.jwks else {
            return result;
        };
        if !unknown {
            return result;
        }
        // A token without a kid names no key a fetch could bring.
        let named = TokenHeader::read(token).is_ok_and(|header| header.kid.is_some());
        if named && url.refetch().await {
            return self.verify(token);
        }
        result
    }

    /// Checks the header's algorithm against the keys in hand, the
    /// signature, `exp`, `nbf`, `iss` and `aud` (when configured) and the
    /// tenant id. Errors are fixed texts: nothing of the token is echoed.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        let header = TokenHeader::read(token)?;
        let (algorithm, key) = match header.alg.as_str() {
            "HS256" => {
                let key = self.secret.clone().ok_or(AuthError::UnsupportedAlgorithm)?;
                (Algorithm::HS256, key)
            }
            "RS256" | "ES256" => {
                let jwks = self.jwks.as_ref().ok_or(AuthError::UnsupportedAlgorithm)?;
                let kid = header.kid.as_deref().ok_or(AuthError::UnknownKey)?;
                let key = match jwks {
                    Jwks::File(file) => file.keys().get(kid).cloned(),
                    Jwks::Url(url) => url.key(kid)?,
                };
                let key = key.ok_or(AuthError::UnknownKey)?;
                if key.algorithm.as_str() != header.alg {
                    return Err(AuthError::AlgorithmMismatch);
                }
                (key.algorithm.algorithm(), key.key)
            }
            // `none`, the other HMAC sizes, PS*, EdDSA...
            _ => return Err(AuthError::UnsupportedAlgorithm),
        };
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &self.validation(algorithm))
            .map_err(|e| refusal(e.kind()))?
            .claims;
        if !super::is_valid_tenant(&claims.tenant) {
            return Err(AuthError::InvalidTenant);
        }
        Ok(claims)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Without a configured audience, an `aud` claim is not ours to judge.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

/// Where the RS256 / ES256 keys come from.
enum Jwks {
    File(JwksFile),
    Url(std::sync::Arc<JwksUrl>),
}

/// A verification failure as a fixed text.
fn refusal(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthError::UnsupportedAlgorithm
        }
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "iss" => AuthError::MissingClaim("iss"),
            "aud" => AuthError::MissingClaim("aud"),
            "exp" => AuthError::MissingClaim("exp"),
            _ => AuthError::Malformed,
        },
        _ => AuthError::Malformed,
    }
}

/// The parts of a token's header that pick the key, read without trusting
/// them (the algorithm is a free string so `none` is named, not a parse
/// error).
#[derive(Deserialize)]
struct TokenHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

impl TokenHeader {
    fn read(token: &str) -> Result<Self, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let json = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| AuthError::Malformed)?;
        serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)
    }
}

/// A JWKS file and the keys last read from it.
struct JwksFile {
    path: PathBuf,
    refresh: Duration,
    state: Mutex<JwksState>,
}

#[derive(Default)]
struct JwksState {
    keys: KeySet,
    /// mtime and size of the file the keys were read from.
    stamp: Option<(SystemTime, u64)>,
    loaded_at: Option<Instant>,
    checked_at: Option<Instant>,
}

impl JwksFile {
    fn new(path: &Path, refresh: Duration) -> Self {
        Self {
            path: path.to_owned(),
            refresh,
            state: Mutex::new(JwksState::default()),
        }
    }

    /// The current keys, re-read first if the file changed or is due.
    fn keys(&self) -> KeySet {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if state
            .checked_at
            .is_some_and(|at| now.duration_since(at) < JWKS_STAT_INTERVAL)
        {
            return state.keys.clone();
        }
        state.checked_at = Some(now);
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        let due = state
            .loaded_at
            .is_none_or(|at| now.duration_since(at) >= self.refresh);
        if stamp.is_some() && stamp == state.stamp && !due {
            return state.keys.clone();
        }
        match read_jwks(&self.path) {
            Ok(keys) => {
                if stamp != state.stamp {
                    tracing::info!(path = %self.path.display(), keys = keys.len(), "jwks loaded");
                }
                state.keys = Arc::new(keys);
                state.stamp = stamp;
                state.loaded_at = Some(now);
            }
            Err(error) => {
                tracing::error!(path = %self.path.display(), %error, "jwks file not usable; keeping the previous keys");
            }
        }
        state.keys.clone()
    }
}

/// Why a JWKS file was not used.
#[derive(Debug, thiserror::Error)]
enum JwksError {
    #[error("cannot read: {0}")]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Parse(#[from] JwksParseError),
}

/// Reads the signing keys of a JWKS file (see [`parse_jwks`]).
fn read_jwks(path: &Path) -> Result<HashMap<String, PublicKey>, JwksError> {
    let bytes = std::fs::read(path)?;
    Ok(parse_jwks(&bytes, &path.display().to_string())?)
}
