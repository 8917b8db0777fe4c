//! Reading path parameters, and the query string's pairs, with messages
//! that name the parameter and say what is wrong with it, e.g. `meterId:
//! "abc" is not an integer`.

use auditx_proto::{MeterId, RequestId};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::Uri;

use crate::api::response::error::{quoted, ApiError, ApiResult};

/// The query string of `uri` as `(name, value)` pairs in order, repeats
/// kept and a trailing `[]` dropped from names (`sessionIds[]=a` is
/// `sessionIds=a`); [`crate::api::request::query`] reads them by a route's
/// parameters.
pub fn query_pairs(uri: &Uri) -> ApiResult<Vec<(String, String)>> {
    check_utf8(uri.query().unwrap_or_default())?;
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| ApiError::from_rejection(e.status(), "query", e.body_text()))?;
    Ok(pairs
        .into_iter()
        .map(|(name, value)| match name.strip_suffix("[]") {
            Some(stripped) => (stripped.to_owned(), value),
            None => (name, value),
        })
        .collect())
}

/// Refuses a query string whose names or values are not UTF-8 once
/// percent-decoded (the decoder would silently turn them into U+FFFD).
fn check_utf8(query: &str) -> ApiResult<()> {
    for pair in query.split('&') {
        let name = pair.split('=').next().unwrap_or_default();
        let mut bytes = Vec::with_capacity(pair.len());
        let mut rest = pair.as_bytes();
        while let Some((&b, tail)) = rest.split_first() {
            let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok());
            match (b, hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'%', Some(decoded)) => {
                    bytes.push(decoded);
                    rest = &tail[2..];
                }
                _ => {
                    bytes.push(b);
                    rest = tail;
                }
            }
        }
        if std::str::from_utf8(&bytes).is_err() {
            return Err(ApiError::InvalidParameter(format!(
                "query: the parameter {} is not valid UTF-8",
                quoted(name)
            )));
        }
    }
    Ok(())
}

/// Parses `value` with `parse`, or says which values `name` takes.
pub fn parse_one_of<T>(
    name: &str,
    value: &str,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &[&str],
) -> ApiResult<T> {
    parse(value).ok_or_else(|| {
        ApiError::InvalidParameter(format!(
            "{name}: {} is not one of {}",
            quoted(value),
            allowed.join(", ")
        ))
    })
}

pub fn parse_int(name: &str, value: &str) -> ApiResult<i64> {
    value.parse().map_err(|_| {
        ApiError::InvalidParameter(format!("{name}: {} is not an integer", quoted(value)))
    })
}

/// The path's parameters by name; axum's rejections become envelopes.
async fn path_params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> ApiResult<Vec<(String, String)>> {
    let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::from_rejection(e.status(), "path", e.body_text()))?;
    Ok(params)
}

fn path_param<'a>(params: &'a [(String, String)], name: &str) -> ApiResult<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::Internal(format!("route has no {name} parameter")))
}

fn meter_id(params: &[(String, String)]) -> ApiResult<MeterId> {
    let id = parse_int("meterId", path_param(params, "meterId")?)?;
    if id <= 0 {
        return Err(ApiError::InvalidParameter(
            "meterId: must be positive".into(),
        ));
    }
    Ok(MeterId(id))
}

/// `{meterId}` of the path: a positive int64.
pub struct MeterPath(pub MeterId);

impl<S: Send + Sync> FromRequestParts<S> for MeterPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Ok(Self(meter_id(&path_params(parts, state).await?)?))
    }
}

/// `{meterId}` and `{requestId}` of the path.
pub struct JobPath {
    pub meter: MeterId,
    pub request_id: RequestId,
}

impl<S: Send + Sync> FromRequestParts<S> for JobPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        Ok(Self {
            meter: meter_id(&params)?,
            request_id: RequestId::from(path_param(&params, "requestId")?),
        })
    }
}
