//! Stage two of an export: make the header, the staged byte ranges and the
//! trailer of one output file the parts of its S3 multipart upload, hashing
//! the file on the way. CSV has a header row and no trailer, JSON Lines
//! neither, Parquet the `PAR1` magic and a footer built from the staged
//! chunks' own footers (see [`parquet`]).
//!
//! The parts are planned from the byte layout alone ([`plan_parts`]), so a
//! redelivered task makes the same parts again and the upload stays
//! consistent. A staged range at least a part long becomes a part of its
//! own, copied by S3 from the staging object (UploadPartCopy): its bytes
//! are read once, for the file's SHA-256, and not uploaded again. The rest
//! (header, trailer, small ranges, the ends of ranges) is gathered into parts of
//! exactly `part_size` bytes and uploaded. Memory stays at about
//! `part_size × (MAX_UPLOADS_IN_FLIGHT + 1)` whatever the file size.
//!
//! A long file is assembled in stages while its later chunks render
//! ([`assemble_prefix`]): each makes the parts of the prefix known so far
//! that no later byte can change ([`plan_prefix_parts`], the first parts
//! of every [`plan_parts`] of a file that starts so) and reports the
//! SHA-256 of the bytes so far, paused; the next stage and the last task
//! ([`assemble_file`] with `resume`) carry on from there. Once the last
//! chunk is rendered only the file's end is left to read.

use auditx_common::s3::{ObjectStore, StorageError};
use auditx_proto::{
    AssembleOutcome, AssembleTask, OutputFormat, PrefixOutcome, Segment, UploadedPart,
};
use bytes::{Bytes, BytesMut};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::error::WorkerError;
use crate::export::sha256::ResumableSha256;
use crate::export::{csv, parquet};

/// Gathered parts uploading at once: one uploads while the next fills, and
/// a slow part does not stall reading.
const MAX_UPLOADS_IN_FLIGHT: usize = 2;

/// Server-side copies at once (they hold no memory here).
const MAX_COPIES_IN_FLIGHT: usize = 8;

/// S3's limit of parts in one multipart upload.
const MAX_PARTS: u64 = 10_000;

/// S3's largest part (and largest UploadPartCopy range).
const MAX_PART_SIZE: u64 = 5 << 30;

/// Where the bytes of one part come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartSource {
    /// Read here (the header and staged ranges, in order) and uploaded.
    Gathered(Vec<Piece>),
    /// One staged range, copied by S3.
    Copied(Segment),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Bytes `start..end` of the format's header.
    Header {
        start: u64,
        end: u64,
    },
    Range(Segment),
    /// Bytes `start..end` of the file's trailer.
    Trailer {
        start: u64,
        end: u64,
    },
}

/// The parts of a file made of a header of `header_len` bytes, `segments`
/// and a trailer of `trailer_len` bytes: every part but the last at least
/// `part_size` bytes (gathered ones exactly), a staged range copied whole
/// where what is left of it is at least a part long and nothing is
/// half-gathered before it. An empty file is one empty part: a multipart
/// upload cannot be completed without parts.
pub fn plan_parts(
    header_len: u64,
    segments: &[Segment],
    trailer_len: u64,
    part_size: u64,
) -> Vec<PartSource> {
    let mut plan = PartPlan::new(header_len, segments, part_size);
    plan.inline(trailer_len, |start, end| Piece::Trailer { start, end });
    if !plan.gathering.is_empty() || plan.parts.is_empty() {
        plan.parts.push(PartSource::Gathered(plan.gathering));
    }
    plan.parts
}

/// The parts of any file that begins with a header of `header_len` bytes
/// and `segments`, whatever follows: the first parts of [`plan_parts`] of
/// every such file (the bytes past them are gathered into a part that the
/// rest of the file fills).
pub fn plan_prefix_parts(header_len: u64, segments: &[Segment], part_size: u64) -> Vec<PartSource> {
    PartPlan::new(header_len, segments, part_size).parts
}

/// [`plan_parts`] under way.
struct PartPlan {
    part_size: u64,
    parts: Vec<PartSource>,
    /// The pieces of the part being gathered, `gathered` bytes so far.
    gathering: Vec<Piece>,
    gathered: u64,
}

impl PartPlan {
    /// The plan of a header and segments.
    fn new(header_len: u64, segments: &[Segment], part_size: u64) -> Self {
        let mut plan = PartPlan {
            part_size: part_size.max(1),
            parts: Vec::new(),
            gathering: Vec::new(),
            gathered: 0,
        };
        plan.inline(header_len, |start, end| Piece::Header { start, end });
        for segment in segments {
            plan.segment(segment);
        }
        plan
    }

    /// Gathers `len` bytes made here (a header or trailer).
    fn inline(&mut self, len: u64, piece: fn(u64, u64) -> Piece) {
        let mut start = 0;
        while start < len {
            let end = len.min(start + self.part_size - self.gathered);
            self.gather(piece(start, end), end - start);
            start = end;
        }
    }

    /// Copies what it can of `segment` and gathers the rest.
    fn segment(&mut self, segment: &Segment) {
        let mut start = segment.start;
        while start < segment.end {
            let left = segment.end - start;
            let range = |end| Segment {
                key: segment.key.clone(),
                start,
                end,
            };
            if self.gathered == 0 && left >= self.part_size {
                let end = start + left.min(MAX_PART_SIZE);
                self.parts.push(PartSource::Copied(range(end)));
                start = end;
                continue;
            }
            let take = left.min(self.part_size - self.gathered);
            self.gather(Piece::Range(range(start + take)), take);
            start += take;
        }
    }

    fn gather(&mut self, piece: Piece, len: u64) {
        self.gathering.push(piece);
        self.gathered += len;
        if self.gathered == self.part_size {
            self.parts
                .push(PartSource::Gathered(std::mem::take(&mut self.gathering)));
            self.gathered = 0;
        }
    }
}

/// Bytes of a planned part.
fn part_len(part: &PartSource) -> u64 {
    let piece_len = |piece: &Piece| match piece {
        Piece::Header { start, end } | Piece::Trailer { start, end } => end - start,
        Piece::Range(segment) => segment.end - segment.start,
    };
    match part {
        PartSource::Gathered(pieces) => pieces.iter().map(piece_len).sum(),
        PartSource::Copied(segment) => segment.end - segment.start,
    }
}

/// The format's header: the bytes every file starts with.
fn header(format: OutputFormat) -> &'static [u8] {
    match format {
        OutputFormat::Csv => csv::HEADER,
        OutputFormat::Jsonl => &[],
        OutputFormat::Parquet => parquet::MAGIC,
    }
}

/// Makes the file of `task` parts of `task.upload_id` (all of them, or
/// those after the ones `task.resume` lists) and reports every part; the
/// scheduler completes the upload.
pub async fn assemble_file(
    store: &ObjectStore,
    export_bucket: &str,
    task: &AssembleTask,
) -> Result<AssembleOutcome, WorkerError> {
    let header = header(task.format);
    let trailer = match task.format {
        OutputFormat::Parquet => {
            parquet::footer(store, export_bucket, &task.segments, task.rows).await?
        }
        OutputFormat::Csv | OutputFormat::Jsonl => Vec::new(),
    };
    let (header_len, trailer_len) = (header.len() as u64, trailer.len() as u64);
    let bytes = file_size(task, header_len + trailer_len)?;
    let plan = plan_parts(header_len, &task.segments, trailer_len, task.part_size);
    let (made, hasher) = make_parts(store, export_bucket, task, plan, header, &trailer).await?;
    // Every part of the file: the earlier stages' first.
    let mut parts = task
        .resume
        .as_ref()
        .map_or_else(Vec::new, |r| r.parts.clone());
    parts.extend(made);
    Ok(AssembleOutcome {
        request_id: task.request_id.clone(),
        file: task.file,
        key: task.key.clone(),
        upload_id: task.upload_id.clone(),
        parts,
        rows: task.rows,
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Makes the parts of the prefix `task.segments` that no later segment can
/// change (after those `task.resume` lists) and reports them with the hash
/// of the bytes so far. The bytes past the last whole part wait for a later
/// stage.
pub async fn assemble_prefix(
    store: &ObjectStore,
    export_bucket: &str,
    task: &AssembleTask,
) -> Result<PrefixOutcome, WorkerError> {
    let header = header(task.format);
    file_size(task, header.len() as u64)?;
    let plan = plan_prefix_parts(header.len() as u64, &task.segments, task.part_size);
    let (parts, hasher) = make_parts(store, export_bucket, task, plan, header, &[]).await?;
    Ok(PrefixOutcome {
        request_id: task.request_id.clone(),
        file: task.file,
        stage: task.stage,
        parts,
        sha256: hasher.midstate(),
    })
}

/// Makes the parts of `plan` that `task.resume` does not list, hashing
/// their bytes on from its midstate: the parts made, in number order, and
/// the hash of every byte up to the end of the last.
async fn make_parts(
    store: &ObjectStore,
    export_bucket: &str,
    task: &AssembleTask,
    plan: Vec<PartSource>,
    header: &[u8],
    trailer: &[u8],
) -> Result<(Vec<UploadedPart>, ResumableSha256), WorkerError> {
    let (done, mut hasher) = match &task.resume {
        None => (0, ResumableSha256::new()),
        Some(resume) => {
            let hasher = ResumableSha256::resume(&resume.sha256)
                .map_err(|e| WorkerError::InvalidTask(e.to_string()))?;
            (resume.parts.len(), hasher)
        }
    };
    let made: u64 = plan.iter().take(done).map(part_len).sum();
    if done > plan.len() || made != hasher.bytes() {
        return Err(WorkerError::InvalidTask(format!(
            "file {} resumes after {done} parts of {} bytes, which its layout does not have",
            task.key,
            hasher.bytes()
        )));
    }
    let mut parts = Parts::new(store, export_bucket, task);
    for (i, source) in plan.into_iter().enumerate().skip(done) {
        let number = i as i32 + 1;
        match source {
            PartSource::Gathered(pieces) => {
                let mut body = BytesMut::new();
                for piece in &pieces {
                    match piece {
                        Piece::Header { start, end } => {
                            let bytes = &header[*start as usize..*end as usize];
                            hasher.update(bytes);
                            body.extend_from_slice(bytes);
                        }
                        Piece::Range(segment) => {
                            read_range(store, export_bucket, segment, |chunk| {
                                hasher.update(&chunk);
                                body.extend_from_slice(&chunk);
                            })
                            .await?;
                        }
                        Piece::Trailer { start, end } => {
                            let bytes = &trailer[*start as usize..*end as usize];
                            hasher.update(bytes);
                            body.extend_from_slice(bytes);
                        }
                    }
                }
                parts.upload(number, body.freeze()).await?;
            }
            PartSource::Copied(segment) => {
                parts.copy(number, segment.clone()).await?;
                read_range(store, export_bucket, &segment, |chunk| {
                    hasher.update(&chunk)
                })
                .await?;
            }
        }
    }
    Ok((parts.finish().await?, hasher))
}

/// Streams the staged bytes of `segment` into `each`, checking that the
/// store returned exactly the range asked for.
async fn read_range(
    store: &ObjectStore,
    bucket: &str,
    segment: &Segment,
    mut each: impl FnMut(Bytes),
) -> Result<(), WorkerError> {
    let expected = segment.end - segment.start;
    let mut body = store
        .get_stream(bucket, &segment.key, Some(segment.start..segment.end))
        .await
        .map_err(|e| match e {
            StorageError::NotFound { .. } => staging_error(segment, "is missing".into()),
            other => other.into(),
        })?;
    let mut read = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            StorageError::Transient(format!("reading staged chunk {}: {e}", segment.key))
        })?;
        read += chunk.len() as u64;
        if read > expected {
            break;
        }
        each(chunk);
    }
    if read != expected {
        let problem = format!(
            "returned {read} bytes for range {}..{}, expected {expected}",
            segment.start, segment.end
        );
        return Err(staging_error(segment, problem));
    }
    Ok(())
}

fn staging_error(segment: &Segment, problem: String) -> WorkerError {
    WorkerError::Staging {
        key: segment.key.clone(),
        problem,
    }
}

/// The file's size, once the task is checked for a layout S3 can take;
/// `inline_len` is the header's and trailer's bytes.
fn file_size(task: &AssembleTask, inline_len: u64) -> Result<u64, WorkerError> {
    if task.part_size == 0 {
        return Err(WorkerError::InvalidTask(
            "part_size must be positive".into(),
        ));
    }
    let mut size = inline_len;
    for segment in &task.segments {
        if segment.start > segment.end {
            return Err(WorkerError::InvalidTask(format!(
                "segment {}..{} of {} ends before it starts",
                segment.start, segment.end, segment.key
            )));
        }
        size += segment.end - segment.start;
    }
    let parts = size.div_ceil(task.part_size);
    if parts > MAX_PARTS {
        return Err(WorkerError::InvalidTask(format!(
            "file {} needs {parts} parts of {} bytes but S3 allows {MAX_PARTS}; \
             raise export.part_size or lower export.max_rows_per_file",
            task.key, task.part_size
        )));
    }
    Ok(size)
}

/// The part requests of one file: uploads of gathered parts and server-side
/// copies, each bounded in number and retried on its own so a hiccup does
/// not restart the whole file.
struct Parts {
    store: ObjectStore,
    bucket: String,
    key: String,
    upload_id: String,
    uploads: JoinSet<Result<UploadedPart, StorageError>>,
    copies: JoinSet<Result<UploadedPart, StorageError>>,
    done: Vec<UploadedPart>,
}

impl Parts {
    fn new(store: &ObjectStore, bucket: &str, task: &AssembleTask) -> Self {
        Self {
            store: store.clone(),
            bucket: bucket.to_owned(),
            key: task.key.clone(),
            upload_id: task.upload_id.clone(),
            uploads: JoinSet::new(),
            copies: JoinSet::new(),
            done: Vec::new(),
        }
    }

    /// Starts uploading part `number` once fewer than the limit are in flight.
    async fn upload(&mut self, number: i32, body: Bytes) -> Result<(), WorkerError> {
        while self.uploads.len() >= MAX_UPLOADS_IN_FLIGHT {
            Self::reap(&mut self.uploads, &mut self.done).await?;
        }
        let (store, bucket, key, upload_id) = self.names();
        let upload = async move {
            // Retried by the client's one S3 policy (`s3.max_attempts`).
            let etag = store
                .upload_part(&bucket, &key, &upload_id, number, body)
                .await?;
            Ok(UploadedPart { number, etag })
        };
        self.uploads.spawn(upload.in_current_span());
        Ok(())
    }

    /// Starts copying `segment` into part `number`.
    async fn copy(&mut self, number: i32, segment: Segment) -> Result<(), WorkerError> {
        while self.copies.len() >= MAX_COPIES_IN_FLIGHT {
            Self::reap(&mut self.copies, &mut self.done).await?;
        }
        let (store, bucket, key, upload_id) = self.names();
        let copy = async move {
            let etag = store
                .upload_part_copy(
                    &bucket,
                    &key,
                    &upload_id,
                    number,
                    &segment.key,
                    segment.start..segment.end,
                )
                .await?;
            Ok(UploadedPart { number, etag })
        };
        self.copies.spawn(copy.in_current_span());
        Ok(())
    }

    fn names(&self) -> (ObjectStore, String, String, String) {
        (
            self.store.clone(),
            self.bucket.clone(),
            self.key.clone(),
            self.upload_id.clone(),
        )
    }

    async fn reap(
        set: &mut JoinSet<Result<UploadedPart, StorageError>>,
        done: &mut Vec<UploadedPart>,
    ) -> Result<(), WorkerError> {
        if let Some(joined) = set.join_next().await {
            let part = joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
            done.push(part);
        }
        Ok(())
    }

    /// Waits for the remaining requests; the parts in number order.
    async fn finish(mut self) -> Result<Vec<UploadedPart>, WorkerError> {
        while !self.uploads.is_empty() {
            Self::reap(&mut self.uploads, &mut self.done).await?;
        }
        while !self.copies.is_empty() {
            Self::reap(&mut self.copies, &mut self.done).await?;
        }
        self.done.sort_by_key(|part| part.number);
        Ok(self.done)
    }
}

#[cfg(test)]
mod tests {
    use auditx_proto::{FileIndex, RequestId, TenantId};

    use super::*;

    fn task(segments: Vec<Segment>, part_size: u64) -> AssembleTask {
        AssembleTask {
            request_id: RequestId::from("r-1"),
            tenant: TenantId::from("t1"),
            file: FileIndex(0),
            key: "t1/r-1/audit_trail_sample_0001.csv".into(),
            upload_id: "u".into(),
            format: OutputFormat::Csv,
            segments,
            rows: 0,
            part_size,
            resume: None,
            stage: 0,
        }
    }

    fn segment(start: u64, end: u64) -> Segment {
        Segment {
            key: "_staging/c0".into(),
            start,
            end,
        }
    }

    #[test]
    fn file_size_is_the_header_plus_every_segment() {
        let t = task(vec![segment(0, 10), segment(10, 10), segment(3, 7)], 8);
        assert_eq!(file_size(&t, 5).unwrap(), 19);
        assert_eq!(file_size(&task(vec![], 8), 5).unwrap(), 5);
    }

    #[test]
    fn layouts_s3_cannot_take_are_rejected_with_a_remedy() {
        let err = file_size(&task(vec![segment(5, 4)], 8), 5).unwrap_err();
        assert!(err.to_string().contains("ends before it starts"), "{err}");
        let err = file_size(&task(vec![], 0), 5).unwrap_err();
        assert!(
            err.to_string().contains("part_size must be positive"),
            "{err}"
        );
        let err = file_size(&task(vec![segment(0, 10_000 * 8)], 8), 1).unwrap_err();
        assert!(err.to_string().contains("raise export.part_size"), "{err}");
        assert!(!err.is_transient());
        assert!(file_size(&task(vec![segment(0, 10_000 * 8 - 1)], 8), 1).is_ok());
    }

    fn seg(key: &str, start: u64, end: u64) -> Segment {
        Segment {
            key: key.into(),
            start,
            end,
        }
    }

    /// The bytes a plan makes, as (source, offset) pairs, and part sizes.
    fn layout(plan: &[PartSource]) -> (Vec<(String, u64)>, Vec<u64>) {
        let mut bytes = Vec::new();
        let mut sizes = Vec::new();
        let range = |key: &str, start: u64, end: u64, bytes: &mut Vec<(String, u64)>| {
            bytes.extend((start..end).map(|b| (key.to_owned(), b)));
            end - start
        };
        for part in plan {
            let size = match part {
                PartSource::Copied(s) => range(&s.key, s.start, s.end, &mut bytes),
                PartSource::Gathered(pieces) => pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Header { start, end } => range("header", *start, *end, &mut bytes),
                        Piece::Range(s) => range(&s.key, s.start, s.end, &mut bytes),
                        Piece::Trailer { start, end } => range("trailer", *start, *end, &mut bytes),
                    })
                    .sum(),
            };
            sizes.push(size);
        }
        (bytes, sizes)
    }

    #[test]
    fn long_staged_ranges_are_copied_and_the_rest_gathered() {
        // Header 3 bytes, parts of 10: the header and the first 7 bytes of
        // a are gathered, the rest of a (13 bytes) is copied, b (4) is
        // gathered with the first 6 bytes of c, the rest of c (10) copied.
        let plan = plan_parts(
            3,
            &[seg("a", 0, 20), seg("b", 0, 4), seg("c", 0, 16)],
            0,
            10,
        );
        assert_eq!(
            plan,
            vec![
                PartSource::Gathered(vec![
                    Piece::Header { start: 0, end: 3 },
                    Piece::Range(seg("a", 0, 7))
                ]),
                PartSource::Copied(seg("a", 7, 20)),
                PartSource::Gathered(vec![
                    Piece::Range(seg("b", 0, 4)),
                    Piece::Range(seg("c", 0, 6))
                ]),
                PartSource::Copied(seg("c", 6, 16)),
            ]
        );
    }

    #[test]
    fn a_header_only_file_is_one_gathered_part() {
        assert_eq!(
            plan_parts(12, &[], 0, 8 << 20),
            vec![PartSource::Gathered(vec![Piece::Header {
                start: 0,
                end: 12
            }])]
        );
        assert_eq!(
            plan_parts(5, &[], 0, 2),
            vec![
                PartSource::Gathered(vec![Piece::Header { start: 0, end: 2 }]),
                PartSource::Gathered(vec![Piece::Header { start: 2, end: 4 }]),
                PartSource::Gathered(vec![Piece::Header { start: 4, end: 5 }]),
            ]
        );
    }

    #[test]
    fn a_trailer_is_gathered_after_the_segments_and_an_empty_file_is_one_empty_part() {
        // Parquet: magic 4, a 12-byte staged range copied, a 7-byte footer.
        assert_eq!(
            plan_parts(4, &[seg("a", 0, 20)], 7, 10),
            vec![
                PartSource::Gathered(vec![
                    Piece::Header { start: 0, end: 4 },
                    Piece::Range(seg("a", 0, 6))
                ]),
                PartSource::Copied(seg("a", 6, 20)),
                PartSource::Gathered(vec![Piece::Trailer { start: 0, end: 7 }]),
            ]
        );
        // An empty JSON Lines file.
        assert_eq!(
            plan_parts(0, &[], 0, 10),
            vec![PartSource::Gathered(vec![])]
        );
    }

    /// Segment `i` of chunk `c<i>`: `len` bytes after `skip`.
    fn numbered_segments(lengths: &[(u64, u64)]) -> Vec<Segment> {
        lengths
            .iter()
            .enumerate()
            .map(|(i, &(len, skip))| seg(&format!("c{i}"), skip, skip + len))
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn parts_hold_every_byte_once_in_order_and_only_the_last_is_short(
            header in 0u64..30,
            lengths in proptest::collection::vec((0u64..60, 0u64..5), 0..12),
            trailer in 0u64..30,
            part_size in 1u64..40,
        ) {
            let segments: Vec<Segment> = numbered_segments(&lengths)
                .into_iter()
                .filter(|s| s.end > s.start)
                .collect();
            let plan = plan_parts(header, &segments, trailer, part_size);
            let (bytes, sizes) = layout(&plan);
            let mut want: Vec<(String, u64)> = (0..header).map(|b| ("header".to_owned(), b)).collect();
            for s in &segments {
                want.extend((s.start..s.end).map(|b| (s.key.clone(), b)));
            }
            want.extend((0..trailer).map(|b| ("trailer".to_owned(), b)));
            proptest::prop_assert_eq!(bytes, want);
            proptest::prop_assert!(!plan.is_empty(), "a file is at least one part");
            if let Some((_, full)) = sizes.split_last() {
                proptest::prop_assert!(full.iter().all(|&s| s >= part_size), "{:?}", sizes);
            }
            for part in &plan {
                match part {
                    PartSource::Gathered(_) => {}
                    PartSource::Copied(s) => proptest::prop_assert!(s.end - s.start >= part_size),
                }
            }
        }
    }

    proptest::proptest! {
        /// The parts of a prefix are the first parts of the whole file,
        /// whatever follows: a stage never makes a part a later one would
        /// make otherwise.
        #[test]
        fn a_prefix_plans_the_first_parts_of_every_file_it_begins(
            header in 0u64..30,
            lengths in proptest::collection::vec((0u64..60, 0u64..5), 0..12),
            known in 0usize..12,
            trailer in 0u64..30,
            part_size in 1u64..40,
        ) {
            let segments = numbered_segments(&lengths);
            let known = known.min(segments.len());
            let prefix = plan_prefix_parts(header, &segments[..known], part_size);
            let whole = plan_parts(header, &segments, trailer, part_size);
            proptest::prop_assert!(prefix.len() <= whole.len());
            proptest::prop_assert_eq!(&prefix[..], &whole[..prefix.len()]);
            // What the prefix leaves is less than a part.
            let planned: u64 = prefix.iter().map(part_len).sum();
            let known_bytes = header
                + segments[..known].iter().map(|s| s.end - s.start).sum::<u64>();
            proptest::prop_assert!(known_bytes - planned < part_size);
        }
    }
}
