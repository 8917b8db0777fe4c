//! Data query jobs on the wire: the task a scheduler sends to run one SQL
//! query, and the worker's report of the result object it wrote.

use serde::{Deserialize, Serialize};

use crate::{QueryId, Scope, TenantId};

/// `outputFormat` of a data query: CSV, TSV, DSV (delimiter-separated, the
/// task's `column_separator`) or JSON Lines (`JSON`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum QueryOutputFormat {
    #[default]
    Csv,
    Tsv,
    /// One JSON object per line.
    Json,
    /// CSV's quoting with the query's own column separator.
    Dsv,
}

impl QueryOutputFormat {
    pub const ALL: [QueryOutputFormat; 4] = [
        QueryOutputFormat::Csv,
        QueryOutputFormat::Tsv,
        QueryOutputFormat::Dsv,
        QueryOutputFormat::Json,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueryOutputFormat::Csv => "CSV",
            QueryOutputFormat::Tsv => "TSV",
            QueryOutputFormat::Json => "JSON",
            QueryOutputFormat::Dsv => "DSV",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn extension(self) -> &'static str {
        match self {
            QueryOutputFormat::Csv => "csv",
            QueryOutputFormat::Tsv => "tsv",
            QueryOutputFormat::Json => "jsonl",
            QueryOutputFormat::Dsv => "dsv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            QueryOutputFormat::Csv => "text/csv; charset=utf-8",
            QueryOutputFormat::Tsv => "text/tab-separated-values; charset=utf-8",
            QueryOutputFormat::Json => "application/x-ndjson",
            QueryOutputFormat::Dsv => "text/plain; charset=utf-8",
        }
    }
}

/// `compression` of a data query's result file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    /// A ZIP archive of one entry (the result file, deflated).
    Zip,
}

impl Compression {
    pub const ALL: [Compression; 3] = [Compression::None, Compression::Gzip, Compression::Zip];

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "NONE",
            Compression::Gzip => "GZIP",
            Compression::Zip => "ZIP",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Appended to the file name (`.gz` for GZIP, `.zip` for ZIP).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zip => ".zip",
        }
    }
}

/// Run one data query and write its result to one S3 object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryTask {
    pub query_id: QueryId,
    pub tenant: TenantId,
    /// The SQL as checked and rewritten by the scheduler (read-only, one
    /// statement, the tenant's tables only); the worker checks it again.
    pub sql: String,
    pub format: QueryOutputFormat,
    #[serde(default)]
    pub compression: Compression,
    /// Where the result goes in the export bucket: the worker appends a
    /// unique attempt id and the extension, so a redelivered task never
    /// writes into another attempt's upload.
    pub key_prefix: String,
    /// Size of every multipart part but the last.
    pub part_size: u64,
    /// The query fails once it has run this long.
    pub time_limit_ms: u64,
    /// The query fails once its operators need more memory than this.
    pub memory_limit_bytes: u64,
    /// The entities and orgs whose rows the query may see (the submitter's
    /// scope; unrestricted in messages from before scopes).
    #[serde(default)]
    pub scope: Scope,
    /// DSV's column separator (one character); unused by other formats.
    #[serde(default)]
    pub column_separator: Option<String>,
    /// `readDeleted`: the query reads the deleted rows of tables that have a
    /// `deleted` column instead of the live ones.
    #[serde(default)]
    pub read_deleted: bool,
    /// `encryptionKey`: the base64 DER of an RSA public key; the result file
    /// (compressed first, if asked) is encrypted with it.
    #[serde(default)]
    pub encryption_key: Option<String>,
}

/// What a worker wrote for one data query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryOutcome {
    pub query_id: QueryId,
    /// The completed result object in the export bucket.
    pub key: String,
    /// Data rows (header excluded).
    pub rows: u64,
    /// Bytes of the object as stored (compressed if GZIP).
    pub bytes: u64,
    /// Time spent running the query and writing the result.
    pub processing_ms: u64,
}
