//! Bearer tokens: HS256 JWTs naming the tenant and the entities and orgs the
//! caller may act for. `auditx token` mints them with [`mint_token`]; every
//! authenticated route verifies them through the [`Caller`] extractor.

use auditx_proto::TenantId;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

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
}

/// Why a token could not be minted or was refused.
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
    #[error("invalid bearer token: {0}")]
    Invalid(String),
    #[error("tenant: {0:?} is not 1 to 64 characters of A-Z a-z 0-9 . _ -")]
    InvalidTenant(String),
    #[error("could not sign token: {0}")]
    Sign(String),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Sign(_) => ApiError::Internal(e.to_string()),
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
        return Err(AuthError::InvalidTenant(claims.tenant.clone()));
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| AuthError::Sign(e.to_string()))
}

/// Checks the signature (HS256 only), the expiry, `nbf` when present and
/// the tenant id.
pub fn verify_token(secret: &str, token: &str) -> Result<Claims, AuthError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_nbf = true;
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        _ => AuthError::Invalid(e.to_string()),
    })?;
    if !is_valid_tenant(&data.claims.tenant) {
        return Err(AuthError::InvalidTenant(data.claims.tenant));
    }
    Ok(data.claims)
}

/// An authenticated caller and the scope of this call.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant: TenantId,
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

    async fn from_request_parts(parts: &mut Parts, services: &Services) -> Result<Self, ApiError> {
        let secret = services.config.jwt_secret.as_deref().ok_or_else(|| {
            ApiError::Internal("server has no JWT secret configured (jwt_secret)".into())
        })?;
        let header = parts.headers.get(AUTHORIZATION).ok_or(AuthError::Missing)?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::NotBearer)?;
        let claims = verify_token(secret, token)?;
        let entities = requested_scope(&parts.headers, ENTITY_IDS_HEADER, &claims.entities)?;
        let orgs = requested_scope(&parts.headers, ORG_IDS_HEADER, &claims.orgs)?;
        tracing::Span::current().record("tenant", claims.tenant.as_str());
        Ok(Caller {
            tenant: TenantId(claims.tenant),
            entities,
            orgs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(tenant: &str, exp: i64) -> Claims {
        Claims {
            sub: "dev".into(),
            tenant: tenant.into(),
            entities: vec!["e1".into()],
            orgs: vec![],
            exp,
        }
    }

    fn in_an_hour() -> i64 {
        chrono::Utc::now().timestamp() + 3600
    }

    #[test]
    fn minted_tokens_verify_with_the_same_secret_only() {
        let token = mint_token("s3cret", &claims("acme", in_an_hour())).unwrap();
        assert_eq!(verify_token("s3cret", &token).unwrap().tenant, "acme");
        assert!(matches!(
            verify_token("other", &token),
            Err(AuthError::Invalid(_))
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
        let err = verify_token("secret", &sign(now + 600)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bearer token not valid yet (nbf is in the future)"
        );
        assert_eq!(verify_token("secret", &sign(now - 5)).unwrap().tenant, "t1");
    }

    #[test]
    fn expired_tokens_are_refused() {
        let token =
            mint_token("s", &claims("acme", chrono::Utc::now().timestamp() - 3600)).unwrap();
        assert!(matches!(verify_token("s", &token), Err(AuthError::Expired)));
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
            Err(AuthError::InvalidTenant(_))
        ));
    }
}
