//! Bearer tokens over HTTP: HS256 with `jwt_secret`, RS256 / ES256 with the
//! keys of a JWKS file or of an identity provider's JWKS URL (rotated
//! without restart), `iss` / `aud`, refused
//! algorithms, the scope each route needs, and error messages that never
//! echo a large input. Keys are generated here; none is committed.

mod api_support;

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use api_support::{in_an_hour, TestApi, TestResponse, CREATE_QUERY, SECRET};
use auditx_scheduler::api::auth::{mint_token, scopes, Claims, Scope};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use rand::rngs::OsRng;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use tempfile::TempDir;

const ISSUER: &str = "https://issuer.example.test";
const AUDIENCE: &str = "auditx-api";
/// A route every scope test can reach: needs `export:read`, answers 200.
const LIST: &str = "/meters/1/auditTrail/export";

/// A private key and its public JWK.
struct TestKey {
    kid: &'static str,
    alg: Algorithm,
    signing: EncodingKey,
    jwk: Value,
    /// The public key as PEM (what an attacker would use as an HMAC secret).
    public_pem: String,
}

struct Keys {
    rsa_old: TestKey,
    rsa_new: TestKey,
    ec: TestKey,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key(kid: &'static str) -> TestKey {
    let private = rsa::RsaPrivateKey::new(&mut OsRng, 2048).expect("rsa key");
    let public = private.to_public_key();
    TestKey {
        kid,
        alg: Algorithm::RS256,
        signing: EncodingKey::from_rsa_der(private.to_pkcs1_der().expect("der").as_bytes()),
        jwk: json!({
            "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64(&public.n().to_bytes_be()),
            "e": b64(&public.e().to_bytes_be()),
        }),
        public_pem: public.to_public_key_pem(LineEnding::LF).expect("pem"),
    }
}

/// A P-256 key; its JWK has no `alg`, which the server infers.
fn ec_key(kid: &'static str) -> TestKey {
    let secret = p256::SecretKey::random(&mut OsRng);
    let point = secret.public_key().to_encoded_point(false);
    TestKey {
        kid,
        alg: Algorithm::ES256,
        signing: EncodingKey::from_ec_der(secret.to_pkcs8_der().expect("der").as_bytes()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": b64(point.x().expect("x")),
            "y": b64(point.y().expect("y")),
        }),
        public_pem: String::new(),
    }
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa_old: rsa_key("rsa-2024"),
        rsa_new: rsa_key("rsa-2025"),
        ec: ec_key("ec-1"),
    })
}

/// Claims that pass every check, with `changes` applied (`null` removes).
fn claims(changes: Value) -> Value {
    let mut claims = json!({
        "sub": "tester", "tenant": "acme", "exp": in_an_hour(),
        "iss": ISSUER, "aud": AUDIENCE, "scope": Scope::all_text(),
    });
    for (name, value) in changes.as_object().expect("object") {
        match value {
            Value::Null => claims.as_object_mut().unwrap().remove(name),
            v => claims
                .as_object_mut()
                .unwrap()
                .insert(name.clone(), v.clone()),
        };
    }
    claims
}

fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.into());
    jsonwebtoken::encode(&header, claims, &key.signing).expect("sign")
}

fn write_jwks(path: &Path, keys: &[&TestKey]) {
    let document = json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
    // Replaced in one step, as a deployment would (and as a mounted secret is).
    let staging = path.with_extension("tmp");
    std::fs::write(&staging, document.to_string()).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

/// An API verifying tokens against `jwks` (holding `keys`) with `iss` and
/// `aud` required, plus `jwt_secret` when `secret` is given.
async fn jwks_api(secret: Option<&str>, keys: &[&TestKey]) -> (TestApi, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    write_jwks(&jwks, keys);
    let secret = secret.map(str::to_owned);
    let api = TestApi::with_config(move |config| {
        config.jwt_secret = secret;
        config.auth.jwks_file = Some(jwks);
        config.auth.issuer = Some(ISSUER.into());
        config.auth.audience = Some(AUDIENCE.into());
    })
    .await;
    (api, dir)
}

async fn call_with(api: &TestApi, method: Method, uri: &str, token: &str) -> TestResponse {
    api.send(
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

async fn list(api: &TestApi, token: &str) -> TestResponse {
    call_with(api, Method::GET, LIST, token).await
}

#[track_caller]
fn assert_unauthorized(response: &TestResponse, message: &str) {
    response.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message);
}

#[tokio::test]
async fn rs256_and_es256_tokens_from_the_jwks_are_accepted() {
    let k = keys();
    let (api, _dir) = jwks_api(None, &[&k.rsa_old, &k.ec]).await;
    for key in [&k.rsa_old, &k.ec] {
        let response = list(&api, &sign(key, &claims(json!({})))).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    }
    // `aud` may be a list naming us.
    let listed = claims(json!({ "aud": ["other", AUDIENCE] }));
    assert_eq!(
        list(&api, &sign(&k.ec, &listed)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let k = keys();
    let (api, _dir) = jwks_api(None, &[&k.rsa_old]).await;
    let now = chrono::Utc::now().timestamp();
    let expired = claims(json!({ "exp": now - 3600 }));
    assert_unauthorized(
        &list(&api, &sign(&k.rsa_old, &expired)).await,
        "bearer token expired",
    );
    let early = claims(json!({ "nbf": now + 600 }));
    assert_unauthorized(
        &list(&api, &sign(&k.rsa_old, &early)).await,
        "bearer token not valid yet (nbf is in the future)",
    );
}

#[tokio::test]
async fn a_signature_by_another_key_is_refused() {
    let k = keys();
    let (api, _dir) = jwks_api(None, &[&k.rsa_old, &k.rsa_new]).await;
    // Signed by the new key but naming the old one.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(k.rsa_old.kid.into());
    let forged = jsonwebtoken::encode(&header, &claims(json!({})), &k.rsa_new.signing).unwrap();
    assert_unauthorized(
        &list(&api, &forged).await,
        "invalid bearer token: bad signature",
    );
    // An RS256 header naming the EC key.
    let (api, _dir) = jwks_api(None, &[&k.rsa_old, &k.ec]).await;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(k.ec.kid.into());
    let mismatched = jsonwebtoken::encode(&header, &claims(json!({})), &k.rsa_old.signing).unwrap();
    assert_unauthorized(
        &list(&api, &mismatched).await,
        "invalid bearer token: algorithm does not match the signing key",
    );
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let k = keys();
    let (api, _dir) = jwks_api(Some(SECRET), &[&k.rsa_old]).await;
    let cases = [
        (
            json!({ "iss": "https://evil.test" }),
            "invalid bearer token: wrong issuer (iss)",
        ),
        (
            json!({ "iss": null }),
            "invalid bearer token: missing claim iss",
        ),
        (
            json!({ "aud": "someone-else" }),
            "invalid bearer token: wrong audience (aud)",
        ),
        (
            json!({ "aud": ["a", "b"] }),
            "invalid bearer token: wrong audience (aud)",
        ),
        (
            json!({ "aud": null }),
            "invalid bearer token: missing claim aud",
        ),
    ];
    for (changes, message) in cases {
        let claims = claims(changes);
        assert_unauthorized(&list(&api, &sign(&k.rsa_old, &claims)).await, message);
        // HS256 tokens are held to the same claims.
        let hs256 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_unauthorized(&list(&api, &hs256).await, message);
    }
    // Without iss / aud configured, a token without them passes.
    let api = TestApi::start().await;
    let bare = claims(json!({ "iss": null, "aud": "anything" }));
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &bare,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(list(&api, &hs256).await.status, StatusCode::OK);
}

/// `header.payload.` with a hand-made header.
fn unsigned(header: Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

#[tokio::test]
async fn alg_none_and_algorithm_confusion_are_refused() {
    let k = keys();
    let (api, _dir) = jwks_api(None, &[&k.rsa_old]).await;
    for alg in ["none", "None", "NONE"] {
        let token = unsigned(
            json!({ "alg": alg, "kid": k.rsa_old.kid }),
            &claims(json!({})),
        );
        assert_unauthorized(
            &list(&api, &token).await,
            "invalid bearer token: unsupported algorithm",
        );
    }
    // HS256 signed with the RSA public key (as PEM), naming its kid.
    let confused = |pem: &str| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(k.rsa_old.kid.into());
        jsonwebtoken::encode(
            &header,
            &claims(json!({})),
            &EncodingKey::from_secret(pem.as_bytes()),
        )
        .unwrap()
    };
    // Only JWKS configured: HS256 is not accepted at all.
    assert_unauthorized(
        &list(&api, &confused(&k.rsa_old.public_pem)).await,
        "invalid bearer token: unsupported algorithm",
    );
    // With a jwt_secret too, HS256 is checked against that secret only.
    let (api, _dir) = jwks_api(Some(SECRET), &[&k.rsa_old]).await;
    assert_unauthorized(
        &list(&api, &confused(&k.rsa_old.public_pem)).await,
        "invalid bearer token: bad signature",
    );
    // Algorithms the server does not use, even with a valid-looking kid.
    for alg in ["HS512", "PS256", "RS512", "EdDSA", "ES384"] {
        let token = unsigned(
            json!({ "alg": alg, "kid": k.rsa_old.kid }),
            &claims(json!({})),
        );
        assert_unauthorized(
            &list(&api, &token).await,
            "invalid bearer token: unsupported algorithm",
        );
    }
    // And the JWKS path is not open without a JWKS file.
    let api = TestApi::start().await;
    assert_unauthorized(
        &list(&api, &sign(&k.rsa_old, &claims(json!({})))).await,
        "invalid bearer token: unsupported algorithm",
    );
}

#[tokio::test]
async fn an_unknown_or_missing_kid_is_refused() {
    let k = keys();
    let (api, _dir) = jwks_api(None, &[&k.rsa_old]).await;
    assert_unauthorized(
        &list(&api, &sign(&k.rsa_new, &claims(json!({})))).await,
        "invalid bearer token: unknown signing key (kid)",
    );
    let no_kid = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims(json!({})),
        &k.rsa_old.signing,
    )
    .unwrap();
    assert_unauthorized(
        &list(&api, &no_kid).await,
        "invalid bearer token: unknown signing key (kid)",
    );
}

#[tokio::test]
async fn keys_rotate_through_the_jwks_file_without_a_restart() {
    let k = keys();
    let (api, dir) = jwks_api(None, &[&k.rsa_old]).await;
    let path = dir.path().join("jwks.json");
    let old = sign(&k.rsa_old, &claims(json!({})));
    let new = sign(&k.rsa_new, &claims(json!({})));
    assert_eq!(list(&api, &old).await.status, StatusCode::OK);
    assert_unauthorized(
        &list(&api, &new).await,
        "invalid bearer token: unknown signing key (kid)",
    );
    // The file is looked at no more than once a second.
    let settle = || tokio::time::sleep(Duration::from_millis(1100));

    // Publish the new key next to the old one: both work.
    write_jwks(&path, &[&k.rsa_old, &k.rsa_new]);
    settle().await;
    assert_eq!(list(&api, &new).await.status, StatusCode::OK);
    assert_eq!(list(&api, &old).await.status, StatusCode::OK);

    // A broken file keeps the keys that were working.
    std::fs::write(&path, "{\"keys\": [").unwrap();
    settle().await;
    assert_eq!(list(&api, &new).await.status, StatusCode::OK);

    // Retire the old key: its tokens are refused, the new key's are not.
    write_jwks(&path, &[&k.rsa_new]);
    settle().await;
    assert_unauthorized(
        &list(&api, &old).await,
        "invalid bearer token: unknown signing key (kid)",
    );
    assert_eq!(list(&api, &new).await.status, StatusCode::OK);
}

/// An identity provider's JWKS endpoint on 127.0.0.1: serves the keys last
/// published, counts the fetches and can be made slow.
struct TestIdp {
    url: String,
    shared: Arc<IdpState>,
    _server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct IdpState {
    document: Mutex<String>,
    hits: AtomicUsize,
    delay_ms: AtomicU64,
}

impl TestIdp {
    async fn start(keys: &[&TestKey]) -> Self {
        let shared = Arc::new(IdpState::default());
        let serve = {
            let shared = shared.clone();
            move || {
                let shared = shared.clone();
                async move {
                    shared.hits.fetch_add(1, Ordering::SeqCst);
                    let delay = shared.delay_ms.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let document = shared.document.lock().unwrap().clone();
                    ([(header::CONTENT_TYPE, "application/json")], document)
                }
            }
        };
        let app = axum::Router::new().route("/.well-known/jwks.json", axum::routing::get(serve));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let idp = Self {
            url,
            shared,
            _server: server,
        };
        idp.publish(keys);
        idp
    }

    fn publish(&self, keys: &[&TestKey]) {
        let document = json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
        *self.shared.document.lock().unwrap() = document.to_string();
    }

    fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

/// An API verifying tokens against the keys of `url`, fetched again at
/// most every `min_refetch_secs`.
async fn jwks_url_api(url: &str, min_refetch_secs: u64) -> TestApi {
    let url = url.to_owned();
    TestApi::with_config(move |config| {
        config.jwt_secret = None;
        config.auth.jwks_url = Some(url);
        config.auth.jwks_min_refetch_secs = min_refetch_secs;
        config.auth.jwks_refresh_secs = 3600;
        config.auth.issuer = Some(ISSUER.into());
        config.auth.audience = Some(AUDIENCE.into());
    })
    .await
}

/// Sends `token` `n` times at once; the statuses and messages.
async fn list_at_once(api: &TestApi, token: &str, n: usize) -> Vec<(StatusCode, String)> {
    let calls = (0..n).map(|_| list(api, token));
    futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| (r.status, r.text()))
        .collect()
}

#[tokio::test]
async fn keys_rotate_through_the_jwks_url_with_rate_limited_refetches() {
    let k = keys();
    let idp = TestIdp::start(&[&k.rsa_old]).await;
    let api = jwks_url_api(&idp.url, 2).await;
    let old = sign(&k.rsa_old, &claims(json!({})));
    let new = sign(&k.rsa_new, &claims(json!({})));
    let stranger = sign(&k.ec, &claims(json!({})));
    let past_the_limit = || tokio::time::sleep(Duration::from_millis(2100));

    assert_eq!(list(&api, &old).await.status, StatusCode::OK);
    assert_eq!(idp.hits(), 1, "one fetch at start-up");
    // A key the provider does not publish, within the rate limit: refused
    // without a fetch.
    assert_unauthorized(
        &list(&api, &new).await,
        "invalid bearer token: unknown signing key (kid)",
    );
    assert_eq!(idp.hits(), 1);

    // The provider rotates: only the new key is published. Until a token
    // gives a reason to look, the cached old key still works.
    idp.publish(&[&k.rsa_new]);
    assert_eq!(list(&api, &old).await.status, StatusCode::OK);
    assert_eq!(idp.hits(), 1);

    // Past the limit, tokens of the new key arriving together share one
    // fetch and are all accepted.
    past_the_limit().await;
    for (status, text) in list_at_once(&api, &new, 8).await {
        assert_eq!(status, StatusCode::OK, "{text}");
    }
    assert_eq!(idp.hits(), 2);
    // The retired key's tokens are refused, saying why, without a fetch.
    assert_unauthorized(
        &list(&api, &old).await,
        "invalid bearer token: signing key (kid) retired by the identity provider",
    );
    assert_eq!(list(&api, &new).await.status, StatusCode::OK);
    assert_eq!(idp.hits(), 2);

    // Tokens naming a key nobody publishes: one fetch past the limit, none
    // before it.
    past_the_limit().await;
    for _ in 0..2 {
        for (status, text) in list_at_once(&api, &stranger, 8).await {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
            assert!(text.contains("unknown signing key (kid)"), "{text}");
        }
    }
    assert_eq!(idp.hits(), 3);

    // A slow provider holds up only the tokens waiting for its answer.
    idp.set_delay(Duration::from_secs(3));
    past_the_limit().await;
    let waiting = {
        let api = &api;
        let stranger = &stranger;
        async move {
            let started = Instant::now();
            let response = list(api, stranger).await;
            (response.status, started.elapsed())
        }
    };
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let response = list(&api, &new).await;
        (response.status, started.elapsed())
    };
    let ((waited_status, waited), (status, took)) = tokio::join!(waiting, meanwhile);
    assert_eq!(waited_status, StatusCode::UNAUTHORIZED);
    assert!(waited >= Duration::from_millis(2500), "{waited:?}");
    assert_eq!(status, StatusCode::OK);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(idp.hits(), 4);
}

#[tokio::test]
async fn an_unreachable_jwks_url_answers_503_until_keys_arrive() {
    let k = keys();
    let idp = TestIdp::start(&[&k.rsa_old]).await;
    // Answers 200 with a body that is no JWKS until it publishes keys.
    *idp.shared.document.lock().unwrap() = "<html>maintenance</html>".into();
    let api = jwks_url_api(&idp.url, 1).await;
    let token = sign(&k.rsa_old, &claims(json!({})));
    list(&api, &token).await.assert_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
        "signing keys unavailable: auth.jwks_url could not be fetched yet; try again later",
    );
    idp.publish(&[&k.rsa_old]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(list(&api, &token).await.status, StatusCode::OK);
}

/// `pattern` of the route table with its parameters filled in.
fn concrete(pattern: &str) -> String {
    pattern
        .replace("{meterId}", "1")
        .replace("{requestId}", "no-such-request")
        .replace("{id}", "no-such-query")
        .replace("{table}", "auditloginevent")
}

fn token_with(scopes: &[Scope]) -> String {
    let claims = Claims {
        scope: scopes::join(scopes),
        ..Claims::new("tester", "acme", in_an_hour())
    };
    mint_token(SECRET, &claims).unwrap()
}

#[tokio::test]
async fn every_route_needs_its_scope() {
    let api = TestApi::start().await;
    for (method, pattern, scope) in scopes::routes() {
        let others: Vec<Scope> = Scope::ALL.into_iter().filter(|s| *s != scope).collect();
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let response = call_with(
            &api,
            method.clone(),
            &concrete(pattern),
            &token_with(&others),
        )
        .await;
        let message = format!(
            "this token lacks the scope {} (needed for {method} {pattern})",
            scope.as_str()
        );
        if pattern.starts_with("/query/jobs") {
            response.assert_query_error(StatusCode::FORBIDDEN, &message);
        } else {
            response.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN", &message);
        }
    }
    // A token with no scope at all reaches nothing.
    let none = token_with(&[]);
    assert_eq!(list(&api, &none).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_documented_route_is_in_the_scope_table() {
    let api = TestApi::start().await;
    let document = api.call(Method::GET, "/openapi.json").await.json();
    let public = ["/healthz", "/readyz", "/metrics", "/openapi.json"];
    for (path, operations) in document["paths"].as_object().unwrap() {
        if public.contains(&path.as_str()) {
            continue;
        }
        // Table ingest is documented per table; the router (and the scope
        // table) has the one template.
        let table = path
            .strip_prefix("/audit/tables/")
            .and_then(|rest| rest.strip_suffix("/rows"));
        let pattern = match table {
            Some(_) => "/audit/tables/{table}/rows",
            None => path.as_str(),
        };
        for method in operations.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            assert!(
                scopes::required(&method, pattern).is_some(),
                "{method} {path} has no scope"
            );
        }
    }
}

#[tokio::test]
async fn a_token_with_just_the_right_scope_gets_through() {
    let api = TestApi::start().await;
    let only = |scope: Scope| token_with(&[scope]);
    let ok = |response: TestResponse| {
        assert!(response.status.is_success(), "{}", response.text());
        response
    };
    ok(list(&api, &only(Scope::ExportRead)).await);
    let created = ok(call_with(
        &api,
        Method::POST,
        &format!("{LIST}?{CREATE_QUERY}"),
        &only(Scope::ExportWrite),
    )
    .await);
    let request_id = created.data()["requestId"].as_str().unwrap().to_owned();
    ok(call_with(
        &api,
        Method::GET,
        &format!("{LIST}/{request_id}"),
        &only(Scope::ExportRead),
    )
    .await);
    ok(call_with(
        &api,
        Method::DELETE,
        &format!("{LIST}/{request_id}"),
        &only(Scope::ExportWrite),
    )
    .await);

    let submit = Request::builder()
        .method(Method::POST)
        .uri("/query/jobs")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", only(Scope::QueryWrite)),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({ "query": "SELECT username FROM auditloginevent" }).to_string(),
        ))
        .unwrap();
    let submitted = ok(api.send(submit).await);
    let query_id = submitted.data()["id"].as_str().unwrap().to_owned();
    ok(call_with(&api, Method::GET, "/query/jobs", &only(Scope::QueryRead)).await);
    ok(call_with(
        &api,
        Method::GET,
        &format!("/query/jobs/{query_id}"),
        &only(Scope::QueryRead),
    )
    .await);
    ok(call_with(
        &api,
        Method::DELETE,
        &format!("/query/jobs/{query_id}"),
        &only(Scope::QueryWrite),
    )
    .await);

    // ingest:write, carried as a `scopes` array this time.
    let claims = Claims {
        scope: String::new(),
        scopes: vec!["ingest:write".into()],
        ..Claims::new("tester", "acme", in_an_hour())
    };
    let row = json!({
        "id": "l1", "username": "a@example.com", "logintype": "PASSWORD",
        "status": "Success", "timestamp": "2019-06-30T04:29:06.571Z",
        "createddate": "2019-06-30T06:29:06.571+02:00",
    });
    let ingest = Request::builder()
        .method(Method::POST)
        .uri("/audit/tables/auditloginevent/rows")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", mint_token(SECRET, &claims).unwrap()),
        )
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from(row.to_string()))
        .unwrap();
    let ingested = ok(api.send(ingest).await);
    assert_eq!(ingested.data()["accepted"], 1);
}

/// 20 KB that would be easy to spot in a response.
fn large_value() -> String {
    "0123456789abcdef".repeat(1280)
}

#[track_caller]
fn assert_no_echo(response: &TestResponse, sent: &str, what: &str) {
    let text = response.text();
    assert!(
        response.status.is_client_error(),
        "{what}: {} {text}",
        response.status
    );
    assert!(
        response.body.len() < 1024,
        "{what}: {} bytes: {text}",
        response.body.len()
    );
    assert!(!text.contains(&sent[..100]), "{what} echoed: {text}");
    for internal in ["Failed to", "deserialize", "serde", "invalid type"] {
        assert!(!text.contains(internal), "{what}: {text}");
    }
    // Still a message naming what was wrong (the data query routes answer
    // `{code, message}`).
    let body = response.json();
    let message = body["reasons"][0]["message"]
        .as_str()
        .or(body["message"].as_str())
        .unwrap();
    assert!(!message.is_empty());
}

#[tokio::test]
async fn error_messages_do_not_echo_large_inputs() {
    let api = TestApi::start().await;
    let big = large_value();
    let token = api_support::token_for("acme", &["e1"], &[], in_an_hour());
    let request = |method: Method, uri: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
    };

    // Query parameters: a value, a name, and a value that is not UTF-8.
    for uri in [
        format!("/query/jobs?queryStatus={big}"),
        format!("{LIST}?exportType={big}"),
        format!("{LIST}?{CREATE_QUERY}&page={big}"),
        format!("/meters/1/auditTrail/export?{big}=1"),
        format!("/query/jobs?{big}=%FF"),
    ] {
        let method = if uri.contains("exportType=SAMPLE") {
            Method::POST
        } else {
            Method::GET
        };
        let response = api
            .send(request(method, &uri).body(Body::empty()).unwrap())
            .await;
        assert_no_echo(&response, &big, &uri[..30]);
    }
    let response = api
        .send(request(Method::POST, &format!("{LIST}?queryFromTime={big}&exportType=SAMPLE&runType=NORMAL&queryToTime=2025-07-02T00:00:00Z")).body(Body::empty()).unwrap())
        .await;
    assert_no_echo(&response, &big, "queryFromTime");

    // Headers: the token itself, the entity scope, the media types.
    let response = api
        .send(
            Request::builder()
                .uri(LIST)
                .header(header::AUTHORIZATION, format!("Bearer {big}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_no_echo(&response, &big, "Authorization");
    assert_eq!(
        response.json()["reasons"][0]["message"],
        "invalid bearer token: malformed"
    );
    let response = api
        .send(
            request(Method::GET, LIST)
                .header("Zuora-Entity-Ids", &big)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_no_echo(&response, &big, "Zuora-Entity-Ids");
    for name in [header::CONTENT_TYPE, header::CONTENT_ENCODING] {
        // The big value replaces the media type, or comes beside a valid one.
        let content_type = if name == header::CONTENT_TYPE {
            big.as_str()
        } else {
            "application/json"
        };
        let response = api
            .send(
                request(Method::POST, "/audit/tables/auditloginevent/rows")
                    .header(header::CONTENT_TYPE, content_type)
                    .header(name.clone(), &big)
                    .body(Body::from("[]"))
                    .unwrap(),
            )
            .await;
        assert_no_echo(&response, &big, name.as_str());
    }

    // Body fields: a data query's option, an ingested row's value and name.
    let response = api
        .send(
            request(Method::POST, "/query/jobs")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    json!({ "query": "SELECT 1", "outputFormat": big }).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_no_echo(&response, &big, "outputFormat");
    // (A long text value is valid data and is stored; these are not.)
    for row in [
        json!({ "id": "l1", "timestamp": big }),
        json!({ "id": "l1", big.clone(): 1 }),
    ] {
        let response = api
            .send(
                request(Method::POST, "/audit/tables/auditloginevent/rows")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(json!([row]).to_string()))
                    .unwrap(),
            )
            .await;
        assert_no_echo(&response, &big, "row");
    }
    let response = api
        .send(
            request(Method::POST, "/audit/tables/auditloginevent/rows")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(format!("[{{\"id\": \"{big}")))
                .unwrap(),
        )
        .await;
    assert_no_echo(&response, &big, "truncated JSON");
}
