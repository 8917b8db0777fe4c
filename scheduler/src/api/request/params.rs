//! Reading path and query parameters with messages that name the parameter
//! and say what is wrong with it, e.g. `meterId: "abc" is not an integer`.

use auditx_proto::{MeterId, RequestId};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;

use crate::api::response::error::{quoted, ApiError, ApiResult};

/// The query string as `(name, value)` pairs in order, repeats kept and a
/// trailing `[]` dropped from names (`sessionIds[]=a` is `sessionIds=a`).
#[derive(Debug, Default)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        check_utf8(parts.uri.query().unwrap_or_default())?;
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::from_rejection(e.status(), "query", e.body_text()))?;
        Ok(Self::new(pairs))
    }
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

impl QueryParams {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        let pairs = pairs
            .into_iter()
            .map(|(name, value)| match name.strip_suffix("[]") {
                Some(stripped) => (stripped.to_owned(), value),
                None => (name, value),
            })
            .collect();
        Self { pairs }
    }

    /// Refuses parameters other than `allowed`, naming them.
    pub fn only(&self, allowed: &[&str]) -> ApiResult<()> {
        let mut unknown: Vec<&str> = Vec::new();
        for (name, _) in &self.pairs {
            if !allowed.contains(&name.as_str()) && !unknown.contains(&name.as_str()) {
                unknown.push(name);
            }
        }
        let mut problems = crate::api::response::error::Problems::default();
        for name in unknown.iter().take(5) {
            problems.push(ApiError::UnknownField(format!(
                "unknown query parameter: {}",
                shown_name(name)
            )));
        }
        problems.finish()
    }

    /// A single-valued parameter; given empty (`name=`) it is a 400, as
    /// no single-valued parameter takes an empty value.
    pub fn optional(&self, name: &str) -> ApiResult<Option<&str>> {
        let mut values = self
            .pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::InvalidParameter(format!(
                "{name}: given more than once"
            )));
        }
        match first {
            Some("") => Err(ApiError::InvalidParameter(format!(
                "{name}: must not be empty"
            ))),
            other => Ok(other),
        }
    }

    pub fn required(&self, name: &str) -> ApiResult<&str> {
        self.optional(name)?
            .ok_or_else(|| ApiError::MissingParameter(format!("{name}: required")))
    }

    /// An array parameter, given as repeats (`a=1&a=2`), with brackets
    /// (`a[]=1`) or comma separated (`a=1,2`); empty items are dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        let mut items: Vec<String> = Vec::new();
        for (_, value) in self.pairs.iter().filter(|(n, _)| n == name) {
            for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                if !items.iter().any(|i| i == item) {
                    items.push(item.to_owned());
                }
            }
        }
        items
    }
}

/// A parameter name the caller sent, as a message shows it: bare when
/// short, else cut like [`quoted`].
fn shown_name(name: &str) -> String {
    if name.chars().count() <= 40 {
        name.to_owned()
    } else {
        quoted(name)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &[(&str, &str)]) -> QueryParams {
        QueryParams::new(
            query
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn arrays_accept_repeats_brackets_and_commas() {
        let p = params(&[
            ("ids", "a"),
            ("ids[]", "b,c"),
            ("ids", " a ,"),
            ("other", "x"),
        ]);
        assert_eq!(p.list("ids"), vec!["a", "b", "c"]);
        assert!(p.list("missing").is_empty());
    }

    #[test]
    fn unknown_parameters_are_named() {
        let p = params(&[("a", "1"), ("zz", "2"), ("yy", "3"), ("zz", "4")]);
        assert_eq!(
            p.only(&["a"]).unwrap_err().to_string(),
            "unknown query parameter: zz; unknown query parameter: yy"
        );
        assert_eq!(
            params(&[("q", "1")]).only(&[]).unwrap_err().to_string(),
            "unknown query parameter: q"
        );
    }

    #[test]
    fn single_values_are_single() {
        let p = params(&[("a", "1"), ("a", "2"), ("b", "")]);
        assert_eq!(
            p.optional("a").unwrap_err().to_string(),
            "a: given more than once"
        );
        assert_eq!(
            p.required("b").unwrap_err().to_string(),
            "b: must not be empty"
        );
        assert_eq!(
            p.optional("b").unwrap_err().to_string(),
            "b: must not be empty"
        );
        assert_eq!(p.required("c").unwrap_err().to_string(), "c: required");
    }
}
