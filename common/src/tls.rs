//! The TLS files of the clients of Redis, RabbitMQ and S3: a CA bundle to
//! trust and, for mutual TLS, a client certificate and its key, all PEM.
//!
//! Every file is read and checked here, before any client library sees it,
//! so that a missing file or a bad certificate or key is reported naming
//! its setting (`redis.ca_file: cannot read /etc/ca.pem: No such file or
//! directory`) instead of failing deep in a client — the SDK's HTTP client
//! even panics on a PEM block it cannot parse. [`crate::config::Config::load`]
//! checks the files at start-up; the clients read them again when they
//! connect.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS file that cannot be used, with the setting that names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct TlsError {
    pub setting: &'static str,
    pub message: String,
}

fn error(setting: &'static str, message: String) -> TlsError {
    TlsError { setting, message }
}

/// A file and the setting that names it (for errors).
#[derive(Clone, Copy, Debug)]
pub struct TlsFile<'a> {
    pub setting: &'static str,
    pub path: &'a Path,
}

/// A CA bundle: the PEM text as read, holding at least one certificate,
/// each usable as a trust anchor.
#[derive(Clone, Debug)]
pub struct CaBundle {
    pub pem: String,
    pub certificates: Vec<CertificateDer<'static>>,
}

/// A client certificate (chain, leaf first) and its private key, PEM as
/// read; checked to parse and to belong together.
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

// The key never appears in logs or debug output.
impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

/// What one client trusts and presents.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// Trusted besides (S3, RabbitMQ) or instead of (Redis) the system's
    /// CAs; `None` trusts the system's CAs.
    pub ca: Option<CaBundle>,
    /// Presented to servers that ask for a client certificate.
    pub identity: Option<ClientIdentity>,
}

impl ClientTls {
    /// Reads `ca` and the pair `cert` + `key` (both or neither).
    pub fn load(
        ca: Option<TlsFile<'_>>,
        cert: (&'static str, Option<&Path>),
        key: (&'static str, Option<&Path>),
    ) -> Result<Self, TlsError> {
        let ca = ca.map(read_ca).transpose()?;
        let identity = match (cert.1, key.1) {
            (None, None) => None,
            (Some(cert_path), Some(key_path)) => Some(read_identity(
                TlsFile {
                    setting: cert.0,
                    path: cert_path,
                },
                TlsFile {
                    setting: key.0,
                    path: key_path,
                },
            )?),
            (Some(_), None) => {
                return Err(error(cert.0, format!("set, but {} is not", key.0)));
            }
            (None, Some(_)) => {
                return Err(error(key.0, format!("set, but {} is not", cert.0)));
            }
        };
        Ok(Self { ca, identity })
    }

    /// Whether anything differs from the system's defaults.
    pub fn is_default(&self) -> bool {
        self.ca.is_none() && self.identity.is_none()
    }
}

fn read(file: TlsFile<'_>) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file.path).map_err(|e| {
        error(
            file.setting,
            format!("cannot read {}: {e}", file.path.display()),
        )
    })
}

/// Reads a CA bundle: PEM text with one certificate or more, each of
/// which must parse as a trust anchor.
pub fn read_ca(file: TlsFile<'_>) -> Result<CaBundle, TlsError> {
    let bytes = read(file)?;
    let invalid = |what: String| error(file.setting, format!("{}: {what}", file.path.display()));
    let pem = String::from_utf8(bytes)
        .map_err(|_| invalid("not PEM text (a DER file? convert it with openssl x509)".into()))?;
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("bad PEM: {e}")))?;
    if certificates.is_empty() {
        return Err(invalid(
            "holds no certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let mut roots = RootCertStore::empty();
    for (n, certificate) in certificates.iter().enumerate() {
        roots
            .add(certificate.clone())
            .map_err(|e| invalid(format!("certificate {} is not usable: {e}", n + 1)))?;
    }
    Ok(CaBundle { pem, certificates })
}

/// Reads a client certificate and its key and checks that a TLS client
/// can present them (the key parses and matches the certificate).
pub fn read_identity(cert: TlsFile<'_>, key: TlsFile<'_>) -> Result<ClientIdentity, TlsError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            error(
                cert.setting,
                format!("{}: bad PEM: {e}", cert.path.display()),
            )
        })?;
    if chain.is_empty() {
        return Err(error(
            cert.setting,
            format!(
                "{}: holds no certificate (-----BEGIN CERTIFICATE-----)",
                cert.path.display()
            ),
        ));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        error(
            key.setting,
            format!(
                "{}: no usable private key (an unencrypted PEM key: PKCS#8, RSA or EC): {e}",
                key.path.display()
            ),
        )
    })?;
    ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| error(cert.setting, e.to_string()))?
        .with_root_certificates(RootCertStore::empty())
        .with_client_auth_cert(chain, private_key)
        .map_err(|e| {
            error(
                cert.setting,
                format!(
                    "{} and {} ({}) do not make a client identity: {e}",
                    cert.path.display(),
                    key.setting,
                    key.path.display()
                ),
            )
        })?;
    Ok(ClientIdentity { cert_pem, key_pem })
}

/// The process's rustls crypto provider: aws-lc-rs, installed as the
/// process default on first use. Both of rustls' providers are compiled in
/// (other crates enable ring), and rustls then refuses to pick one itself:
/// `ClientConfig::builder()`, which the Redis client calls, panics unless a
/// default is installed. Call this before building any TLS client.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    if let Some(provider) = CryptoProvider::get_default() {
        return provider.clone();
    }
    // Another thread may have installed one meanwhile: use whichever won.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// `scheme://user:password@host:port/path` without the user and password,
/// for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_cut_out_of_urls() {
        assert_eq!(
            redact_url("amqps://guest:secret@broker:5671/%2f"),
            "amqps://broker:5671/%2f"
        );
        assert_eq!(
            redact_url("rediss://:pw@10.0.0.1:6380/0"),
            "rediss://10.0.0.1:6380/0"
        );
        assert_eq!(redact_url("redis://host:6379/"), "redis://host:6379/");
    }

    #[test]
    fn a_missing_ca_file_is_named_with_its_setting() {
        let err = read_ca(TlsFile {
            setting: "redis.ca_file",
            path: Path::new("/no/such/ca.pem"),
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("redis.ca_file: cannot read /no/such/ca.pem: "),
            "{err}"
        );
    }

    #[test]
    fn files_without_certificates_or_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hello\n").unwrap();
        let err = read_ca(TlsFile {
            setting: "s3.ca_file",
            path: &not_pem,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("s3.ca_file: "), "{err}");
        assert!(err.contains("holds no certificate"), "{err}");

        let bad_block = dir.path().join("bad.pem");
        std::fs::write(
            &bad_block,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = read_ca(TlsFile {
            setting: "rabbitmq.ca_file",
            path: &bad_block,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("rabbitmq.ca_file: "), "{err}");
        assert!(err.contains("certificate 1 is not usable"), "{err}");

        let err = ClientTls::load(
            None,
            ("redis.client_cert_file", Some(&bad_block)),
            ("redis.client_key_file", None),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "redis.client_cert_file: set, but redis.client_key_file is not"
        );
    }
}
