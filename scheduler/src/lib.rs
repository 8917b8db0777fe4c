//! The auditx scheduler: serves the HTTP API, keeps one export per tenant
//! running under a Redis lease, plans exports into chunks, dispatches them to
//! workers, applies their reports, completes the S3 files and publishes
//! completion events; and runs the tenants' data queries on the same
//! workers ([`export`] and [`query`]).

pub mod api;
mod census;
pub mod context;
pub mod epoch;
mod error;
pub mod events;
pub mod export;
mod lease;
mod metrics;
pub mod query;
mod results;
pub mod runner;
mod tenant_queues;

pub use runner::run;
