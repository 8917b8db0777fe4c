//! Small reads of table files kept per process.
//!
//! A lookup by value (`WHERE ipaddress = …`) reads one bloom filter per
//! row group of every file (DataFusion asks for them one at a time, one
//! ranged GET each): 48 requests over 10 M logins in row groups of 262,144
//! rows, most of such a query's time. Table files are named after the
//! hash of their content and never rewritten, so a byte range of one is
//! the same bytes for as long as the file exists: [`RangeCache`] keeps the
//! small ranges queries read (bloom filters above all) and answers them
//! again from memory, as the process's footer cache does for footers.
//!
//! Only single bounded GETs (`get_range`: bloom filters, footers, page
//! indexes) of at most [`MAX_CACHED_RANGE`] bytes of `.parquet` objects
//! without conditions are kept. The column data a scan reads comes through
//! `get_ranges` and is never kept (a GROUP BY over every row group would
//! otherwise push the bloom filters out); everything else (listings, large
//! reads, writes) goes straight to the store. The cache holds at most
//! [`CACHE_BYTES`]; when full it forgets the ranges not used since they
//! were last passed over (a second-chance clock). A tenant's query
//! only ever asks for paths of its own listing, so a cached range is only
//! served to a query that could read it from the store.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// Ranges larger than this are read from the store every time.
pub const MAX_CACHED_RANGE: u64 = 512 * 1024;

/// Bytes the cache holds at most (per process).
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;

type RangeKey = (Path, u64, u64);

struct Entry {
    bytes: Bytes,
    meta: ObjectMeta,
    /// Read again since the clock last passed it.
    used: bool,
}

#[derive(Default)]
struct Ranges {
    entries: HashMap<RangeKey, Entry>,
    /// The clock: oldest first.
    order: VecDeque<RangeKey>,
    bytes: usize,
}

impl Ranges {
    fn get(&mut self, key: &RangeKey) -> Option<(Bytes, ObjectMeta)> {
        let entry = self.entries.get_mut(key)?;
        entry.used = true;
        Some((entry.bytes.clone(), entry.meta.clone()))
    }

    fn insert(&mut self, key: RangeKey, bytes: Bytes, meta: ObjectMeta, capacity: usize) {
        if bytes.len() > capacity || self.entries.contains_key(&key) {
            return;
        }
        while self.bytes + bytes.len() > capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            match self.entries.get_mut(&oldest) {
                Some(entry) if entry.used => {
                    entry.used = false;
                    self.order.push_back(oldest);
                }
                Some(_) => {
                    let gone = self.entries.remove(&oldest).expect("entry just seen");
                    self.bytes -= gone.bytes.len();
                }
                None => {}
            }
        }
        self.bytes += bytes.len();
        self.order.push_back(key.clone());
        let used = false;
        self.entries.insert(key, Entry { bytes, meta, used });
    }
}

/// An object store that keeps small reads of immutable table files (see
/// the module's documentation).
pub struct RangeCache {
    inner: Arc<dyn ObjectStore>,
    ranges: Mutex<Ranges>,
    capacity: usize,
}

impl RangeCache {
    pub fn new(inner: Arc<dyn ObjectStore>, capacity: usize) -> Self {
        Self {
            inner,
            ranges: Mutex::new(Ranges::default()),
            capacity,
        }
    }

    fn ranges(&self) -> std::sync::MutexGuard<'_, Ranges> {
        self.ranges
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The range of `options` when it may be served from the cache.
    fn cacheable(location: &Path, options: &GetOptions) -> Option<Range<u64>> {
        let plain = options.if_match.is_none()
            && options.if_none_match.is_none()
            && options.if_modified_since.is_none()
            && options.if_unmodified_since.is_none()
            && options.version.is_none()
            && !options.head;
        match &options.range {
            Some(GetRange::Bounded(range))
                if plain
                    && location.as_ref().ends_with(".parquet")
                    && range.end > range.start
                    && range.end - range.start <= MAX_CACHED_RANGE =>
            {
                Some(range.clone())
            }
            _ => None,
        }
    }

    /// Bytes held (tests).
    #[cfg(test)]
    fn cached_bytes(&self) -> usize {
        self.ranges().bytes
    }
}

fn answer(bytes: Bytes, meta: ObjectMeta, range: Range<u64>) -> GetResult {
    GetResult {
        payload: GetResultPayload::Stream(stream::once(async move { Ok(bytes) }).boxed()),
        meta,
        range,
        attributes: Default::default(),
    }
}

impl fmt::Display for RangeCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RangeCache({})", self.inner)
    }
}

impl fmt::Debug for RangeCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RangeCache({:?})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for RangeCache {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let Some(range) = Self::cacheable(location, &options) else {
            return self.inner.get_opts(location, options).await;
        };
        let key = (location.clone(), range.start, range.end);
        let cached = self.ranges().get(&key);
        if let Some((bytes, meta)) = cached {
            return Ok(answer(bytes, meta, range));
        }
        let result = self.inner.get_opts(location, options).await?;
        let (meta, returned) = (result.meta.clone(), result.range.clone());
        let bytes = result.bytes().await?;
        if returned == range && bytes.len() as u64 == range.end - range.start {
            self.ranges()
                .insert(key, bytes.clone(), meta.clone(), self.capacity);
        }
        Ok(answer(bytes, meta, returned))
    }

    /// Column data of scans: read from the store, never kept.
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    use super::*;

    /// A cache over an in-memory store holding `t/a.parquet` and
    /// `t/listing.json` (bytes 0, 1, …, 255, 0, 1, …; 4 KiB each). Tests
    /// overwrite an object behind the cache's back: a read that still sees
    /// the old bytes came from the cache, one that sees the new bytes from
    /// the store.
    async fn setup(capacity: usize) -> (Arc<InMemory>, RangeCache) {
        let store = Arc::new(InMemory::new());
        let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        for name in ["t/a.parquet", "t/listing.json"] {
            store
                .put(&Path::from(name), PutPayload::from(bytes.clone()))
                .await
                .unwrap();
        }
        let cache = RangeCache::new(store.clone(), capacity);
        (store, cache)
    }

    async fn overwrite(store: &InMemory, name: &str) {
        let zeros = PutPayload::from(vec![0u8; 4096]);
        store.put(&Path::from(name), zeros).await.unwrap();
    }

    /// The first byte of `range` of `name` as read through the cache.
    async fn first_byte(cache: &RangeCache, name: &str, range: Range<u64>) -> u8 {
        cache.get_range(&Path::from(name), range).await.unwrap()[0]
    }

    #[tokio::test]
    async fn a_small_range_of_a_table_file_is_read_once() {
        let (store, cache) = setup(1 << 20).await;
        let path = Path::from("t/a.parquet");
        assert_eq!(first_byte(&cache, "t/a.parquet", 100..200).await, 100);
        first_byte(&cache, "t/listing.json", 100..200).await;
        overwrite(&store, "t/a.parquet").await;
        overwrite(&store, "t/listing.json").await;
        // The kept range, from memory; another range, the whole object
        // and a non-Parquet object, from the store.
        assert_eq!(first_byte(&cache, "t/a.parquet", 100..200).await, 100);
        assert_eq!(first_byte(&cache, "t/a.parquet", 101..200).await, 0);
        let whole = cache.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(whole[100], 0);
        assert_eq!(first_byte(&cache, "t/listing.json", 100..200).await, 0);
    }

    #[tokio::test]
    async fn scans_column_data_is_not_kept() {
        let (store, cache) = setup(1 << 20).await;
        let path = Path::from("t/a.parquet");
        let parts = cache.get_ranges(&path, &[0..10, 20..30]).await.unwrap();
        assert_eq!(&parts[1][..3], &[20, 21, 22]);
        assert_eq!(cache.cached_bytes(), 0);
        overwrite(&store, "t/a.parquet").await;
        let parts = cache.get_ranges(&path, &[0..10, 20..30]).await.unwrap();
        assert_eq!(&parts[1][..3], &[0, 0, 0]);
    }

    #[tokio::test]
    async fn ranges_not_read_again_go_first_when_full() {
        let (store, cache) = setup(250).await;
        let (a, b, c) = (10..110, 110..210, 210..310);
        first_byte(&cache, "t/a.parquet", a.clone()).await;
        first_byte(&cache, "t/a.parquet", b.clone()).await;
        assert_eq!(cache.cached_bytes(), 200);
        // `a` is read again, so a third range pushes `b` out.
        first_byte(&cache, "t/a.parquet", a.clone()).await;
        first_byte(&cache, "t/a.parquet", c.clone()).await;
        assert_eq!(cache.cached_bytes(), 200);
        overwrite(&store, "t/a.parquet").await;
        assert_eq!(first_byte(&cache, "t/a.parquet", a).await, 10);
        assert_eq!(first_byte(&cache, "t/a.parquet", c).await, 210);
        assert_eq!(first_byte(&cache, "t/a.parquet", b).await, 0);
        // A range larger than the whole cache is never kept.
        first_byte(&cache, "t/a.parquet", 10..310).await;
        assert_eq!(cache.cached_bytes(), 200);
    }
}
