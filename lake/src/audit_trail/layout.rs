//! Object keys of the lake.

use auditx_proto::{MeterId, TenantId};
use chrono::NaiveDate;

pub const AUDIT_TRAIL_TABLE: &str = "meter_audit_trail";
pub const RUNS_TABLE: &str = "meter_runs";

/// `meter_audit_trail/tenant=<t>/meter=<m>/`
pub fn audit_meter_prefix(tenant: &TenantId, meter: MeterId) -> String {
    format!("{AUDIT_TRAIL_TABLE}/tenant={tenant}/meter={meter}/")
}

/// `meter_audit_trail/tenant=<t>/meter=<m>/date=<d>/`
pub fn audit_date_prefix(tenant: &TenantId, meter: MeterId, date: NaiveDate) -> String {
    format!(
        "{}date={}/",
        audit_meter_prefix(tenant, meter),
        date.format("%Y-%m-%d")
    )
}

/// `meter_runs/tenant=<t>/meter=<m>/`
pub fn runs_meter_prefix(tenant: &TenantId, meter: MeterId) -> String {
    format!("{RUNS_TABLE}/tenant={tenant}/meter={meter}/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::file_key;

    #[test]
    fn keys_are_partitioned_by_tenant_meter_and_date() {
        let tenant = TenantId::from("acme");
        let date = NaiveDate::from_ymd_opt(2025, 7, 23).unwrap();
        assert_eq!(
            file_key(&audit_date_prefix(&tenant, MeterId(7), date), "abc"),
            "meter_audit_trail/tenant=acme/meter=7/date=2025-07-23/abc.parquet"
        );
        assert_eq!(
            runs_meter_prefix(&tenant, MeterId(7)),
            "meter_runs/tenant=acme/meter=7/"
        );
    }
}
