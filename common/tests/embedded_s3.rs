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
    let dir = tempfile::tempdir().unwrap();
    let server = EmbeddedS3::start(dir.path(), "127.0.0.1:0".parse().unwrap(), "ak", "sk")
        .await
        .unwrap();
    let config = server.client_config(&S3Config::default());
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
