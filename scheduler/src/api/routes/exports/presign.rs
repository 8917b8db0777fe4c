//! `GET /meters/auditTrail/presignedUrl`: a download URL for one file of one
//! of the caller's exports.

use std::time::Duration;

use auditx_proto::RequestId;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::auth::Caller;
use crate::api::openapi::ErrorEnvelope;
use crate::api::request::query::Query;
use crate::api::response::envelope::Envelope;
use crate::api::response::error::{ApiError, ApiResult};
use crate::api::routes::exports::may_see;
use crate::context::Services;

/// The query parameters of `GET /meters/auditTrail/presignedUrl`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct PresignParams {
    /// An entry of a job's fileList, or its manifestKey.
    #[param(min_length = 1)]
    pub file_key: String,
}

/// A presigned GET URL for `fileKey`, which must be listed by one of the
/// caller's jobs.
#[utoipa::path(
    get,
    path = "/meters/auditTrail/presignedUrl",
    operation_id = "presignedUrl",
    summary = "A presigned download URL for a file of one of the caller's exports",
    params(PresignParams),
    responses(
        (status = 200, description = "data is the URL.", body = Envelope<String>),
        (status = 404, description = "NOT_FOUND: no such file of this tenant's jobs.", body = ErrorEnvelope),
    )
)]
pub async fn presigned_url(
    State(services): State<Services>,
    caller: Caller,
    Query(params): Query<PresignParams>,
) -> ApiResult<Envelope<String>> {
    let given = params.file_key.as_str();
    let not_found = || ApiError::NotFound(format!("fileKey: {given:?} not found"));
    let key = given;
    // Export keys are `<tenant>/<requestId>/<file>` (`crate::export::layout`): the tenant
    // prefix scopes the caller, the request id finds the job listing the file,
    // and a job the caller may not see (another tenant's, or outside the
    // caller's entities/orgs) answers as if the file did not exist.
    // The API shows keys without the tenant (`<requestId>/<file>`, as the
    // reference does); the full object key is taken too.
    let owned = caller.tenant.as_str();
    let full = match key.strip_prefix(owned).and_then(|r| r.strip_prefix('/')) {
        Some(_) => key.to_owned(),
        None => format!("{owned}/{key}"),
    };
    let key = full.as_str();
    let request_id = key
        .strip_prefix(caller.tenant.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.split_once('/'))
        .map(|(request_id, _)| RequestId::from(request_id))
        .ok_or_else(not_found)?;
    let job = services
        .jobs
        .get(&request_id)
        .await?
        .ok_or_else(not_found)?;
    let listed = job.state.file_list.iter().any(|f| f == key)
        || job.state.manifest_key.as_deref() == Some(key);
    if !may_see(&caller, &job) || !listed {
        return Err(not_found());
    }
    let expiry = Duration::from_secs(services.config.s3.presign_expiry_secs);
    let url = services
        .store
        .presign_get(&services.config.s3.export_bucket, key, expiry)
        .await?;
    tracing::info!(request_id = %request_id, file_key = key, "presigned url issued");
    Ok(Envelope::ok(url))
}
