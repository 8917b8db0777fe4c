//! The fields of the meters' ingest rows, one table per kind of row: the
//! parser ([`super::parse`]) reads and checks every field by its entry here
//! (name, kind, required), and the API's OpenAPI document builds the rows'
//! schemas from the same tables, so a field added here is parsed and
//! documented at once and the two cannot disagree.

use crate::audit_trail::schema::RUN_STATUSES;

/// `runType` values.
pub const RUN_TYPES: [&str; 2] = ["NORMAL", "DEBUG"];
/// `recordType` values.
pub const RECORD_TYPES: [&str; 2] = ["SAMPLE", "ERROR"];

/// What a field's value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// A string. A required one must not be empty; an empty optional one
    /// counts as absent (it renders the same).
    Text,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// An ISO-8601 time with zone, extended or basic form, or epoch
    /// milliseconds.
    Time,
    /// A JSON object, kept as the client wrote it.
    Object,
}

/// One field of an ingest row. JSON null counts as absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldDef {
    /// The JSON name.
    pub name: &'static str,
    pub kind: FieldKind,
    /// A row without it (or with null) is refused.
    pub required: bool,
    /// What the field is, for the API's documentation.
    pub description: &'static str,
}

const fn required(name: &'static str, kind: FieldKind, description: &'static str) -> FieldDef {
    FieldDef {
        name,
        kind,
        required: true,
        description,
    }
}

const fn optional(name: &'static str, kind: FieldKind, description: &'static str) -> FieldDef {
    FieldDef {
        name,
        kind,
        required: false,
        description,
    }
}

pub const EVENT_ID: FieldDef = required(
    "eventId",
    FieldKind::Text,
    "Unique per meter: a repeated eventId is counted as a duplicate and not stored again.",
);
pub const EVENT_TIME: FieldDef = required(
    "eventTime",
    FieldKind::Time,
    "When the entry happened: ISO-8601 with zone (extended or basic form) or epoch \
     milliseconds.",
);
pub const SESSION_ID: FieldDef =
    required("sessionId", FieldKind::Text, "The run, e.g. R-00002283.");
pub const RUN_TYPE: FieldDef = required("runType", FieldKind::OneOf(&RUN_TYPES), "Run type.");
pub const RECORD_TYPE: FieldDef = required(
    "recordType",
    FieldKind::OneOf(&RECORD_TYPES),
    "SAMPLE (a processed record) or ERROR (a failed one).",
);
pub const OPERATOR_ID: FieldDef = optional(
    "operatorId",
    FieldKind::Text,
    "The operator (processing node) that wrote the entry.",
);
pub const OPERATOR_TYPE: FieldDef =
    optional("operatorType", FieldKind::Text, "The operator's type.");
pub const OPERATOR_NAME: FieldDef =
    optional("operatorName", FieldKind::Text, "The operator's name.");
pub const ERROR_CODE: FieldDef = optional("errorCode", FieldKind::Text, "An error entry's code.");
pub const ERROR_MESSAGE: FieldDef =
    optional("errorMessage", FieldKind::Text, "An error entry's message.");
pub const TRACE_ID: FieldDef = optional("traceId", FieldKind::Text, "The trace of the record.");
pub const PAYLOAD: FieldDef = optional(
    "payload",
    FieldKind::Object,
    "Any JSON object; stored and exported as the JSON text sent (numbers as written, key \
     order kept).",
);

/// The fields of a meter audit entry (`POST .../auditTrail/entries`), in
/// the order rows are checked.
pub const AUDIT_ENTRY_FIELDS: [FieldDef; 12] = [
    EVENT_ID,
    EVENT_TIME,
    SESSION_ID,
    RUN_TYPE,
    RECORD_TYPE,
    OPERATOR_ID,
    OPERATOR_TYPE,
    OPERATOR_NAME,
    ERROR_CODE,
    ERROR_MESSAGE,
    TRACE_ID,
    PAYLOAD,
];

pub const RUN_STATUS: FieldDef = required(
    "status",
    FieldKind::OneOf(&RUN_STATUSES),
    "The run's status from this time on.",
);
pub const UPDATED_AT: FieldDef = required(
    "updatedAt",
    FieldKind::Time,
    "When the run took the status: ISO-8601 with zone (extended or basic form) or epoch \
     milliseconds.",
);

/// The fields of a run status change (`POST /meters/{meterId}/runs`).
pub const RUN_STATUS_FIELDS: [FieldDef; 4] = [SESSION_ID, RUN_TYPE, RUN_STATUS, UPDATED_AT];

/// The names of `fields`, in order: the keys the batch reader takes.
pub(super) const fn names<const N: usize>(fields: &[FieldDef; N]) -> [&'static str; N] {
    let mut names = [""; N];
    let mut i = 0;
    while i < N {
        names[i] = fields[i].name;
        i += 1;
    }
    names
}
