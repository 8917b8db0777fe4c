//! Completion events: one CloudEvents 1.0 JSON message per job that ends,
//! on the events topic exchange.

use std::time::Duration;

use auditx_common::queue::{Message, QueueError, TaskQueue};
use auditx_common::retry::{retry, Backoff};
use auditx_proto::{CloudEvent, ExportEventData, PresignedFile, EVENT_SOURCE};
use chrono::{SecondsFormat, Utc};

use crate::jobs::Job;

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
        time: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
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
    let payload = serde_json::to_vec(&event).map_err(|e| QueueError::Other(e.to_string()))?;
    let routing_key = event.routing_key();
    let backoff = Backoff {
        attempts: 8,
        initial: Duration::from_millis(200),
        max: Duration::from_secs(5),
    };
    retry(backoff, QueueError::is_transient, || {
        let mut message = Message::new(payload.clone());
        message
            .headers
            .insert("content-type".into(), "application/cloudevents+json".into());
        queue.publish_event(&routing_key, message)
    })
    .await?;
    tracing::info!(request_id = %job.spec.request_id, status = job.state.status.as_str(), "export event published");
    Ok(())
}
