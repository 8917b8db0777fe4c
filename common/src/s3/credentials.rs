//! Where S3 credentials come from — the configured keys, or else AWS's
//! default chain — for both S3 clients: the SDK's (exports, staging,
//! presigned URLs, lake writes) and `object_store`'s (the query engine's
//! lake reads, through [`ObjectStoreCredentials`]). Also the SDK
//! interceptor that counts its retries.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, Region, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use object_store::aws::AwsCredential;
use tokio::sync::{Mutex, OnceCell};

use crate::config::S3Config;

/// The one credential chain of S3 calls: the configured keys or, when
/// `access_key_id` and `secret_access_key` are both empty, AWS's default
/// chain (environment, profile files, web identity token / IRSA, ECS and
/// EKS pod identity, instance profile), loaded at the first call.
pub fn provider(config: &S3Config) -> SharedCredentialsProvider {
    if config.access_key_id.is_empty() && config.secret_access_key.is_empty() {
        SharedCredentialsProvider::new(DefaultChain::new(Region::new(config.region.clone())))
    } else {
        SharedCredentialsProvider::new(Credentials::from_keys(
            config.access_key_id.clone(),
            config.secret_access_key.clone(),
            None,
        ))
    }
}

/// AWS's default credential chain (environment variables, profile files,
/// web identity token — IRSA, ECS and EKS pod identity, EC2 instance
/// metadata), built at the first request: building it is async, and
/// [`super::ObjectStore::new`] is not. The chain does not cache: the SDK
/// client caches what it returns (its identity cache), and
/// [`ObjectStoreCredentials`] does the same for `object_store`.
#[derive(Debug)]
struct DefaultChain {
    region: Region,
    chain: OnceCell<DefaultCredentialsChain>,
}

impl DefaultChain {
    fn new(region: Region) -> Self {
        Self {
            region,
            chain: OnceCell::new(),
        }
    }
}

impl ProvideCredentials for DefaultChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| {
                    DefaultCredentialsChain::builder()
                        .region(self.region.clone())
                        .build()
                })
                .await;
            chain.provide_credentials().await
        })
    }
}

/// Counts the attempts after the first one of every S3 call.
#[derive(Debug)]
pub(super) struct CountRetries;

impl Intercept for CountRetries {
    fn name(&self) -> &'static str {
        "auditx::CountRetries"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg
            .load::<RequestAttempts>()
            .is_some_and(|attempts| attempts.attempts() > 1)
        {
            crate::metrics::s3_retry();
        }
        Ok(())
    }
}

/// Credentials taken this long before they expire are fetched again.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The credentials of [`provider`] for `object_store`'s S3 client
/// (`AmazonS3Builder::with_credentials`), so both S3 clients sign with
/// the same keys from the same chain. Temporary credentials are kept until
/// five minutes before they expire (the chain itself does not cache, and
/// `object_store` asks for credentials at every request).
#[derive(Debug)]
pub struct ObjectStoreCredentials {
    provider: SharedCredentialsProvider,
    current: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

impl ObjectStoreCredentials {
    pub fn new(provider: SharedCredentialsProvider) -> Self {
        Self {
            provider,
            current: Mutex::new(None),
        }
    }
}

#[async_trait::async_trait]
impl object_store::CredentialProvider for ObjectStoreCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut current = self.current.lock().await;
        if let Some((credential, expiry)) = current.as_ref() {
            let fresh =
                expiry.is_none_or(|expiry| SystemTime::now() + REFRESH_BEFORE_EXPIRY < expiry);
            if fresh {
                return Ok(credential.clone());
            }
        }
        let credentials = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: format!(
                    "no S3 credentials: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                )
                .into(),
            }
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: credentials.access_key_id().to_owned(),
            secret_key: credentials.secret_access_key().to_owned(),
            token: credentials.session_token().map(str::to_owned),
        });
        *current = Some((credential.clone(), credentials.expiry()));
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use object_store::CredentialProvider;

    use super::*;

    /// A chain that hands out numbered temporary keys, each expiring
    /// `lifetime` from now.
    #[derive(Debug)]
    struct Numbered {
        calls: AtomicUsize,
        lifetime: Duration,
    }

    impl ProvideCredentials for Numbered {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("key-{n}"),
                "secret",
                Some(format!("token-{n}")),
                Some(SystemTime::now() + self.lifetime),
                "test",
            )))
        }
    }

    fn numbered(lifetime: Duration) -> ObjectStoreCredentials {
        ObjectStoreCredentials::new(SharedCredentialsProvider::new(Numbered {
            calls: AtomicUsize::new(0),
            lifetime,
        }))
    }

    #[tokio::test]
    async fn configured_keys_are_what_object_store_signs_with() {
        let config = S3Config {
            access_key_id: "configured-id".into(),
            secret_access_key: "configured-secret".into(),
            ..S3Config::default()
        };
        let credentials = ObjectStoreCredentials::new(provider(&config));
        let credential = credentials.get_credential().await.unwrap();
        assert_eq!(credential.key_id, "configured-id");
        assert_eq!(credential.secret_key, "configured-secret");
        assert_eq!(credential.token, None);
    }

    #[tokio::test]
    async fn temporary_keys_are_kept_until_shortly_before_they_expire() {
        let credentials = numbered(Duration::from_secs(3600));
        let first = credentials.get_credential().await.unwrap();
        let second = credentials.get_credential().await.unwrap();
        assert_eq!(first.key_id, "key-0");
        assert_eq!(first.token.as_deref(), Some("token-0"));
        assert_eq!(second.key_id, "key-0");

        // Keys valid for less than the refresh margin are fetched again.
        let credentials = numbered(Duration::from_secs(60));
        assert_eq!(credentials.get_credential().await.unwrap().key_id, "key-0");
        assert_eq!(credentials.get_credential().await.unwrap().key_id, "key-1");
    }

    /// A chain that finds nothing.
    #[derive(Debug)]
    struct Nothing;

    impl ProvideCredentials for Nothing {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::ready(Err(
                aws_credential_types::provider::error::CredentialsError::not_loaded(
                    "nothing found",
                ),
            ))
        }
    }

    #[tokio::test]
    async fn a_chain_without_credentials_fails_naming_them() {
        let credentials = ObjectStoreCredentials::new(SharedCredentialsProvider::new(Nothing));
        let error = credentials.get_credential().await.unwrap_err().to_string();
        assert!(error.contains("no S3 credentials"), "{error}");
    }
}
