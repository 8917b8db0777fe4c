//! Bearer tokens: JWTs naming the tenant, the entities and orgs the caller
//! may act for and the scopes it holds. HS256 tokens are signed with
//! `jwt_secret` (`auditx token` mints them with [`mint_token`]); RS256 and
//! ES256 tokens are checked against the public keys of `auth.jwks_file` or
//! `auth.jwks_url` ([`TokenKeys`]). Every authenticated route verifies the token and the
//! scope the route needs ([`scopes`]) through the [`Caller`] extractor.

mod jwks;
mod jwks_url;
mod keys;
pub mod scopes;

use std::sync::Arc;

use auditx_proto::TenantId;
use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

pub use self::keys::TokenKeys;
pub use self::scopes::Scope;

use super::error::ApiError;
use super::headers::{requested_scope, ENTITY_IDS_HEADER, ORG_IDS_HEADER};
use crate::context::Services;

/// The claims of a bearer token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who the token was issued to (logged, not authorized on).
    pub sub: String,
    /// The tenant every call acts for; it becomes an S3 path segment.
    pub tenant: String,
    /// Entities the caller may act for (`Zuora-Entity-Ids` must be a subset).
    #[serde(default)]
    pub entities: Vec<String>,
    /// Orgs the caller may act for (`Zuora-Org-Ids` must be a subset).
    #[serde(default)]
    pub orgs: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Scopes, space separated (RFC 8693), e.g. `export:read query:read`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Scopes as an array, accepted besides `scope`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Issuer; checked against `auth.issuer` when that is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience, written when minting; verification checks the token's
    /// own `aud` (a string or a list) against `auth.audience`.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

impl Claims {
    /// Claims of `tenant` holding every scope, for no entity or org.
    pub fn new(sub: impl Into<String>, tenant: impl Into<String>, exp: i64) -> Self {
        Self {
            sub: sub.into(),
            tenant: tenant.into(),
            entities: Vec::new(),
            orgs: Vec::new(),
            exp,
            scope: Scope::all_text(),
            scopes: Vec::new(),
            iss: None,
            aud: None,
        }
    }
}

/// Why a token could not be minted or was refused. The texts are fixed:
/// nothing of the token (or the parser's view of it) is echoed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("Authorization: expected \"Bearer <token>\"")]
    NotBearer,
    #[error("bearer token expired")]
    Expired,
    #[error("bearer token not valid yet (nbf is in the future)")]
    NotYetValid,
    #[error("invalid bearer token: malformed")]
    Malformed,
    #[error("invalid bearer token: bad signature")]
    BadSignature,
    #[error("invalid bearer token: unsupported algorithm")]
    UnsupportedAlgorithm,
    #[error("invalid bearer token: unknown signing key (kid)")]
    UnknownKey,
    #[error("invalid bearer token: signing key (kid) retired by the identity provider")]
    RetiredKey,
    #[error("signing keys unavailable: auth.jwks_url could not be fetched yet; try again later")]
    KeysUnavailable,
    #[error("invalid bearer token: algorithm does not match the signing key")]
    AlgorithmMismatch,
    #[error("invalid bearer token: wrong issuer (iss)")]
    WrongIssuer,
    #[error("invalid bearer token: wrong audience (aud)")]
    WrongAudience,
    #[error("invalid bearer token: missing claim {0}")]
    MissingClaim(&'static str),
    #[error("tenant: must be 1 to 64 characters of A-Z a-z 0-9 . _ -")]
    InvalidTenant,
    #[error("server has no token keys configured (jwt_secret, auth.jwks_file or auth.jwks_url)")]
    NoKeys,
    #[error("could not sign token: {0}")]
    Sign(String),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Sign(_) | AuthError::NoKeys => ApiError::Internal(e.to_string()),
            AuthError::KeysUnavailable => ApiError::Unavailable(e.to_string()),
            _ => ApiError::Unauthorized(e.to_string()),
        }
    }
}

/// Tenant ids become S3 key segments (and, on the embedded endpoint, folder
/// names), so only a safe alphabet is allowed and `.`/`..` are refused.
pub fn is_valid_tenant(tenant: &str) -> bool {
    (1..=64).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && tenant.bytes().any(|b| b != b'.')
}

/// Signs `claims` with the HS256 `secret`.
pub fn mint_token(secret: &str, claims: &Claims) -> Result<String, AuthError> {
    if !is_valid_tenant(&claims.tenant) {
        return Err(AuthError::InvalidTenant);
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| AuthError::Sign(e.to_string()))
}

/// An authenticated caller and the scope of this call.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant: TenantId,
    /// The token's subject (`sub`).
    pub subject: String,
    /// The entities this call acts for: `Zuora-Entity-Ids` if given (a
    /// subset of the token's), else all of the token's.
    pub entities: Vec<String>,
    /// Likewise for orgs and `Zuora-Org-Ids`.
    pub orgs: Vec<String>,
}

impl Caller {
    /// The entity rows written by this call belong to: the only one in
    /// scope, none if there is none, an error if the caller must choose.
    pub fn single_entity(&self) -> Result<Option<String>, ApiError> {
        single(&self.entities, ENTITY_IDS_HEADER)
    }

    /// The org rows written by this call belong to (as for entities).
    pub fn single_org(&self) -> Result<Option<String>, ApiError> {
        single(&self.orgs, ORG_IDS_HEADER)
    }

    /// The entities and orgs this call is limited to (docs/security.md,
    /// "Entity and org scope").
    pub fn scope(&self) -> auditx_proto::Scope {
        auditx_proto::Scope::new(self.entities.clone(), self.orgs.clone())
    }
}

fn single(scope: &[String], header: &str) -> Result<Option<String>, ApiError> {
    match scope {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        _ => Err(ApiError::InvalidParameter(format!(
            "{header}: name exactly one of {} for this call",
            scope.join(", ")
        ))),
    }
}

impl FromRequestParts<Services> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &Services) -> Result<Self, ApiError> {
        // The router's (`api::router`): one per API, beside the services.
        let tokens = parts
            .extensions
            .get::<Arc<TokenKeys>>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("no token keys on this router".into()))?;
        if !tokens.configured() {
            return Err(AuthError::NoKeys.into());
        }
        let header = parts.headers.get(AUTHORIZATION).ok_or(AuthError::Missing)?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::NotBearer)?;
        let claims = tokens.authenticate(token).await?;
        tracing::Span::current().record("tenant", claims.tenant.as_str());
        require_scope(parts, &claims)?;
        let entities = requested_scope(&parts.headers, ENTITY_IDS_HEADER, &claims.entities)?;
        let orgs = requested_scope(&parts.headers, ORG_IDS_HEADER, &claims.orgs)?;
        Ok(Caller {
            subject: claims.sub,
            tenant: TenantId(claims.tenant),
            entities,
            orgs,
        })
    }
}

/// Refuses the call unless the token holds the scope its route needs
/// ([`scopes::required`]); a route missing from that table is refused too.
fn require_scope(parts: &Parts, claims: &Claims) -> Result<(), ApiError> {
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or_default();
    let needed = scopes::required(&parts.method, route).ok_or_else(|| {
        ApiError::Internal(format!(
            "{} {route} has no scope in the route table",
            parts.method
        ))
    })?;
    if scopes::granted(&claims.scope, &claims.scopes).contains(&needed) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "this token lacks the scope {} (needed for {} {route})",
        needed.as_str(),
        parts.method
    )))
}

#[cfg(test)]
mod tests {
    use auditx_common::config::Config;

    use super::*;

    fn claims(tenant: &str, exp: i64) -> Claims {
        Claims {
            entities: vec!["e1".into()],
            ..Claims::new("dev", tenant, exp)
        }
    }

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::new(&Config {
            jwt_secret: Some(secret.into()),
            ..Config::default()
        })
    }

    fn in_an_hour() -> i64 {
        chrono::Utc::now().timestamp() + 3600
    }

    #[test]
    fn minted_tokens_verify_with_the_same_secret_only() {
        let token = mint_token("s3cret", &claims("acme", in_an_hour())).unwrap();
        let verified = keys("s3cret").verify(&token).unwrap();
        assert_eq!(verified.tenant, "acme");
        assert_eq!(
            scopes::granted(&verified.scope, &verified.scopes),
            Scope::ALL.to_vec()
        );
        assert!(matches!(
            keys("other").verify(&token),
            Err(AuthError::BadSignature)
        ));
    }

    #[test]
    fn tokens_whose_nbf_is_in_the_future_are_refused() {
        let sign = |nbf: i64| {
            let claims = serde_json::json!({
                "sub": "s", "tenant": "t1", "exp": in_an_hour(), "nbf": nbf,
            });
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(b"secret"),
            )
            .unwrap()
        };
        let now = chrono::Utc::now().timestamp();
        let err = keys("secret").verify(&sign(now + 600)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bearer token not valid yet (nbf is in the future)"
        );
        assert_eq!(keys("secret").verify(&sign(now - 5)).unwrap().tenant, "t1");
    }

    #[test]
    fn expired_tokens_are_refused() {
        let token =
            mint_token("s", &claims("acme", chrono::Utc::now().timestamp() - 3600)).unwrap();
        assert!(matches!(keys("s").verify(&token), Err(AuthError::Expired)));
    }

    #[test]
    fn garbage_is_malformed_without_echo() {
        for bad in ["abc", "a.b", "a.b.c.d", "!!!.e30.x", &"x".repeat(20_000)] {
            let err = keys("s").verify(bad).unwrap_err();
            assert_eq!(err.to_string(), "invalid bearer token: malformed", "{bad}");
        }
    }

    #[test]
    fn tenant_ids_must_be_safe_path_segments() {
        for good in ["acme", "a.b_c-9", &"x".repeat(64)] {
            assert!(is_valid_tenant(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(!is_valid_tenant(bad), "{bad}");
        }
        assert!(matches!(
            mint_token("s", &claims("../etc", in_an_hour())),
            Err(AuthError::InvalidTenant)
        ));
    }
}
