//! The subcommands of `auditx`.

pub mod demo;
pub mod serve;
pub mod tools;

use std::path::PathBuf;

use auditx_common::config::Config;
use chrono::{DateTime, Utc};

/// Loads the configuration file (if any) and the `AUDITX_` environment.
pub fn load_config(file: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(Config::load(file.map(PathBuf::as_path))?)
}

/// Parses an ISO-8601 time with zone given on the command line.
pub fn parse_time(flag: &str, value: &str) -> anyhow::Result<DateTime<Utc>> {
    auditx_common::time::parse_iso_time(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| anyhow::anyhow!("{flag}: {value:?} {e}"))
}
