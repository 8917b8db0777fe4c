//! The tenant audit tables that data queries read (the second seed's
//! `auditloginevent`, `auditsettingchangeevent`, `auditobjectchangeevent`)
//! and the reference tables its sample queries join.
//!
//! Each table lives in the lake as content-addressed Parquet files under
//! `<table>/tenant=<t>/`, every column nullable, times as
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

/// The type of a table column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    /// ISO-8601 with a zone on ingest; `Timestamp(Millisecond, UTC)` in Parquet.
    Timestamp,
    /// A 64-bit integer.
    Integer,
}

impl ColumnType {
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::Text => DataType::Utf8,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ColumnType::Integer => DataType::Int64,
        }
    }
}

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
}

use ColumnType::{Integer, Text, Timestamp};

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
    ],
};

pub const PRODUCT: TableDef = TableDef {
    name: "product",
    columns: &[("id", Text), ("name", Text)],
};

pub const PRODUCT_RATE_PLAN: TableDef = TableDef {
    name: "productrateplan",
    columns: &[("id", Text), ("name", Text), ("productid", Text)],
};

pub const PRODUCT_RATE_PLAN_CHARGE: TableDef = TableDef {
    name: "productrateplancharge",
    columns: &[("id", Text), ("name", Text), ("productrateplanid", Text)],
};

pub const PRODUCT_RATE_PLAN_CHARGE_TIER: TableDef = TableDef {
    name: "productrateplanchargetier",
    columns: &[
        ("id", Text),
        ("productrateplanchargeid", Text),
        ("tier", Text),
        ("price", Text),
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
    }
}
