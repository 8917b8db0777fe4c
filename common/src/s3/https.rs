//! HTTPS to an S3 endpoint whose certificate a private CA signed
//! (`s3.ca_file`): the SDK's own HTTP client (hyper and rustls with
//! aws-lc, as the SDK builds it by default), trusting the CA bundle
//! besides the system's CAs.

use aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, SharedHttpClient};
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use aws_smithy_runtime_api::box_error::BoxError;

use crate::config::S3Config;

/// The HTTP client for `config`: `None` for the SDK's default (no
/// `s3.ca_file`), or the reason the client cannot be built (named after
/// the setting).
pub(super) fn http_client(config: &S3Config) -> Result<Option<SharedHttpClient>, String> {
    let tls = config.tls().map_err(|e| e.to_string())?;
    let Some(ca) = tls.ca else {
        return Ok(None);
    };
    // Every certificate was parsed by `read_ca`: the SDK panics on a PEM
    // block it cannot parse.
    let trust = TrustStore::default().with_pem_certificate(ca.pem.into_bytes());
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| format!("s3.ca_file: {e}"))?;
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https();
    Ok(Some(client))
}

/// Fails every call with the reason the S3 client could not be set up. A
/// bad `s3.ca_file` stops a process at start-up (the configuration is
/// checked then); this covers a file gone or changed since, without a
/// panic.
#[derive(Debug)]
pub(super) struct Unusable(pub(super) String);

impl Intercept for Unusable {
    fn name(&self) -> &'static str {
        "auditx::Unusable"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        Err(self.0.clone().into())
    }
}
