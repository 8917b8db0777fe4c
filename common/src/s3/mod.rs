//! S3 access through aws-sdk-s3: path-style, SigV4, checksums only where
//! required, so the same code talks to AWS S3, to any S3-compatible server
//! and to the embedded endpoint ([`embedded`]). Credentials are the
//! configured static keys, or else AWS's default chain ([`credentials`]).
//! HTTPS trusts the system's CAs and `s3.ca_file` ([`https`]).

pub mod credentials;
mod https;

use std::ops::Range;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;

use crate::buffers::Pool;
use crate::config::S3Config;

/// GET bodies of at least this many bytes are gathered into pooled buffers
/// (the allocator maps such sizes on their own).
const POOLED_BODY: usize = 1 << 20;
/// Pooled GET buffers: a few chunks' column fetches.
static GET_BODIES: Pool = Pool::new(2, 4 << 20);

/// The backoff of the one S3 retry policy (`s3.max_attempts` attempts):
/// jittered, from this delay doubling up to [`RETRY_MAX_BACKOFF`].
pub const RETRY_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts of an S3 call.
pub const RETRY_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Failures of S3 calls.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("s3://{bucket}/{key} not found")]
    NotFound { bucket: String, key: String },
    /// Network trouble, throttling or a 5xx: retry with backoff.
    #[error("s3 unavailable: {0}")]
    Transient(String),
    /// Access denied, bad request, missing upload...: retrying won't help.
    #[error("s3 error: {0}")]
    Permanent(String),
}

impl StorageError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Transient(_))
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// An object as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// A thin, cloneable handle on an S3 endpoint.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    client: Client,
    sign_payload: bool,
}

/// A key as the `x-amz-copy-source` header wants it: percent-encoded but
/// for unreserved characters and `/`.
fn encode_key(key: &str) -> String {
    let mut encoded = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn classify<E>(err: SdkError<E, HttpResponse>, bucket: &str, key: &str) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let error = classify_uncounted(err, bucket, key);
    match &error {
        StorageError::NotFound { .. } => {}
        StorageError::Transient(_) => crate::metrics::s3_error("transient"),
        StorageError::Permanent(_) => crate::metrics::s3_error("permanent"),
    }
    error
}

fn classify_uncounted<E>(err: SdkError<E, HttpResponse>, bucket: &str, key: &str) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    let message = format!(
        "{}: {}",
        code.as_deref().unwrap_or("error"),
        err.message()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{err:?}"))
    );
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StorageError::Transient(message)
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            match code.as_deref() {
                Some("NoSuchKey") | Some("NotFound") => StorageError::NotFound {
                    bucket: bucket.into(),
                    key: key.into(),
                },
                _ if status == 404 && code.is_none() => StorageError::NotFound {
                    bucket: bucket.into(),
                    key: key.into(),
                },
                Some("SlowDown") | Some("RequestTimeout") | Some("InternalError") => {
                    StorageError::Transient(message)
                }
                _ if status >= 500 || status == 429 => StorageError::Transient(message),
                _ => StorageError::Permanent(message),
            }
        }
        // Includes a request that could not be signed: no credentials.
        SdkError::ConstructionFailure(_) => StorageError::Permanent(format!(
            "{}",
            aws_smithy_types::error::display::DisplayErrorContext(&err)
        )),
        _ => StorageError::Permanent(message),
    }
}

impl ObjectStore {
    /// A client with the configured keys or, when `access_key_id` and
    /// `secret_access_key` are both empty, AWS's default credential chain
    /// (environment, web identity token / IRSA, ECS and EKS pod identity,
    /// instance profile), loaded at the first call. `s3.ca_file` is read
    /// here (already checked by [`crate::config::Config::load`]: a file that
    /// became unreadable since makes every call fail, naming it).
    pub fn new(config: &S3Config) -> Self {
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials::provider(config))
            .interceptor(credentials::CountRetries)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(config.max_attempts)
                    .with_initial_backoff(RETRY_INITIAL_BACKOFF)
                    .with_max_backoff(RETRY_MAX_BACKOFF),
            )
            .force_path_style(config.force_path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        match https::http_client(config) {
            Ok(None) => {}
            Ok(Some(client)) => builder = builder.http_client(client),
            Err(error) => {
                tracing::error!(%error, "s3 client not usable, every call will fail");
                builder = builder.interceptor(https::Unusable(error));
            }
        }
        Self {
            client: Client::from_conf(builder.build()),
            sign_payload: config.sign_payload,
        }
    }

    /// The underlying SDK client, for calls this wrapper does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates `bucket` unless it exists already.
    pub async fn ensure_bucket(&self, bucket: &str) -> StorageResult<()> {
        if self
            .client
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        match self.client.create_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(err) => match err.code() {
                Some("BucketAlreadyOwnedByYou") | Some("BucketAlreadyExists") => Ok(()),
                _ => Err(classify(err, bucket, "")),
            },
        }
    }

    /// Writes a whole object; returns its ETag.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> StorageResult<String> {
        let request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body));
        let out = if self.sign_payload {
            request.send().await
        } else {
            request.customize().disable_payload_signing().send().await
        }
        .map_err(|e| classify(e, bucket, key))?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    pub async fn get(&self, bucket: &str, key: &str) -> StorageResult<Bytes> {
        self.get_inner(bucket, key, None).await
    }

    /// Reads bytes `[range.start, range.end)` of an object.
    pub async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        range: Range<u64>,
    ) -> StorageResult<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        self.get_inner(bucket, key, Some(range)).await
    }

    async fn get_inner(
        &self,
        bucket: &str,
        key: &str,
        range: Option<Range<u64>>,
    ) -> StorageResult<Bytes> {
        let mut request = self.client.get_object().bucket(bucket).key(key);
        if let Some(range) = &range {
            request = request.range(format!("bytes={}-{}", range.start, range.end - 1));
        }
        let out = request.send().await.map_err(|e| classify(e, bucket, key))?;
        let reading = |e: &dyn std::fmt::Display| {
            StorageError::Transient(format!("reading s3://{bucket}/{key}: {e}"))
        };
        let len = usize::try_from(out.content_length().unwrap_or(0)).unwrap_or(0);
        if len < POOLED_BODY {
            let body = out.body.collect().await.map_err(|e| reading(&e))?;
            return Ok(body.into_bytes());
        }
        // A large body (a Parquet reader's column chunks) gathered into a
        // buffer that has been written before (see `crate::buffers`).
        let mut buffer = GET_BODIES.take(len);
        let mut body = out.body;
        while let Some(chunk) = body.next().await {
            buffer.extend_from_slice(&chunk.map_err(|e| reading(&e))?);
        }
        Ok(GET_BODIES.into_bytes(buffer))
    }

    /// Streams an object (or a range of it) without buffering it whole.
    pub async fn get_stream(
        &self,
        bucket: &str,
        key: &str,
        range: Option<Range<u64>>,
    ) -> StorageResult<ByteStream> {
        let mut request = self.client.get_object().bucket(bucket).key(key);
        if let Some(range) = &range {
            if range.is_empty() {
                return Ok(ByteStream::from_static(b""));
            }
            request = request.range(format!("bytes={}-{}", range.start, range.end - 1));
        }
        let out = request.send().await.map_err(|e| classify(e, bucket, key))?;
        Ok(out.body)
    }

    /// Size of an object, or `None` if it does not exist.
    pub async fn head(&self, bucket: &str, key: &str) -> StorageResult<Option<u64>> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.content_length().unwrap_or(0).max(0) as u64)),
            Err(err) => match classify(err, bucket, key) {
                StorageError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Every object under `prefix`, in key order.
    pub async fn list(&self, bucket: &str, prefix: &str) -> StorageResult<Vec<ObjectMeta>> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify(e, bucket, prefix))?;
            for object in out.contents() {
                if let Some(key) = object.key() {
                    objects.push(ObjectMeta {
                        key: key.to_owned(),
                        size: object.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
            match out.next_continuation_token() {
                Some(next) if out.is_truncated().unwrap_or(false) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// Deletes an object; a missing one is fine.
    pub async fn delete(&self, bucket: &str, key: &str) -> StorageResult<()> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(e, bucket, key))?;
        Ok(())
    }

    /// Deletes every object under `prefix`.
    pub async fn delete_prefix(&self, bucket: &str, prefix: &str) -> StorageResult<()> {
        for object in self.list(bucket, prefix).await? {
            self.delete(bucket, &object.key).await?;
        }
        Ok(())
    }

    pub async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
    ) -> StorageResult<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| classify(e, bucket, key))?;
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| StorageError::Permanent(format!("no upload id for s3://{bucket}/{key}")))
    }

    /// Uploads one part; returns its ETag.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> StorageResult<String> {
        let request = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body));
        let out = if self.sign_payload {
            request.send().await
        } else {
            request.customize().disable_payload_signing().send().await
        }
        .map_err(|e| classify(e, bucket, key))?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    /// Makes bytes `range` of the object `source_key` (same bucket) part
    /// `number` of an upload, copied by the server (UploadPartCopy): the
    /// bytes do not pass through this process. Returns the part's ETag.
    pub async fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        source_key: &str,
        range: std::ops::Range<u64>,
    ) -> StorageResult<String> {
        if range.is_empty() {
            return Err(StorageError::Permanent(format!(
                "empty copy range {range:?} of s3://{bucket}/{source_key}"
            )));
        }
        let out = self
            .client
            .upload_part_copy()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .copy_source(format!("{bucket}/{}", encode_key(source_key)))
            .copy_source_range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|e| classify(e, bucket, source_key))?;
        Ok(out
            .copy_part_result()
            .and_then(|r| r.e_tag())
            .unwrap_or_default()
            .to_owned())
    }

    /// Completes an upload from `(part number, ETag)` pairs in ascending order.
    pub async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> StorageResult<()> {
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|(n, etag)| CompletedPart::builder().part_number(*n).e_tag(etag).build())
                    .collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(|e| classify(e, bucket, key))?;
        Ok(())
    }

    /// The multipart uploads in progress under `prefix`: (key, upload id).
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> StorageResult<Vec<(String, String)>> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| classify(e, bucket, prefix))?;
            for upload in out.uploads() {
                if let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) {
                    uploads.push((key.to_owned(), id.to_owned()));
                }
            }
            if !out.is_truncated().unwrap_or(false) {
                break;
            }
            key_marker = out.next_key_marker().map(str::to_owned);
            id_marker = out.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(uploads)
    }

    /// Aborts an upload; an unknown (already completed or aborted) one is fine.
    pub async fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> StorageResult<()> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some("NoSuchUpload") => Ok(()),
            Err(err) => Err(classify(err, bucket, key)),
        }
    }

    /// A presigned GET URL valid for `expires_in`.
    pub async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: Duration,
    ) -> StorageResult<String> {
        let config = PresigningConfig::expires_in(expires_in)
            .map_err(|e| StorageError::Permanent(format!("presign expiry: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| classify(e, bucket, key))?;
        Ok(request.uri().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::encode_key;

    #[test]
    fn copy_sources_are_percent_encoded_but_for_slashes() {
        assert_eq!(
            encode_key("_staging/acme/r-1/chunk-000007.csv"),
            "_staging/acme/r-1/chunk-000007.csv"
        );
        assert_eq!(encode_key("a b/ü+%?.csv"), "a%20b/%C3%BC%2B%25%3F.csv");
    }
}
