//! Data query tasks: run the SQL with DataFusion over the tenant's tables
//! in the lake and stream the result into one S3 object.

pub mod executor;
mod result_upload;
mod run;

pub use executor::QueryExecutor;
pub use run::{run_query_task, QueryRunner};
