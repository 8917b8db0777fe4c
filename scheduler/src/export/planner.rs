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
//!
//! A *hot* millisecond — one holding more than `chunk_rows` rows by itself
//! (thousands of rows with one eventTime) — gets a slice of its own, which
//! [`split_by_event_id`] then cuts into eventId ranges, so that no chunk
//! (and no worker's memory) grows with the size of one millisecond. Rows
//! are ordered by (eventTime, eventId), so the pieces concatenated in order
//! are still in export order, and the copies of one event (same eventTime
//! and eventId) always land in the same piece, where they are deduplicated.

use std::collections::{BTreeMap, BTreeSet};

use auditx_lake::audit_trail::read::LakeFile;
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
    /// A piece of a hot millisecond: only rows whose eventId is ≥ this
    /// (`None`: no lower bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id_from: Option<String>,
    /// Only rows whose eventId is < this (`None`: no upper bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id_to: Option<String>,
}

impl PlannedChunk {
    /// One millisecond with more rows than a chunk should hold: worth
    /// splitting by eventId.
    pub fn is_hot(&self, chunk_rows: u64) -> bool {
        self.to_ms - self.from_ms == 1
            && self.estimated_rows > chunk_rows
            && self.event_id_from.is_none()
            && self.event_id_to.is_none()
    }
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
/// less than `chunk_rows` plus the rows of its last millisecond — except
/// that a hot millisecond (one holding `chunk_rows` or more by itself) is
/// always a slice of its own, which may leave the slice before it short. So
/// there are at most `2 * total / chunk_rows + 1` slices. With no rows at
/// all there is exactly one slice (it renders a header-only file).
pub fn plan(from_ms: i64, to_ms: i64, files: &[LakeFile], chunk_rows: u64) -> Vec<PlannedChunk> {
    if from_ms >= to_ms {
        return vec![PlannedChunk {
            from_ms,
            to_ms,
            sources: Vec::new(),
            estimated_rows: 0,
            event_id_from: None,
            event_id_to: None,
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
            let mut cut = first_cut(&groups, &active, pos, end, chunk_rows - open.rows);
            // A hot millisecond gets a slice of its own: end the open
            // slice before it.
            if cut - 1 > open.from_ms && rows_between(&groups, &active, cut - 1, cut) >= chunk_rows
            {
                cut -= 1;
            }
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
    let overlapping = open
        .groups
        .iter()
        .filter(|&&g| groups[g].start < to_ms && groups[g].end > open.from_ms);
    for &g in overlapping {
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
        event_id_from: None,
        event_id_to: None,
    }
}

/// Most eventIds kept in memory to split one hot millisecond: past it the
/// planner samples one id in `estimated_rows / MAX_SAMPLED_IDS`.
pub const MAX_SAMPLED_IDS: u64 = 200_000;

/// The sampling rate for a hot chunk: keep one eventId in this many.
pub fn sampling_rate(chunk: &PlannedChunk) -> u64 {
    chunk.estimated_rows.div_ceil(MAX_SAMPLED_IDS).max(1)
}

/// Whether `event_id` is in the deterministic one-in-`rate` sample (FNV-1a
/// of its bytes), so that every copy of an id is in or out together.
pub fn sampled(event_id: &str, rate: u64) -> bool {
    if rate <= 1 {
        return true;
    }
    let hash = event_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % rate == 0
}

/// Cuts a hot millisecond into pieces of about `chunk_rows` rows by eventId.
///
/// `ids` are the eventIds of the millisecond's rows (or a one-in-`rate`
/// sample of them, each standing for `rate` rows), in any order and with
/// repeats. The pieces are contiguous eventId ranges `[from, to)`, the
/// first open below and the last open above, so together they hold every
/// row of the millisecond, whatever was ingested after the sample.
pub fn split_by_event_id(
    chunk: &PlannedChunk,
    mut ids: Vec<String>,
    rate: u64,
    chunk_rows: u64,
) -> Vec<PlannedChunk> {
    ids.sort_unstable();
    let per_piece = (chunk_rows.max(1) / rate.max(1)).max(1) as usize;
    // A bound is the first id of a piece; repeats of an id stay together.
    let mut bounds: Vec<String> = Vec::new();
    let mut taken = 0;
    let mut i = 0;
    while i < ids.len() {
        let id = &ids[i];
        let mut j = i;
        while j < ids.len() && ids[j] == *id {
            j += 1;
        }
        if taken >= per_piece {
            bounds.push(id.clone());
            taken = 0;
        }
        taken += j - i;
        i = j;
    }
    if bounds.is_empty() {
        return vec![chunk.clone()];
    }
    let pieces = bounds.len() as u64 + 1;
    let mut lower: Option<String> = None;
    let mut out = Vec::with_capacity(pieces as usize);
    for (n, upper) in bounds.into_iter().map(Some).chain([None]).enumerate() {
        // The estimate spread evenly; the last piece takes the remainder.
        let share = chunk.estimated_rows / pieces;
        let estimated_rows = if n as u64 + 1 == pieces {
            chunk.estimated_rows - share * (pieces - 1)
        } else {
            share
        };
        out.push(PlannedChunk {
            event_id_from: lower.clone(),
            event_id_to: upper.clone(),
            estimated_rows,
            ..chunk.clone()
        });
        lower = upper;
    }
    out
}

#[cfg(test)]
mod tests {
    use auditx_lake::audit_trail::read::RowGroupInfo;
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
                estimated_rows: 0,
                event_id_from: None,
                event_id_to: None,
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
    fn a_hot_millisecond_gets_a_slice_of_its_own() {
        // 30 rows spread before it, 1000 rows at ms 50, 40 rows after.
        let files = [
            file("a", &[(1000, 50, 50)]),
            file("b", &[(30, 0, 29)]),
            file("c", &[(40, 60, 99)]),
        ];
        let chunks = plan(0, 100, &files, 100);
        let shape: Vec<_> = chunks
            .iter()
            .map(|c| (c.from_ms, c.to_ms, c.estimated_rows))
            .collect();
        assert_eq!(shape, [(0, 50, 30), (50, 51, 1000), (51, 100, 40)]);
        assert!(chunks[1].is_hot(100));
        assert!(!chunks[0].is_hot(100) && !chunks[2].is_hot(100));
        assert_eq!(chunks[1].sources.len(), 1);
        assert_eq!(chunks[1].sources[0].key, "a");
    }

    fn ids(n: usize) -> Vec<String> {
        // Out of order and with re-sent copies, as a lake may hold them.
        (0..n)
            .map(|i| format!("ev-{:05}", (i * 7919) % n))
            .chain((0..n).step_by(97).map(|i| format!("ev-{i:05}")))
            .collect()
    }

    #[test]
    fn a_hot_millisecond_is_split_into_contiguous_event_id_ranges() {
        let hot = plan(50, 51, &[file("a", &[(30_000, 50, 50)])], 5_000).remove(0);
        assert!(hot.is_hot(5_000));
        let pieces = split_by_event_id(&hot, ids(30_000), 1, 5_000);
        // 30,000 ids plus 310 re-sent copies: seven pieces.
        assert_eq!(pieces.len(), 7, "{pieces:?}");
        assert_eq!(pieces[0].event_id_from, None);
        assert_eq!(pieces[6].event_id_to, None);
        for pair in pieces.windows(2) {
            assert_eq!(pair[0].event_id_to, pair[1].event_id_from);
            assert!(pair[1].event_id_from.is_some());
        }
        assert_eq!(pieces.iter().map(|p| p.estimated_rows).sum::<u64>(), 30_000);
        // Each piece holds at most chunk_rows distinct ids (plus the repeats
        // of an id that must stay together): worker memory stays bounded.
        let all = ids(30_000);
        for p in &pieces {
            assert_eq!((p.from_ms, p.to_ms, &p.sources), (50, 51, &hot.sources));
            let inside = all
                .iter()
                .filter(|id| {
                    p.event_id_from.as_deref().is_none_or(|f| id.as_str() >= f)
                        && p.event_id_to.as_deref().is_none_or(|t| id.as_str() < t)
                })
                .count();
            assert!((1..=5_100).contains(&inside), "{inside} rows in {p:?}");
        }
    }

    #[test]
    fn a_sample_splits_as_well_and_few_ids_do_not_split() {
        let hot = plan(50, 51, &[file("a", &[(1_000_000, 50, 50)])], 50_000).remove(0);
        let rate = sampling_rate(&hot);
        assert_eq!(rate, 5);
        let sample: Vec<String> = (0..1_000_000)
            .map(|i| format!("id-{i:07}"))
            .filter(|id| sampled(id, rate))
            .collect();
        assert!(sample.len() < 250_000, "{}", sample.len());
        let pieces = split_by_event_id(&hot, sample, rate, 50_000);
        assert!((18..=22).contains(&pieces.len()), "{}", pieces.len());

        let small = split_by_event_id(&hot, vec!["a".into(), "b".into()], 1, 50_000);
        assert_eq!(small, vec![hot.clone()]);
        // Every copy of one id stays in one piece, however many there are.
        let same = split_by_event_id(&hot, vec!["x".into(); 10], 1, 2);
        assert_eq!(same, vec![hot]);
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
            prop_assert!(chunks.len() as u64 <= 2 * total / chunk_rows + 1);
            for (i, c) in chunks[..chunks.len() - 1].iter().enumerate() {
                let next = &chunks[i + 1];
                let before_hot = next.to_ms - next.from_ms == 1 && next.estimated_rows >= chunk_rows;
                prop_assert!(c.estimated_rows >= chunk_rows || before_hot, "{:?}", c);
            }
        }
    }
}
