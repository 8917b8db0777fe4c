//! ListObjectsV2 for the embedded endpoint, walking only the folder of the
//! prefix asked for.
//!
//! s3s-fs walks the whole bucket for every listing (from the bucket's root
//! folder, whatever the prefix), each directory entry a round trip to
//! Tokio's blocking pool: a data query lists its tables' files twice, so
//! its planning grew with every tenant's files in the lake. Here one
//! blocking thread walks the folders under the prefix's last `/`, and,
//! with a delimiter, stops at the first file of a folder the delimiter
//! already folds into one common prefix. Keys, sizes and times are s3s-fs's
//! (no ETags, as there), and so are the pages: sorted by key, at most
//! `max-keys` objects and prefixes, the last key returned as the
//! continuation token.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use s3s::dto::{CommonPrefix, ListObjectsV2Input, ListObjectsV2Output, Object, Timestamp};

/// Every object under `prefix` in the bucket folder `bucket`, sorted by key,
/// and with a `delimiter` the common prefixes that fold keys.
fn walk(
    bucket: &Path,
    prefix: &str,
    delimiter: Option<&str>,
) -> io::Result<(Vec<Object>, BTreeSet<String>)> {
    let base = &prefix[..prefix.rfind('/').map_or(0, |i| i + 1)];
    let mut objects = Vec::new();
    let mut prefixes = BTreeSet::new();
    let mut folders: Vec<(PathBuf, String)> = vec![(bucket.join(base), base.to_owned())];
    while let Some((folder, folder_key)) = folders.pop() {
        let Some(entries) = gone_is_none(std::fs::read_dir(&folder))? else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let key = format!("{folder_key}{name}");
            // An object deleted while the folder is walked is not listed.
            let Some(kind) = gone_is_none(entry.file_type())? else {
                continue;
            };
            if kind.is_dir() {
                let key = format!("{key}/");
                if !(key.starts_with(prefix) || prefix.starts_with(&key)) {
                    continue;
                }
                if let Some(common) = folded(&key, prefix, delimiter) {
                    if !prefixes.contains(common) && holds_a_file(&entry.path())? {
                        prefixes.insert(common.to_owned());
                    }
                    continue;
                }
                folders.push((entry.path(), key));
            } else if kind.is_file() && key.starts_with(prefix) {
                if let Some(common) = folded(&key, prefix, delimiter) {
                    prefixes.insert(common.to_owned());
                    continue;
                }
                let Some(metadata) = gone_is_none(entry.metadata())? else {
                    continue;
                };
                objects.push(Object {
                    key: Some(key),
                    size: Some(i64::try_from(metadata.len()).unwrap_or(i64::MAX)),
                    last_modified: Some(Timestamp::from(metadata.modified()?)),
                    ..Default::default()
                });
            }
        }
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((objects, prefixes))
}

/// The common prefix `key` (under `prefix`) is listed as, if the
/// delimiter occurs in it after the prefix.
fn folded<'k>(key: &'k str, prefix: &str, delimiter: Option<&str>) -> Option<&'k str> {
    let delimiter = delimiter?;
    let at = key.get(prefix.len()..)?.find(delimiter)?;
    Some(&key[..prefix.len() + at + delimiter.len()])
}

/// `None` for what was removed meanwhile (`NotFound`), else the result.
fn gone_is_none<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether any file lies under `folder` (an empty or vanished folder lists
/// nothing).
fn holds_a_file(folder: &Path) -> io::Result<bool> {
    let mut folders = vec![folder.to_owned()];
    while let Some(folder) = folders.pop() {
        let Some(entries) = gone_is_none(std::fs::read_dir(&folder))? else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            let Some(kind) = gone_is_none(entry.file_type())? else {
                continue;
            };
            if kind.is_file() {
                return Ok(true);
            }
            if kind.is_dir() {
                folders.push(entry.path());
            }
        }
    }
    Ok(false)
}

/// One page of the listing `input` asks for, of the bucket folder `bucket`.
/// Blocking: run it on a blocking thread.
pub(super) fn list_objects_v2(
    bucket: &Path,
    input: ListObjectsV2Input,
) -> io::Result<ListObjectsV2Output> {
    let prefix = input
        .prefix
        .as_deref()
        .unwrap_or("")
        .trim_start_matches('/');
    let delimiter = input.delimiter.as_deref().filter(|d| !d.is_empty());
    let max_keys = input.max_keys.unwrap_or(1000).max(0);
    let (objects, prefixes) = walk(bucket, prefix, delimiter)?;
    let after = match (
        input.continuation_token.as_deref(),
        input.start_after.as_deref(),
    ) {
        (Some(token), Some(start)) => Some(token.max(start)),
        (token, start) => token.or(start),
    };
    let later = |key: &str| after.is_none_or(|after| key > after);
    let mut objects = objects
        .into_iter()
        .filter(|o| later(o.key.as_deref().unwrap_or("")))
        .peekable();
    let mut prefixes = prefixes.into_iter().filter(|p| later(p)).peekable();
    let (mut contents, mut common) = (Vec::new(), Vec::new());
    let mut last = None;
    while contents.len() + common.len() < max_keys as usize {
        let object_key = objects.peek().and_then(|o| o.key.clone());
        let take_object = match (&object_key, prefixes.peek()) {
            (Some(key), Some(prefix)) => key < prefix,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if take_object {
            last = object_key;
            contents.extend(objects.next());
        } else if let Some(prefix) = prefixes.next() {
            last = Some(prefix.clone());
            common.push(CommonPrefix {
                prefix: Some(prefix),
            });
        }
    }
    // As s3s-fs: a page of no keys is never truncated (no token to go on).
    let truncated = max_keys > 0 && (objects.peek().is_some() || prefixes.peek().is_some());
    Ok(ListObjectsV2Output {
        key_count: Some((contents.len() + common.len()) as i32),
        max_keys: Some(max_keys),
        is_truncated: Some(truncated),
        contents: (!contents.is_empty()).then_some(contents),
        common_prefixes: (!common.is_empty()).then_some(common),
        next_continuation_token: if truncated { last } else { None },
        continuation_token: input.continuation_token,
        delimiter: input.delimiter,
        encoding_type: input.encoding_type,
        name: Some(input.bucket),
        prefix: input.prefix,
        start_after: input.start_after,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_gone_before_it_is_walked_lists_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("t/year=2024");
        assert!(!holds_a_file(&gone).unwrap());
        let (objects, prefixes) = walk(dir.path(), "t/year=2024/", Some("/")).unwrap();
        assert!(objects.is_empty() && prefixes.is_empty());
        std::fs::create_dir_all(gone.join("month=1")).unwrap();
        assert!(!holds_a_file(&gone).unwrap(), "empty folders hold no file");
        std::fs::write(gone.join("month=1/a.parquet"), b"x").unwrap();
        assert!(holds_a_file(&gone).unwrap());
    }
}
