//! Stage two of an export: stream the header and the staged byte ranges of
//! one output file into S3 multipart parts, hashing the file on the way.
//!
//! Memory stays at about `part_size × (MAX_PARTS_IN_FLIGHT + 1)` whatever
//! the file size. Part numbers follow from the byte layout alone, so a
//! redelivered task uploads the same parts again and the upload stays
//! consistent.

use auditx_common::retry::{retry, Backoff};
use auditx_common::s3::{ObjectStore, StorageError};
use auditx_proto::{AssembleOutcome, AssembleTask, OutputFormat, Segment, UploadedPart};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::error::WorkerError;
use crate::export::csv;
use crate::export::parts::PartSplitter;

/// Parts uploading at once: one uploads while the next fills, and a slow
/// part does not stall reading.
const MAX_PARTS_IN_FLIGHT: usize = 2;

/// S3's limit of parts in one multipart upload.
const MAX_PARTS: u64 = 10_000;

/// Uploads the file of `task` as parts `1..=n` of `task.upload_id` and
/// reports them; the scheduler completes the upload.
pub async fn assemble_file(
    store: &ObjectStore,
    export_bucket: &str,
    task: &AssembleTask,
) -> Result<AssembleOutcome, WorkerError> {
    let header = match task.format {
        OutputFormat::Csv => csv::HEADER,
    };
    let bytes = file_size(task, header.len() as u64)?;
    let mut hasher = Sha256::new();
    let mut splitter = PartSplitter::new(task.part_size as usize);
    let mut uploads = PartUploads::new(store, export_bucket, task);

    let mut header = Bytes::from_static(header);
    hasher.update(&header);
    while let Some(part) = splitter.next_part(&mut header) {
        uploads.push(part).await?;
    }
    for segment in &task.segments {
        let expected = segment.end - segment.start;
        let mut body = store
            .get_stream(
                export_bucket,
                &segment.key,
                Some(segment.start..segment.end),
            )
            .await
            .map_err(|e| match e {
                StorageError::NotFound { .. } => staging_error(segment, "is missing".into()),
                other => other.into(),
            })?;
        let mut read = 0;
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk.map_err(|e| {
                StorageError::Transient(format!("reading staged chunk {}: {e}", segment.key))
            })?;
            read += chunk.len() as u64;
            if read > expected {
                break;
            }
            hasher.update(&chunk);
            while let Some(part) = splitter.next_part(&mut chunk) {
                uploads.push(part).await?;
            }
        }
        if read != expected {
            let problem = format!(
                "returned {read} bytes for range {}..{}, expected {expected}",
                segment.start, segment.end
            );
            return Err(staging_error(segment, problem));
        }
    }
    if let Some(last) = splitter.finish() {
        uploads.push(last).await?;
    }
    Ok(AssembleOutcome {
        request_id: task.request_id.clone(),
        file: task.file,
        key: task.key.clone(),
        upload_id: task.upload_id.clone(),
        parts: uploads.finish().await?,
        rows: task.rows,
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

fn staging_error(segment: &Segment, problem: String) -> WorkerError {
    WorkerError::Staging {
        key: segment.key.clone(),
        problem,
    }
}

/// The file's size, once the task is checked for a layout S3 can take.
fn file_size(task: &AssembleTask, header_len: u64) -> Result<u64, WorkerError> {
    if task.part_size == 0 {
        return Err(WorkerError::InvalidTask(
            "part_size must be positive".into(),
        ));
    }
    let mut size = header_len;
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

/// Part uploads of one file, at most [`MAX_PARTS_IN_FLIGHT`] at a time,
/// each retried on its own so a hiccup does not restart the whole file.
struct PartUploads {
    store: ObjectStore,
    bucket: String,
    key: String,
    upload_id: String,
    in_flight: JoinSet<Result<UploadedPart, StorageError>>,
    uploaded: Vec<UploadedPart>,
    next_number: i32,
}

impl PartUploads {
    fn new(store: &ObjectStore, bucket: &str, task: &AssembleTask) -> Self {
        Self {
            store: store.clone(),
            bucket: bucket.to_owned(),
            key: task.key.clone(),
            upload_id: task.upload_id.clone(),
            in_flight: JoinSet::new(),
            uploaded: Vec::new(),
            next_number: 1,
        }
    }

    /// Starts uploading the next part once fewer than the limit are in flight.
    async fn push(&mut self, body: Bytes) -> Result<(), WorkerError> {
        while self.in_flight.len() >= MAX_PARTS_IN_FLIGHT {
            self.reap().await?;
        }
        let number = self.next_number;
        self.next_number += 1;
        let (store, bucket, key, upload_id) = (
            self.store.clone(),
            self.bucket.clone(),
            self.key.clone(),
            self.upload_id.clone(),
        );
        let upload = async move {
            let etag = retry(Backoff::default(), StorageError::is_transient, || {
                store.upload_part(&bucket, &key, &upload_id, number, body.clone())
            })
            .await?;
            Ok(UploadedPart { number, etag })
        };
        self.in_flight.spawn(upload.in_current_span());
        Ok(())
    }

    async fn reap(&mut self) -> Result<(), WorkerError> {
        if let Some(joined) = self.in_flight.join_next().await {
            let part = joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
            self.uploaded.push(part);
        }
        Ok(())
    }

    /// Waits for the remaining uploads; the parts in number order.
    async fn finish(mut self) -> Result<Vec<UploadedPart>, WorkerError> {
        while !self.in_flight.is_empty() {
            self.reap().await?;
        }
        self.uploaded.sort_by_key(|part| part.number);
        Ok(self.uploaded)
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
}
