//! Data query tasks: run the SQL with DataFusion over the tenant's tables
//! in the lake and stream the result into one S3 object.

mod result_upload;
mod run;

pub use run::{run_query_task, QueryRunner};
