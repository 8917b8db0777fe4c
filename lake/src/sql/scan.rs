//! What a query's table scans read: files, row groups kept and skipped, and
//! bytes, summed over every Parquet scan of its plan once it has run.
//!
//! The lake's files are written to be skipped (`tables/write.rs`): row
//! groups in `timestamp` order with its page index, bloom filters of the
//! columns users look rows up by, `year=`/`month=` partitions. These figures
//! show whether a query used that: the worker logs them with every query,
//! and the pruning tests assert them.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::physical_plan::metrics::{MetricValue, MetricsSet};
use datafusion::physical_plan::ExecutionPlan;

/// What the Parquet scans of one query read; see the module's documentation.
/// Row groups are counted per file range a scan partition reads, so a row
/// group is counted once however the file is split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanMetrics {
    /// Files the scans opened: those listed in the partitions the query's
    /// `year`/`month` filter keeps (the others are never listed).
    pub files: usize,
    /// File ranges (files, or parts of a file split among threads) skipped
    /// whole by the file's statistics, before their footer is read.
    pub file_ranges_pruned_statistics: usize,
    /// Row groups the filter's min/max statistics kept, and skipped.
    pub row_groups_matched_statistics: usize,
    pub row_groups_pruned_statistics: usize,
    /// Of those kept, the row groups the bloom filters kept, and skipped
    /// (an equality filter on a bloom-filtered column whose value the row
    /// group does not hold).
    pub row_groups_matched_bloom_filter: usize,
    pub row_groups_pruned_bloom_filter: usize,
    /// Row groups skipped while the query ran: by a `LIMIT` already met, or
    /// by the threshold a `ORDER BY … LIMIT n` holds once it has `n` rows.
    pub row_groups_pruned_limit: usize,
    pub row_groups_pruned_dynamic_filter: usize,
    /// Rows of the row groups read that the page index skipped.
    pub page_index_rows_pruned: usize,
    /// Bytes read from the files: footers (unless cached, see
    /// `session.rs`), indexes, bloom filters and the pages decoded.
    pub bytes_scanned: usize,
}

impl ScanMetrics {
    /// The figures of every scan of `plan`, which has run (before it runs
    /// they are all zero).
    pub fn of(plan: &Arc<dyn ExecutionPlan>) -> Self {
        let mut scans = ScanMetrics::default();
        let mut files = HashSet::new();
        // The closure never fails.
        let _ = plan.apply(|node| {
            if let Some(metrics) = node.metrics() {
                scans.add(&metrics, &mut files);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        scans.files = files.len();
        scans
    }

    fn add(&mut self, metrics: &MetricsSet, files: &mut HashSet<String>) {
        for metric in metrics.iter() {
            // Every per-file metric of a Parquet scan names its file.
            if let Some(file) = metric.labels().iter().find(|l| l.name() == "filename") {
                files.insert(file.value().to_owned());
            }
            match metric.value() {
                MetricValue::PruningMetrics {
                    name,
                    pruning_metrics,
                } => {
                    let (pruned, matched) = (pruning_metrics.pruned(), pruning_metrics.matched());
                    match name.as_ref() {
                        "row_groups_pruned_statistics" => {
                            self.row_groups_pruned_statistics += pruned;
                            self.row_groups_matched_statistics += matched;
                        }
                        "row_groups_pruned_bloom_filter" => {
                            self.row_groups_pruned_bloom_filter += pruned;
                            self.row_groups_matched_bloom_filter += matched;
                        }
                        "files_ranges_pruned_statistics" => {
                            self.file_ranges_pruned_statistics += pruned
                        }
                        "limit_pruned_row_groups" => self.row_groups_pruned_limit += pruned,
                        "page_index_rows_pruned" => self.page_index_rows_pruned += pruned,
                        _ => {}
                    }
                }
                MetricValue::Count { name, count } => match name.as_ref() {
                    "bytes_scanned" => self.bytes_scanned += count.value(),
                    "row_groups_pruned_dynamic_filter" => {
                        self.row_groups_pruned_dynamic_filter += count.value()
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }

    /// Row groups read: those both the statistics and the bloom filters
    /// kept, less those skipped while the query ran.
    pub fn row_groups_read(&self) -> usize {
        self.row_groups_matched_bloom_filter
            .saturating_sub(self.row_groups_pruned_limit + self.row_groups_pruned_dynamic_filter)
    }

    /// Row groups skipped, by any means.
    pub fn row_groups_pruned(&self) -> usize {
        self.row_groups_pruned_statistics
            + self.row_groups_pruned_bloom_filter
            + self.row_groups_pruned_limit
            + self.row_groups_pruned_dynamic_filter
    }
}
