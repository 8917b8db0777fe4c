//! Parquet's [`AsyncFileReader`] over S3 ranged GETs.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use futures::future::{try_join_all, BoxFuture};
use futures::FutureExt;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};

use auditx_common::s3::ObjectStore;

/// Bytes read from the end of a file for its footer: our footers are a few
/// KiB, so one request nearly always gets all of it.
const FOOTER_PREFETCH: usize = 64 * 1024;

/// Ranges closer than this are fetched with one request: a row group's
/// column chunks are adjacent, so a whole projection is usually one GET.
const COALESCE_GAP: u64 = 1024 * 1024;

/// Footers kept per process (a few to a few tens of KiB each); the cache
/// starts over when full.
const FOOTER_CACHE_ENTRIES: usize = 256;

type FooterId = (String, String, u64);

fn footers() -> std::sync::MutexGuard<'static, HashMap<FooterId, Arc<ParquetMetaData>>> {
    static FOOTERS: LazyLock<Mutex<HashMap<FooterId, Arc<ParquetMetaData>>>> =
        LazyLock::new(Default::default);
    FOOTERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads one lake object of known size.
pub(crate) struct ObjectReader {
    store: ObjectStore,
    bucket: String,
    key: String,
    size: u64,
}

impl ObjectReader {
    pub(crate) fn new(store: &ObjectStore, bucket: &str, key: &str, size: u64) -> Self {
        Self {
            store: store.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size,
        }
    }

    /// Ranged GET (retried by the client's one S3 policy, `s3.max_attempts`);
    /// the [`StorageError`](auditx_common::s3::StorageError) is kept inside the [`ParquetError`] so callers
    /// can still classify it.
    async fn fetch(&self, range: Range<u64>) -> parquet::errors::Result<Bytes> {
        self.store
            .get_range(&self.bucket, &self.key, range)
            .await
            .map_err(|e| ParquetError::External(Box::new(e)))
    }
}

/// Merges sorted ranges whose gaps are below [`COALESCE_GAP`].
fn coalesce(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end.saturating_add(COALESCE_GAP) => {
                last.end = last.end.max(range.end);
            }
            _ => merged.push(range),
        }
    }
    merged
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.fetch(range).boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let merged = coalesce(ranges.clone());
            let fetched = try_join_all(merged.iter().map(|r| self.fetch(r.clone()))).await?;
            Ok(ranges
                .iter()
                .map(|r| {
                    let i = merged.partition_point(|m| m.end < r.end);
                    let start = (r.start - merged[i].start) as usize;
                    fetched[i].slice(start..start + (r.end - r.start) as usize)
                })
                .collect())
        }
        .boxed()
    }

    /// The file's footer with its offset index (where each page of each
    /// column chunk starts, and its first row), from the process's footer
    /// cache when this file was opened before (planning and every chunk of
    /// an export read the same files). Lake files are immutable and named
    /// after their content, so bucket, key and size identify a footer.
    ///
    /// The offset index lets a chunk that keeps part of a row group (its
    /// time slice, after the filter) fetch and decompress only the pages of
    /// the other columns that hold kept rows; files without one are read
    /// whole as before.
    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let id = (self.bucket.clone(), self.key.clone(), self.size);
            if let Some(metadata) = footers().get(&id) {
                return Ok(metadata.clone());
            }
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_metadata_options(options.map(|o| o.metadata_options().clone()))
                .with_offset_index_policy(PageIndexPolicy::Optional)
                .with_prefetch_hint(Some(FOOTER_PREFETCH))
                .load_and_finish(self, size)
                .await?;
            let metadata = Arc::new(metadata);
            let mut cache = footers();
            if cache.len() >= FOOTER_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(id, metadata.clone());
            Ok(metadata)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_footer_is_fetched_once_per_process() {
        use auditx_common::config::S3Config;
        use auditx_common::embedded_s3::EmbeddedS3;

        let dir = tempfile::tempdir().unwrap();
        let server = EmbeddedS3::start(dir.path(), "127.0.0.1:0".parse().unwrap(), "ak", "sk")
            .await
            .unwrap();
        let store = ObjectStore::new(&server.client_config(&S3Config::default()));
        store.ensure_bucket("footers").await.unwrap();
        let mut runs = vec![crate::RunRow {
            tenant: "t".into(),
            meter_id: 1,
            session_id: "R-1".into(),
            run_type: "NORMAL".into(),
            status: "COMPLETED".into(),
            updated_at_ms: 1,
        }];
        let file = crate::audit_trail::write::encode_runs_parquet(&mut runs).unwrap();
        let size = file.len() as u64;
        store
            .put(
                "footers",
                "cached.parquet",
                file,
                "application/octet-stream",
            )
            .await
            .unwrap();
        let first = ObjectReader::new(&store, "footers", "cached.parquet", size)
            .get_metadata(None)
            .await
            .unwrap();
        // With the endpoint gone, the footer still comes from the cache…
        drop(server);
        let again = ObjectReader::new(&store, "footers", "cached.parquet", size)
            .get_metadata(None)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // Runs files are written with an offset index: the footer has it.
        let offsets = first.offset_index().expect("offset index loaded");
        assert_eq!(offsets.len(), first.num_row_groups());
        // …and only that one: another file (or size) is fetched, and fails.
        let other = ObjectReader::new(&store, "footers", "cached.parquet", size + 1)
            .get_metadata(None)
            .await;
        assert!(other.is_err());
    }

    #[test]
    fn near_ranges_merge_and_far_ones_do_not() {
        let far = 10 * COALESCE_GAP;
        assert_eq!(
            coalesce(vec![far..far + 5, 10..20, 0..10, 25..30]),
            vec![0..30, far..far + 5]
        );
    }
}
