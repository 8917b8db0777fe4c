//! The auditx scheduler: serves the HTTP API, keeps one export per tenant
//! running under a Redis lease, plans exports into chunks, dispatches them to
//! workers, applies their reports, completes the S3 files and publishes
//! completion events.

pub mod api;
pub mod assign;
mod completion;
pub mod context;
mod driver;
mod error;
pub mod events;
mod job_plan;
pub mod jobs;
pub mod layout;
mod lease;
mod metrics;
pub mod planner;
mod results;
pub mod runner;
mod tenants;
mod work;

pub use runner::run;
