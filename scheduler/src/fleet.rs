//! What exports and data queries share to run across replicas: the tenant
//! lease and its renewal ([`lease`]), the job records both job stores keep
//! the same way, with the per-tenant FIFO lists ([`job_records`]), worker
//! reports ([`reports`]) and the drivers they wake ([`wakers`]), completion events ([`events`]), noticing a state store that
//! lost its data ([`epoch`]) and counting unsettled jobs for the gauges
//! ([`census`]).

pub(crate) mod census;
pub mod epoch;
pub mod events;
pub mod job_records;
pub(crate) mod lease;
pub(crate) mod reports;
pub(crate) mod retention;
pub(crate) mod secrets;
pub(crate) mod store_epoch;
pub(crate) mod tenant_loop;
pub(crate) mod wakers;
