//! Assembling output files from staged chunks into S3 multipart uploads,
//! against the embedded S3 endpoint.

mod support;

use auditx_proto::{
    AssembleOutcome, AssembleResume, AssembleTask, FileIndex, OutputFormat, PrefixOutcome,
    RequestId, Segment, TenantId,
};
use auditx_worker::export::csv;
use auditx_worker::{assemble_file, assemble_prefix};
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;
const PART_SIZE: u64 = 5 * MIB;

/// Bytes that differ at every position, so a misplaced range shows.
fn pattern(len: u64, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn task(key: &str, upload_id: &str, segments: Vec<Segment>) -> AssembleTask {
    AssembleTask {
        request_id: RequestId::from("r-assemble"),
        tenant: TenantId::from("t1"),
        file: FileIndex(0),
        key: key.into(),
        upload_id: upload_id.into(),
        format: OutputFormat::Csv,
        segments,
        rows: 42,
        part_size: PART_SIZE,
        resume: None,
        stage: 0,
    }
}

fn segment(key: &str, start: u64, end: u64) -> Segment {
    Segment {
        key: key.into(),
        start,
        end,
    }
}

/// The file a user downloads: the header, then every segment's bytes.
fn expected_file(segments: &[Segment], staged: &[(&str, &[u8])]) -> Vec<u8> {
    let mut file = csv::HEADER.to_vec();
    for s in segments {
        let (_, bytes) = staged.iter().find(|(key, _)| *key == s.key).unwrap();
        file.extend_from_slice(&bytes[s.start as usize..s.end as usize]);
    }
    file
}

async fn part_sizes(
    s3: &support::TestS3,
    key: &str,
    upload_id: &str,
) -> anyhow::Result<Vec<(i32, i64)>> {
    let listed = s3
        .store
        .client()
        .list_parts()
        .bucket(&s3.config.export_bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await?;
    let mut sizes: Vec<_> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap(), p.size().unwrap()))
        .collect();
    sizes.sort();
    Ok(sizes)
}

async fn complete(s3: &support::TestS3, outcome: &AssembleOutcome) -> anyhow::Result<Vec<u8>> {
    let bucket = &s3.config.export_bucket;
    let parts: Vec<_> = outcome
        .parts
        .iter()
        .map(|p| (p.number, p.etag.clone()))
        .collect();
    s3.store
        .complete_multipart(bucket, &outcome.key, &outcome.upload_id, &parts)
        .await?;
    Ok(s3.store.get(bucket, &outcome.key).await?.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_are_cut_into_exact_parts_and_hashed() -> anyhow::Result<()> {
    let s3 = support::start_s3().await?;
    let bucket = &s3.config.export_bucket;
    let (a, b, c) = (
        pattern(4 * MIB + 3, 1),
        pattern(7 * MIB, 2),
        b"e-1,x\ne-2,y\n".to_vec(),
    );
    let staged: [(&str, &[u8]); 3] = [
        ("_staging/r/c0", &a),
        ("_staging/r/c1", &b),
        ("_staging/r/c2", &c),
    ];
    for (key, bytes) in staged {
        s3.store
            .put(bucket, key, bytes.to_vec().into(), "text/csv")
            .await?;
    }
    let segments = vec![
        segment("_staging/r/c0", 0, a.len() as u64),
        segment("_staging/r/c1", 100, b.len() as u64 - 5),
        segment("_staging/r/c2", 0, 0),
        segment("_staging/r/c2", 6, c.len() as u64),
        segment("_staging/r/c1", 0, 100),
    ];
    let expected = expected_file(&segments, &staged);
    assert!(expected.len() as u64 > 2 * PART_SIZE);

    let key = "t1/r-assemble/audit_trail_sample_0001.csv";
    let upload_id = s3.store.create_multipart(bucket, key, "text/csv").await?;
    let outcome = assemble_file(&s3.store, bucket, &task(key, &upload_id, segments)).await?;

    assert_eq!(
        outcome.parts.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // Part 1 gathers the header, all of c0 and the start of c1's range;
    // what is left of that range (more than a part) is copied by S3 as
    // part 2; the small rest is gathered into the last part.
    let header = csv::HEADER.len() as i64;
    let first = PART_SIZE as i64;
    let copied = (b.len() as i64 - 5 - 100) - (first - header - a.len() as i64);
    assert!(copied > PART_SIZE as i64, "{copied}");
    let last = expected.len() as i64 - first - copied;
    assert_eq!(
        part_sizes(&s3, key, &upload_id).await?,
        [(1, first), (2, copied), (3, last)]
    );
    assert_eq!(outcome.bytes, expected.len() as u64);
    assert_eq!(outcome.rows, 42);
    assert_eq!(outcome.sha256, hex::encode(Sha256::digest(&expected)));
    let downloaded = complete(&s3, &outcome).await?;
    assert!(
        downloaded == expected,
        "downloaded file differs from the staged bytes"
    );
    assert_eq!(hex::encode(Sha256::digest(&downloaded)), outcome.sha256);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_segments_and_header_only_files_are_one_part() -> anyhow::Result<()> {
    let s3 = support::start_s3().await?;
    let bucket = &s3.config.export_bucket;
    let rows: Vec<Vec<u8>> = (0..50)
        .map(|i| format!("e-{i},\"a,b\"\n").into_bytes())
        .collect();
    let keys: Vec<String> = (0..50).map(|i| format!("_staging/tiny/c{i:04}")).collect();
    for (key, row) in keys.iter().zip(&rows) {
        s3.store
            .put(bucket, key, row.clone().into(), "text/csv")
            .await?;
    }
    let segments: Vec<_> = keys
        .iter()
        .zip(&rows)
        .map(|(k, r)| segment(k, 0, r.len() as u64))
        .collect();
    let staged: Vec<(&str, &[u8])> = keys
        .iter()
        .map(String::as_str)
        .zip(rows.iter().map(Vec::as_slice))
        .collect();
    let expected = expected_file(&segments, &staged);

    let key = "t1/r-assemble/tiny.csv";
    let upload_id = s3.store.create_multipart(bucket, key, "text/csv").await?;
    let outcome = assemble_file(&s3.store, bucket, &task(key, &upload_id, segments)).await?;
    assert_eq!(outcome.parts.len(), 1);
    assert_eq!(outcome.sha256, hex::encode(Sha256::digest(&expected)));
    assert_eq!(complete(&s3, &outcome).await?, expected);

    let key = "t1/r-assemble/empty.csv";
    let upload_id = s3.store.create_multipart(bucket, key, "text/csv").await?;
    let outcome = assemble_file(&s3.store, bucket, &task(key, &upload_id, Vec::new())).await?;
    assert_eq!(outcome.parts.len(), 1);
    assert_eq!(outcome.bytes, csv::HEADER.len() as u64);
    assert_eq!(complete(&s3, &outcome).await?, csv::HEADER);
    Ok(())
}

/// A redelivered assemble task uploads the same parts again and the file
/// still completes byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assembling_twice_uploads_the_same_parts() -> anyhow::Result<()> {
    let s3 = support::start_s3().await?;
    let bucket = &s3.config.export_bucket;
    let staged = pattern(6 * MIB, 9);
    s3.store
        .put(
            bucket,
            "_staging/again/c0",
            staged.clone().into(),
            "text/csv",
        )
        .await?;
    let segments = vec![segment("_staging/again/c0", 0, staged.len() as u64)];
    let expected = expected_file(&segments, &[("_staging/again/c0", &staged)]);

    let key = "t1/r-assemble/again.csv";
    let upload_id = s3.store.create_multipart(bucket, key, "text/csv").await?;
    let task = task(key, &upload_id, segments);
    let first = assemble_file(&s3.store, bucket, &task).await?;
    let second = assemble_file(&s3.store, bucket, &task).await?;
    // The same layout, bytes and hash. (ETags are the server's business:
    // AWS derives them from the content, the embedded endpoint makes a new
    // one per write and, like s3s-fs, does not check them on completion.)
    let numbers = |o: &AssembleOutcome| o.parts.iter().map(|p| p.number).collect::<Vec<_>>();
    assert_eq!(numbers(&first), numbers(&second));
    assert_eq!((first.bytes, &first.sha256), (second.bytes, &second.sha256));
    // The scheduler completes with the first report it recorded.
    assert_eq!(complete(&s3, &first).await?, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_short_staged_chunks_fail_for_good() -> anyhow::Result<()> {
    let s3 = support::start_s3().await?;
    let bucket = &s3.config.export_bucket;
    let key = "t1/r-assemble/broken.csv";
    let upload_id = s3.store.create_multipart(bucket, key, "text/csv").await?;

    let missing = task(key, &upload_id, vec![segment("_staging/gone/c0", 0, 10)]);
    let err = assemble_file(&s3.store, bucket, &missing)
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    assert_eq!(
        err.to_string(),
        "staged chunk _staging/gone/c0 is missing; run the export again"
    );

    s3.store
        .put(
            bucket,
            "_staging/short/c0",
            b"0123456789".to_vec().into(),
            "text/csv",
        )
        .await?;
    let short = task(key, &upload_id, vec![segment("_staging/short/c0", 5, 20)]);
    let err = assemble_file(&s3.store, bucket, &short).await.unwrap_err();
    assert!(!err.is_transient());
    assert!(
        err.to_string()
            .starts_with("staged chunk _staging/short/c0 returned 5 bytes"),
        "{err}"
    );
    Ok(())
}

/// What the scheduler does with a prefix stage's report: the next task
/// resumes after every part so far.
fn resumed(before: Option<AssembleResume>, stage: &PrefixOutcome) -> AssembleResume {
    let mut parts = before.map_or_else(Vec::new, |r| r.parts);
    parts.extend(stage.parts.iter().cloned());
    AssembleResume {
        parts,
        sha256: stage.sha256.clone(),
    }
}

/// A file assembled in stages while its chunks "render", with a stage run
/// twice (a redelivery) and the next one resumed from the second run's
/// report (a crash between them), is the file: the bytes downloaded are
/// the header and the segments, and the SHA-256 reported is theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_assembled_in_stages_with_a_redelivery_is_the_file_and_its_hash(
) -> anyhow::Result<()> {
    let s3 = support::start_s3().await?;
    let bucket = &s3.config.export_bucket;
    let chunks: Vec<(String, Vec<u8>)> = [3 * MIB + 7, 9 * MIB + 1, 100, 6 * MIB + 33, 2 * MIB]
        .iter()
        .enumerate()
        .map(|(i, &len)| (format!("_staging/stages/c{i}"), pattern(len, i as u8 + 3)))
        .collect();
    for (key, bytes) in &chunks {
        s3.store
            .put(bucket, key, bytes.clone().into(), "text/csv")
            .await?;
    }
    let segments: Vec<Segment> = chunks
        .iter()
        .map(|(key, bytes)| segment(key, 0, bytes.len() as u64))
        .collect();
    let staged: Vec<(&str, &[u8])> = chunks
        .iter()
        .map(|(k, b)| (k.as_str(), b.as_slice()))
        .collect();
    let expected = expected_file(&segments, &staged);

    let key = "t1/r-assemble/stages.csv";
    let upload_id = s3.store.create_multipart(bucket, key, "text/csv").await?;
    let whole = task(key, &upload_id, segments.clone());
    let prefix = |known: usize, stage: u32, resume: Option<AssembleResume>| AssembleTask {
        segments: segments[..known].to_vec(),
        stage,
        resume,
        ..whole.clone()
    };
    // Stage 0: two chunks known. Run twice: the same parts, the same hash.
    let first = assemble_prefix(&s3.store, bucket, &prefix(2, 0, None)).await?;
    let again = assemble_prefix(&s3.store, bucket, &prefix(2, 0, None)).await?;
    assert_eq!(first.sha256, again.sha256);
    assert_eq!(first.parts.len(), again.parts.len());
    assert!(!first.parts.is_empty());
    assert!(first.sha256.bytes <= (csv::HEADER.len() + 12 * MIB as usize + 8) as u64);
    let after_0 = resumed(None, &again);
    // Stage 1: one tiny chunk more, nothing new to make yet.
    let idle = assemble_prefix(&s3.store, bucket, &prefix(3, 1, Some(after_0.clone()))).await?;
    assert!(idle.parts.is_empty());
    assert_eq!(idle.sha256, after_0.sha256);
    let after_1 = resumed(Some(after_0), &idle);
    // Stage 2: four chunks known.
    let stage_2 = assemble_prefix(&s3.store, bucket, &prefix(4, 2, Some(after_1.clone()))).await?;
    assert_eq!(
        stage_2.parts.first().map(|p| p.number),
        Some(after_1.parts.len() as i32 + 1)
    );
    let after_2 = resumed(Some(after_1), &stage_2);
    // The last task: the whole file, after every stage's parts.
    let last = AssembleTask {
        resume: Some(after_2.clone()),
        stage: 3,
        ..whole.clone()
    };
    let outcome = assemble_file(&s3.store, bucket, &last).await?;
    let numbers: Vec<i32> = outcome.parts.iter().map(|p| p.number).collect();
    assert_eq!(numbers, (1..=numbers.len() as i32).collect::<Vec<_>>());
    assert!(numbers.len() > after_2.parts.len());
    assert_eq!(outcome.bytes, expected.len() as u64);
    assert_eq!(outcome.sha256, hex::encode(Sha256::digest(&expected)));
    // The same as assembling it whole in one task.
    let one_pass = assemble_file(&s3.store, bucket, &whole).await?;
    assert_eq!(one_pass.sha256, outcome.sha256);
    assert_eq!(one_pass.parts.len(), outcome.parts.len());
    let downloaded = complete(&s3, &outcome).await?;
    assert!(downloaded == expected, "downloaded file differs");
    assert_eq!(hex::encode(Sha256::digest(&downloaded)), outcome.sha256);

    // A resume that the layout does not have fails for good.
    let mut bad = after_2;
    bad.sha256.bytes += 64;
    let err = assemble_file(
        &s3.store,
        bucket,
        &AssembleTask {
            resume: Some(bad),
            ..whole
        },
    )
    .await
    .unwrap_err();
    assert!(!err.is_transient());
    assert!(
        err.to_string().contains("which its layout does not have"),
        "{err}"
    );
    Ok(())
}
