//! Meter audit-trail exports: one per tenant at a time under the tenant's
//! lease, planned into render chunks of the lake, assembled into S3
//! multipart files, completed with a manifest and presigned URLs.

pub mod assign;
pub(crate) mod completion;
pub(crate) mod driver;
pub(crate) mod job_plan;
pub mod jobs;
pub mod layout;
pub mod planner;
pub(crate) mod retention;
pub(crate) mod tenants;
pub(crate) mod work;
