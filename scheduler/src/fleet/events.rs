//! Completion events: one CloudEvents 1.0 JSON message per export or data
//! query that ends, on the events topic exchange.

use auditx_common::queue::{Message, QueueError, TaskQueue};
use auditx_common::retry::{retry, Backoff};
use auditx_proto::{CloudEvent, ExportEventData, PresignedFile, QueryEventData, EVENT_SOURCE};
use serde::Serialize;

use crate::export::jobs::Job;
use crate::query::jobs::{QuerySpec, QueryState};

/// The event for a job that has ended. Its `id` is derived from the
/// request id and status, so a re-published event (after a crash between
/// publishing and recording it) dedupes downstream.
pub fn export_event(job: &Job, files: Vec<PresignedFile>) -> CloudEvent<ExportEventData> {
    let status = job.state.status.as_str();
    CloudEvent {
        specversion: "1.0".into(),
        id: format!("{}:{}", job.spec.request_id, status.to_ascii_lowercase()),
        source: EVENT_SOURCE.into(),
        event_type: CloudEvent::export_type_for(status),
        subject: job.spec.request_id.to_string(),
        time: auditx_common::time::now_iso_millis(),
        datacontenttype: "application/json".into(),
        data: ExportEventData {
            tenant: job.spec.tenant.clone(),
            meter_id: job.spec.meter_id,
            request_id: job.spec.request_id.clone(),
            status: status.into(),
            count: job.state.count,
            file_list: job.state.file_list.clone(),
            manifest_key: job.state.manifest_key.clone(),
            files,
            error: job.state.error.clone(),
        },
    }
}

/// Publishes the event of an ended job (confirmed, retried while transient).
pub async fn publish_export_event(
    queue: &dyn TaskQueue,
    job: &Job,
    files: Vec<PresignedFile>,
) -> Result<(), QueueError> {
    let event = export_event(job, files);
    publish(queue, &event.routing_key(), &event).await?;
    tracing::info!(request_id = %job.spec.request_id, status = job.state.status.as_str(), "export event published");
    Ok(())
}

/// The event for a data query that has ended; its `id` is the query id
/// and status, like an export's.
pub fn query_event(
    spec: &QuerySpec,
    state: &QueryState,
    data_file: Option<String>,
) -> CloudEvent<QueryEventData> {
    let status = state.status.as_str();
    CloudEvent {
        specversion: "1.0".into(),
        id: format!("{}:{status}", spec.id),
        source: EVENT_SOURCE.into(),
        event_type: CloudEvent::query_type_for(status),
        subject: spec.id.to_string(),
        time: auditx_common::time::now_iso_millis(),
        datacontenttype: "application/json".into(),
        data: QueryEventData {
            tenant: spec.tenant.clone(),
            query_id: spec.id.clone(),
            query_status: status.into(),
            output_rows: state.output_rows,
            data_file,
            data_file_key: state.data_key.clone(),
            error_message: state.error.clone(),
        },
    }
}

/// Publishes the event of an ended data query.
pub async fn publish_query_event(
    queue: &dyn TaskQueue,
    spec: &QuerySpec,
    state: &QueryState,
    data_file: Option<String>,
) -> Result<(), QueueError> {
    let event = query_event(spec, state, data_file);
    publish(queue, &event.routing_key(), &event).await?;
    tracing::info!(query_id = %spec.id, status = state.status.as_str(), "query event published");
    Ok(())
}

/// Publishes one CloudEvent (confirmed, retried while transient).
async fn publish<T: Serialize>(
    queue: &dyn TaskQueue,
    routing_key: &str,
    event: &CloudEvent<T>,
) -> Result<(), QueueError> {
    let payload = serde_json::to_vec(event).map_err(|e| QueueError::Other(e.to_string()))?;
    let backoff = Backoff::BOUNDED;
    retry(backoff, QueueError::is_transient, || {
        let mut message = Message::new(payload.clone());
        message
            .headers
            .insert("content-type".into(), "application/cloudevents+json".into());
        queue.publish_event(routing_key, message)
    })
    .await
}
