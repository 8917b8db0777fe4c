//! The `auditx` binary's library: how the roles are assembled into running
//! processes (embedded default or distributed), and the HTTP client behind
//! `auditx export` and `auditx demo`. Tests use it to start the product the
//! same way the binary does.

pub mod client;
pub mod commands;
pub mod runtime;
pub mod secrets;
