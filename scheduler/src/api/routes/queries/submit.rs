//! The body of `POST /query/jobs` (Zuora's `SubmitDataQueryRequest`,
//! `api/post_dataqueryjob.md`): [`SubmitBody`] is both what the route reads
//! and what the OpenAPI document shows; [`parse`] reads and checks it,
//! naming every problem.

use auditx_common::result_file::parse_public_key;
use auditx_proto::{Compression, QueryOutputFormat};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::api::request::body::{
    field_names, read_object, Given, NotAnObject, Object, A_BOOLEAN, A_STRING,
};
use crate::api::request::params::parse_one_of;
use crate::api::response::error::{quoted, ApiError, ApiResult, Problems};
use crate::api::schema_names::{
    CompressionName, OutputTargetName, QueryFormatName, SourceDataName, WarehouseSizeName,
    SOURCE_DATA, WAREHOUSE_SIZES,
};

/// Longest SQL text accepted.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// The body of `POST /query/jobs`: every field of Zuora's reference.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = QuerySubmit)]
pub struct SubmitBody {
    /// One read-only SELECT (at most 64 KiB).
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 65536, pattern = "\\S")]
    query: Given<String>,
    /// Default CSV (case-insensitive). JSON is JSON Lines; DSV needs
    /// `columnSeparator`.
    #[serde(default)]
    #[schema(value_type = Option<QueryFormatName>)]
    output_format: Given<String>,
    /// DSV's column separator: one character, not a quote, CR or LF.
    /// Ignored by the other formats.
    #[serde(default)]
    #[schema(
        value_type = Option<String>,
        min_length = 1,
        max_length = 1,
        pattern = "^[^\"\r\n]$"
    )]
    column_separator: Given<String>,
    /// Default NONE (case-insensitive). ZIP is an archive of one entry.
    #[serde(default)]
    #[schema(value_type = Option<CompressionName>)]
    compression: Given<String>,
    /// Where results go: only `{"target": "S3"}` (the default).
    #[serde(default)]
    #[schema(value_type = Option<OutputBody>)]
    output: Given<Object<OutputBody>>,
    /// Base64 of the DER of an RSA public key (1024 to 4096 bits;
    /// SubjectPublicKeyInfo or PKCS#1): the result file is encrypted with
    /// it, in PKCS#1 v1.5 blocks (docs/data-query.md).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Byte)]
    encryption_key: Given<String>,
    /// Default false: the live rows of tables with a `deleted` column;
    /// true: their deleted rows.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    read_deleted: Given<bool>,
    /// LIVE (default) or WAREHOUSE; both read the tenant's audit tables.
    #[serde(default)]
    #[schema(value_type = Option<SourceDataName>)]
    source_data: Given<String>,
    /// Accepted and shown back; joins are planned the same either way.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    use_index_join: Given<bool>,
    /// Accepted and shown back.
    #[serde(default)]
    #[schema(value_type = Option<WarehouseSizeName>)]
    warehouse_size: Given<String>,
}

/// `output` of a submit body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = QueryOutput)]
pub struct OutputBody {
    #[serde(default)]
    #[schema(value_type = OutputTargetName, required = true)]
    target: Given<String>,
}

/// A submit body, checked.
#[derive(Debug)]
pub struct Submit {
    pub query: String,
    pub output_format: QueryOutputFormat,
    pub column_separator: Option<String>,
    pub compression: Compression,
    pub encryption_key: Option<String>,
    pub read_deleted: bool,
    pub source_data: String,
    pub use_index_join: bool,
    pub warehouse_size: Option<String>,
}

fn invalid(message: String) -> ApiError {
    ApiError::InvalidParameter(message)
}

/// Reads and checks a submit body; every problem is reported.
pub fn parse(body: &[u8]) -> ApiResult<Submit> {
    let read = read_object::<SubmitBody>(body).map_err(|e| match e {
        NotAnObject::Malformed { line, column } => invalid(format!(
            "body: not valid JSON (line {line}, column {column})"
        )),
        NotAnObject::OtherJson => invalid("body: not a JSON object".into()),
    })?;
    read.fields.validate(&read.unknown)
}

impl SubmitBody {
    fn validate(self, unknown: &[String]) -> ApiResult<Submit> {
        let mut problems = Problems::default();
        let query = match self.query {
            Given::Value(query) if !query.trim().is_empty() => {
                if query.len() > MAX_QUERY_BYTES {
                    problems.push(invalid(format!(
                        "query: longer than {MAX_QUERY_BYTES} bytes"
                    )));
                }
                query
            }
            Given::Value(_) | Given::Absent => {
                problems.push(ApiError::MissingParameter("query: required".into()));
                String::new()
            }
            Given::Wrong(_) => {
                problems.push(invalid("query: must be a string".into()));
                String::new()
            }
        };
        // `None` when invalid (reported).
        let output_format = match self
            .output_format
            .read("outputFormat", A_STRING, &mut problems)
        {
            Some(v) => problems.check(parse_one_of(
                "outputFormat",
                &v.to_ascii_uppercase(),
                QueryOutputFormat::parse,
                &QueryOutputFormat::ALL.map(QueryOutputFormat::as_str),
            )),
            None => Some(QueryOutputFormat::Csv),
        };
        let separator_given = !matches!(self.column_separator, Given::Absent);
        let separator = self
            .column_separator
            .read("columnSeparator", A_STRING, &mut problems)
            .and_then(|s| problems.check(check_separator(s)));
        let column_separator = match output_format {
            Some(QueryOutputFormat::Dsv) if !separator_given => {
                problems.push(ApiError::MissingParameter(
                    "columnSeparator: required when outputFormat is DSV".into(),
                ));
                None
            }
            Some(QueryOutputFormat::Dsv) => separator,
            // Only applicable to DSV (the reference): not used otherwise.
            _ => None,
        };
        let compression = match self
            .compression
            .read("compression", A_STRING, &mut problems)
        {
            Some(v) => problems
                .check(parse_one_of(
                    "compression",
                    &v.to_ascii_uppercase(),
                    Compression::parse,
                    &Compression::ALL.map(Compression::as_str),
                ))
                .unwrap_or(Compression::None),
            None => Compression::None,
        };
        check_output(self.output, &mut problems);
        let encryption_key = self
            .encryption_key
            .read("encryptionKey", A_STRING, &mut problems)
            .and_then(|key| match parse_public_key(&key) {
                Ok(_) => Some(key),
                Err(e) => {
                    problems.push(invalid(format!("encryptionKey: {e}")));
                    None
                }
            });
        let read_deleted = self
            .read_deleted
            .read("readDeleted", A_BOOLEAN, &mut problems)
            .unwrap_or(false);
        let use_index_join = self
            .use_index_join
            .read("useIndexJoin", A_BOOLEAN, &mut problems)
            .unwrap_or(false);
        let source_data = match self.source_data.read("sourceData", A_STRING, &mut problems) {
            Some(v) => problems
                .check(parse_one_of(
                    "sourceData",
                    &v.to_ascii_uppercase(),
                    |s| SOURCE_DATA.contains(&s).then(|| s.to_owned()),
                    &SOURCE_DATA,
                ))
                .unwrap_or_default(),
            None => SOURCE_DATA[0].to_owned(),
        };
        let warehouse_size = self
            .warehouse_size
            .read("warehouseSize", A_STRING, &mut problems)
            .and_then(|v| {
                problems.check(parse_one_of(
                    "warehouseSize",
                    &v,
                    |s| {
                        WAREHOUSE_SIZES
                            .iter()
                            .find(|w| w.eq_ignore_ascii_case(s))
                            .map(|w| (*w).to_owned())
                    },
                    &WAREHOUSE_SIZES,
                ))
            });
        if !unknown.is_empty() {
            let takes = field_names::<SubmitBody>().join(", ");
            for name in unknown {
                problems.push(invalid(format!(
                    "{}: unknown field (the body takes {takes})",
                    name.chars().take(80).collect::<String>()
                )));
            }
        }
        problems.finish()?;
        Ok(Submit {
            query,
            output_format: output_format.unwrap_or(QueryOutputFormat::Csv),
            column_separator,
            compression,
            encryption_key,
            read_deleted,
            source_data,
            use_index_join,
            warehouse_size,
        })
    }
}

/// `columnSeparator`: one character, not a quote, CR or LF (those would
/// make fields unreadable).
fn check_separator(separator: String) -> ApiResult<String> {
    let mut chars = separator.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if !matches!(c, '"' | '\r' | '\n') => Ok(separator),
        (Some(_), None) => Err(invalid(format!(
            "columnSeparator: {} cannot separate columns (a quote, CR or LF)",
            quoted(&separator)
        ))),
        _ => Err(invalid(format!(
            "columnSeparator: must be one character, not {}",
            quoted(&separator)
        ))),
    }
}

/// `output`: `{"target": "S3"}`, the one target auditx writes results to
/// (absent is the same).
fn check_output(output: Given<Object<OutputBody>>, problems: &mut Problems) {
    let output = match output {
        Given::Absent => return,
        Given::Value(output) => output,
        Given::Wrong(_) => {
            problems.push(invalid(
                "output: must be an object like {\"target\": \"S3\"}".into(),
            ));
            return;
        }
    };
    match output.fields.target {
        Given::Absent => problems.push(ApiError::MissingParameter(
            "output.target: required (S3)".into(),
        )),
        Given::Wrong(_) => problems.push(invalid("output.target: must be a string".into())),
        Given::Value(target) if target.eq_ignore_ascii_case("S3") => {}
        Given::Value(target) => problems.push(invalid(format!(
            "output.target: {} is not supported; results are written to S3 (\"S3\")",
            quoted(&target)
        ))),
    }
    for name in &output.unknown {
        problems.push(invalid(format!(
            "output.{}: unknown field (output takes target)",
            name.chars().take(80).collect::<String>()
        )));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn parse_json(body: Value) -> ApiResult<Submit> {
        parse(body.to_string().as_bytes())
    }

    #[test]
    fn the_reference_bodies_are_accepted() {
        // post_dataqueryjob.md's sample.
        let sample = parse_json(json!({
            "query": "SELECT accountnumber, balance FROM Account WHERE Account.balance > 100",
            "compression": "NONE",
            "output": {"target": "S3"},
            "outputFormat": "CSV"
        }))
        .unwrap();
        assert_eq!(sample.output_format, QueryOutputFormat::Csv);
        assert_eq!(sample.compression, Compression::None);
        assert_eq!(sample.source_data, "LIVE");
        assert!(!sample.read_deleted && !sample.use_index_join);
        // The encryption doc's sample.
        let encrypted = parse_json(json!({
            "query": "select * from account", "outputFormat": "CSV", "compression": "GZIP",
            "encryptionKey": "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCHRHXrqriUa5nkXP6tvCv3uQtH5fYezHFZ8kXeK2LWTmY6i7FGzRcDlDpuY72iLTPTqbYKyky1EhTlr/UaMn1tugb+wVbWJ81AnisAxCDmnkbMwkfqPHxNlu+Tg2OXtgFd4QCENAgHt/DOqD9HQV+5KHp59DdoD2BzpNf63b3D1QIDAQAB",
            "output" : { "target": "S3" }
        }))
        .unwrap();
        assert!(encrypted.encryption_key.is_some());
        assert_eq!(encrypted.compression, Compression::Gzip);
        // What Zuora's Python SDK sends (every field it knows, nulls left out
        // or not).
        let sdk = parse_json(json!({
            "columnSeparator": "|", "compression": "ZIP", "encryptionKey": null,
            "output": {"target": "S3"}, "outputFormat": "DSV", "query": "SELECT 1",
            "readDeleted": false, "sourceData": "WAREHOUSE", "useIndexJoin": true,
            "warehouseSize": "xsmall"
        }))
        .unwrap();
        assert_eq!(sdk.output_format, QueryOutputFormat::Dsv);
        assert_eq!(sdk.column_separator.as_deref(), Some("|"));
        assert_eq!(sdk.compression, Compression::Zip);
        assert_eq!(sdk.source_data, "WAREHOUSE");
        assert_eq!(sdk.warehouse_size.as_deref(), Some("xsmall"));
        assert!(sdk.use_index_join);
        // The separator is only kept for DSV.
        let csv = parse_json(json!({"query": "SELECT 1", "columnSeparator": ";"})).unwrap();
        assert_eq!(csv.column_separator, None);
    }

    #[test]
    fn bad_fields_are_named() {
        for (body, message) in [
            (
                json!({"query": "SELECT 1", "output": "S3"}),
                "output: must be an object",
            ),
            (
                json!({"query": "SELECT 1", "output": {"target": "S3", "bucket": "b"}}),
                "output.bucket: unknown field",
            ),
            (
                json!({"query": "SELECT 1", "output": {}}),
                "output.target: required (S3)",
            ),
            (
                json!({"query": "SELECT 1", "columnSeparator": ""}),
                "columnSeparator: must be one character",
            ),
            (
                json!({"query": "SELECT 1", "outputFormat": "DSV"}),
                "columnSeparator: required when outputFormat is DSV",
            ),
            (
                json!({"query": "SELECT 1", "useIndexJoin": 1}),
                "useIndexJoin: must be true or false",
            ),
            (
                json!({"query": "SELECT 1", "warehouseSize": "large"}),
                "warehouseSize: \"large\" is not one of xsmall, NULL",
            ),
            (
                json!({"query": "SELECT 1", "encryptionKey": "%%%"}),
                "encryptionKey: not base64",
            ),
            (
                json!({"query": "SELECT 1", "limit": 1}),
                "limit: unknown field (the body takes query, outputFormat, columnSeparator, \
                 compression, output, encryptionKey, readDeleted, sourceData, useIndexJoin, \
                 warehouseSize)",
            ),
            (json!({"query": "  "}), "query: required"),
            (json!({"query": 5}), "query: must be a string"),
            (json!([1]), "body: not a JSON object"),
        ] {
            let error = parse_json(body.clone())
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(message), "{body}: {error}");
        }
        assert_eq!(
            parse(b"{\"query\":").unwrap_err().to_string(),
            "body: not valid JSON (line 1, column 9)"
        );
    }

    #[test]
    fn every_problem_of_a_body_is_named() {
        let error = parse_json(json!({
            "query": 5, "outputFormat": "XML", "compression": "RAR",
            "readDeleted": "no", "output": {"target": "FTP", "bucket": "b"}, "limit": 1
        }))
        .unwrap_err();
        let messages: Vec<String> = error.reasons().into_iter().map(|r| r.message).collect();
        assert_eq!(
            messages,
            [
                "query: must be a string",
                "outputFormat: \"XML\" is not one of CSV, TSV, DSV, JSON",
                "compression: \"RAR\" is not one of NONE, GZIP, ZIP",
                "output.target: \"FTP\" is not supported; results are written to S3 (\"S3\")",
                "output.bucket: unknown field (output takes target)",
                "readDeleted: must be true or false",
                "limit: unknown field (the body takes query, outputFormat, columnSeparator, \
                 compression, output, encryptionKey, readDeleted, sourceData, useIndexJoin, \
                 warehouseSize)",
            ]
        );
    }
}
