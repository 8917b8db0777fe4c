//! The tenant audit tables that data queries read (the second seed's
//! `auditloginevent`, `auditsettingchangeevent`, `auditobjectchangeevent`)
//! and the reference tables its sample queries join.
//!
//! The audit tables have every column of Zuora's data model
//! (`docs/data-model-of-audit-trail*.md`) with the docs' types; every table
//! has a `deleted` flag (see [`DELETED_COLUMN`]).
//!
//! Each table lives in the lake as content-addressed Parquet files under
//! `<table>/tenant=<t>/` — the audit tables under `year=<y>/month=<m>/`
//! below it (see [`PARTITION_COLUMNS`]) — every column nullable, times as
//! `Timestamp(Millisecond, UTC)`. Rows get there through [`ingest`]
//! (batches of JSON / NDJSON, idempotent on `id`) and [`generate`]
//! (synthetic data of any size).

pub mod generate;
pub mod ingest;
mod write;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use auditx_proto::TenantId;

pub use write::Cell;

/// Stored after a table's own columns: the entity the rows were ingested
/// for (the caller's single entity; NULL for generated rows). Data queries
/// of a scoped caller see only rows of its entities and never the column.
pub const ENTITY_COLUMN: &str = "entity";
/// Likewise for the caller's org.
pub const ORG_COLUMN: &str = "org";
const OWNER_COLUMNS: [&str; 2] = [ENTITY_COLUMN, ORG_COLUMN];

/// Whose rows a table file holds: stamped from the ingesting caller (see
/// `Caller::single_entity` in the API), empty for generated data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowOwner {
    pub entity: Option<String>,
    pub org: Option<String>,
}

/// The type of a table column: the docs' `varchar`, `timestamp with time
/// zone`, `bigint` and `integer`, and the `deleted` flag's boolean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    /// ISO-8601 with a zone on ingest; `Timestamp(Millisecond, UTC)` in Parquet.
    Timestamp,
    /// A 64-bit integer (the docs' `bigint`).
    Integer,
    /// A 32-bit integer (the docs' `integer`: `year`, `month`, `day`).
    Int32,
    /// `true` / `false`.
    Boolean,
}

impl ColumnType {
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::Text => DataType::Utf8,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ColumnType::Integer => DataType::Int64,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Boolean => DataType::Boolean,
        }
    }
}

/// Every table has it: rows with `deleted = true` are hidden from data
/// queries unless the query reads deleted rows (`readDeleted`) or names the
/// column (Zuora's Data Query semantics). A missing value is not deleted.
pub const DELETED_COLUMN: &str = "deleted";

/// The columns the audit event tables' files are partitioned by, in path
/// order: `<table>/tenant=<t>/year=<yyyy>/month=<m>/<hash>.parquet`. They
/// are also stored in the files; `day` is a column only.
pub const PARTITION_COLUMNS: [&str; 2] = ["year", "month"];

/// One queryable table: its name and columns, in storage order.
#[derive(Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub columns: &'static [(&'static str, ColumnType)],
}

impl TableDef {
    /// The Arrow schema of the table's Parquet files.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|(name, ty)| Field::new(*name, ty.data_type(), true))
                .collect::<Vec<_>>(),
        ))
    }

    /// The schema of the files written since scopes: the table's columns,
    /// then [`ENTITY_COLUMN`] and [`ORG_COLUMN`]. Older files lack the two;
    /// they read as NULL.
    pub fn stored_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for name in OWNER_COLUMNS {
            fields.push(Field::new(name, DataType::Utf8, true));
        }
        Arc::new(Schema::new(fields))
    }

    pub fn column(&self, name: &str) -> Option<ColumnType> {
        self.columns
            .iter()
            .find(|(column, _)| *column == name)
            .map(|(_, ty)| *ty)
    }

    /// `<table>/tenant=<t>/`: every file of the tenant's table, and nothing
    /// of another tenant's (the trailing slash keeps `t1` from matching `t10`).
    pub fn tenant_prefix(&self, tenant: &TenantId) -> String {
        format!("{}/tenant={tenant}/", self.name)
    }

    /// Whether the table's files are partitioned by [`PARTITION_COLUMNS`]
    /// (the audit event tables, which have them).
    pub fn partitioned(&self) -> bool {
        PARTITION_COLUMNS.iter().all(|c| self.column(c).is_some())
    }

    /// The prefix of the tenant's files of one `year` and `month`:
    /// `<table>/tenant=<t>/year=<y>/month=<m>/` (no zero padding: a query's
    /// `month = 7` lists exactly `month=7/`).
    pub fn partition_prefix(&self, tenant: &TenantId, year: i32, month: i32) -> String {
        format!("{}year={year}/month={month}/", self.tenant_prefix(tenant))
    }

    /// The index of column `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|(column, _)| *column == name)
    }
}

use ColumnType::{Boolean, Int32, Integer, Text, Timestamp};

pub const AUDIT_LOGIN_EVENT: TableDef = TableDef {
    name: "auditloginevent",
    columns: &[
        ("id", Text),
        ("eventid", Text),
        ("username", Text),
        ("userid", Text),
        ("logintype", Text),
        ("status", Text),
        ("timestamp", Timestamp),
        ("browsertype", Text),
        ("browserversion", Text),
        ("ipaddress", Text),
        ("hostname", Text),
        ("createddate", Timestamp),
        ("createdbyid", Text),
        ("tokenid", Text),
        ("sequencenumber", Integer),
        ("year", Int32),
        ("month", Int32),
        ("day", Int32),
        (DELETED_COLUMN, Boolean),
    ],
};

pub const AUDIT_SETTING_CHANGE_EVENT: TableDef = TableDef {
    name: "auditsettingchangeevent",
    columns: &[
        ("id", Text),
        ("eventid", Text),
        ("username", Text),
        ("userid", Text),
        ("action", Text),
        ("settingtype", Text),
        ("attributename", Text),
        ("settingobjectname", Text),
        ("namespace", Text),
        ("oldvalue", Text),
        ("newvalue", Text),
        ("timestamp", Timestamp),
        ("createddate", Timestamp),
        ("transactionid", Text),
        ("sequencenumber", Integer),
        ("attributeid", Text),
        ("createdbyid", Text),
        ("tokenid", Text),
        ("year", Int32),
        ("month", Int32),
        ("day", Int32),
        (DELETED_COLUMN, Boolean),
    ],
};

pub const AUDIT_OBJECT_CHANGE_EVENT: TableDef = TableDef {
    name: "auditobjectchangeevent",
    columns: &[
        ("id", Text),
        ("eventid", Text),
        ("username", Text),
        ("userid", Text),
        ("action", Text),
        ("objecttype", Text),
        ("objectid", Text),
        ("objectname", Text),
        ("attributeid", Text),
        ("namespace", Text),
        ("oldvalue", Text),
        ("newvalue", Text),
        ("timestamp", Timestamp),
        ("createddate", Timestamp),
        ("transactionid", Text),
        ("sequencenumber", Integer),
        ("createdbyid", Text),
        ("tokenid", Text),
        ("year", Int32),
        ("month", Int32),
        ("day", Int32),
        (DELETED_COLUMN, Boolean),
    ],
};

pub const CONTACT: TableDef = TableDef {
    name: "contact",
    columns: &[
        ("id", Text),
        ("firstname", Text),
        ("lastname", Text),
        ("workemail", Text),
        ("accountid", Text),
        (DELETED_COLUMN, Boolean),
    ],
};

pub const PRODUCT: TableDef = TableDef {
    name: "product",
    columns: &[("id", Text), ("name", Text), (DELETED_COLUMN, Boolean)],
};

pub const PRODUCT_RATE_PLAN: TableDef = TableDef {
    name: "productrateplan",
    columns: &[
        ("id", Text),
        ("name", Text),
        ("productid", Text),
        (DELETED_COLUMN, Boolean),
    ],
};

pub const PRODUCT_RATE_PLAN_CHARGE: TableDef = TableDef {
    name: "productrateplancharge",
    columns: &[
        ("id", Text),
        ("name", Text),
        ("productrateplanid", Text),
        (DELETED_COLUMN, Boolean),
    ],
};

pub const PRODUCT_RATE_PLAN_CHARGE_TIER: TableDef = TableDef {
    name: "productrateplanchargetier",
    columns: &[
        ("id", Text),
        ("productrateplanchargeid", Text),
        ("tier", Text),
        ("price", Text),
        (DELETED_COLUMN, Boolean),
    ],
};

/// Every table a data query can read, in the order the docs list them.
pub const TABLES: [&TableDef; 8] = [
    &AUDIT_LOGIN_EVENT,
    &AUDIT_SETTING_CHANGE_EVENT,
    &AUDIT_OBJECT_CHANGE_EVENT,
    &CONTACT,
    &PRODUCT,
    &PRODUCT_RATE_PLAN,
    &PRODUCT_RATE_PLAN_CHARGE,
    &PRODUCT_RATE_PLAN_CHARGE_TIER,
];

/// The table called `name` (exactly, lowercase).
pub fn table(name: &str) -> Option<&'static TableDef> {
    TABLES.into_iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_found_by_name_and_prefixes_end_in_a_slash() {
        let def = table("auditloginevent").unwrap();
        assert_eq!(def.column("createddate"), Some(ColumnType::Timestamp));
        assert_eq!(
            def.tenant_prefix(&TenantId::from("t1")),
            "auditloginevent/tenant=t1/"
        );
        assert!(table("AuditLoginEvent").is_none());
        assert!(table("meter_audit_trail").is_none());
        assert_eq!(def.schema().fields().len(), def.columns.len());
        let stored = def.stored_schema();
        assert_eq!(stored.fields().len(), def.columns.len() + 2);
        assert_eq!(stored.field(def.columns.len()).name(), ENTITY_COLUMN);
        assert_eq!(stored.field(def.columns.len() + 1).name(), ORG_COLUMN);
        for def in TABLES {
            assert!(def.column(ENTITY_COLUMN).is_none() && def.column(ORG_COLUMN).is_none());
        }
    }
}
