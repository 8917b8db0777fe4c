//! The auditx scheduler: serves the HTTP API, keeps one export per tenant
//! running under a Redis lease, plans exports into chunks, dispatches them to
//! workers, applies their reports, completes the S3 files and publishes
//! completion events; and runs the tenants' data queries on the same
//! workers ([`export`] and [`query`]).

pub mod api;
pub mod context;
mod error;
pub mod export;
pub mod fleet;
mod metrics;
pub mod query;
pub mod runner;

pub use runner::run;
