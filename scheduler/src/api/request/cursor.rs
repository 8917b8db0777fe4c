//! The opaque `cursor` of `GET /meters/{meterId}/auditTrail/entries`: the
//! previous page's `nextPage`, handed back unchanged.
//!
//! A cursor is the base64url (no padding) of
//!
//! ```text
//! version (1) | query (16) | has_sessions (1) | sessions (16, if any)
//!   | eventTime (8, big endian) | eventId (rest) | mac (16)
//! ```
//!
//! - `eventTime`, `eventId`: the last row of the previous page; the next
//!   page holds the rows strictly after it (keyset paging).
//! - `query`: a digest of tenant, meter, filters and entity/org scope
//!   ([`query_digest`]); a cursor used with anything else is refused.
//! - `sessions`: with `runStatuses`, a digest of the runs that matched on
//!   the first page, so that a change of a run's status while paging is
//!   reported instead of silently dropping or adding that run's rows.
//! - `mac`: HMAC-SHA256 of everything before it, cut to 16 bytes, under a
//!   key shared by the fleet through the state store ([`cursor_key`]), so a
//!   cursor that was altered or truncated is refused.

use auditx_proto::{MeterId, Scope, TenantId};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::api::request::filters::CreateRequest;
use crate::api::response::error::{ApiError, ApiResult};
use crate::context::Services;
use crate::fleet::secrets;
use auditx_lake::audit_trail::read::Position;

const VERSION: u8 = 1;
const DIGEST_BYTES: usize = 16;
const MAC_BYTES: usize = 16;
/// Longest cursor read: far above any real one (the eventId dominates).
const MAX_CURSOR_CHARS: usize = 8192;

pub type Digest16 = [u8; DIGEST_BYTES];

/// The secret cursors are signed with.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

/// What a cursor says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub query: Digest16,
    pub sessions: Option<Digest16>,
    pub after: Position,
}

fn mac(key: &CursorKey, bytes: &[u8]) -> [u8; MAC_BYTES] {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes keys of any size");
    mac.update(bytes);
    let full = mac.finalize().into_bytes();
    let mut cut = [0; MAC_BYTES];
    cut.copy_from_slice(&full[..MAC_BYTES]);
    cut
}

fn malformed() -> ApiError {
    ApiError::InvalidParameter(
        "cursor: malformed (pass the previous page's nextPage unchanged)".into(),
    )
}

impl Cursor {
    pub fn encode(&self, key: &CursorKey) -> String {
        let mut bytes = Vec::with_capacity(64 + self.after.event_id.len());
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.query);
        match &self.sessions {
            Some(digest) => {
                bytes.push(1);
                bytes.extend_from_slice(digest);
            }
            None => bytes.push(0),
        }
        bytes.extend_from_slice(&self.after.event_time_ms.to_be_bytes());
        bytes.extend_from_slice(self.after.event_id.as_bytes());
        let tag = mac(key, &bytes);
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads a cursor this fleet issued; anything else is a 400 naming
    /// `cursor`.
    pub fn decode(text: &str, key: &CursorKey) -> ApiResult<Self> {
        if text.len() > MAX_CURSOR_CHARS {
            return Err(malformed());
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| malformed())?;
        let Some(body_len) = bytes.len().checked_sub(MAC_BYTES) else {
            return Err(malformed());
        };
        let (body, tag) = bytes.split_at(body_len);
        // Compared in constant time by the hmac crate.
        let mut check =
            Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes keys of any size");
        check.update(body);
        if check.verify_truncated_left(tag).is_err() {
            return Err(ApiError::InvalidParameter(
                "cursor: not valid (altered, or not issued by this service)".into(),
            ));
        }
        let mut rest = body;
        let mut next = |n: usize| take(&mut rest, n);
        let version = next(1)?[0];
        if version != VERSION {
            return Err(ApiError::InvalidParameter(format!(
                "cursor: version {version} is not supported; start again without a cursor"
            )));
        }
        let query: Digest16 = next(DIGEST_BYTES)?.try_into().expect("16 bytes");
        let sessions = match next(1)?[0] {
            0 => None,
            1 => Some(next(DIGEST_BYTES)?.try_into().expect("16 bytes")),
            _ => return Err(malformed()),
        };
        let time: [u8; 8] = next(8)?.try_into().expect("8 bytes");
        let event_id = String::from_utf8(rest.to_vec()).map_err(|_| malformed())?;
        Ok(Self {
            query,
            sessions,
            after: Position {
                event_time_ms: i64::from_be_bytes(time),
                event_id,
            },
        })
    }
}

/// The next `n` bytes of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> ApiResult<&'a [u8]> {
    if rest.len() < n {
        return Err(malformed());
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn digest16(bytes: &[u8]) -> Digest16 {
    let full = Sha256::digest(bytes);
    let mut cut = [0; DIGEST_BYTES];
    cut.copy_from_slice(&full[..DIGEST_BYTES]);
    cut
}

fn sorted(items: &[String]) -> Vec<&str> {
    let mut items: Vec<&str> = items.iter().map(String::as_str).collect();
    items.sort_unstable();
    items.dedup();
    items
}

/// The digest of everything that decides which rows a paging walks over:
/// tenant, meter, filters (lists in any order) and entity/org scope.
pub fn query_digest(
    tenant: &TenantId,
    meter: MeterId,
    request: &CreateRequest,
    scope: &Scope,
) -> Digest16 {
    let q = &request.query;
    let canonical = serde_json::json!([
        tenant.as_str(),
        meter.0,
        q.export_type.as_str(),
        q.run_type.as_str(),
        sorted(&q.session_ids),
        sorted(&q.run_statuses),
        sorted(&q.operator_ids),
        request.from_ms,
        request.to_ms,
        sorted(&scope.entities),
        sorted(&scope.orgs),
    ]);
    digest16(canonical.to_string().as_bytes())
}

/// The digest of the runs a `runStatuses` filter let through (sorted ids).
pub fn sessions_digest(sessions: &[String]) -> Digest16 {
    digest16(sorted(sessions).join("\n").as_bytes())
}

/// The fleet's cursor key: read from the state store, created there by the
/// first replica that needs it, then kept for the life of the process.
pub async fn cursor_key(services: &Services) -> ApiResult<CursorKey> {
    let bytes = services
        .cursor_key
        .get_or_try_init(|| async {
            let mut fresh = [0u8; 32];
            fresh[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            fresh[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            secrets::cursor_key(services.state.as_ref(), fresh)
                .await?
                .map_err(ApiError::Internal)
        })
        .await?;
    Ok(CursorKey(*bytes))
}

#[cfg(test)]
mod tests {
    use auditx_proto::{OutputFormat, RecordType, RunType};

    use super::*;
    use crate::export::jobs::ExportQuery;

    fn key(byte: u8) -> CursorKey {
        CursorKey([byte; 32])
    }

    fn cursor(sessions: Option<Digest16>, id: &str) -> Cursor {
        Cursor {
            query: [7; 16],
            sessions,
            after: Position {
                event_time_ms: 1_753_289_208_775,
                event_id: id.into(),
            },
        }
    }

    fn request(sessions: &[&str]) -> CreateRequest {
        CreateRequest {
            query: ExportQuery {
                export_type: RecordType::Error,
                run_type: RunType::Normal,
                session_ids: sessions.iter().map(|s| s.to_string()).collect(),
                run_statuses: vec![],
                operator_ids: vec![],
                query_from_time: "2025-07-01T00:00:00Z".into(),
                query_to_time: "2025-07-02T00:00:00Z".into(),
                format: OutputFormat::Csv,
            },
            from_ms: 1,
            to_ms: 2,
        }
    }

    #[test]
    fn cursors_round_trip_and_are_url_safe() {
        for c in [
            cursor(None, "evt-1"),
            cursor(Some([9; 16]), "é/+?&=ü"),
            cursor(None, ""),
        ] {
            let text = c.encode(&key(1));
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{text}"
            );
            assert_eq!(Cursor::decode(&text, &key(1)).unwrap(), c);
        }
    }

    #[test]
    fn altered_truncated_or_foreign_cursors_are_refused() {
        let text = cursor(None, "evt-1").encode(&key(1));
        let err = |t: &str, k: u8| Cursor::decode(t, &key(k)).unwrap_err().to_string();
        let invalid = "cursor: not valid (altered, or not issued by this service)";
        assert_eq!(err(&text, 2), invalid);
        // Every single-character change is caught.
        for i in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            let message = err(&altered, 1);
            assert!(message.starts_with("cursor: "), "{i}: {message}");
        }
        for cut in 1..=4 {
            let message = err(&text[..text.len() - cut], 1);
            assert!(message.starts_with("cursor: "), "{cut}: {message}");
        }
        let malformed = "cursor: malformed (pass the previous page's nextPage unchanged)";
        assert_eq!(err("abc", 1), malformed);
        assert_eq!(err("not base64!", 1), malformed);
        assert_eq!(err(&"A".repeat(MAX_CURSOR_CHARS + 1), 1), malformed);
    }

    #[test]
    fn another_version_is_named() {
        let k = key(1);
        let mut bytes = vec![2u8];
        bytes.extend_from_slice(&[0; 30]);
        let tag = mac(&k, &bytes);
        bytes.extend_from_slice(&tag);
        let text = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            Cursor::decode(&text, &k).unwrap_err().to_string(),
            "cursor: version 2 is not supported; start again without a cursor"
        );
    }

    #[test]
    fn query_digests_bind_tenant_meter_filters_and_scope() {
        let (t1, t2) = (TenantId::from("t1"), TenantId::from("t2"));
        let open = Scope::default();
        let base = query_digest(&t1, MeterId(1), &request(&["R-1", "R-2"]), &open);
        assert_eq!(
            base,
            query_digest(&t1, MeterId(1), &request(&["R-2", "R-1"]), &open),
            "list order does not matter"
        );
        assert_ne!(
            base,
            query_digest(&t2, MeterId(1), &request(&["R-1", "R-2"]), &open)
        );
        assert_ne!(
            base,
            query_digest(&t1, MeterId(2), &request(&["R-1", "R-2"]), &open)
        );
        assert_ne!(
            base,
            query_digest(&t1, MeterId(1), &request(&["R-1"]), &open)
        );
        let scoped = Scope::new(vec!["e1".into()], vec![]);
        assert_ne!(
            base,
            query_digest(&t1, MeterId(1), &request(&["R-1", "R-2"]), &scoped)
        );
        assert_eq!(
            sessions_digest(&["b".into(), "a".into()]),
            sessions_digest(&["a".into(), "b".into()])
        );
    }
}
