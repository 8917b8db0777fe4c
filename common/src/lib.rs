//! Plumbing shared by the auditx roles: configuration, telemetry, and the
//! three I/O boundaries — the state/lock store (Redis or in-process), the
//! task queue (RabbitMQ or in-process) and S3 (any S3-compatible endpoint,
//! including the embedded one) — plus the audit lake on top of S3, and
//! the TLS files of the clients of all three.

pub mod buffers;
pub mod config;
pub mod embedded_s3;
pub mod fleet;
pub mod metrics;
pub mod query_cancel;
pub mod queue;
pub mod readiness;
pub mod result_file;
pub mod retry;
pub mod s3;
pub mod state;
pub mod telemetry;
pub mod time;
pub mod tls;
