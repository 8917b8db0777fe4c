//! The embedded S3 endpoint's own data path (`FastFs`) over HTTP with the
//! AWS SDK, as every role uses it: objects, ranges, multipart uploads with
//! uploaded and server-copied parts, S3's part-size rule, and requests that
//! ask for a digest check still getting one.

use auditx_common::config::S3Config;
use auditx_common::embedded_s3::EmbeddedS3;
use auditx_common::s3::{ObjectStore, StorageError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

const MIB: usize = 1024 * 1024;

/// Bytes that differ at every position, so a misplaced range shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 16) as u8)
        .collect()
}

struct Endpoint {
    store: ObjectStore,
    bucket: String,
    _server: EmbeddedS3,
    _dir: tempfile::TempDir,
}

async fn start() -> Endpoint {
    start_with(|_| {}).await
}

/// An endpoint whose client's configuration `tune` has changed.
async fn start_with(tune: impl FnOnce(&mut S3Config)) -> Endpoint {
    let dir = tempfile::tempdir().unwrap();
    let server = EmbeddedS3::start(dir.path(), "127.0.0.1:0".parse().unwrap(), "ak", "sk")
        .await
        .unwrap();
    let mut config = server.client_config(&S3Config::default());
    tune(&mut config);
    let store = ObjectStore::new(&config);
    store.ensure_bucket(&config.export_bucket).await.unwrap();
    Endpoint {
        store,
        bucket: config.export_bucket,
        _server: server,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_round_trip_whole_and_by_range() {
    let s3 = start().await;
    let bucket = &s3.bucket;
    // Larger than a write block and not a multiple of a read block.
    let body = pattern(3 * MIB + 12_345, 7);
    s3.store
        .put(
            bucket,
            "a/b/data.csv",
            Bytes::from(body.clone()),
            "text/csv",
        )
        .await
        .unwrap();
    assert_eq!(
        s3.store.get(bucket, "a/b/data.csv").await.unwrap().to_vec(),
        body
    );
    let range = s3
        .store
        .get_range(bucket, "a/b/data.csv", 1_000_000..2_500_001)
        .await
        .unwrap();
    assert_eq!(range.to_vec(), body[1_000_000..2_500_001]);
    assert_eq!(
        s3.store.head(bucket, "a/b/data.csv").await.unwrap(),
        Some(body.len() as u64)
    );

    let got = s3
        .store
        .client()
        .get_object()
        .bucket(bucket)
        .key("a/b/data.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("text/csv"));
    assert!(got.e_tag().is_some_and(|e| e.len() > 2));

    // An overwrite is a new object with a new ETag.
    let first = s3
        .store
        .client()
        .head_object()
        .bucket(bucket)
        .key("a/b/data.csv")
        .send()
        .await
        .unwrap();
    s3.store
        .put(
            bucket,
            "a/b/data.csv",
            Bytes::from_static(b"x,y\n"),
            "text/csv",
        )
        .await
        .unwrap();
    let second = s3
        .store
        .client()
        .head_object()
        .bucket(bucket)
        .key("a/b/data.csv")
        .send()
        .await
        .unwrap();
    assert_ne!(first.e_tag(), second.e_tag());
    assert_eq!(
        s3.store.get(bucket, "a/b/data.csv").await.unwrap().as_ref(),
        b"x,y\n"
    );

    let listed = s3.store.list(bucket, "a/").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "a/b/data.csv");

    assert!(matches!(
        s3.store.get(bucket, "a/b/missing.csv").await,
        Err(StorageError::NotFound { .. })
    ));
    // An empty object is fine.
    s3.store
        .put(bucket, "empty", Bytes::new(), "text/csv")
        .await
        .unwrap();
    assert!(s3.store.get(bucket, "empty").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_join_uploaded_and_copied_parts() {
    let s3 = start().await;
    let bucket = &s3.bucket;
    let staged = pattern(13 * MIB + 3, 1);
    s3.store
        .put(
            bucket,
            "_staging/c0",
            Bytes::from(staged.clone()),
            "text/csv",
        )
        .await
        .unwrap();
    let key = "t/r/file.csv";
    let upload = s3
        .store
        .create_multipart(bucket, key, "text/csv")
        .await
        .unwrap();
    let first = pattern(5 * MIB, 2);
    let p1 = s3
        .store
        .upload_part(bucket, key, &upload, 1, Bytes::from(first.clone()))
        .await
        .unwrap();
    let p2 = s3
        .store
        .upload_part_copy(
            bucket,
            key,
            &upload,
            2,
            "_staging/c0",
            17..(17 + 6 * MIB as u64),
        )
        .await
        .unwrap();
    let p3 = s3
        .store
        .upload_part(bucket, key, &upload, 3, Bytes::from_static(b"tail\n"))
        .await
        .unwrap();
    s3.store
        .complete_multipart(bucket, key, &upload, &[(1, p1), (2, p2), (3, p3)])
        .await
        .unwrap();
    let mut expected = first;
    expected.extend_from_slice(&staged[17..17 + 6 * MIB]);
    expected.extend_from_slice(b"tail\n");
    let got = s3.store.get(bucket, key).await.unwrap();
    assert!(got.to_vec() == expected, "the completed file differs");
    let head = s3
        .store
        .client()
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/csv"));
    assert!(
        head.e_tag().is_some_and(|e| e.ends_with("-3\"")),
        "{:?}",
        head.e_tag()
    );
    // The upload is gone once completed.
    let err = s3
        .store
        .upload_part(bucket, key, &upload, 4, Bytes::from_static(b"late"))
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");

    // A single-part upload, and copy ranges S3 would refuse.
    let upload = s3
        .store
        .create_multipart(bucket, "t/r/one.csv", "text/csv")
        .await
        .unwrap();
    let bad = s3
        .store
        .upload_part_copy(
            bucket,
            "t/r/one.csv",
            &upload,
            1,
            "_staging/c0",
            0..(14 * MIB as u64),
        )
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("InvalidRange"), "{bad}");
    let missing = s3
        .store
        .upload_part_copy(bucket, "t/r/one.csv", &upload, 1, "_staging/none", 0..10)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StorageError::NotFound { .. }),
        "{missing}"
    );
    let only = s3
        .store
        .upload_part_copy(bucket, "t/r/one.csv", &upload, 1, "_staging/c0", 0..10)
        .await
        .unwrap();
    s3.store
        .complete_multipart(bucket, "t/r/one.csv", &upload, &[(1, only)])
        .await
        .unwrap();
    assert_eq!(
        s3.store.get(bucket, "t/r/one.csv").await.unwrap().to_vec(),
        staged[..10]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_keeps_s3s_rules_on_part_sizes_and_order() {
    let s3 = start().await;
    let bucket = &s3.bucket;
    let key = "t/r/small.csv";
    let upload = s3
        .store
        .create_multipart(bucket, key, "text/csv")
        .await
        .unwrap();
    let p1 = s3
        .store
        .upload_part(bucket, key, &upload, 1, Bytes::from(pattern(MIB, 3)))
        .await
        .unwrap();
    let p2 = s3
        .store
        .upload_part(bucket, key, &upload, 2, Bytes::from_static(b"end"))
        .await
        .unwrap();
    let err = s3
        .store
        .complete_multipart(bucket, key, &upload, &[(1, p1.clone()), (2, p2.clone())])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("EntityTooSmall"), "{err}");
    let err = s3
        .store
        .complete_multipart(bucket, key, &upload, &[(2, p2.clone()), (1, p1.clone())])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("InvalidPartOrder"), "{err}");
    let err = s3
        .store
        .complete_multipart(bucket, key, &upload, &[(1, p1), (2, p2), (3, "x".into())])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("InvalidPart"), "{err}");
    assert!(matches!(
        s3.store.get(bucket, key).await,
        Err(StorageError::NotFound { .. })
    ));
    s3.store
        .abort_multipart(bucket, key, &upload)
        .await
        .unwrap();
}

/// A request that asks for a digest check is checked (by s3s-fs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_md5_is_still_verified() {
    let s3 = start().await;
    let client = s3.store.client();
    let err = client
        .put_object()
        .bucket(&s3.bucket)
        .key("checked")
        .content_md5("XrY7u+Ae7tCTyyK7j1rNww==") // MD5 of "hello world"
        .body(ByteStream::from_static(b"something else"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&err),
        Some("BadDigest")
    );
    client
        .put_object()
        .bucket(&s3.bucket)
        .key("checked")
        .content_md5("XrY7u+Ae7tCTyyK7j1rNww==")
        .body(ByteStream::from_static(b"hello world"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        s3.store.get(&s3.bucket, "checked").await.unwrap().as_ref(),
        b"hello world"
    );
}

/// A copied part holds the source's bytes as they were when copied, as on
/// S3: replacing or deleting the source afterwards changes nothing, and
/// uploading the part number again replaces the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copied_parts_keep_the_bytes_of_the_moment_they_were_copied() {
    let s3 = start().await;
    let bucket = &s3.bucket;
    let old = pattern(6 * MIB, 4);
    s3.store
        .put(bucket, "_staging/src", Bytes::from(old.clone()), "text/csv")
        .await
        .unwrap();
    let key = "t/r/pinned.csv";
    let upload = s3
        .store
        .create_multipart(bucket, key, "text/csv")
        .await
        .unwrap();
    let whole = 0..old.len() as u64;
    let p1 = s3
        .store
        .upload_part_copy(bucket, key, &upload, 1, "_staging/src", whole.clone())
        .await
        .unwrap();
    let p2 = s3
        .store
        .upload_part_copy(bucket, key, &upload, 2, "_staging/src", 5..9)
        .await
        .unwrap();
    s3.store
        .put(
            bucket,
            "_staging/src",
            Bytes::from_static(b"replaced"),
            "text/csv",
        )
        .await
        .unwrap();
    s3.store.delete(bucket, "_staging/src").await.unwrap();
    let p3 = s3
        .store
        .upload_part_copy(bucket, key, &upload, 3, "_staging/gone", 0..1)
        .await;
    assert!(matches!(p3, Err(StorageError::NotFound { .. })), "{p3:?}");
    // Part 2 uploaded after being copied: the upload wins.
    let p2b = s3
        .store
        .upload_part(bucket, key, &upload, 2, Bytes::from_static(b"!"))
        .await
        .unwrap();
    let listed = s3
        .store
        .client()
        .list_parts()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload)
        .send()
        .await
        .unwrap();
    let sizes: Vec<(i32, i64)> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap(), p.size().unwrap()))
        .collect();
    assert_eq!(sizes, [(1, old.len() as i64), (2, 1)]);
    drop(p2);
    s3.store
        .complete_multipart(bucket, key, &upload, &[(1, p1), (2, p2b)])
        .await
        .unwrap();
    let mut expected = old.clone();
    expected.push(b'!');
    assert!(s3.store.get(bucket, key).await.unwrap().to_vec() == expected);

    // One copied part that is a whole object: the object's file is reused.
    s3.store
        .put(
            bucket,
            "_staging/src2",
            Bytes::from(old.clone()),
            "text/csv",
        )
        .await
        .unwrap();
    let upload = s3
        .store
        .create_multipart(bucket, "t/r/one-copy.csv", "text/csv")
        .await
        .unwrap();
    let only = s3
        .store
        .upload_part_copy(
            bucket,
            "t/r/one-copy.csv",
            &upload,
            1,
            "_staging/src2",
            whole,
        )
        .await
        .unwrap();
    s3.store
        .complete_multipart(bucket, "t/r/one-copy.csv", &upload, &[(1, only)])
        .await
        .unwrap();
    s3.store.delete(bucket, "_staging/src2").await.unwrap();
    assert!(
        s3.store
            .get(bucket, "t/r/one-copy.csv")
            .await
            .unwrap()
            .to_vec()
            == old
    );

    // An aborted upload leaves none of its copies behind.
    let upload = s3
        .store
        .create_multipart(bucket, "t/r/aborted.csv", "text/csv")
        .await
        .unwrap();
    s3.store
        .put(
            bucket,
            "_staging/src3",
            Bytes::from_static(b"abc"),
            "text/csv",
        )
        .await
        .unwrap();
    s3.store
        .upload_part_copy(bucket, "t/r/aborted.csv", &upload, 1, "_staging/src3", 0..3)
        .await
        .unwrap();
    s3.store
        .abort_multipart(bucket, "t/r/aborted.csv", &upload)
        .await
        .unwrap();
    let left: Vec<String> = std::fs::read_dir(s3._dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&upload))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The files in the endpoint's root whose name starts with `prefix`.
fn files_named(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Parts are appended to the object's file while the upload goes on, in
/// number order whatever order they come in; a part uploaded again after
/// it was appended, or an abort, still leaves exactly the right bytes (and
/// no file behind).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_appended_ahead_of_completion_give_the_parts_bytes() {
    let s3 = start().await;
    let bucket = &s3.bucket;
    let root = s3._dir.path();
    let staged = pattern(12 * MIB, 3);
    s3.store
        .put(
            bucket,
            "_staging/c",
            Bytes::from(staged.clone()),
            "text/csv",
        )
        .await
        .unwrap();
    let parts = [
        pattern(5 * MIB, 4),
        pattern(5 * MIB, 5),
        pattern(6 * MIB, 6),
    ];
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(300));
    for replace in [false, true] {
        let key = format!("t/r/ahead-{replace}.csv");
        let upload = s3
            .store
            .create_multipart(bucket, &key, "text/csv")
            .await
            .unwrap();
        // Part 2 first: nothing can be appended until part 1 is there.
        let p2 = s3
            .store
            .upload_part(bucket, &key, &upload, 2, Bytes::from(parts[1].clone()))
            .await
            .unwrap();
        let mut p1 = s3
            .store
            .upload_part(bucket, &key, &upload, 1, Bytes::from(parts[0].clone()))
            .await
            .unwrap();
        let p3 = s3
            .store
            .upload_part_copy(
                bucket,
                &key,
                &upload,
                3,
                "_staging/c",
                100..(100 + 6 * MIB as u64),
            )
            .await
            .unwrap();
        let p4 = s3
            .store
            .upload_part(bucket, &key, &upload, 4, Bytes::from_static(b"end\n"))
            .await
            .unwrap();
        settle().await;
        let mut expected = parts[0].clone();
        if replace {
            // Part 1 again, other bytes, after it was appended.
            p1 = s3
                .store
                .upload_part(
                    bucket,
                    &key,
                    &upload,
                    1,
                    Bytes::from(parts[2][..5 * MIB].to_vec()),
                )
                .await
                .unwrap();
            expected = parts[2][..5 * MIB].to_vec();
        }
        expected.extend_from_slice(&parts[1]);
        expected.extend_from_slice(&staged[100..100 + 6 * MIB]);
        expected.extend_from_slice(b"end\n");
        s3.store
            .complete_multipart(bucket, &key, &upload, &[(1, p1), (2, p2), (3, p3), (4, p4)])
            .await
            .unwrap();
        let got = s3.store.get(bucket, &key).await.unwrap();
        assert!(
            got.to_vec() == expected,
            "the completed file differs (replace: {replace})"
        );
    }
    settle().await;
    assert!(
        files_named(root, ".tmp.fast-").is_empty(),
        "{:?}",
        files_named(root, ".tmp")
    );

    // An aborted upload leaves no appended file.
    let upload = s3
        .store
        .create_multipart(bucket, "t/r/aborted.csv", "text/csv")
        .await
        .unwrap();
    for n in 1..=2 {
        s3.store
            .upload_part(
                bucket,
                "t/r/aborted.csv",
                &upload,
                n,
                Bytes::from(parts[0].clone()),
            )
            .await
            .unwrap();
    }
    settle().await;
    s3.store
        .abort_multipart(bucket, "t/r/aborted.csv", &upload)
        .await
        .unwrap();
    settle().await;
    assert!(
        files_named(root, ".tmp.fast-").is_empty(),
        "{:?}",
        files_named(root, ".tmp")
    );
    assert!(files_named(root, &format!(".upload_id-{upload}")).is_empty());
}

/// One ListObjectsV2 page: the keys, the common prefixes, the token.
async fn list_page(
    s3: &Endpoint,
    prefix: &str,
    delimiter: Option<&str>,
    max_keys: Option<i32>,
    token: Option<String>,
) -> (Vec<String>, Vec<String>, Option<String>) {
    let page = s3
        .store
        .client()
        .list_objects_v2()
        .bucket(&s3.bucket)
        .prefix(prefix)
        .set_delimiter(delimiter.map(str::to_owned))
        .set_max_keys(max_keys)
        .set_continuation_token(token)
        .send()
        .await
        .unwrap();
    let keys = page
        .contents()
        .iter()
        .map(|o| format!("{} {}", o.key().unwrap(), o.size().unwrap()))
        .collect();
    let prefixes = page
        .common_prefixes()
        .iter()
        .map(|p| p.prefix().unwrap().to_owned())
        .collect();
    assert_eq!(
        page.is_truncated(),
        Some(page.next_continuation_token().is_some())
    );
    (
        keys,
        prefixes,
        page.next_continuation_token().map(str::to_owned),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_keeps_s3s_rules_for_prefixes_delimiters_and_pages() {
    let s3 = start().await;
    for (key, len) in [
        ("t/year=2022/month=1/a.parquet", 1),
        ("t/year=2022/month=2/b.parquet", 2),
        ("t/year=2023/month=1/c.parquet", 3),
        ("t/top.parquet", 4),
        ("t2/other", 5),
        ("u/v", 6),
    ] {
        s3.store
            .put(
                &s3.bucket,
                key,
                Bytes::from(vec![b'x'; len]),
                "application/octet-stream",
            )
            .await
            .unwrap();
    }
    // A folder left empty (as a deleted object's leaves it) lists nothing.
    std::fs::create_dir_all(s3._dir.path().join(&s3.bucket).join("t/year=2024/month=5")).unwrap();

    let all_t = vec![
        "t/top.parquet 4".to_owned(),
        "t/year=2022/month=1/a.parquet 1".to_owned(),
        "t/year=2022/month=2/b.parquet 2".to_owned(),
        "t/year=2023/month=1/c.parquet 3".to_owned(),
    ];
    assert_eq!(
        list_page(&s3, "t/", None, None, None).await,
        (all_t.clone(), vec![], None)
    );
    // A prefix that ends inside a name matches the names that begin so.
    let (keys, _, _) = list_page(&s3, "t", None, None, None).await;
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert_eq!(keys[4], "t2/other 5");
    let (keys, _, _) = list_page(&s3, "t/year=2022/month=", None, None, None).await;
    assert_eq!(keys, all_t[1..3]);
    // With a delimiter: the files at the level, and one prefix per folder
    // that holds a file.
    assert_eq!(
        list_page(&s3, "t/", Some("/"), None, None).await,
        (
            vec!["t/top.parquet 4".to_owned()],
            vec!["t/year=2022/".to_owned(), "t/year=2023/".to_owned()],
            None
        )
    );
    assert_eq!(
        list_page(&s3, "", Some("/"), None, None).await,
        (
            vec![],
            vec!["t/".to_owned(), "t2/".to_owned(), "u/".to_owned()],
            None
        )
    );
    // Pages of two, objects and prefixes in key order.
    let (first, _, token) = list_page(&s3, "t/", None, Some(2), None).await;
    assert_eq!(first, all_t[..2]);
    let (second, _, token) = list_page(&s3, "t/", None, Some(2), token).await;
    assert_eq!(second, all_t[2..]);
    assert_eq!(token, None);
    let (keys, prefixes, token) = list_page(&s3, "t/", Some("/"), Some(2), None).await;
    assert_eq!(
        (keys, prefixes),
        (
            vec!["t/top.parquet 4".to_owned()],
            vec!["t/year=2022/".to_owned()]
        )
    );
    let (keys, prefixes, token) = list_page(&s3, "t/", Some("/"), Some(2), token).await;
    assert_eq!(
        (keys, prefixes, token),
        (vec![], vec!["t/year=2023/".to_owned()], None)
    );
    // Nothing under the prefix: an empty page.
    assert_eq!(
        list_page(&s3, "nothing/", None, None, None).await,
        (vec![], vec![], None)
    );
    // The store's own listing, page after page, sees the same.
    let listed = s3.store.list(&s3.bucket, "t/year=2022/").await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "t/year=2022/month=1/a.parquet",
            "t/year=2022/month=2/b.parquet"
        ]
    );
}

/// Deleting a key is done however many deletes of it race, and deleting a
/// missing key is not an error (S3 answers 204 both times): the scheduler
/// deletes a chunk as soon as it is no longer needed while the job's end
/// may be deleting the whole staging prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_deletes_of_a_key_all_succeed() {
    // One attempt: a 500 must show, not be retried away.
    let s3 = start_with(|config| config.max_attempts = 1).await;
    let (store, bucket) = (&s3.store, &s3.bucket);

    store.delete(bucket, "never/written.csv").await.unwrap();
    assert!(store.delete("no-such-bucket", "a.csv").await.is_err());
    for round in 0..40 {
        let key = format!("_staging/job/chunk-{round:06}.csv");
        store
            .put(
                bucket,
                &key,
                Bytes::from(pattern(4096, round as u8)),
                "text/csv",
            )
            .await
            .unwrap();
        let deletes: Vec<_> = (0..8)
            .map(|_| {
                let (store, bucket, key) = (store.clone(), bucket.clone(), key.clone());
                tokio::spawn(async move { store.delete(&bucket, &key).await })
            })
            .collect();
        for delete in deletes {
            delete
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{key}: {e}"));
        }
        assert_eq!(store.head(bucket, &key).await.unwrap(), None);
    }
}
