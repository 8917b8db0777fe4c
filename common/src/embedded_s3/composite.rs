//! Multipart objects of the embedded endpoint kept as their parts.
//!
//! On a file system without reflinks (ext4) completing an upload by
//! concatenating its parts writes every byte a second time: an export of
//! 18 M rows wrote 10 GB for its 5 GB of files and waited on the disk.
//! Here completing writes none of the object's bytes. The parts' files (an
//! uploaded part, or the pinned source of a copied one) are hard-linked as
//! the object's *pieces*, a manifest lists them, and the object's own file
//! is a sparse placeholder of the object's size, so that its size, time
//! and listing are those of any object, for this endpoint and s3s-fs
//! alike. A GET reads the pieces in order.
//!
//! The manifest is named after the placeholder's inode and records its
//! size and modification time: a placeholder replaced by any write (every
//! write renames a new file into place, s3s-fs's too, or rewrites it, which
//! changes its time) no longer matches, so a manifest is never read for
//! another file. Replacing or deleting an object drops the manifest and
//! pieces of the composite object it was ([`drop_replaced`]); whatever a
//! crash leaves behind is swept at start-up ([`sweep`]). Operations left
//! to s3s-fs that read an object's bytes (CopyObject) first make a
//! composite object a plain file ([`materialize`]).

use std::collections::HashSet;
use std::fs::{File, Metadata};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::parts::PartData;

/// Threads concatenating one object's bytes at most.
const MAX_CONCATENATING_THREADS: usize = 4;

/// What makes up a composite object, in the file beside its placeholder.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Manifest {
    bucket: String,
    key: String,
    /// The placeholder's size (the object's) and modification time, in
    /// nanoseconds since the epoch: with its inode, in the manifest's
    /// name, what tells that the placeholder is still the one made.
    len: u64,
    modified: u64,
    pieces: Vec<Piece>,
}

/// `len` bytes from `start` of the file `file`, in the endpoint's root.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Piece {
    file: String,
    start: u64,
    len: u64,
}

/// Bytes of one file: `len` from `start`.
#[derive(Clone, Debug)]
pub(super) struct Segment {
    pub(super) path: PathBuf,
    pub(super) start: u64,
    pub(super) len: u64,
}

impl Manifest {
    /// Whether `meta`, the file of inode `inode`, is the placeholder this
    /// manifest was made for.
    fn describes(&self, inode: u64, meta: &Metadata) -> bool {
        meta.ino() == inode
            && meta.len() == self.len
            && modified_nanos(meta).is_ok_and(|m| m == self.modified)
    }

    /// The pieces' bytes, in order, as files of `root`.
    pub(super) fn segments(&self, root: &Path) -> Vec<Segment> {
        self.pieces
            .iter()
            .map(|p| Segment {
                path: root.join(&p.file),
                start: p.start,
                len: p.len,
            })
            .collect()
    }
}

/// The bytes `[start, start + len)` of an object made of `segments`.
pub(super) fn range_of(segments: &[Segment], start: u64, len: u64) -> Vec<Segment> {
    let (mut at, end) = (0, start + len);
    let mut range = Vec::new();
    for s in segments {
        let (from, to) = (at.max(start), (at + s.len).min(end));
        if from < to {
            range.push(Segment {
                path: s.path.clone(),
                start: s.start + (from - at),
                len: to - from,
            });
        }
        at += s.len;
    }
    range
}

fn modified_nanos(meta: &Metadata) -> io::Result<u64> {
    let since = meta.modified()?.duration_since(UNIX_EPOCH);
    Ok(since.map_or(0, |d| d.as_nanos() as u64))
}

fn manifest_path(root: &Path, encoded: &str, inode: u64) -> PathBuf {
    root.join(format!("{encoded}.composite-{inode}.json"))
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The manifest of the object whose file's metadata is `meta` (`encoded`
/// names the object's files beside the buckets), if it is a composite one.
pub(super) fn of(root: &Path, encoded: &str, meta: &Metadata) -> io::Result<Option<Manifest>> {
    let content = match std::fs::read(manifest_path(root, encoded, meta.ino())) {
        Ok(content) => content,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let manifest: Manifest = serde_json::from_slice(&content).map_err(io::Error::other)?;
    Ok(manifest.describes(meta.ino(), meta).then_some(manifest))
}

/// The inode of the file at `path`, if there is one: what a write about to
/// replace (or delete) it passes to [`drop_replaced`] afterwards.
pub(super) fn inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Removes the manifest and pieces of the composite object whose
/// placeholder was the inode `inode`, unless it is still in place (a write
/// that failed, or raced another).
pub(super) fn drop_replaced(root: &Path, encoded: &str, inode: u64) {
    let path = manifest_path(root, encoded, inode);
    let Ok(content) = std::fs::read(&path) else {
        return;
    };
    if let Ok(manifest) = serde_json::from_slice::<Manifest>(&content) {
        if still_in_place(root, &manifest, inode) {
            return;
        }
        for piece in &manifest.pieces {
            let _ = std::fs::remove_file(root.join(&piece.file));
        }
    }
    let _ = std::fs::remove_file(&path);
}

fn still_in_place(root: &Path, manifest: &Manifest, inode: u64) -> bool {
    let object = root.join(&manifest.bucket).join(&manifest.key);
    std::fs::metadata(object).is_ok_and(|meta| manifest.describes(inode, &meta))
}

/// Where a composite object completed from `upload` is written.
pub(super) struct Target<'a> {
    pub(super) root: &'a Path,
    /// The start of the names of the object's files beside the buckets.
    pub(super) encoded: &'a str,
    pub(super) bucket: &'a str,
    pub(super) key: &'a str,
    pub(super) upload: &'a str,
    /// The object's file.
    pub(super) object: &'a Path,
    /// Two temporary names (placeholder, manifest).
    pub(super) tmp: [PathBuf; 2],
}

/// Completes an upload of `parts` as a composite object (see the module
/// docs). The parts' own names go only once the object is in place: a
/// completion that fails (or a crash) leaves the upload as it was. The
/// caller drops the object it replaced ([`drop_replaced`]).
pub(super) fn complete(target: &Target, parts: &[PartData]) -> io::Result<()> {
    let Target {
        root,
        encoded,
        bucket,
        key,
        upload,
        object,
        tmp: [placeholder_tmp, manifest_tmp],
    } = target;
    let mut pieces = Vec::with_capacity(parts.len());
    let mut placed_manifest = None;
    let made = (|| -> io::Result<()> {
        for (i, part) in parts.iter().enumerate() {
            let (source, start) = part.source();
            let file = format!("{encoded}.piece-{upload}-{}", i + 1);
            let pin = root.join(&file);
            // Left by a completion of this upload that failed.
            remove_if_there(&pin)?;
            std::fs::hard_link(source, &pin)?;
            pieces.push(Piece {
                file,
                start,
                len: part.len(),
            });
        }
        let len = parts.iter().map(PartData::len).sum();
        let placeholder = File::create(placeholder_tmp)?;
        placeholder.set_len(len)?;
        let meta = placeholder.metadata()?;
        let manifest = Manifest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            len,
            modified: modified_nanos(&meta)?,
            pieces: pieces.clone(),
        };
        let content = serde_json::to_vec(&manifest).map_err(io::Error::other)?;
        std::fs::write(manifest_tmp, content)?;
        let path = placed_manifest.insert(manifest_path(root, encoded, meta.ino()));
        std::fs::rename(manifest_tmp, path)?;
        if let Some(parent) = object.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(placeholder_tmp, object)
    })();
    if let Err(error) = made {
        let _ = std::fs::remove_file(placeholder_tmp);
        let _ = std::fs::remove_file(manifest_tmp);
        if let Some(path) = placed_manifest {
            let _ = std::fs::remove_file(path);
        }
        for piece in &pieces {
            let _ = std::fs::remove_file(root.join(&piece.file));
        }
        return Err(error);
    }
    parts.iter().for_each(PartData::remove);
    Ok(())
}

/// Makes the object at `object` a plain file if it is a composite one (its
/// bytes concatenated into `tmp`, renamed into place).
pub(super) fn materialize(root: &Path, encoded: &str, object: &Path, tmp: &Path) -> io::Result<()> {
    let meta = match std::fs::metadata(object) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let Some(manifest) = of(root, encoded, &meta)? else {
        return Ok(());
    };
    let made = concatenate(&manifest.segments(root), tmp).and_then(|()| {
        // Replaced while copying: the newer object stays.
        if !still_in_place(root, &manifest, meta.ino()) {
            return std::fs::remove_file(tmp);
        }
        std::fs::rename(tmp, object)
    });
    if made.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    made?;
    drop_replaced(root, encoded, meta.ino());
    Ok(())
}

/// Removes what a crash left: manifests whose placeholder was replaced or
/// deleted, and pieces no manifest lists.
pub(super) fn sweep(root: &Path) -> io::Result<()> {
    let mut manifests = Vec::new();
    let mut pieces = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !name.starts_with(".bucket-") {
            continue;
        }
        if let Some(inode) = name
            .strip_suffix(".json")
            .and_then(|n| n.rsplit_once(".composite-"))
            .and_then(|(_, inode)| inode.parse::<u64>().ok())
        {
            manifests.push((entry.path(), inode));
        } else if name.contains(".piece-") {
            pieces.push(name);
        }
    }
    let mut listed = HashSet::new();
    for (path, inode) in manifests {
        let manifest = std::fs::read(&path)
            .ok()
            .and_then(|c| serde_json::from_slice::<Manifest>(&c).ok());
        match manifest {
            Some(manifest) if still_in_place(root, &manifest, inode) => {
                listed.extend(manifest.pieces.into_iter().map(|p| p.file));
            }
            _ => remove_if_there(&path)?,
        }
    }
    for piece in pieces.iter().filter(|p| !listed.contains(*p)) {
        remove_if_there(&root.join(piece))?;
    }
    Ok(())
}

/// Writes `segments` one after the other into a new file `dest`, several
/// at once: each copy is the kernel's, on one core.
pub(super) fn concatenate(segments: &[Segment], dest: &Path) -> io::Result<()> {
    let mut offsets = Vec::with_capacity(segments.len());
    let mut total = 0;
    for segment in segments {
        offsets.push(total);
        total += segment.len;
    }
    let out = File::create(dest)?;
    out.set_len(total)?;
    let copiers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_CONCATENATING_THREADS)
        .min(segments.len());
    let next = AtomicUsize::new(0);
    let copy = || -> io::Result<()> {
        let mut out = std::fs::OpenOptions::new().write(true).open(dest)?;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(segment) = segments.get(i) else {
                return Ok(());
            };
            out.seek(SeekFrom::Start(offsets[i]))?;
            segment.append_to(&mut out)?;
        }
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..copiers).map(|_| scope.spawn(copy)).collect();
        let mut result = copy();
        for helper in helpers {
            let joined = helper
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a copying thread panicked")));
            result = result.and(joined);
        }
        result
    })
}

impl Segment {
    /// Writes the segment's bytes at the current position of `out` (the
    /// kernel copies).
    fn append_to(&self, out: &mut File) -> io::Result<()> {
        let mut source = File::open(&self.path)?;
        source.seek(SeekFrom::Start(self.start))?;
        let copied = io::copy(&mut io::Read::take(&source, self.len), out)?;
        if copied == self.len {
            Ok(())
        } else {
            Err(io::Error::other("a part is shorter than recorded"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(lens: &[u64]) -> Vec<Segment> {
        lens.iter()
            .enumerate()
            .map(|(i, &len)| Segment {
                path: PathBuf::from(format!("p{i}")),
                start: 100,
                len,
            })
            .collect()
    }

    fn shape(range: &[Segment]) -> Vec<(String, u64, u64)> {
        range
            .iter()
            .map(|s| (s.path.display().to_string(), s.start, s.len))
            .collect()
    }

    #[test]
    fn ranges_cut_the_pieces_they_cover() {
        let all = segments(&[10, 20, 30]);
        assert_eq!(
            shape(&range_of(&all, 0, 60)),
            [
                ("p0".into(), 100, 10),
                ("p1".into(), 100, 20),
                ("p2".into(), 100, 30)
            ]
        );
        assert_eq!(
            shape(&range_of(&all, 5, 10)),
            [("p0".into(), 105, 5), ("p1".into(), 100, 5)]
        );
        assert_eq!(shape(&range_of(&all, 10, 20)), [("p1".into(), 100, 20)]);
        assert_eq!(shape(&range_of(&all, 59, 1)), [("p2".into(), 129, 1)]);
        assert!(range_of(&all, 60, 0).is_empty());
    }
}

/// Through the endpoint over HTTP, as the exports use it.
#[cfg(test)]
mod served {
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    use bytes::Bytes;

    use crate::config::S3Config;
    use crate::embedded_s3::EmbeddedS3;
    use crate::s3::{ObjectStore, StorageError};

    const MIB: usize = 1 << 20;

    async fn endpoint(root: &Path) -> (EmbeddedS3, ObjectStore) {
        let listen = "127.0.0.1:0".parse().unwrap();
        let s3 = EmbeddedS3::start(root, listen, "composite", "composite-secret")
            .await
            .unwrap();
        let store = ObjectStore::new(&s3.client_config(&S3Config::default()));
        store.ensure_bucket("bucket").await.unwrap();
        (s3, store)
    }

    /// `len` bytes that differ at every offset from any other seed's.
    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Completes `bucket/<key>` from an uploaded part, a copied range of the
    /// staging object `bucket/stage` and an uploaded last part; returns the
    /// bytes it must hold.
    async fn complete_three_parts(store: &ObjectStore, key: &str, seed: u64) -> Vec<u8> {
        let (head, staged, tail) = (
            bytes(6 * MIB, seed),
            bytes(12 * MIB, seed + 1),
            bytes(100, seed + 2),
        );
        let stage = Bytes::copy_from_slice(&staged);
        store
            .put("bucket", "stage", stage, "text/csv")
            .await
            .unwrap();
        let id = store
            .create_multipart("bucket", key, "text/csv")
            .await
            .unwrap();
        let e1 = store
            .upload_part("bucket", key, &id, 1, head.clone().into())
            .await
            .unwrap();
        let range = MIB as u64..12 * MIB as u64;
        let e2 = (store.upload_part_copy("bucket", key, &id, 2, "stage", range))
            .await
            .unwrap();
        let e3 = store
            .upload_part("bucket", key, &id, 3, tail.clone().into())
            .await
            .unwrap();
        let parts = [(1, e1), (2, e2), (3, e3)];
        store
            .complete_multipart("bucket", key, &id, &parts)
            .await
            .unwrap();
        [&head[..], &staged[MIB..], &tail[..]].concat()
    }

    /// The names of the endpoint's files beside the buckets that hold
    /// composite objects' pieces and manifests.
    fn composite_files(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".piece-") || n.contains(".composite-"))
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_completed_upload_reads_back_whole_and_in_ranges_with_no_bytes_copied() {
        let dir = tempfile::tempdir().unwrap();
        let (_s3, store) = endpoint(dir.path()).await;
        let expected = complete_three_parts(&store, "out/file.csv", 1).await;

        assert!(store.get("bucket", "out/file.csv").await.unwrap() == expected);
        let len = expected.len() as u64;
        for range in [
            0..10,
            6 * MIB as u64 - 5..6 * MIB as u64 + 5,
            len - 150..len,
            3..len - 3,
        ] {
            let got = store
                .get_range("bucket", "out/file.csv", range.clone())
                .await
                .unwrap();
            let want = &expected[range.start as usize..range.end as usize];
            assert!(got == want, "bytes {range:?} differ");
        }
        assert_eq!(
            store.head("bucket", "out/file.csv").await.unwrap(),
            Some(len)
        );
        let listed = store.list("bucket", "out/").await.unwrap();
        assert_eq!(
            (listed[0].key.as_str(), listed[0].size),
            ("out/file.csv", len)
        );
        // The object's own file holds no data: nothing was written twice.
        let placeholder = std::fs::metadata(dir.path().join("bucket/out/file.csv")).unwrap();
        assert_eq!(placeholder.len(), len);
        assert!(
            placeholder.blocks() * 512 < MIB as u64,
            "{} blocks",
            placeholder.blocks()
        );

        // The staging object deleted: its bytes stay the object's.
        store.delete("bucket", "stage").await.unwrap();
        assert!(store.get("bucket", "out/file.csv").await.unwrap() == expected);

        // Replaced by a PUT: the new bytes, and no piece left behind.
        let put = Bytes::from_static(b"replaced\n");
        store
            .put("bucket", "out/file.csv", put.clone(), "text/csv")
            .await
            .unwrap();
        assert_eq!(store.get("bucket", "out/file.csv").await.unwrap(), put);
        assert_eq!(composite_files(dir.path()), Vec::<String>::new());

        // Replaced by another completion: the newer bytes, only its pieces.
        complete_three_parts(&store, "out/file.csv", 10).await;
        let newer = complete_three_parts(&store, "out/file.csv", 20).await;
        assert!(store.get("bucket", "out/file.csv").await.unwrap() == newer);
        assert_eq!(
            composite_files(dir.path()).len(),
            3 + 1,
            "{:?}",
            composite_files(dir.path())
        );
    }

    #[tokio::test]
    async fn deleted_composite_objects_leave_nothing_and_a_restart_sweeps_what_a_crash_left() {
        let dir = tempfile::tempdir().unwrap();
        let (s3, store) = endpoint(dir.path()).await;
        complete_three_parts(&store, "one", 1).await;
        store.delete("bucket", "one").await.unwrap();
        assert!(matches!(
            store.get("bucket", "one").await,
            Err(StorageError::NotFound { .. })
        ));
        assert_eq!(composite_files(dir.path()), Vec::<String>::new());

        // A batch delete too.
        complete_three_parts(&store, "two", 2).await;
        let two = ObjectIdentifier::builder().key("two").build().unwrap();
        let delete = Delete::builder().objects(two).build().unwrap();
        (store
            .client()
            .delete_objects()
            .bucket("bucket")
            .delete(delete)
            .send())
        .await
        .unwrap();
        assert!(matches!(
            store.get("bucket", "two").await,
            Err(StorageError::NotFound { .. })
        ));
        assert_eq!(composite_files(dir.path()), Vec::<String>::new());

        // What a crash between the steps of a completion leaves: pieces
        // and a manifest whose placeholder never landed.
        let kept = complete_three_parts(&store, "three", 3).await;
        drop(s3);
        let files = composite_files(dir.path());
        let manifest = files.iter().find(|n| n.contains(".composite-")).unwrap();
        let piece = files.iter().find(|n| n.contains(".piece-")).unwrap();
        let stray_manifest = manifest.replace(".composite-", ".composite-1");
        std::fs::copy(dir.path().join(manifest), dir.path().join(&stray_manifest)).unwrap();
        let stray_piece = piece.replace(".piece-", ".piece-0");
        std::fs::hard_link(dir.path().join(piece), dir.path().join(&stray_piece)).unwrap();
        let (_s3, store) = endpoint(dir.path()).await;
        assert_eq!(composite_files(dir.path()), files);
        assert!(store.get("bucket", "three").await.unwrap() == kept);
    }

    #[tokio::test]
    async fn a_composite_object_copies_whole_and_as_a_part() {
        let dir = tempfile::tempdir().unwrap();
        let (_s3, store) = endpoint(dir.path()).await;
        let expected = complete_three_parts(&store, "src", 1).await;

        (store
            .client()
            .copy_object()
            .bucket("bucket")
            .key("copy")
            .copy_source("bucket/src")
            .send())
        .await
        .unwrap();
        assert!(store.get("bucket", "copy").await.unwrap() == expected);
        assert!(store.get("bucket", "src").await.unwrap() == expected);

        let expected = complete_three_parts(&store, "src", 2).await;
        let id = store
            .create_multipart("bucket", "part-copy", "text/csv")
            .await
            .unwrap();
        let range = 5 * MIB as u64..expected.len() as u64 - 50;
        let etag = (store.upload_part_copy("bucket", "part-copy", &id, 1, "src", range.clone()))
            .await
            .unwrap();
        (store.complete_multipart("bucket", "part-copy", &id, &[(1, etag)]))
            .await
            .unwrap();
        let got = store.get("bucket", "part-copy").await.unwrap();
        assert!(got == expected[range.start as usize..range.end as usize]);
    }
}
