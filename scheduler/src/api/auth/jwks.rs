//! JWKS documents: the RS256 / ES256 signing keys they hold, by `kid`, as
//! a JWKS file ([`super::keys`]) and a JWKS URL ([`super::jwks_url`]) read
//! them.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// The algorithms a JWKS key may verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyAlg {
    Rs256,
    Es256,
}

impl KeyAlg {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            KeyAlg::Rs256 => "RS256",
            KeyAlg::Es256 => "ES256",
        }
    }

    pub(super) fn algorithm(self) -> Algorithm {
        match self {
            KeyAlg::Rs256 => Algorithm::RS256,
            KeyAlg::Es256 => Algorithm::ES256,
        }
    }
}

#[derive(Clone)]
pub(super) struct PublicKey {
    pub(super) algorithm: KeyAlg,
    pub(super) key: DecodingKey,
}

/// Public keys by `kid`.
pub(super) type KeySet = Arc<HashMap<String, PublicKey>>;

/// A JWKS document that is not one.
#[derive(Debug, thiserror::Error)]
#[error("not a JWKS document (expected {{\"keys\": [...]}}): {0}")]
pub(super) struct JwksParseError(#[from] serde_json::Error);

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// The RS256 / ES256 signing keys of a JWKS document by `kid`; keys that
/// are not usable (no kid, other types or algorithms, `use` other than
/// `sig`) are skipped with a warning naming `source`.
pub(super) fn parse_jwks(
    bytes: &[u8],
    source: &str,
) -> Result<HashMap<String, PublicKey>, JwksParseError> {
    let document: JwksDocument = serde_json::from_slice(bytes)?;
    let mut keys = HashMap::new();
    for (index, value) in document.keys.into_iter().enumerate() {
        match public_key(value) {
            Ok((kid, key)) => {
                keys.insert(kid, key);
            }
            Err(why) => tracing::warn!(source, index, why, "jwks key skipped"),
        }
    }
    Ok(keys)
}

fn public_key(value: serde_json::Value) -> Result<(String, PublicKey), &'static str> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|_| "not a JWK this server reads")?;
    let kid = jwk.common.key_id.clone().ok_or("no kid")?;
    if let Some(key_use) = &jwk.common.public_key_use {
        if *key_use != jsonwebtoken::jwk::PublicKeyUse::Signature {
            return Err("use is not sig");
        }
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => KeyAlg::Rs256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            KeyAlg::Es256
        }
        _ => return Err("only RSA keys for RS256 and P-256 keys for ES256 are used"),
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "invalid key material")?;
    Ok((kid, PublicKey { algorithm, key }))
}
