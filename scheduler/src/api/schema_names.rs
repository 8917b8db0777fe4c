//! The string enumerations of the API's schemas: each lists its values from
//! the code that accepts them (the domain's own lists, or the constants
//! here for options auditx takes as Zuora names them but does not act on).

use auditx_lake::tables::TABLES;
use auditx_lake::RUN_STATUSES;
use auditx_proto::{Compression, OutputFormat, QueryOutputFormat, RecordType, RunType};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::export::jobs::JobStatus;
use crate::query::jobs::QueryStatus;

/// `sourceData` values; both read the tenant's tables in the lake.
pub const SOURCE_DATA: [&str; 2] = ["LIVE", "WAREHOUSE"];
/// `warehouseSize` values.
pub const WAREHOUSE_SIZES: [&str; 2] = ["xsmall", "NULL"];
/// `output.target` values.
pub const OUTPUT_TARGETS: [&str; 1] = ["S3"];

/// A string schema listing `values`.
pub fn string_enum<'a>(description: &str, values: impl IntoIterator<Item = &'a str>) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

/// A schema type whose values are a list from the code.
macro_rules! string_enum_schema {
    ($(#[$doc:meta])* $name:ident, $description:literal, $values:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::api::schema_names::string_enum($description, $values).into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

string_enum_schema!(
    ExportType,
    "Record type: SAMPLE (processed records) or ERROR (failed ones).",
    RecordType::ALL.map(RecordType::as_str)
);
string_enum_schema!(RunTypeName, "Run type.", RunType::ALL.map(RunType::as_str));
string_enum_schema!(RunStatus, "A run status.", RUN_STATUSES);
string_enum_schema!(
    ExportFormat,
    "Output format of the files.",
    OutputFormat::ALL.map(OutputFormat::as_str)
);
string_enum_schema!(
    JobStatusName,
    "PENDING waits for the tenant's lease.",
    JobStatus::ALL.map(JobStatus::as_str)
);
string_enum_schema!(
    QueryStatusName,
    "Status of a data query.",
    QueryStatus::ALL.map(QueryStatus::as_str)
);
string_enum_schema!(
    QueryFormatName,
    "Result format; JSON is JSON Lines.",
    QueryOutputFormat::ALL.map(QueryOutputFormat::as_str)
);
string_enum_schema!(
    CompressionName,
    "Compression of the result file.",
    Compression::ALL.map(Compression::as_str)
);
string_enum_schema!(TableName, "A tenant table.", TABLES.iter().map(|t| t.name));

string_enum_schema!(SourceDataName, "Source of a data query.", SOURCE_DATA);
string_enum_schema!(WarehouseSizeName, "Warehouse size.", WAREHOUSE_SIZES);
string_enum_schema!(
    OutputTargetName,
    "Where results are written.",
    OUTPUT_TARGETS
);
