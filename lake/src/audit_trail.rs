//! The meters' audit trail: each meter's audit entries and run status
//! changes, ingested or generated, written as time-sorted Parquet files
//! partitioned by tenant, meter and date ([`layout`]), read back by
//! exports ([`read`]) and entries/summary queries.

mod convert;
pub mod generate;
pub mod ingest;
pub mod layout;
pub mod read;
pub mod schema;
pub mod write;
