//! Cutting the rendered chunks of an export into output files: pure.
//!
//! The chunks' rows, concatenated in chunk order, are the export's rows in
//! time order. Files hold at most `max_rows_per_file` rows each; a file can
//! end at a chunk boundary or inside a chunk at a row whose byte offset the
//! worker reported (every `stride`-th row), so each file ends within
//! `stride` rows of the limit and a chunk larger than a file spans several.
//!
//! [`FileAssigner`] takes the chunks one at a time, in order, and hands out
//! each file as soon as its extent is final, so the scheduler can assemble
//! early files while later chunks are still rendering. Being deterministic,
//! replaying the same chunks after a crash yields the same files.

use auditx_proto::{FileIndex, RenderOutcome, Segment};

/// What the assigner needs of a rendered chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedChunk {
    pub staging_key: String,
    pub rows: u64,
    pub bytes: u64,
    /// Byte offset of row `i * stride`, for each `i`.
    pub row_offsets: Vec<u64>,
}

impl From<&RenderOutcome> for RenderedChunk {
    fn from(outcome: &RenderOutcome) -> Self {
        Self {
            staging_key: outcome.staging_key.clone(),
            rows: outcome.rows,
            bytes: outcome.bytes,
            row_offsets: outcome.row_offsets.clone(),
        }
    }
}

/// One output file: the staged byte ranges it is made of, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileExtent {
    pub index: FileIndex,
    pub segments: Vec<Segment>,
    pub rows: u64,
    /// Data bytes (header excluded).
    pub bytes: u64,
}

/// Cuts a stream of chunks into files, handing out each file once final.
#[derive(Debug)]
pub struct FileAssigner {
    max_rows: u64,
    stride: u64,
    open: FileExtent,
}

impl FileAssigner {
    pub fn new(max_rows_per_file: u64, stride: u32) -> Self {
        Self {
            max_rows: max_rows_per_file.max(1),
            stride: u64::from(stride.max(1)),
            open: FileExtent {
                index: FileIndex(0),
                segments: Vec::new(),
                rows: 0,
                bytes: 0,
            },
        }
    }

    /// Adds the next chunk; returns the files that became final.
    pub fn push(&mut self, chunk: &RenderedChunk) -> Vec<FileExtent> {
        let mut done = Vec::new();
        let (mut row, mut byte) = (0, 0);
        for (cut_row, cut_byte) in self.cut_points(chunk) {
            let rows = cut_row - row;
            if self.open.rows > 0 && self.open.rows + rows > self.max_rows {
                done.push(self.take_open());
            }
            // A file with no rows yet takes the next piece even if it is too
            // large: only a chunk reporting fewer offsets than promised can
            // cause that, and an oversized file beats an endless loop.
            self.extend(&chunk.staging_key, byte, cut_byte, rows);
            (row, byte) = (cut_row, cut_byte);
            if self.open.rows >= self.max_rows {
                done.push(self.take_open());
            }
        }
        done
    }

    /// The file being filled: its extent so far. Its segments are final
    /// (a later chunk only adds segments), so its prefix can be assembled
    /// before the file is cut.
    pub fn open(&self) -> &FileExtent {
        &self.open
    }

    /// Ends the stream: the last file (or, with no rows at all, the only,
    /// header-only file).
    pub fn finish(mut self) -> Option<FileExtent> {
        (self.open.rows > 0 || self.open.index.0 == 0).then(|| self.take_open())
    }

    /// Rows and byte offsets inside `chunk` where a file may end, ascending,
    /// the chunk's end last.
    fn cut_points(&self, chunk: &RenderedChunk) -> Vec<(u64, u64)> {
        let mut cuts: Vec<(u64, u64)> = chunk
            .row_offsets
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, &offset)| (i as u64 * self.stride, offset))
            .take_while(|&(row, offset)| row < chunk.rows && offset <= chunk.bytes)
            .collect();
        cuts.push((chunk.rows, chunk.bytes));
        cuts
    }

    fn extend(&mut self, key: &str, start: u64, end: u64, rows: u64) {
        self.open.rows += rows;
        if end <= start {
            return;
        }
        self.open.bytes += end - start;
        match self.open.segments.last_mut() {
            Some(last) if last.key == key && last.end == start => last.end = end,
            _ => self.open.segments.push(Segment {
                key: key.to_owned(),
                start,
                end,
            }),
        }
    }

    fn take_open(&mut self) -> FileExtent {
        let next = FileExtent {
            index: FileIndex(self.open.index.0 + 1),
            segments: Vec::new(),
            rows: 0,
            bytes: 0,
        };
        std::mem::replace(&mut self.open, next)
    }
}

/// Cuts all of an export's chunks, in order, into files of at most
/// `max_rows_per_file` rows (see [`FileAssigner`]). No rows at all make one
/// header-only file with no segments.
pub fn assign_files(
    chunks: &[RenderedChunk],
    max_rows_per_file: u64,
    stride: u32,
) -> Vec<FileExtent> {
    let mut assigner = FileAssigner::new(max_rows_per_file, stride);
    let mut files: Vec<FileExtent> = chunks.iter().flat_map(|c| assigner.push(c)).collect();
    files.extend(assigner.finish());
    files
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A chunk of `rows` rows of `row_bytes` bytes each, offsets every `stride`.
    fn chunk(key: &str, rows: u64, row_bytes: u64, stride: u64) -> RenderedChunk {
        RenderedChunk {
            staging_key: key.into(),
            rows,
            bytes: rows * row_bytes,
            row_offsets: (0..rows.div_ceil(stride))
                .map(|i| i * stride * row_bytes)
                .collect(),
        }
    }

    fn seg(key: &str, start: u64, end: u64) -> Segment {
        Segment {
            key: key.into(),
            start,
            end,
        }
    }

    #[test]
    fn no_rows_make_one_header_only_file() {
        let files = assign_files(&[chunk("a", 0, 10, 5), chunk("b", 0, 10, 5)], 100, 5);
        assert_eq!(
            files,
            vec![FileExtent {
                index: FileIndex(0),
                segments: vec![],
                rows: 0,
                bytes: 0
            }]
        );
        assert_eq!(assign_files(&[], 100, 5).len(), 1);
    }

    #[test]
    fn a_chunk_larger_than_a_file_spans_several_files() {
        // 25 rows of 2 bytes, offsets every 4 rows, files of at most 10 rows:
        // files end at rows 8 and 16, the rest (9 rows) fits the last.
        let files = assign_files(&[chunk("a", 25, 2, 4)], 10, 4);
        let shape: Vec<_> = files
            .iter()
            .map(|f| (f.index.0, f.rows, f.segments.clone()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, 8, vec![seg("a", 0, 16)]),
                (1, 8, vec![seg("a", 16, 32)]),
                (2, 9, vec![seg("a", 32, 50)]),
            ]
        );
    }

    #[test]
    fn exact_boundaries_make_no_trailing_empty_file() {
        let files = assign_files(&[chunk("a", 10, 1, 5), chunk("b", 10, 1, 5)], 10, 5);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].segments, vec![seg("a", 0, 10)]);
        assert_eq!(files[1].segments, vec![seg("b", 0, 10)]);
    }

    #[test]
    fn many_tiny_and_empty_chunks_fill_files_across_chunk_boundaries() {
        let chunks: Vec<_> = (0..30)
            .map(|i| chunk(&format!("c{i:02}"), if i % 3 == 0 { 0 } else { 1 }, 7, 1000))
            .collect();
        let files = assign_files(&chunks, 4, 1000);
        assert_eq!(
            files.iter().map(|f| f.rows).collect::<Vec<_>>(),
            vec![4, 4, 4, 4, 4]
        );
        assert!(files
            .iter()
            .all(|f| f.segments.iter().all(|s| s.end > s.start)));
        assert_eq!(files[0].segments.len(), 4);
    }

    #[test]
    fn final_files_are_handed_out_as_soon_as_known() {
        let mut assigner = FileAssigner::new(10, 5);
        assert!(assigner.push(&chunk("a", 7, 1, 5)).is_empty());
        // The next chunk's first cut (row 5) would overflow: file 0 ends at 7.
        let done = assigner.push(&chunk("b", 12, 1, 5));
        assert_eq!(done.len(), 2);
        assert_eq!((done[0].rows, done[1].rows), (7, 10));
        assert_eq!(done[1].segments, vec![seg("b", 0, 10)]);
        assert_eq!(assigner.finish().map(|f| (f.index.0, f.rows)), Some((2, 2)));
    }

    proptest! {
        #[test]
        fn files_cover_every_byte_once_in_order_and_respect_the_limit(
            sizes in prop::collection::vec((0u64..60, 1u64..5), 0..25),
            max_rows in 1u64..40,
            stride in 1u32..12,
        ) {
            let stride = stride.min(max_rows as u32);
            let chunks: Vec<_> = sizes
                .iter()
                .enumerate()
                .map(|(i, &(rows, row_bytes))| chunk(&format!("c{i:03}"), rows, row_bytes, stride as u64))
                .collect();
            let files = assign_files(&chunks, max_rows, stride);
            let total_rows: u64 = chunks.iter().map(|c| c.rows).sum();

            prop_assert!(!files.is_empty());
            prop_assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), total_rows);
            for (i, f) in files.iter().enumerate() {
                prop_assert_eq!(f.index, FileIndex(i as u32));
                prop_assert!(f.rows <= max_rows);
                prop_assert_eq!(f.bytes, f.segments.iter().map(|s| s.end - s.start).sum::<u64>());
                if i + 1 < files.len() {
                    prop_assert!(f.rows + stride as u64 > max_rows, "file {} ends early: {:?}", i, f);
                }
            }
            if total_rows > 0 {
                prop_assert!(files.iter().all(|f| f.rows > 0));
            }
            // Concatenated, the segments are exactly every staged byte, in order.
            let got: Vec<(String, u64)> = files
                .iter()
                .flat_map(|f| &f.segments)
                .flat_map(|s| (s.start..s.end).map(move |b| (s.key.clone(), b)))
                .collect();
            let want: Vec<(String, u64)> = chunks
                .iter()
                .flat_map(|c| (0..c.bytes).map(move |b| (c.staging_key.clone(), b)))
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
