//! The parts of a multipart upload of the embedded endpoint on disk, in
//! s3s-fs's layout: an uploaded part is a file of its own; a copied part a
//! hard link to the source's file and the range, in a file beside it.

use std::io;
use std::path::{Path, PathBuf};

pub(super) fn part_path(root: &Path, upload: &str, part: i32) -> PathBuf {
    root.join(format!(".upload_id-{upload}.part-{part}"))
}

/// A copied part is kept as a hard link to the source's file (its bytes as
/// they were when copied: objects are only ever replaced by a rename, never
/// written in place) and the range, in a file beside it. s3s-fs's abort
/// removes both with the upload's other files.
pub(super) fn ref_paths(root: &Path, upload: &str, part: i32) -> (PathBuf, PathBuf) {
    (
        root.join(format!(".upload_id-{upload}.ref-{part}")),
        root.join(format!(".upload_id-{upload}.range-{part}")),
    )
}

/// What makes up part `n` of `upload`, if it was uploaded or copied.
pub(super) fn part_data(root: &Path, upload: &str, part: i32) -> io::Result<Option<PartData>> {
    let path = part_path(root, upload, part);
    match std::fs::metadata(&path) {
        Ok(meta) => return Ok(Some(PartData::File(path, meta.len()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let (link, range_path) = ref_paths(root, upload, part);
    let range = match std::fs::read_to_string(&range_path) {
        Ok(range) => range,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let parsed = range
        .split_once(' ')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    let (start, len) = parsed.ok_or_else(|| io::Error::other("malformed part range"))?;
    Ok(Some(PartData::Ref {
        link,
        range: range_path,
        start,
        len,
    }))
}

/// A part of a multipart upload on disk.
pub(super) enum PartData {
    /// Uploaded: the whole file, of this size.
    File(PathBuf, u64),
    /// Copied: `len` bytes from `start` of the pinned source `link`, the
    /// range recorded in the file `range`.
    Ref {
        link: PathBuf,
        range: PathBuf,
        start: u64,
        len: u64,
    },
}

impl PartData {
    pub(super) fn len(&self) -> u64 {
        match self {
            PartData::File(_, len) | PartData::Ref { len, .. } => *len,
        }
    }

    /// The file that holds the part's bytes and where they start in it.
    pub(super) fn source(&self) -> (&Path, u64) {
        match self {
            PartData::File(path, _) => (path, 0),
            PartData::Ref { link, start, .. } => (link, *start),
        }
    }

    pub(super) fn remove(&self) {
        match self {
            PartData::File(path, _) => {
                let _ = std::fs::remove_file(path);
            }
            PartData::Ref { link, range, .. } => {
                let _ = std::fs::remove_file(link);
                let _ = std::fs::remove_file(range);
            }
        }
    }
}
