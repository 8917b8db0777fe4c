//! The SQL side of data queries: the guard that admits a single read-only
//! SELECT over the audit tables, the rewrites that make the seed's sample
//! queries run on DataFusion, the per-query session that only sees the
//! caller tenant's tables, and the CSV/TSV/JSON Lines rendering of results.
//!
//! The scheduler calls [`check_query`] on submit and ships the rewritten
//! text; the worker calls [`start_query`] (which checks again), pulls batches
//! one at a time and renders them with [`ResultWriter`].

mod decorrelate;
mod error;
mod functions;
mod guard;
mod memory;
mod outer_keys;
mod output;
mod prefetch;
mod range_cache;
mod rewrite;
mod scan;
mod session;
mod stop;

pub use error::{classify, SqlError};
pub use memory::limit_process_memory;
pub use output::{write_csv_field, write_timestamp_millis, ResultWriter};
pub use scan::ScanMetrics;
pub use session::{
    lake_object_store, lake_object_store_on, start_query, QueryLimits, RunningQuery,
};
pub use stop::{QueryStop, StopExec, StopOnDrop};

/// A query the guard admitted, as rewritten text DataFusion can plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedQuery {
    /// The rewritten SQL; checking it again yields the same text.
    pub sql: String,
}

/// Parses `sql`, refuses anything but a single read-only SELECT over the
/// audit tables, and rewrites it for DataFusion (quoted output aliases,
/// aggregated scalar subqueries).
pub fn check_query(sql: &str) -> Result<CheckedQuery, SqlError> {
    let mut query = guard::parse_query(sql)?;
    guard::check_query(&query)?;
    rewrite::rewrite(&mut query);
    Ok(CheckedQuery {
        sql: query.to_string(),
    })
}

/// `text` cut to at most `max` characters, with an ellipsis when cut: user
/// input and error messages never reach a job status unbounded.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cuts_on_characters() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc…");
        assert_eq!(clip("ééé", 2), "éé…");
    }

    #[test]
    fn checked_queries_check_again_to_the_same_text() {
        for sql in [
            "SELECT username AS Username FROM auditloginevent ORDER BY username DESC",
            "SELECT (SELECT name FROM product WHERE id = objectid) AS p FROM auditobjectchangeevent",
            "WITH x AS (SELECT * FROM contact) SELECT id AS Id FROM x",
        ] {
            let once = check_query(sql).unwrap();
            let twice = check_query(&once.sql).unwrap();
            assert_eq!(once, twice, "{sql}");
        }
    }
}
