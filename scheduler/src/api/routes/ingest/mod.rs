//! The ingest routes: batches of meter audit entries and run status changes
//! as a JSON array or NDJSON, gzip allowed. A batch is validated whole
//! before anything is written.

pub mod tables;

use std::sync::Arc;
use std::time::Duration;

use auditx_lake::audit_trail::ingest::{
    ingest_audit, ingest_runs, parse_audit_entries, parse_run_entries, IngestContext,
};
use auditx_lake::batch::{decode_body, IngestError, IngestSummary};
use auditx_lake::{AuditRow, RunRow};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::auth::Caller;
use crate::api::openapi::{AuditEntry, ErrorEnvelope, RunStatusChange};
use crate::api::request::params::MeterPath;
use crate::api::request::query::{NoParams, Query};
use crate::api::response::envelope::Envelope;
use crate::api::response::error::{quoted, ApiError, ApiResult};
use crate::context::Services;

const MEDIA_TYPES: [&str; 2] = ["application/json", "application/x-ndjson"];

/// The `data` of an ingest call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestCounts {
    pub received: u64,
    pub accepted: u64,
    pub duplicates: u64,
}

impl From<IngestSummary> for IngestCounts {
    fn from(s: IngestSummary) -> Self {
        Self {
            received: s.received,
            accepted: s.accepted,
            duplicates: s.duplicates,
        }
    }
}

/// A request body of an accepted media type, still compressed if it was
/// sent with `Content-Encoding: gzip` (so the decompressed size can be
/// capped while inflating).
pub struct IngestBody {
    pub(crate) bytes: Bytes,
    pub(crate) gzipped: bool,
}

impl FromRequest<Services> for IngestBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, services: &Services) -> Result<Self, ApiError> {
        check_content_type(request.headers())?;
        let gzipped = is_gzipped(request.headers())?;
        let limit = services.config.ingest.max_body_bytes;
        let bytes = Bytes::from_request(request, services).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                IngestError::TooLarge { limit }.into()
            } else {
                ApiError::from_rejection(e.status(), "body", e.body_text())
            }
        })?;
        Ok(Self { bytes, gzipped })
    }
}

fn check_content_type(headers: &HeaderMap) -> ApiResult<()> {
    let value = headers
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or_default());
    let essence = value.map(|v| {
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    match essence {
        Some(essence) if MEDIA_TYPES.contains(&essence.as_str()) => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type: {} is not one of {}",
            quoted(value.unwrap_or_default()),
            MEDIA_TYPES.join(", ")
        ))),
    }
}

pub(crate) fn is_gzipped(headers: &HeaderMap) -> ApiResult<bool> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok(false);
    };
    let value = value
        .to_str()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match value.as_str() {
        "gzip" | "x-gzip" => Ok(true),
        "identity" | "" => Ok(false),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding: {} is not supported (use gzip)",
            quoted(&value)
        ))),
    }
}

/// Waits at most `max_wait` for one of the process's ingest slots (see
/// `ingest.max_concurrent`); held while the call decodes, parses and writes
/// its batch. Past the wait the call is answered 429 with `Retry-After`.
pub(crate) async fn ingest_slot(
    slots: &Arc<Semaphore>,
    max_wait: Duration,
) -> ApiResult<OwnedSemaphorePermit> {
    match tokio::time::timeout(max_wait, slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) => Err(ApiError::Unavailable(
            "ingest: the scheduler is shutting down".into(),
        )),
        Err(_) => {
            tracing::warn!(
                waited_ms = max_wait.as_millis() as u64,
                "ingest refused: every ingest slot is busy"
            );
            Err(ApiError::TooManyRequests {
                message: format!(
                    "ingest: this scheduler is busy with other batches (waited {} ms); retry later",
                    max_wait.as_millis()
                ),
                retry_after_secs: max_wait.as_secs_f64().ceil().max(1.0) as u64,
            })
        }
    }
}

/// [`ingest_slot`] with the configured wait.
pub(crate) async fn acquire_slot(services: &Services) -> ApiResult<OwnedSemaphorePermit> {
    let max_wait = Duration::from_millis(services.config.ingest.max_wait_ms);
    ingest_slot(&services.ingest_slots, max_wait).await
}

/// Inflates `body` and parses it with `parse` off the async runtime:
/// bodies can be tens of megabytes. Every ingest route parses this way.
pub(crate) async fn decode_and_parse<T: Send + 'static>(
    body: IngestBody,
    max_bytes: usize,
    parse: impl FnOnce(&[u8]) -> Result<T, IngestError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || {
        let raw = decode_body(&body.bytes, body.gzipped, max_bytes)?;
        check_not_blank(&raw)?;
        Ok(parse(&raw)?)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("ingest parsing task failed: {e}")))?
}

/// Refuses a body that is empty or only whitespace: it holds no batch at
/// all (an empty batch is `[]`), and was taken for an empty NDJSON batch.
pub(crate) fn check_not_blank(raw: &[u8]) -> ApiResult<()> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MissingField(
            "body: empty or only whitespace; send a JSON array (`[]` for no rows) or NDJSON \
             of rows"
                .into(),
        ));
    }
    Ok(())
}

/// What a meter's ingest routes take: audit entries or run status changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MeterBatch {
    AuditEntries,
    RunStatuses,
}

/// A meter batch, parsed.
enum MeterRows {
    Audit(Vec<AuditRow>),
    Runs(Vec<RunRow>),
}

impl MeterBatch {
    /// The kind as logged.
    fn as_str(self) -> &'static str {
        match self {
            MeterBatch::AuditEntries => "audit entries",
            MeterBatch::RunStatuses => "run status changes",
        }
    }

    fn parse(self, raw: &[u8], ctx: &IngestContext) -> Result<MeterRows, IngestError> {
        Ok(match self {
            MeterBatch::AuditEntries => MeterRows::Audit(parse_audit_entries(raw, ctx)?),
            MeterBatch::RunStatuses => MeterRows::Runs(parse_run_entries(raw, ctx)?),
        })
    }
}

/// The one path of both meter ingest routes: the caller's one entity and
/// org, an ingest slot, the batch parsed whole off the runtime, then
/// written.
async fn ingest_meter_batch(
    services: &Services,
    caller: &Caller,
    MeterPath(meter): MeterPath,
    body: IngestBody,
    batch: MeterBatch,
) -> ApiResult<Envelope<IngestCounts>> {
    let config = &services.config;
    let ctx = IngestContext {
        tenant: caller.tenant.clone(),
        entity: caller.single_entity()?,
        org: caller.single_org()?,
        meter,
    };
    let _slot = acquire_slot(services).await?;
    let parse_ctx = ctx.clone();
    let rows = decode_and_parse(body, config.ingest.max_body_bytes, move |raw| {
        batch.parse(raw, &parse_ctx)
    })
    .await?;
    let bucket = &config.s3.lake_bucket;
    let summary = match rows {
        MeterRows::Audit(rows) => {
            ingest_audit(
                &services.store,
                services.state.as_ref(),
                bucket,
                &ctx,
                rows,
                config.ingest.row_group_rows,
            )
            .await?
        }
        MeterRows::Runs(rows) => ingest_runs(&services.store, bucket, &ctx, rows).await?,
    };
    tracing::info!(
        meter = meter.0,
        batch = batch.as_str(),
        received = summary.received,
        accepted = summary.accepted,
        duplicates = summary.duplicates,
        "meter batch ingested"
    );
    Ok(Envelope::ok(summary.into()))
}

/// What both meter ingest routes say of their body.
const BODY_DESCRIPTION: &str = "Send Content-Encoding: gzip for a gzipped body (the inflated \
    size is capped). A JSON array or NDJSON (one object per line) of rows. The batch is \
    validated whole: one bad row rejects it with a message naming the row (0-based) and the \
    field.";

/// `POST /meters/{meterId}/auditTrail/entries`.
#[utoipa::path(
    post,
    path = "/meters/{meterId}/auditTrail/entries",
    operation_id = "ingestAuditEntries",
    summary = "Ingest meter audit entries (idempotent per eventId)",
    params(
        ("meterId" = i64, Path, minimum = 1, description = "The meter."),
    ),
    request_body(
        description = BODY_DESCRIPTION,
        content(
            (Vec<AuditEntry> = "application/json"),
            (String = "application/x-ndjson"),
        )
    ),
    responses(
        (status = 200, description = "The batch was written.", body = Envelope<IngestCounts>),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the (inflated) body exceeds the limit.", body = ErrorEnvelope),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: not JSON/NDJSON, or an encoding other than gzip.", body = ErrorEnvelope),
        (status = 429, description = "TOO_MANY_REQUESTS: this scheduler's ingest slots stayed busy; retry after Retry-After seconds.", body = ErrorEnvelope),
    )
)]
pub async fn audit_entries(
    State(services): State<Services>,
    caller: Caller,
    meter: MeterPath,
    _: Query<NoParams>,
    body: IngestBody,
) -> ApiResult<Envelope<IngestCounts>> {
    ingest_meter_batch(&services, &caller, meter, body, MeterBatch::AuditEntries).await
}

/// `POST /meters/{meterId}/runs`.
#[utoipa::path(
    post,
    path = "/meters/{meterId}/runs",
    operation_id = "ingestRunStatuses",
    summary = "Ingest run status changes",
    params(
        ("meterId" = i64, Path, minimum = 1, description = "The meter."),
    ),
    request_body(
        description = BODY_DESCRIPTION,
        content(
            (Vec<RunStatusChange> = "application/json"),
            (String = "application/x-ndjson"),
        )
    ),
    responses(
        (status = 200, description = "The batch was written.", body = Envelope<IngestCounts>),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the (inflated) body exceeds the limit.", body = ErrorEnvelope),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: not JSON/NDJSON, or an encoding other than gzip.", body = ErrorEnvelope),
        (status = 429, description = "TOO_MANY_REQUESTS: this scheduler's ingest slots stayed busy; retry after Retry-After seconds.", body = ErrorEnvelope),
    )
)]
pub async fn runs(
    State(services): State<Services>,
    caller: Caller,
    meter: MeterPath,
    _: Query<NoParams>,
    body: IngestBody,
) -> ApiResult<Envelope<IngestCounts>> {
    ingest_meter_batch(&services, &caller, meter, body, MeterBatch::RunStatuses).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_bodies_are_refused_naming_the_body() {
        for blank in [&b""[..], b" ", b"\n\r\n\t  "] {
            let err = check_not_blank(blank).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            assert!(err.to_string().starts_with("body: empty"), "{err}");
        }
        assert!(check_not_blank(b" []").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_waits_for_a_slot_then_gets_429_with_retry_after() {
        let slots = Arc::new(Semaphore::new(1));
        let held = ingest_slot(&slots, Duration::from_millis(10))
            .await
            .unwrap();
        let refused = ingest_slot(&slots, Duration::from_millis(1_500))
            .await
            .unwrap_err();
        match refused {
            ApiError::TooManyRequests {
                message,
                retry_after_secs,
            } => {
                assert_eq!(retry_after_secs, 2);
                assert!(
                    message.starts_with("ingest: this scheduler is busy"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        // A slot freed during the wait is taken.
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { ingest_slot(&slots, Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!waiting.is_finished());
        drop(held);
        assert!(waiting.await.unwrap().is_ok());
    }
}
