//! The console (`/console`): a single-page front-end built from
//! `console/` (Preact, CodeMirror, Chart.js; see docs/design.md) whose
//! output, `console/dist/`, is compiled into the binary. It calls the same
//! API with the same bearer token, so it can do nothing the token cannot.
//!
//! Besides the assets this module has the console's sign-in exchange:
//! `auditx standalone` prints a link carrying a one-time code in the URL
//! fragment (never sent to a server by the browser); the page posts the code
//! to `POST /console/signin`, gets the token back once, keeps it in
//! `sessionStorage` and removes the fragment from the address bar. A code is
//! consumed at its first use and expires after [`SIGNIN_CODE_TTL`].

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sha2::{Digest, Sha256};

use crate::api::response::envelope::Envelope;
use crate::api::response::error::{ApiError, ApiResult};
use crate::context::Services;

/// How long a printed sign-in link works.
pub const SIGNIN_CODE_TTL: Duration = Duration::from_secs(15 * 60);
/// Codes kept at once (older ones are dropped first).
const MAX_CODES: usize = 64;

/// Scripts, styles, fetches and images only from this server; no inline
/// script, no inline style but the editor's own style sheet (a `<style>`
/// element carrying the page's nonce: CodeMirror builds its styles in
/// script), no frames, no plugins, forms only to this origin. Downloads are
/// navigations to presigned URLs (which are not fetched).
fn content_security_policy(nonce: Option<&str>) -> String {
    let style = match nonce {
        Some(nonce) => format!("style-src 'self' 'nonce-{nonce}'"),
        None => "style-src 'self'".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; {style}; img-src 'self' data:; font-src 'self'; \
         connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// Where index.html takes the page's nonce.
const NONCE_PLACEHOLDER: &str = "__CSP_NONCE__";

/// One built file of `console/dist/`.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../../../../console/dist/index.html"),
    },
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../../console/dist/app.js"),
    },
    Asset {
        path: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../../../console/dist/app.css"),
    },
    Asset {
        path: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../../../console/dist/favicon.svg"),
    },
];

/// The console's routes (not part of the OpenAPI document: they are the
/// front-end, not the API).
pub fn routes() -> Router<Services> {
    Router::new()
        .route("/console", get(redirect_to_console))
        .route("/console/", get(index))
        .route("/console/signin", post(signin))
        .route("/console/{file}", get(asset))
}

async fn redirect_to_console() -> Response {
    (StatusCode::MOVED_PERMANENTLY, [(LOCATION, "/console/")]).into_response()
}

/// The page, with a fresh nonce in its CSP and its `csp-nonce` meta tag;
/// never cached (the nonce must not be reused).
async fn index() -> Response {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let html = String::from_utf8_lossy(ASSETS[0].bytes).replace(NONCE_PLACEHOLDER, &nonce);
    let mut response = ([(CONTENT_TYPE, ASSETS[0].content_type)], html).into_response();
    secure(
        response.headers_mut(),
        &content_security_policy(Some(&nonce)),
    );
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn secure(h: &mut HeaderMap, csp: &str) {
    if let Ok(value) = HeaderValue::from_str(csp) {
        h.insert(CONTENT_SECURITY_POLICY, value);
    }
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

async fn asset(
    axum::extract::Path(file): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    if file == ASSETS[0].path {
        return index().await;
    }
    match ASSETS.iter().skip(1).find(|a| a.path == file) {
        Some(asset) => serve(asset, &headers),
        None => ApiError::NotFound(format!("no route for /console/{file}")).into_response(),
    }
}

/// The asset with its type, the CSP and an ETag; the browser revalidates
/// every time (`no-cache`), so a new binary's console is picked up at once
/// while unchanged files answer 304.
fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = etag(asset);
    let mut response = if headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, asset.content_type)], asset.bytes).into_response()
    };
    let h = response.headers_mut();
    secure(h, &content_security_policy(None));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, value);
    }
    response
}

fn etag(asset: &Asset) -> String {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.bytes))[..20]))
            .collect()
    });
    let index = ASSETS
        .iter()
        .position(|a| a.path == asset.path)
        .unwrap_or_default();
    tags[index].clone()
}

/// Pending sign-in codes: SHA-256 of the code → (token, expiry).
fn codes() -> &'static Mutex<HashMap<String, (String, Instant)>> {
    static CODES: OnceLock<Mutex<HashMap<String, (String, Instant)>>> = OnceLock::new();
    CODES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

/// A new one-time sign-in code for `token`, valid for [`SIGNIN_CODE_TTL`]
/// in this process (the process that prints the link serves the console).
pub fn issue_signin_code(token: &str) -> String {
    let code = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let now = Instant::now();
    let mut codes = codes().lock().unwrap_or_else(|e| e.into_inner());
    codes.retain(|_, (_, expires)| *expires > now);
    while codes.len() >= MAX_CODES {
        let oldest = codes
            .iter()
            .min_by_key(|(_, (_, expires))| *expires)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(key) => codes.remove(&key),
            None => break,
        };
    }
    codes.insert(code_hash(&code), (token.to_owned(), now + SIGNIN_CODE_TTL));
    code
}

/// The console link signing in with `token`, for an API at `base`
/// (e.g. `http://127.0.0.1:8080`).
pub fn signin_link(base: &str, token: &str) -> String {
    format!(
        "{}/console/#signin={}",
        base.trim_end_matches('/'),
        issue_signin_code(token)
    )
}

/// The token a code stands for, once: the code is removed whatever the
/// outcome.
fn redeem(code: &str) -> Option<String> {
    let mut codes = codes().lock().unwrap_or_else(|e| e.into_inner());
    let (token, expires) = codes.remove(&code_hash(code))?;
    (expires > Instant::now()).then_some(token)
}

#[derive(serde::Serialize)]
struct SignedIn {
    token: String,
}

/// `POST /console/signin` with `{"code": "..."}`: the token, once.
async fn signin(body: Bytes) -> ApiResult<Response> {
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::InvalidParameter("body: not valid JSON".into()))?;
    let code = value
        .get("code")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty() && c.len() <= 128)
        .ok_or_else(|| ApiError::MissingParameter("code: required".into()))?;
    let token = redeem(code).ok_or_else(|| {
        ApiError::Unauthorized(
            "code: unknown, expired or already used; sign in with a token".into(),
        )
    })?;
    tracing::info!("console sign-in code redeemed");
    let mut response = Envelope::ok(SignedIn { token }).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_signs_in_once() {
        let code = issue_signin_code("tok");
        assert_eq!(redeem(&code).as_deref(), Some("tok"));
        assert_eq!(redeem(&code), None);
        assert_eq!(redeem("nonsense"), None);
    }

    #[test]
    fn the_link_carries_the_code_in_the_fragment() {
        let link = signin_link("http://127.0.0.1:8080/", "tok");
        let code = link
            .strip_prefix("http://127.0.0.1:8080/console/#signin=")
            .unwrap();
        assert_eq!(redeem(code).as_deref(), Some("tok"));
    }

    #[test]
    fn every_asset_is_built() {
        for asset in ASSETS {
            assert!(!asset.bytes.is_empty(), "{} is empty", asset.path);
        }
        let html = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("style="), "no inline style");
        assert!(html.contains(NONCE_PLACEHOLDER));
    }
}
