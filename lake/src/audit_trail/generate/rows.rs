//! The stream of generated audit rows.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::content::{pick_operator, Usage};
use super::plan::{bands, rng, Band};
use super::GenerateSpec;
use crate::audit_trail::write::utc_date;
use crate::AuditRow;

const DAY_MS: i64 = 86_400_000;

/// A UUIDv7 (time-ordered, as modern event ids are) whose "random" bits
/// start with the row's sequence number: ids of rows in the same
/// millisecond sort in generation order, and `random` keeps ids of other
/// seeds and meters apart.
fn event_id(time_ms: i64, seq: u64, random: u32) -> String {
    let unix_ms = u128::from(time_ms as u64 & 0xFFFF_FFFF_FFFF);
    let value = (unix_ms << 80)
        | (0x7 << 76)
        | (u128::from((seq >> 30) & 0xFFF) << 64)
        | (0b10 << 62)
        | (u128::from(seq & 0x3FFF_FFFF) << 32)
        | u128::from(random);
    uuid::Uuid::from_u128(value).hyphenated().to_string()
}

/// Generates rows one at a time, in (`eventTime`, `eventId`) order.
pub(crate) struct AuditRows {
    tenant: String,
    meter_id: i64,
    rows: u64,
    from_ms: i64,
    span_ms: u128,
    error_rate: f64,
    bands: Vec<Band>,
    rng: ChaCha8Rng,
    next: u64,
    /// The `usageDate` text of the current day, formatted once per day.
    day: Option<(i64, String)>,
}

impl AuditRows {
    pub(crate) fn new(spec: &GenerateSpec) -> Self {
        Self {
            tenant: spec.tenant.as_str().to_owned(),
            meter_id: spec.meter.0,
            rows: spec.rows,
            from_ms: spec.from_ms,
            span_ms: (spec.to_ms - spec.from_ms).max(0) as u128,
            error_rate: if spec.error_rate.is_nan() {
                0.0
            } else {
                spec.error_rate.clamp(0.0, 1.0)
            },
            bands: bands(spec),
            rng: rng(spec, "audit-rows"),
            next: 0,
            day: None,
        }
    }

    /// Row `i`'s time: rows are spread evenly with a little jitter that
    /// never reorders them, all within `[from, to)`.
    fn time_of(&mut self, i: u64) -> i64 {
        let position = (u128::from(i) << 16) | u128::from(self.rng.gen::<u16>());
        self.from_ms + (position * self.span_ms / (u128::from(self.rows) << 16)) as i64
    }
}

impl Iterator for AuditRows {
    type Item = AuditRow;

    fn next(&mut self) -> Option<AuditRow> {
        if self.next >= self.rows {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let time = self.time_of(i);
        let day = time.div_euclid(DAY_MS);
        if self.day.as_ref().is_none_or(|(d, _)| *d != day) {
            self.day = Some((day, utc_date(time).format("%Y-%m-%d").to_string()));
        }
        let rng = &mut self.rng;
        let band = &self.bands
            [(u128::from(i) * self.bands.len() as u128 / u128::from(self.rows)) as usize];
        let run = match &band.debug {
            Some(debug) if rng.gen_ratio(1, 5) => debug,
            _ => &band.normal,
        };
        let operator = pick_operator(rng);
        let usage = Usage::random(rng, self.day.as_ref().map_or("", |(_, text)| text));
        let failed = rng.gen_bool(self.error_rate);
        let (error_code, error_message) = if failed {
            usage.error(operator, rng)
        } else {
            Default::default()
        };
        let payload = usage.payload(rng);
        Some(AuditRow {
            tenant: self.tenant.clone(),
            entity: None,
            org: None,
            meter_id: self.meter_id,
            session_id: run.id.clone(),
            run_type: run.run_type.to_owned(),
            record_type: if failed { "ERROR" } else { "SAMPLE" }.to_owned(),
            operator_id: Some(operator.id.to_owned()),
            operator_type: Some(operator.kind.to_owned()),
            operator_name: Some(operator.name.to_owned()),
            event_id: event_id(time, i, rng.gen()),
            trace_id: Some(format!("{:032x}", rng.gen::<u128>())),
            event_time_ms: time,
            error_code: failed.then_some(error_code),
            error_message: failed.then_some(error_message),
            payload: Some(payload),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.rows - self.next).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_sort_by_time_then_sequence() {
        let ids = [
            event_id(1000, 5, u32::MAX),
            event_id(1000, 6, 0),
            event_id(1000, 1 << 30, 0),
            event_id(1001, 0, 0),
        ];
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert_eq!(uuid::Uuid::parse_str(&ids[0]).unwrap().get_version_num(), 7);
    }
}
