//! The storage behind the embedded S3 endpoint: s3s-fs's on-disk layout,
//! with the data path done here so that the endpoint is not what an export
//! waits for.
//!
//! s3s-fs hashes every byte it stores with MD5 (for ETags), reads through
//! 4 KiB buffers and writes through 8 KiB ones, each a round trip to
//! Tokio's blocking pool: on a 1.3 GB export that was the largest item of
//! the profile. Here objects and parts are written in 1 MiB blocks and read
//! in 256 KiB blocks by one blocking thread per request; `UploadPartCopy`
//! copies nothing (the source's file is pinned by a hard link and the range
//! recorded), a multipart upload is completed without copying its bytes:
//! the object is kept as its parts ([`super::composite`]), or, for one
//! whole part, the part's file is renamed into place; and ETags are opaque
//! identifiers unique per write — S3 only promises that an ETag changes
//! when the object does; the ETags of multipart objects are not MD5
//! digests on AWS either.
//!
//! Listing walks only the folder of the prefix (`super::listing`). Deleting
//! an object that is already gone succeeds, as on S3 (s3s-fs answered 500
//! when two deletes of one key raced).
//!
//! A request that asks for a digest check (Content-MD5 or an
//! `x-amz-checksum-*`), a conditional write, or anything else this fast
//! path does not handle goes to s3s-fs unchanged, as does every other
//! operation (listing v1, HEAD, deleting folders and batches, bucket calls, uploads' creation and
//! abort). Both write the same files, so either can read the other's; the
//! calls that replace or delete objects drop the pieces of a composite
//! object they replace, and CopyObject first makes a composite source a
//! plain file (s3s-fs reads the source's file).

use std::fs::File;
use std::io::{self, IoSlice, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result, S3};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::composite::{self, Segment};
use super::parts::{part_data, part_path, ref_paths, PartData};

/// Bytes gathered before one write to disk.
const WRITE_BLOCK: usize = 1 << 20;
/// Bytes per read of a GET.
const READ_BLOCK: usize = 256 << 10;
/// Blocks read ahead of the client.
const READ_AHEAD: usize = 4;
/// S3's smallest part other than the last.
const MIN_PART: u64 = 5 * 1024 * 1024;

/// Whether a PutObject or UploadPart request asks for its body to be
/// checked against a digest (Content-MD5, an `x-amz-checksum-*`, or one in
/// the trailer): such requests go to s3s-fs, which verifies them.
macro_rules! asks_for_digest {
    ($req:expr) => {{
        let input = &$req.input;
        input.content_md5.is_some()
            || input.checksum_algorithm.is_some()
            || input.checksum_crc32.is_some()
            || input.checksum_crc32c.is_some()
            || input.checksum_crc64nvme.is_some()
            || input.checksum_sha1.is_some()
            || input.checksum_sha256.is_some()
            || $req.trailing_headers.is_some()
    }};
}

/// s3s-fs with a faster data path (see the module docs).
pub struct FastFs {
    inner: s3s_fs::FileSystem,
    root: PathBuf,
    writes: Arc<AtomicU64>,
}

impl std::fmt::Debug for FastFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastFs").field("root", &self.root).finish()
    }
}

impl FastFs {
    pub fn new(root: &Path) -> io::Result<Self> {
        let inner =
            s3s_fs::FileSystem::new(root).map_err(|e| io::Error::other(format!("{e:?}")))?;
        let root = std::env::current_dir()?.join(root).canonicalize()?;
        composite::sweep(&root)?;
        Ok(Self {
            inner,
            root,
            writes: Arc::new(AtomicU64::new(0)),
        })
    }

    /// `root/<bucket>/<key>`, refusing anything that would leave the root.
    fn object_path(&self, bucket: &str, key: &str) -> S3Result<PathBuf> {
        let relative = Path::new(bucket).join(key);
        let normal = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !normal || bucket.is_empty() || bucket.starts_with('.') {
            return Err(s3_error!(InvalidArgument, "invalid bucket or key"));
        }
        Ok(self.root.join(relative))
    }

    fn bucket_exists(&self, bucket: &str) -> S3Result<()> {
        let path = self.object_path(bucket, "")?;
        if path.is_dir() {
            Ok(())
        } else {
            Err(s3_error!(NoSuchBucket))
        }
    }

    fn encoded(bucket: &str, key: &str) -> String {
        format!(
            ".bucket-{}.object-{}",
            URL_SAFE_NO_PAD.encode(bucket),
            URL_SAFE_NO_PAD.encode(key)
        )
    }

    /// Where s3s-fs keeps an object's attributes (content type, metadata).
    fn attributes_path(&self, bucket: &str, key: &str, upload: Option<&str>) -> PathBuf {
        let upload = upload.map(|u| format!(".upload-{u}")).unwrap_or_default();
        self.root.join(format!(
            "{}{upload}.metadata.json",
            Self::encoded(bucket, key)
        ))
    }

    /// Where s3s-fs keeps an object's ETag (read by its HEAD and listing).
    fn info_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root
            .join(format!("{}.internal.json", Self::encoded(bucket, key)))
    }

    fn part_path(&self, upload: &str, part: i32) -> PathBuf {
        part_path(&self.root, upload, part)
    }

    /// See [`ref_paths`].
    fn ref_paths(&self, upload: &str, part: i32) -> (PathBuf, PathBuf) {
        ref_paths(&self.root, upload, part)
    }

    /// What makes up part `n` of `upload`, if it was uploaded or copied.
    fn part_data(&self, upload: &str, part: i32) -> io::Result<Option<PartData>> {
        part_data(&self.root, upload, part)
    }

    /// A temporary file name s3s-fs sweeps away at start-up if left over.
    fn tmp_path(&self) -> PathBuf {
        tmp_path(&self.root, &self.writes)
    }

    /// Runs `write`, which replaces or deletes the object `bucket/key`,
    /// then drops the pieces of the composite object it replaced, if it
    /// was one.
    async fn replacing<T>(
        &self,
        bucket: &str,
        key: &str,
        write: impl std::future::Future<Output = S3Result<T>>,
    ) -> S3Result<T> {
        let Ok(path) = self.object_path(bucket, key) else {
            return write.await;
        };
        let before = composite::inode(&path);
        let written = write.await;
        if let Some(inode) = before {
            let (root, encoded) = (self.root.clone(), Self::encoded(bucket, key));
            blocking(move || {
                composite::drop_replaced(&root, &encoded, inode);
                Ok(())
            })
            .await?;
        }
        written
    }

    /// An opaque ETag, different for every write.
    fn new_etag(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        format!("{nanos:016x}{n:016x}")
    }

    /// Checks that `upload_id` exists and was created with the caller's key
    /// (s3s-fs stores the creator's access key with it).
    async fn verify_upload(
        &self,
        credentials: Option<&s3s::auth::Credentials>,
        upload_id: &str,
    ) -> S3Result<String> {
        let id = uuid::Uuid::parse_str(upload_id).map_err(|_| s3_error!(NoSuchUpload))?;
        let path = self.root.join(format!(".upload-{id}.json"));
        let content = match tokio::fs::read(&path).await {
            Ok(content) => content,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(s3_error!(NoSuchUpload)),
            Err(e) => return Err(internal(e)),
        };
        let creator: Option<String> = serde_json::from_slice(&content).map_err(internal)?;
        if creator.as_deref() != credentials.map(|c| c.access_key.as_str()) {
            return Err(s3_error!(AccessDenied));
        }
        Ok(id.to_string())
    }

    /// Writes `body` to `dest` (atomically: a temporary file renamed into
    /// place), a block at a time, the next block filling while the last one
    /// is written. Returns the size.
    async fn write_body(&self, body: StreamingBlob, dest: PathBuf) -> S3Result<u64> {
        let tmp = self.tmp_path();
        let result = write_blocks(body, tmp.clone(), dest).await;
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// PutObject (the whole body; [`S3::put_object`] drops the pieces of
    /// a composite object it replaces).
    async fn put(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let input = &req.input;
        let checked = asks_for_digest!(req);
        let special = input.key.ends_with('/')
            || input.if_match.is_some()
            || input.if_none_match.is_some()
            || input.storage_class.is_some()
            || input.expires.is_some()
            || input.website_redirect_location.is_some();
        if checked || special {
            return self.inner.put_object(req).await;
        }
        let PutObjectInput {
            body,
            bucket,
            key,
            metadata,
            content_encoding,
            content_type,
            content_disposition,
            content_language,
            cache_control,
            ..
        } = req.input;
        let body = body.ok_or_else(|| s3_error!(IncompleteBody))?;
        let path = self.object_path(&bucket, &key)?;
        self.bucket_exists(&bucket)?;
        self.write_body(body, path).await?;
        let attributes = Attributes {
            user_metadata: metadata,
            content_encoding,
            content_type,
            content_disposition,
            content_language,
            cache_control,
        };
        let content = serde_json::to_vec(&attributes).map_err(internal)?;
        let (tmp, dest) = (self.tmp_path(), self.attributes_path(&bucket, &key, None));
        blocking(move || write_atomically(&tmp, &dest, &content)).await?;
        let etag = self.new_etag();
        self.save_etag(&bucket, &key, &etag).await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }))
    }

    async fn save_etag(&self, bucket: &str, key: &str, etag: &str) -> S3Result<()> {
        let content =
            serde_json::to_vec(&serde_json::json!({ "e_tag": etag })).map_err(internal)?;
        let (tmp, dest) = (self.tmp_path(), self.info_path(bucket, key));
        blocking(move || write_atomically(&tmp, &dest, &content)).await
    }
}

/// The start of the names of the files s3s-fs keeps beside the buckets for
/// each object of `bucket` (attributes, ETag), in the endpoint's root.
pub fn bucket_metadata_prefix(bucket: &str) -> String {
    format!(".bucket-{}.", URL_SAFE_NO_PAD.encode(bucket))
}

/// A temporary file name s3s-fs sweeps away at start-up if left over.
fn tmp_path(root: &Path, writes: &AtomicU64) -> PathBuf {
    let n = writes.fetch_add(1, Ordering::Relaxed);
    root.join(format!(".tmp.fast-{n}.internal.part"))
}

/// Gives the file at `path` an inode of its own (a copy through `tmp`,
/// renamed into place) if another name links it too, so that writing it in
/// place changes no other name's bytes.
fn unshare(path: &Path, tmp: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.nlink() > 1 => {}
        _ => return Ok(()),
    }
    let copied = std::fs::copy(path, tmp).and_then(|_| std::fs::rename(tmp, path));
    if copied.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    copied
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> S3Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(internal)?
        .map_err(internal)
}

fn internal(error: impl std::fmt::Display) -> S3Error {
    s3_error!(InternalError, "{error}")
}

fn write_atomically(tmp: &Path, dest: &Path, content: &[u8]) -> io::Result<()> {
    std::fs::write(tmp, content)?;
    std::fs::rename(tmp, dest)
}

fn rename_into_place(tmp: &Path, dest: &Path) -> io::Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(tmp, dest)
}

/// A block being written; gives the file and the emptied list back.
type BlockWrite = JoinHandle<io::Result<(File, Vec<Bytes>)>>;

/// Writes the body's chunks as they came (no copy into a buffer), about
/// [`WRITE_BLOCK`] bytes per write, the next block arriving while the last
/// one is written.
async fn write_blocks(mut body: StreamingBlob, tmp: PathBuf, dest: PathBuf) -> S3Result<u64> {
    let tmp_for_create = tmp.clone();
    let mut file = Some(blocking(move || File::create(&tmp_for_create)).await?);
    let mut writing: Option<BlockWrite> = None;
    let mut block: Vec<Bytes> = Vec::new();
    let mut block_len = 0;
    let mut size = 0u64;
    let mut body_done = false;
    while !body_done {
        match body.next().await {
            Some(Ok(bytes)) => {
                size += bytes.len() as u64;
                block_len += bytes.len();
                block.push(bytes);
                if block_len < WRITE_BLOCK {
                    continue;
                }
            }
            Some(Err(e)) => return Err(s3_error!(IncompleteBody, "reading the body: {e}")),
            None => body_done = true,
        }
        // Wait for the previous block, then hand this one over.
        let spare = match writing.take() {
            Some(handle) => {
                let (f, spare) = handle.await.map_err(internal)?.map_err(internal)?;
                file = Some(f);
                spare
            }
            None => Vec::new(),
        };
        let full = std::mem::replace(&mut block, spare);
        block_len = 0;
        let mut f = file.take().expect("the file is back from the last write");
        writing = Some(tokio::task::spawn_blocking(move || {
            write_all_chunks(&mut f, &full)?;
            let mut full = full;
            full.clear();
            Ok((f, full))
        }));
    }
    if let Some(handle) = writing {
        let (f, _) = handle.await.map_err(internal)?.map_err(internal)?;
        drop(f);
    }
    blocking(move || rename_into_place(&tmp, &dest)).await?;
    Ok(size)
}

/// Writes `chunks` one after the other with vectored writes.
fn write_all_chunks(file: &mut File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut slices = &mut slices[..];
    // Drops leading empty chunks: a write of only empty slices returns 0.
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut slices, written),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A GET body: blocks read by a blocking thread, handed over a channel.
struct ReadBlocks(mpsc::Receiver<io::Result<Bytes>>);

impl Stream for ReadBlocks {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// A read block of [`READ_BLOCK`] bytes that goes back to a small pool
/// when the body that holds it is sent: a GET reads into buffers already
/// mapped and initialised, not into new zeroed ones.
struct ReadBuffer(Vec<u8>);

/// Read buffers kept for reuse at most (a few GETs' worth).
const POOLED_READ_BUFFERS: usize = 32;

static READ_BUFFERS: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

impl ReadBuffer {
    fn take() -> Self {
        let pooled = READ_BUFFERS.lock().unwrap_or_else(|e| e.into_inner()).pop();
        ReadBuffer(pooled.unwrap_or_else(|| vec![0; READ_BLOCK]))
    }
}

impl AsRef<[u8]> for ReadBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        let mut pool = READ_BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOLED_READ_BUFFERS {
            pool.push(std::mem::take(&mut self.0));
        }
    }
}

/// Streams the bytes of `segments`, one after the other (`open`: the
/// first one's file, already open); stops early if the client goes away.
fn read_blocks(mut open: Option<File>, segments: Vec<Segment>) -> ReadBlocks {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        for segment in segments {
            let file = match open.take() {
                Some(file) => Ok(file),
                None => File::open(&segment.path),
            };
            match file.and_then(|mut f| send_blocks(&mut f, segment.start, segment.len, &tx)) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    ReadBlocks(rx)
}

/// Sends `len` bytes of `file` from `start`, a block at a time; false if
/// the client went away.
fn send_blocks(
    file: &mut File,
    start: u64,
    len: u64,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<bool> {
    file.seek(SeekFrom::Start(start))?;
    let mut left = len;
    while left > 0 {
        let mut block = ReadBuffer::take();
        let want = READ_BLOCK.min(left as usize);
        file.read_exact(&mut block.0[..want])?;
        left -= want as u64;
        let block = Bytes::from_owner(block).slice(..want);
        if tx.blocking_send(Ok(block)).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The stored attributes s3s-fs writes (only what a GET returns).
#[derive(Default, serde::Deserialize, serde::Serialize)]
struct Attributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    user_metadata: Option<Metadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_disposition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<String>,
}

/// The copy source's bucket and key.
fn copy_source(source: &CopySource) -> S3Result<(&str, &str)> {
    match source {
        CopySource::Bucket { bucket, key, .. } => Ok((bucket, key)),
        _ => Err(s3_error!(NotImplemented, "only bucket copy sources")),
    }
}

/// `bytes=first-last` of an UploadPartCopy, as a start and a length.
fn copy_range(range: Option<&str>, file_len: u64) -> S3Result<(u64, u64)> {
    let Some(range) = range else {
        return Ok((0, file_len));
    };
    let (first, last) = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "x-amz-copy-source-range must be bytes=first-last"
            )
        })?;
    if first > last || last >= file_len {
        return Err(s3_error!(InvalidRange));
    }
    Ok((first, last - first + 1))
}

#[async_trait::async_trait]
impl S3 for FastFs {
    // --- what s3s-fs does as it is ---

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.inner.delete_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.inner.list_buckets(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.inner.get_bucket_location(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.inner.head_object(req).await
    }

    /// s3s-fs's, which reads the source's file and writes the
    /// destination's in place (`fs::copy`): a composite source is first
    /// made a plain file, and a destination whose file is also another
    /// name's (a copied part or a composite object's piece pins it) first
    /// gets a file of its own.
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        if let Ok((bucket, key)) = copy_source(&req.input.copy_source) {
            let source = self.object_path(bucket, key)?;
            let (root, encoded, tmp) = (
                self.root.clone(),
                Self::encoded(bucket, key),
                self.tmp_path(),
            );
            blocking(move || composite::materialize(&root, &encoded, &source, &tmp)).await?;
        }
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let (dest, tmp) = (self.object_path(&bucket, &key)?, self.tmp_path());
        blocking(move || unshare(&dest, &tmp)).await?;
        self.replacing(&bucket, &key, self.inner.copy_object(req))
            .await
    }

    /// An object's file removed; a key that is already gone (never written,
    /// or removed by a delete racing this one) is deleted too, as S3 answers
    /// 204 for both. s3s-fs checks that the file exists, then removes it,
    /// and answers 500 when another delete removed it in between. Folder
    /// keys (`…/`) stay s3s-fs's.
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        if req.input.key.ends_with('/') {
            return self.inner.delete_object(req).await;
        }
        let (bucket, key) = (&req.input.bucket, &req.input.key);
        let path = self.object_path(bucket, key)?;
        let removed = async {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => self.bucket_exists(bucket),
                Err(e) => Err(internal(e)),
            }
        };
        self.replacing(bucket, key, removed).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let bucket = req.input.bucket.clone();
        let objects: Vec<(String, u64)> = (req.input.delete.objects.iter())
            .filter_map(|o| {
                let inode = composite::inode(&self.object_path(&bucket, &o.key).ok()?)?;
                Some((Self::encoded(&bucket, &o.key), inode))
            })
            .collect();
        let deleted = self.inner.delete_objects(req).await;
        let root = self.root.clone();
        blocking(move || {
            for (encoded, inode) in objects {
                composite::drop_replaced(&root, &encoded, inode);
            }
            Ok(())
        })
        .await?;
        deleted
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.inner.list_objects(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        // Walks only the prefix's folder: see listing.rs.
        let input = req.input;
        self.bucket_exists(&input.bucket)?;
        let bucket = self.object_path(&input.bucket, "")?;
        let output = blocking(move || super::listing::list_objects_v2(&bucket, input)).await?;
        Ok(S3Response::new(output))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.inner.create_multipart_upload(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let upload = self
            .verify_upload(req.credentials.as_ref(), &req.input.upload_id)
            .await?;
        let ListPartsInput {
            bucket,
            key,
            upload_id,
            ..
        } = req.input;
        let root = self.root.clone();
        let prefix = format!(".upload_id-{upload}.");
        let numbers = blocking(move || {
            let mut numbers = std::collections::BTreeSet::new();
            for entry in std::fs::read_dir(&root)? {
                let name = entry?.file_name();
                let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                    continue;
                };
                let number = rest
                    .strip_prefix("part-")
                    .or_else(|| rest.strip_prefix("range-"))
                    .and_then(|n| n.parse::<i32>().ok());
                numbers.extend(number);
            }
            Ok(numbers)
        })
        .await?;
        let mut parts = Vec::new();
        for number in numbers {
            let data = self.part_data(&upload, number).map_err(internal)?;
            if let Some(data) = data {
                parts.push(Part {
                    part_number: Some(number),
                    size: Some(data.len() as i64),
                    ..Default::default()
                });
            }
        }
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(bucket),
            key: Some(key),
            upload_id: Some(upload_id),
            parts: Some(parts),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.inner.abort_multipart_upload(req).await
    }

    // --- the data path ---

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let path = self.object_path(&input.bucket, &input.key)?;
        let attributes_path = self.attributes_path(&input.bucket, &input.key, None);
        let info_path = self.info_path(&input.bucket, &input.key);
        let (root, encoded) = (self.root.clone(), Self::encoded(&input.bucket, &input.key));
        let object = path.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let file = File::open(&path)?;
            let meta = file.metadata()?;
            if meta.is_dir() {
                return Err(io::Error::new(io::ErrorKind::NotFound, "a folder"));
            }
            let manifest = composite::of(&root, &encoded, &meta)?;
            let attributes: Attributes = std::fs::read(&attributes_path)
                .ok()
                .and_then(|c| serde_json::from_slice(&c).ok())
                .unwrap_or_default();
            let info: Option<serde_json::Value> = std::fs::read(&info_path)
                .ok()
                .and_then(|c| serde_json::from_slice(&c).ok());
            Ok((file, meta, manifest, attributes, info))
        })
        .await
        .map_err(internal)?;
        let (file, meta, manifest, attributes, info) = match opened {
            Ok(opened) => opened,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(s3_error!(NoSuchKey)),
            Err(e) => return Err(internal(e)),
        };
        let etag = info
            .as_ref()
            .and_then(|i| i.get("e_tag"))
            .and_then(|e| e.as_str())
            .map(str::to_owned);
        let etag = match (etag, &manifest) {
            (Some(etag), _) => etag,
            // Completed, and stopped before its ETag was recorded.
            (None, Some(_)) => format!("{:016x}{:016x}", meta.ino(), meta.len()),
            // An object s3s-fs wrote without an ETag record: let it work one out.
            (None, None) => return self.inner.get_object(S3Request { input, ..req }).await,
        };
        let file_len = meta.len();
        let (range, content_range) = match &input.range {
            None => (0..file_len, None),
            Some(range) => {
                let range = range.check(file_len).map_err(|_| s3_error!(InvalidRange))?;
                let content_range = format!("bytes {}-{}/{file_len}", range.start, range.end - 1);
                (range, Some(content_range))
            }
        };
        let len = range.end - range.start;
        let body = match manifest {
            Some(manifest) => {
                let segments = manifest.segments(&self.root);
                read_blocks(None, composite::range_of(&segments, range.start, len))
            }
            None => {
                let whole = Segment {
                    path: object,
                    start: range.start,
                    len,
                };
                read_blocks(Some(file), vec![whole])
            }
        };
        let output = GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            content_length: Some(len as i64),
            content_range,
            last_modified: meta.modified().ok().map(Timestamp::from),
            metadata: attributes.user_metadata,
            content_encoding: attributes.content_encoding,
            content_type: attributes.content_type,
            content_disposition: attributes.content_disposition,
            content_language: attributes.content_language,
            cache_control: attributes.cache_control,
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        self.replacing(&bucket, &key, self.put(req)).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = &req.input;
        let checked = asks_for_digest!(req);
        if checked {
            return self.inner.upload_part(req).await;
        }
        if !(1..=10_000).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let upload = self
            .verify_upload(req.credentials.as_ref(), &input.upload_id)
            .await?;
        let number = req.input.part_number;
        let path = self.part_path(&upload, number);
        let body = req.input.body.ok_or_else(|| s3_error!(IncompleteBody))?;
        self.write_body(body, path).await?;
        // Uploaded again after a copy: the upload replaces the copy.
        let (link, range) = self.ref_paths(&upload, number);
        let _ = std::fs::remove_file(range);
        let _ = std::fs::remove_file(link);
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(self.new_etag())),
            ..Default::default()
        }))
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        if !(1..=10_000).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let upload = self
            .verify_upload(req.credentials.as_ref(), &input.upload_id)
            .await?;
        let (bucket, key) = copy_source(&input.copy_source)?;
        let source = self.object_path(bucket, key)?;
        let range = input.copy_source_range.clone();
        let number = input.part_number;
        let (link, range_path) = self.ref_paths(&upload, number);
        let (tmp_link, tmp_range) = (self.tmp_path(), self.tmp_path());
        let part = self.part_path(&upload, number);
        let (root, encoded) = (self.root.clone(), Self::encoded(bucket, key));
        let copied = tokio::task::spawn_blocking(move || -> S3Result<()> {
            let meta = match std::fs::metadata(&source) {
                Ok(meta) if meta.is_file() => meta,
                Ok(_) => return Err(s3_error!(NoSuchKey)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(s3_error!(NoSuchKey)),
                Err(e) => return Err(internal(e)),
            };
            let file_len = meta.len();
            let (start, len) = copy_range(range.as_deref(), file_len)?;
            if let Some(manifest) = composite::of(&root, &encoded, &meta).map_err(internal)? {
                // A composite source: the range's bytes become the part's
                // own file, as if uploaded.
                let segments = composite::range_of(&manifest.segments(&root), start, len);
                let copy = || -> io::Result<()> {
                    composite::concatenate(&segments, &tmp_link)?;
                    std::fs::rename(&tmp_link, &part)?;
                    let _ = std::fs::remove_file(&range_path);
                    let _ = std::fs::remove_file(&link);
                    Ok(())
                };
                return copy().map_err(|e| {
                    let _ = std::fs::remove_file(&tmp_link);
                    internal(e)
                });
            }
            let pin = || -> io::Result<()> {
                // No bytes are copied: the source's file is pinned by a
                // hard link (a later PUT of the source renames a new file
                // over its name and leaves this one alone).
                std::fs::hard_link(&source, &tmp_link)?;
                if std::fs::metadata(&tmp_link)?.len() != file_len {
                    return Err(io::Error::other("the source changed while being copied"));
                }
                std::fs::write(&tmp_range, format!("{start} {len}"))?;
                std::fs::rename(&tmp_range, &range_path)?;
                std::fs::rename(&tmp_link, &link)?;
                // Copied again after an upload: the copy replaces the upload.
                match std::fs::remove_file(&part) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            };
            pin().map_err(|e| {
                let _ = std::fs::remove_file(&tmp_link);
                let _ = std::fs::remove_file(&tmp_range);
                internal(e)
            })
        })
        .await
        .map_err(internal)?;
        copied?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(self.new_etag())),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        if req.input.if_match.is_some() || req.input.if_none_match.is_some() {
            return self.inner.complete_multipart_upload(req).await;
        }
        let upload = self
            .verify_upload(req.credentials.as_ref(), &req.input.upload_id)
            .await?;
        let CompleteMultipartUploadInput {
            bucket,
            key,
            multipart_upload,
            ..
        } = req.input;
        let numbers: Vec<i32> = multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .iter()
            .map(|p| p.part_number.unwrap_or(0))
            .collect();
        if numbers.is_empty() {
            return Err(s3_error!(InvalidPart, "You must specify at least one part"));
        }
        if numbers.iter().enumerate().any(|(i, &n)| n != i as i32 + 1) {
            return Err(s3_error!(
                InvalidPartOrder,
                "parts must be numbered 1, 2, 3, … in order"
            ));
        }
        let mut parts = Vec::with_capacity(numbers.len());
        for &n in &numbers {
            match self.part_data(&upload, n).map_err(internal)? {
                Some(data) => parts.push(data),
                None => return Err(s3_error!(InvalidPart, "part {n} was never uploaded")),
            }
        }
        if parts[..parts.len() - 1].iter().any(|p| p.len() < MIN_PART) {
            return Err(s3_error!(EntityTooSmall));
        }
        let object = self.object_path(&bucket, &key)?;
        let tmp = [self.tmp_path(), self.tmp_path()];
        let upload_info = self.root.join(format!(".upload-{upload}.json"));
        let upload_attributes = self.attributes_path(&bucket, &key, Some(&upload));
        let attributes = self.attributes_path(&bucket, &key, None);
        let (root, encoded) = (self.root.clone(), Self::encoded(&bucket, &key));
        let (object_bucket, object_key) = (bucket.clone(), key.clone());
        let assembled = tokio::task::spawn_blocking(move || -> S3Result<()> {
            let replaced = composite::inode(&object);
            let complete = || -> io::Result<()> {
                match parts.as_slice() {
                    // One uploaded part, or one copy of a whole object: the
                    // file itself becomes the object.
                    [PartData::File(path, _)] => return rename_into_place(path, &object),
                    [part @ PartData::Ref {
                        link,
                        start: 0,
                        len,
                        ..
                    }] if std::fs::metadata(link)?.len() == *len => {
                        rename_into_place(link, &object)?;
                        part.remove();
                        return Ok(());
                    }
                    _ => {}
                }
                let target = composite::Target {
                    root: &root,
                    encoded: &encoded,
                    bucket: &object_bucket,
                    key: &object_key,
                    upload: &upload,
                    object: &object,
                    tmp,
                };
                composite::complete(&target, &parts)
            };
            complete().map_err(internal)?;
            if let Some(replaced) = replaced {
                composite::drop_replaced(&root, &encoded, replaced);
            }
            let _ = std::fs::remove_file(&upload_info);
            if upload_attributes.exists() {
                std::fs::rename(&upload_attributes, &attributes).map_err(internal)?;
            }
            Ok(())
        })
        .await
        .map_err(internal)?;
        assembled?;
        let etag = format!("{}-{}", self.new_etag(), numbers.len());
        self.save_etag(&bucket, &key, &etag).await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(bucket),
            key: Some(key),
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges_follow_s3() {
        assert_eq!(copy_range(None, 10).unwrap(), (0, 10));
        assert_eq!(copy_range(Some("bytes=2-5"), 10).unwrap(), (2, 4));
        assert_eq!(copy_range(Some("bytes=0-9"), 10).unwrap(), (0, 10));
        assert!(copy_range(Some("bytes=0-10"), 10).is_err());
        assert!(copy_range(Some("bytes=5-2"), 10).is_err());
        assert!(copy_range(Some("2-5"), 10).is_err());
        assert!(copy_range(Some("bytes=2-"), 10).is_err());
    }

    #[test]
    fn keys_cannot_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FastFs::new(dir.path()).unwrap();
        assert!(fs.object_path("b", "a/b.csv").is_ok());
        assert!(fs.object_path("b", "../x").is_err());
        assert!(fs.object_path("b", "a/../../x").is_err());
        assert!(fs.object_path("b", "/etc/passwd").is_err());
        assert!(fs.object_path("..", "x").is_err());
        assert!(fs.object_path(".upload-x", "y").is_err());
    }
}
