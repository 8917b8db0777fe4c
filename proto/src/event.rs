//! Completion events for downstream services: CloudEvents 1.0, JSON.

use serde::{Deserialize, Serialize};

use crate::{MeterId, QueryId, RequestId, TenantId};

/// `source` attribute of every event auditx publishes.
pub const EVENT_SOURCE: &str = "auditx/scheduler";

/// A CloudEvents 1.0 envelope (structured JSON mode).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent<T> {
    pub specversion: String,
    /// Unique per event; consumers dedupe on it.
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The export's requestId.
    pub subject: String,
    /// RFC 3339 time the event was produced.
    pub time: String,
    pub datacontenttype: String,
    pub data: T,
}

/// A presigned download link of one export file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresignedFile {
    pub file_key: String,
    pub url: String,
    pub expires_at: String,
}

/// `data` of an export event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportEventData {
    pub tenant: TenantId,
    pub meter_id: MeterId,
    pub request_id: RequestId,
    /// `FINISHED`, `FAILED` or `CANCELED`.
    pub status: String,
    pub count: u64,
    pub file_list: Vec<String>,
    #[serde(default)]
    pub manifest_key: Option<String>,
    #[serde(default)]
    pub files: Vec<PresignedFile>,
    #[serde(default)]
    pub error: Option<String>,
}

impl CloudEvent<ExportEventData> {
    /// The event type for a terminal export status, e.g. `com.auditx.export.finished`.
    pub fn export_type_for(status: &str) -> String {
        format!("com.auditx.export.{}", status.to_ascii_lowercase())
    }

    /// Topic routing key: `export.<status>.<tenant>`, so consumers can bind
    /// to `export.#`, `export.finished.*` or one tenant's events.
    pub fn routing_key(&self) -> String {
        format!(
            "export.{}.{}",
            self.data.status.to_ascii_lowercase(),
            self.data.tenant
        )
    }
}

/// `data` of a data query event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryEventData {
    pub tenant: TenantId,
    pub query_id: QueryId,
    /// `completed`, `failed` or `cancelled`.
    pub query_status: String,
    pub output_rows: u64,
    /// Presigned download URL of the result (completed queries).
    #[serde(default)]
    pub data_file: Option<String>,
    #[serde(default)]
    pub data_file_key: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
}

impl CloudEvent<QueryEventData> {
    /// The event type for a terminal query status, e.g. `com.auditx.query.completed`.
    pub fn query_type_for(status: &str) -> String {
        format!("com.auditx.query.{status}")
    }

    /// Topic routing key: `query.<status>.<tenant>`.
    pub fn routing_key(&self) -> String {
        format!("query.{}.{}", self.data.query_status, self.data.tenant)
    }
}
