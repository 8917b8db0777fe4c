//! What synthetic rows say: a meter's operator pipeline, the errors each
//! operator raises and the usage payloads it emits. Error messages carry
//! commas, double quotes and the odd line break, as real ones do, so
//! exports exercise CSV quoting.

use std::fmt::Write;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One operator of a meter's pipeline.
pub(crate) struct Operator {
    pub id: &'static str,
    pub kind: &'static str,
    pub name: &'static str,
    /// Relative share of the records this operator emits.
    weight: u32,
    /// Error codes it raises, with a message template (see [`error_message`]).
    errors: &'static [(&'static str, &'static str)],
}

pub(crate) const OPERATORS: [Operator; 5] = [
    Operator {
        id: "op-1",
        kind: "Source",
        name: "Usage File Import",
        weight: 30,
        errors: &[
            ("PARSE_ERROR", "Malformed CSV at line {n}: unterminated quoted field \"Acme, Inc."),
            ("MISSING_FIELD", "Required field \"accountNumber\" is missing"),
        ],
    },
    Operator {
        id: "op-2",
        kind: "Transform",
        name: "Normalize Units",
        weight: 20,
        errors: &[
            ("UOM_NOT_FOUND", "Unit of measure \"{unit}\" is not defined, expected one of: GB, API_CALL, MINUTE"),
            ("SCRIPT_ERROR", "TypeError: cannot read properties of undefined (reading 'quantity')\n    at normalize (line {n}, column 7)"),
        ],
    },
    Operator {
        id: "op-3",
        kind: "Transform",
        name: "Enrich Account",
        weight: 20,
        errors: &[("ACCOUNT_NOT_FOUND", "Account \"{account}\" not found, record skipped")],
    },
    Operator {
        id: "op-4",
        kind: "Aggregate",
        name: "Daily Rollup",
        weight: 15,
        errors: &[("WINDOW_CLOSED", "Record for {date} arrived after its window closed, dropped")],
    },
    Operator {
        id: "op-5",
        kind: "Sink",
        name: "Usage Push",
        weight: 15,
        errors: &[
            ("PUSH_FAILED", "Usage push failed: HTTP 503, \"Service Unavailable\""),
            ("DUPLICATE_USAGE", "Duplicate usage, uniqueKey \"{account}-{date}\" was already uploaded"),
        ],
    },
];

const UNITS: [&str; 4] = ["GB", "API_CALL", "MINUTE", "Each"];
const REGIONS: [&str; 3] = ["us-west-2", "eu-central-1", "ap-southeast-1"];
const PLANS: [&str; 3] = ["Starter", "Growth", "Enterprise"];

/// Picks an operator by weight.
pub(crate) fn pick_operator(rng: &mut ChaCha8Rng) -> &'static Operator {
    let total: u32 = OPERATORS.iter().map(|o| o.weight).sum();
    let mut ticket = rng.gen_range(0..total);
    for operator in &OPERATORS {
        if ticket < operator.weight {
            return operator;
        }
        ticket -= operator.weight;
    }
    unreachable!("tickets are below the total weight")
}

/// The business fields of one usage record.
pub(crate) struct Usage<'a> {
    pub account: u32,
    pub unit: &'static str,
    pub date: &'a str,
}

impl<'a> Usage<'a> {
    pub(crate) fn random(rng: &mut ChaCha8Rng, date: &'a str) -> Self {
        Self {
            account: rng.gen_range(1..5_000),
            unit: UNITS[rng.gen_range(0..UNITS.len())],
            date,
        }
    }

    /// The compact JSON payload; a quarter carry a nested `attributes` object.
    pub(crate) fn payload(&self, rng: &mut ChaCha8Rng) -> String {
        let mut json = String::with_capacity(160);
        let quantity = f64::from(rng.gen_range(1..1_000_000u32)) / 100.0;
        let _ = write!(
            json,
            r#"{{"accountNumber":"A{:08}","quantity":{quantity},"unit":"{}","usageDate":"{}""#,
            self.account, self.unit, self.date
        );
        if rng.gen_ratio(1, 4) {
            let region = REGIONS[rng.gen_range(0..REGIONS.len())];
            let plan = PLANS[rng.gen_range(0..PLANS.len())];
            let _ = write!(
                json,
                r#","attributes":{{"region":"{region}","plan":"{plan}"}}"#
            );
        }
        json.push('}');
        json
    }

    /// An error this operator raises for the record: (code, message).
    pub(crate) fn error(&self, operator: &Operator, rng: &mut ChaCha8Rng) -> (String, String) {
        let (code, template) = operator.errors[rng.gen_range(0..operator.errors.len())];
        let message = template
            .replace("{n}", &rng.gen_range(2..20_000).to_string())
            .replace("{unit}", self.unit)
            .replace("{account}", &format!("A{:08}", self.account))
            .replace("{date}", self.date);
        (code.to_owned(), message)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn payloads_are_compact_json_objects() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100 {
            let usage = Usage::random(&mut rng, "2025-07-23");
            let payload = usage.payload(&mut rng);
            let value: serde_json::Value = serde_json::from_str(&payload).unwrap();
            assert!(value.is_object());
            assert_eq!(serde_json::to_string(&value).unwrap(), payload);
        }
    }

    #[test]
    fn every_operator_can_fail_and_some_messages_need_csv_quoting() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let usage = Usage::random(&mut rng, "2025-07-23");
        let messages: Vec<String> = (0..200)
            .map(|_| usage.error(pick_operator(&mut rng), &mut rng).1)
            .collect();
        assert!(messages.iter().any(|m| m.contains(',') && m.contains('"')));
        assert!(messages.iter().any(|m| m.contains('\n')));
        assert!(messages.iter().all(|m| !m.contains('{')));
    }
}
