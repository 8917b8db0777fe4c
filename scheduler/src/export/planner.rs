//! Planning an export into chunks: pure functions over a lake listing.
//!
//! Lake files may overlap in time (ingest batches arrive in any order), so a
//! chunk is a *time slice*, not a file: the slices are contiguous, cover the
//! export's `[from, to)` exactly and each lists every row group whose time
//! range intersects it. A worker rendering a slice reads those row groups
//! and keeps the rows of its slice, so concatenating the slices' outputs in
//! order yields every row once, in time order.
//!
//! Slices are cut on whole milliseconds so that they hold about
//! `chunk_rows` rows each, estimating the rows of a slice by spreading each
//! row group's rows uniformly over its own `[min, max]` time range.

use std::collections::{BTreeMap, BTreeSet};

use auditx_lake::read::LakeFile;
use auditx_proto::LakeSource;
use serde::{Deserialize, Serialize};

/// One time slice of an export, `[from_ms, to_ms)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedChunk {
    pub from_ms: i64,
    pub to_ms: i64,
    /// Every row group whose `[min, max]` time range intersects the slice.
    pub sources: Vec<LakeSource>,
    /// Rows the slice is expected to hold (before row filters).
    pub estimated_rows: u64,
}

/// A row group as the planner sees it: its rows spread uniformly over
/// `[start, end)` milliseconds.
struct Group {
    file: usize,
    index: u32,
    rows: u64,
    start: i64,
    end: i64,
}

impl Group {
    /// Estimated rows strictly before `t`. Integer and monotone, so the
    /// estimates of contiguous slices add up exactly.
    fn rows_before(&self, t: i64) -> u64 {
        let t = t.clamp(self.start, self.end);
        let elapsed = (t as i128 - self.start as i128) as u128;
        let span = (self.end as i128 - self.start as i128) as u128;
        (self.rows as u128 * elapsed / span) as u64
    }

    fn rows_between(&self, a: i64, b: i64) -> u64 {
        self.rows_before(b) - self.rows_before(a)
    }
}

fn rows_between(groups: &[Group], active: &[usize], a: i64, b: i64) -> u64 {
    active.iter().map(|&g| groups[g].rows_between(a, b)).sum()
}

/// A slice being built.
struct OpenSlice {
    from_ms: i64,
    rows: u64,
    groups: BTreeSet<usize>,
}

/// Plans `[from_ms, to_ms)` over `files` into contiguous time slices of
/// about `chunk_rows` estimated rows each.
///
/// Every slice but the last holds at least `chunk_rows` estimated rows and
/// less than `chunk_rows` plus the rows of its last millisecond, so there
/// are at most `total / chunk_rows + 1` slices. With no rows at all there is
/// exactly one slice (it renders a header-only file).
pub fn plan(from_ms: i64, to_ms: i64, files: &[LakeFile], chunk_rows: u64) -> Vec<PlannedChunk> {
    if from_ms >= to_ms {
        return vec![PlannedChunk {
            from_ms,
            to_ms,
            sources: Vec::new(),
            estimated_rows: 0,
        }];
    }
    let chunk_rows = chunk_rows.max(1);
    let groups = clipped_groups(from_ms, to_ms, files);

    // Between two consecutive breakpoints the set of row groups present
    // does not change, so rows there are a sum over one fixed set.
    let mut breakpoints: Vec<i64> = groups
        .iter()
        .flat_map(|g| [g.start.max(from_ms), g.end.min(to_ms)])
        .chain([from_ms, to_ms])
        .collect();
    breakpoints.sort_unstable();
    breakpoints.dedup();

    let mut by_start: Vec<usize> = (0..groups.len()).collect();
    by_start.sort_by_key(|&g| groups[g].start.max(from_ms));
    let mut next_group = 0;
    let mut active: Vec<usize> = Vec::new();

    let mut chunks = Vec::new();
    let mut open = OpenSlice {
        from_ms,
        rows: 0,
        groups: BTreeSet::new(),
    };
    for segment in breakpoints.windows(2) {
        let (start, end) = (segment[0], segment[1]);
        active.retain(|&g| groups[g].end > start);
        while next_group < by_start.len()
            && groups[by_start[next_group]].start.max(from_ms) <= start
        {
            active.push(by_start[next_group]);
            next_group += 1;
        }
        open.groups.extend(active.iter().copied());

        let mut pos = start;
        while pos < end {
            let rest = rows_between(&groups, &active, pos, end);
            if open.rows + rest < chunk_rows {
                open.rows += rest;
                break;
            }
            let cut = first_cut(&groups, &active, pos, end, chunk_rows - open.rows);
            open.rows += rows_between(&groups, &active, pos, cut);
            pos = cut;
            if cut < to_ms {
                let carried = if cut < end {
                    active.iter().copied().collect()
                } else {
                    BTreeSet::new()
                };
                let full = std::mem::replace(
                    &mut open,
                    OpenSlice {
                        from_ms: cut,
                        rows: 0,
                        groups: carried,
                    },
                );
                chunks.push(close(full, cut, &groups, files));
            }
        }
    }
    chunks.push(close(open, to_ms, &groups, files));
    chunks
}

/// The row groups of `files` that intersect `[from_ms, to_ms)`.
fn clipped_groups(from_ms: i64, to_ms: i64, files: &[LakeFile]) -> Vec<Group> {
    files
        .iter()
        .enumerate()
        .flat_map(|(file, f)| {
            f.row_groups.iter().map(move |rg| Group {
                file,
                index: rg.index,
                rows: rg.rows,
                start: rg.min_time_ms,
                // Inclusive max to exclusive end; bad statistics (max < min)
                // still make a one-millisecond range.
                end: rg.max_time_ms.max(rg.min_time_ms).saturating_add(1),
            })
        })
        .filter(|g| g.start < to_ms && g.end > from_ms)
        .collect()
}

/// The smallest `t` in `(pos, end]` such that `[pos, t)` holds at least
/// `wanted` rows; the caller made sure `[pos, end)` does.
fn first_cut(groups: &[Group], active: &[usize], pos: i64, end: i64, wanted: u64) -> i64 {
    let (mut lo, mut hi) = (pos + 1, end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if rows_between(groups, active, pos, mid) >= wanted {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

fn close(open: OpenSlice, to_ms: i64, groups: &[Group], files: &[LakeFile]) -> PlannedChunk {
    let mut by_file: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for &g in &open.groups {
        by_file
            .entry(groups[g].file)
            .or_default()
            .push(groups[g].index);
    }
    let sources = by_file
        .into_iter()
        .map(|(file, mut row_groups)| {
            row_groups.sort_unstable();
            row_groups.dedup();
            LakeSource {
                key: files[file].key.clone(),
                size: files[file].size,
                row_groups,
            }
        })
        .collect();
    PlannedChunk {
        from_ms: open.from_ms,
        to_ms,
        sources,
        estimated_rows: open.rows,
    }
}

#[cfg(test)]
mod tests {
    use auditx_lake::read::RowGroupInfo;
    use proptest::prelude::*;

    use super::*;

    fn file(key: &str, groups: &[(u64, i64, i64)]) -> LakeFile {
        LakeFile {
            key: key.into(),
            size: 1000,
            row_groups: groups
                .iter()
                .enumerate()
                .map(|(i, &(rows, min, max))| RowGroupInfo {
                    index: i as u32,
                    rows,
                    min_time_ms: min,
                    max_time_ms: max,
                })
                .collect(),
        }
    }

    fn overlaps(rg: &RowGroupInfo, from: i64, to: i64) -> bool {
        rg.min_time_ms < to && rg.max_time_ms.max(rg.min_time_ms) >= from
    }

    fn listed(chunk: &PlannedChunk, key: &str, index: u32) -> bool {
        chunk
            .sources
            .iter()
            .any(|s| s.key == key && s.row_groups.contains(&index))
    }

    #[test]
    fn no_files_plan_one_empty_chunk() {
        let chunks = plan(100, 200, &[], 10);
        assert_eq!(
            chunks,
            vec![PlannedChunk {
                from_ms: 100,
                to_ms: 200,
                sources: vec![],
                estimated_rows: 0
            }]
        );
    }

    #[test]
    fn a_sparse_range_is_one_chunk() {
        let files = [file("a", &[(5, 120, 130)]), file("b", &[(3, 150, 160)])];
        let chunks = plan(100, 200, &files, 100);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].estimated_rows, 8);
        assert_eq!(chunks[0].sources.len(), 2);
    }

    #[test]
    fn a_dense_row_group_is_split_on_whole_milliseconds() {
        // 1000 rows over [0, 99]: 10 per millisecond.
        let files = [file("a", &[(1000, 0, 99)])];
        let chunks = plan(0, 100, &files, 100);
        assert_eq!(chunks.len(), 10);
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(
                (c.from_ms, c.to_ms, c.estimated_rows),
                (i as i64 * 10, i as i64 * 10 + 10, 100)
            );
            assert_eq!(c.sources[0].row_groups, vec![0]);
        }
    }

    #[test]
    fn rows_within_one_millisecond_are_never_split() {
        let files = [file("a", &[(1000, 50, 50)])];
        let chunks = plan(0, 100, &files, 10);
        let dense: Vec<_> = chunks.iter().filter(|c| c.estimated_rows > 0).collect();
        assert_eq!(dense.len(), 1);
        assert_eq!(
            (dense[0].from_ms, dense[0].to_ms, dense[0].estimated_rows),
            (0, 51, 1000)
        );
    }

    #[test]
    fn overlapping_files_are_listed_in_every_slice_they_touch() {
        let files = [file("a", &[(100, 0, 99)]), file("b", &[(100, 50, 149)])];
        let chunks = plan(0, 150, &files, 50);
        assert_eq!(chunks.iter().map(|c| c.estimated_rows).sum::<u64>(), 200);
        for c in &chunks {
            assert_eq!(listed(c, "a", 0), c.from_ms < 100, "{c:?}");
            assert_eq!(listed(c, "b", 0), c.to_ms > 50, "{c:?}");
        }
    }

    #[test]
    fn row_groups_outside_the_range_are_left_out() {
        let files = [file("a", &[(10, 0, 9), (10, 10, 19), (10, 20, 29)])];
        let chunks = plan(10, 20, &files, 100);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].sources[0].row_groups, vec![1]);
        assert_eq!(chunks[0].estimated_rows, 10);
    }

    fn arb_files() -> impl Strategy<Value = Vec<LakeFile>> {
        let group = (0u64..5_000, -50i64..1_050, 0i64..300);
        let groups = prop::collection::vec(group, 0..6);
        prop::collection::vec(groups, 0..6).prop_map(|files| {
            files
                .iter()
                .enumerate()
                .map(|(i, groups)| {
                    let groups: Vec<_> = groups
                        .iter()
                        .map(|&(rows, min, len)| (rows, min, min + len))
                        .collect();
                    file(&format!("f{i}"), &groups)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn slices_are_contiguous_and_cover_the_range(
            files in arb_files(), from in 0i64..500, len in 1i64..600, chunk_rows in 1u64..3_000,
        ) {
            let to = from + len;
            let chunks = plan(from, to, &files, chunk_rows);
            prop_assert!(!chunks.is_empty());
            prop_assert_eq!(chunks[0].from_ms, from);
            prop_assert_eq!(chunks.last().unwrap().to_ms, to);
            for c in &chunks {
                prop_assert!(c.from_ms < c.to_ms, "empty slice {:?}", c);
            }
            for pair in chunks.windows(2) {
                prop_assert_eq!(pair[0].to_ms, pair[1].from_ms);
            }
        }

        #[test]
        fn every_overlapping_row_group_is_listed_and_no_other(
            files in arb_files(), from in 0i64..500, len in 1i64..600, chunk_rows in 1u64..3_000,
        ) {
            let chunks = plan(from, from + len, &files, chunk_rows);
            for c in &chunks {
                for f in &files {
                    for rg in &f.row_groups {
                        prop_assert_eq!(
                            listed(c, &f.key, rg.index),
                            overlaps(rg, c.from_ms, c.to_ms),
                            "{:?} {:?} {:?}", f.key, rg, c
                        );
                    }
                }
            }
        }

        #[test]
        fn estimates_add_up_and_chunk_count_is_bounded(
            files in arb_files(), from in 0i64..500, len in 1i64..600, chunk_rows in 1u64..3_000,
        ) {
            let to = from + len;
            let chunks = plan(from, to, &files, chunk_rows);
            let expected: u64 = clipped_groups(from, to, &files)
                .iter()
                .map(|g| g.rows_between(from, to))
                .sum();
            let fully_inside: u64 = files
                .iter()
                .flat_map(|f| &f.row_groups)
                .filter(|rg| rg.min_time_ms >= from && rg.max_time_ms < to)
                .map(|rg| rg.rows)
                .sum();
            let total: u64 = chunks.iter().map(|c| c.estimated_rows).sum();
            prop_assert_eq!(total, expected);
            prop_assert!(total >= fully_inside);
            prop_assert!(chunks.len() as u64 <= total / chunk_rows + 1);
            for c in &chunks[..chunks.len() - 1] {
                prop_assert!(c.estimated_rows >= chunk_rows, "{:?}", c);
            }
        }
    }
}
