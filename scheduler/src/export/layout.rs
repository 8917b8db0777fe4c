//! Object keys of an export in the export bucket.
//!
//! ```text
//! <tenant>/<requestId>/audit_trail_<exportType>_<nnnn>.<ext>   output files, 1-based
//! <tenant>/<requestId>/manifest.json
//! _staging/<tenant>/<requestId>/chunk-<nnnnnn>.<ext>           rendered chunks
//! ```
//!
//! Every key starts with the tenant, so the presign endpoint can refuse
//! another tenant's files by prefix alone; staging lives apart so that a
//! listing of an export's folder only ever shows finished files.

use auditx_proto::{ChunkId, FileIndex, OutputFormat, RecordType, RequestId, TenantId};

/// `<tenant>/<requestId>/`: every file of one export.
pub fn export_prefix(tenant: &TenantId, request_id: &RequestId) -> String {
    format!("{tenant}/{request_id}/")
}

/// The key of output file `file` (0-based index, 1-based in the name).
pub fn file_key(
    tenant: &TenantId,
    request_id: &RequestId,
    export_type: RecordType,
    format: OutputFormat,
    file: FileIndex,
) -> String {
    format!(
        "{}audit_trail_{}_{:04}.{}",
        export_prefix(tenant, request_id),
        export_type.as_str().to_ascii_lowercase(),
        u64::from(file.0) + 1,
        format.extension()
    )
}

pub fn manifest_key(tenant: &TenantId, request_id: &RequestId) -> String {
    format!("{}manifest.json", export_prefix(tenant, request_id))
}

/// `_staging/<tenant>/<requestId>/`: the rendered chunks of one export.
pub fn staging_prefix(tenant: &TenantId, request_id: &RequestId) -> String {
    format!("_staging/{tenant}/{request_id}/")
}

pub fn staging_key(
    tenant: &TenantId,
    request_id: &RequestId,
    chunk: ChunkId,
    format: OutputFormat,
) -> String {
    format!(
        "{}chunk-{:06}.{}",
        staging_prefix(tenant, request_id),
        chunk.0,
        format.extension()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let (t, r) = (TenantId::from("acme"), RequestId::from("r-1"));
        let csv = OutputFormat::Csv;
        assert_eq!(
            file_key(&t, &r, RecordType::Error, csv, FileIndex(0)),
            "acme/r-1/audit_trail_error_0001.csv"
        );
        assert_eq!(
            file_key(&t, &r, RecordType::Sample, csv, FileIndex(12_344)),
            "acme/r-1/audit_trail_sample_12345.csv"
        );
        assert_eq!(manifest_key(&t, &r), "acme/r-1/manifest.json");
        assert_eq!(
            staging_key(&t, &r, ChunkId(7), csv),
            "_staging/acme/r-1/chunk-000007.csv"
        );
        assert!(staging_key(&t, &r, ChunkId(7), csv).starts_with(&staging_prefix(&t, &r)));
    }

    #[test]
    fn file_names_end_in_the_format_s_extension() {
        let (t, r) = (TenantId::from("acme"), RequestId::from("r-1"));
        let key = |format| file_key(&t, &r, RecordType::Sample, format, FileIndex(1));
        assert_eq!(
            key(OutputFormat::Jsonl),
            "acme/r-1/audit_trail_sample_0002.jsonl"
        );
        assert_eq!(
            key(OutputFormat::Parquet),
            "acme/r-1/audit_trail_sample_0002.parquet"
        );
        assert_eq!(
            staging_key(&t, &r, ChunkId(0), OutputFormat::Parquet),
            "_staging/acme/r-1/chunk-000000.parquet"
        );
    }
}
