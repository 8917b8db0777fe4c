//! Where S3 credentials come from when no keys are configured, and the
//! SDK interceptor that counts its retries.

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, Region, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use tokio::sync::OnceCell;

/// AWS's default credential chain (environment variables, profile files,
/// web identity token — IRSA, ECS and EKS pod identity, EC2 instance
/// metadata), built at the first request: building it is async, and
/// [`super::ObjectStore::new`] is not. The chain caches and refreshes
/// temporary credentials itself.
#[derive(Debug)]
pub(super) struct DefaultChain {
    region: Region,
    chain: OnceCell<DefaultCredentialsChain>,
}

impl DefaultChain {
    pub(super) fn new(region: Region) -> Self {
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
