//! The routes, one module per resource: export jobs and their downloads
//! ([`exports`]), online entries ([`entries`]) and summaries ([`summary`])
//! (what both share with exports is [`online`]), data queries, saved
//! queries and the query schema ([`queries`]), ingest of meter entries,
//! runs and tenant tables ([`ingest`]), the worker fleet ([`fleet`]), the
//! console ([`console`]) and the probes and metrics ([`health`]).

pub mod console;
pub mod entries;
pub mod exports;
pub mod fleet;
pub mod health;
pub mod ingest;
pub mod online;
pub mod queries;
pub mod summary;
