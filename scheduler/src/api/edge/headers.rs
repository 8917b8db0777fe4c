//! The Zuora-style request headers of SPEC §3: `Zuora-Track-Id` and the
//! `Zuora-Entity-Ids` / `Zuora-Org-Ids` scopes.

use axum::http::HeaderMap;

use crate::api::response::error::{quoted, ApiError};

pub const TRACK_ID_HEADER: &str = "Zuora-Track-Id";
pub const ENTITY_IDS_HEADER: &str = "Zuora-Entity-Ids";
pub const ORG_IDS_HEADER: &str = "Zuora-Org-Ids";

const TRACK_ID_MAX_LEN: usize = 64;

/// The caller's `Zuora-Track-Id`, if any, once checked: at most 64
/// printable US-ASCII characters, none of `: ; " '` (it is echoed in a
/// response header and written to logs).
pub fn track_id(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(TRACK_ID_HEADER) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() > TRACK_ID_MAX_LEN {
        return Err(ApiError::InvalidParameter(format!(
            "{TRACK_ID_HEADER}: must be at most {TRACK_ID_MAX_LEN} characters"
        )));
    }
    if !bytes
        .iter()
        .all(|&b| (0x20..=0x7e).contains(&b) && !b":;\"'".contains(&b))
    {
        return Err(ApiError::InvalidParameter(format!(
            "{TRACK_ID_HEADER}: must be printable US-ASCII without : ; \" or '"
        )));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// The ids a call is scoped to by header `name` (comma separated), which
/// must all be among `allowed` (the token's); without the header, all of
/// `allowed`.
pub fn requested_scope(
    headers: &HeaderMap,
    name: &str,
    allowed: &[String],
) -> Result<Vec<String>, ApiError> {
    let mut requested = Vec::new();
    for value in headers.get_all(name) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::InvalidParameter(format!("{name}: must be US-ASCII")))?;
        for id in value.split(',').map(str::trim).filter(|id| !id.is_empty()) {
            if !allowed.iter().any(|a| a == id) {
                return Err(ApiError::Forbidden(format!(
                    "{name}: {} is not allowed for this token",
                    quoted(id)
                )));
            }
            if !requested.iter().any(|r| r == id) {
                requested.push(id.to_owned());
            }
        }
    }
    if requested.is_empty() {
        return Ok(allowed.to_vec());
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn track_ids_are_checked() {
        assert_eq!(track_id(&HeaderMap::new()).unwrap(), None);
        let ok = "abc-123 xyz/!".to_owned();
        assert_eq!(track_id(&with(TRACK_ID_HEADER, &ok)).unwrap(), Some(ok));
        assert!(track_id(&with(TRACK_ID_HEADER, &"x".repeat(64))).is_ok());
        for bad in [
            "x".repeat(65),
            "a:b".into(),
            "a;b".into(),
            "a\"b".into(),
            "a'b".into(),
        ] {
            assert!(track_id(&with(TRACK_ID_HEADER, &bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_must_be_subsets_of_the_token() {
        let allowed = vec!["e1".to_owned(), "e2".to_owned()];
        assert_eq!(
            requested_scope(&HeaderMap::new(), ENTITY_IDS_HEADER, &allowed).unwrap(),
            allowed
        );
        let headers = with(ENTITY_IDS_HEADER, " e2 ,e2");
        assert_eq!(
            requested_scope(&headers, ENTITY_IDS_HEADER, &allowed).unwrap(),
            vec!["e2"]
        );
        let headers = with(ENTITY_IDS_HEADER, "e1,e3");
        let err = requested_scope(&headers, ENTITY_IDS_HEADER, &allowed).unwrap_err();
        assert!(matches!(err, ApiError::Forbidden(_)));
        assert_eq!(
            err.to_string(),
            "Zuora-Entity-Ids: \"e3\" is not allowed for this token"
        );
    }
}
