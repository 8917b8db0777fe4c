//! Completing a multipart upload of the embedded endpoint without copying
//! the whole object at the end. On a file system without reflinks the
//! parts' bytes must be copied into the object's file once; here they are
//! copied while the upload goes on: after each part request, the parts
//! that follow the ones appended so far (in number order, while they are
//! all there) are appended to one file, by a blocking thread, off the
//! request. Completing then appends only what is missing and renames the
//! file into place. An export assembled in stages uploads its parts while
//! its later chunks render, so its completion is a rename and its last few
//! parts.
//!
//! A part uploaded or copied again after it was appended is found on
//! completion (every write renames a new file into place: the part's
//! [`PartId`] changes) and the file is cut back to the parts before it.
//! Nothing here is durable: after a restart the parts are concatenated on
//! completion as before (the file is swept with the other temporary files).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::parts::PartData;

/// What identifies a part's bytes on disk: its length, where they start in
/// the file that holds them, and when that file (an uploaded part, or a
/// copied part's range record) was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PartId {
    written: SystemTime,
    start: u64,
    len: u64,
}

impl PartId {
    fn of(part: &PartData) -> io::Result<Self> {
        let (record, start) = part.record();
        Ok(Self {
            written: std::fs::metadata(record)?.modified()?,
            start,
            len: part.len(),
        })
    }
}

/// The uploads being assembled, by upload id.
#[derive(Default)]
pub(super) struct Assemblies(Mutex<HashMap<String, Arc<Mutex<Assembly>>>>);

impl Assemblies {
    /// The upload's assembly, begun (into `file`) if it has none.
    pub(super) fn get(&self, upload: &str, file: impl FnOnce() -> PathBuf) -> Arc<Mutex<Assembly>> {
        let mut uploads = self.0.lock().unwrap_or_else(|e| e.into_inner());
        uploads
            .entry(upload.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Assembly {
                    file: file(),
                    parts: Vec::new(),
                    ended: false,
                }))
            })
            .clone()
    }

    /// The upload's assembly, forgotten: the upload is being completed or
    /// aborted.
    pub(super) fn take(&self, upload: &str) -> Option<Arc<Mutex<Assembly>>> {
        let mut uploads = self.0.lock().unwrap_or_else(|e| e.into_inner());
        uploads.remove(upload)
    }
}

/// Parts `1..=parts.len()` of an upload, appended in order to `file`.
pub(super) struct Assembly {
    file: PathBuf,
    parts: Vec<PartId>,
    /// Completed or aborted: nothing more is appended.
    ended: bool,
}

impl Assembly {
    fn appended_len(&self, count: usize) -> u64 {
        self.parts[..count].iter().map(|p| p.len).sum()
    }

    /// Appends the parts after those appended so far while `part(n)` finds
    /// them (`None`: part `n` is not there yet).
    pub(super) fn extend(
        &mut self,
        part: impl Fn(i32) -> io::Result<Option<PartData>>,
    ) -> io::Result<()> {
        while !self.ended {
            let number = self.parts.len() as i32 + 1;
            let Some(data) = part(number)? else {
                return Ok(());
            };
            let id = PartId::of(&data)?;
            let mut out = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&self.file)?;
            let at = self.appended_len(self.parts.len());
            // Whatever a failed append left past the parts goes.
            out.set_len(at)?;
            out.seek(SeekFrom::Start(at))?;
            data.append_to(&mut out)?;
            if PartId::of(&data)? != id {
                // Written again while being appended: completion sees to it.
                return Ok(());
            }
            self.parts.push(id);
        }
        Ok(())
    }

    /// Ends the assembly for completion with `parts` (numbered 1, 2, …):
    /// the file holding them all, if the parts appended so far are the
    /// first ones and at least half the bytes (else the caller
    /// concatenates, with every core). Without such a file, none is left.
    pub(super) fn complete(&mut self, parts: &[PartData]) -> io::Result<Option<PathBuf>> {
        self.ended = true;
        let mut same = 0;
        for (appended, part) in self.parts.iter().zip(parts) {
            if PartId::of(part).ok().as_ref() != Some(appended) {
                break;
            }
            same += 1;
        }
        let total: u64 = parts.iter().map(PartData::len).sum();
        let at = self.appended_len(same);
        if same == 0 || at < total / 2 {
            self.discard();
            return Ok(None);
        }
        let mut out = OpenOptions::new().write(true).open(&self.file)?;
        out.set_len(at)?;
        out.seek(SeekFrom::Start(at))?;
        for part in &parts[same..] {
            part.append_to(&mut out)?;
        }
        Ok(Some(self.file.clone()))
    }

    /// Ends the assembly and removes its file (an abort, or a completion
    /// that concatenates instead).
    pub(super) fn discard(&mut self) {
        self.ended = true;
        let _ = std::fs::remove_file(&self.file);
    }
}
