//! Status histories of the generated runs. NORMAL runs go INITIALIZING →
//! RUNNING → an outcome, DEBUG runs INITIALIZING → TESTING → a test
//! verdict; some runs are still RUNNING (always the latest NORMAL one), so
//! `runStatuses` filters select real, non-trivial subsets.

use rand::Rng;

use super::plan::{bands, rng, Run};
use super::GenerateSpec;
use crate::RunRow;

/// Outcomes of NORMAL runs with their relative weights; an empty list
/// leaves the run RUNNING.
const NORMAL_OUTCOMES: [(&[&str], u32); 6] = [
    (&["COMPLETED"], 45),
    (&["USAGE_PUSHING", "PUSH_COMPLETED"], 15),
    (&["FAILED"], 15),
    (&["CANCELED"], 8),
    (&["PAUSED"], 7),
    (&[], 10),
];

/// The status changes of every run, in time order (as `read_runs` returns
/// them once written).
pub(crate) fn run_rows(spec: &GenerateSpec) -> Vec<RunRow> {
    let mut rng = rng(spec, "run-statuses");
    let bands = bands(spec);
    let last = bands.len().saturating_sub(1);
    let mut rows = Vec::new();
    for (b, band) in bands.iter().enumerate() {
        let mut push = |run: &Run, status: &str, at: i64| {
            rows.push(RunRow {
                tenant: spec.tenant.as_str().to_owned(),
                meter_id: spec.meter.0,
                session_id: run.id.clone(),
                run_type: run.run_type.to_owned(),
                status: status.to_owned(),
                updated_at_ms: at,
            })
        };
        let normal = &band.normal;
        push(
            normal,
            "INITIALIZING",
            normal.start_ms - rng.gen_range(1_000..30_000),
        );
        push(normal, "RUNNING", normal.start_ms);
        let outcome: &[&str] = if b == last { &[] } else { pick(&mut rng) };
        let mut at = normal.end_ms;
        for status in outcome {
            at += rng.gen_range(1_000..60_000);
            push(normal, status, at);
        }
        if let Some(debug) = &band.debug {
            push(
                debug,
                "INITIALIZING",
                debug.start_ms - rng.gen_range(1_000..30_000),
            );
            push(debug, "TESTING", debug.start_ms);
            let verdict = if rng.gen_ratio(7, 10) {
                "TESTING_PASSED"
            } else {
                "TESTING_FAILED"
            };
            push(debug, verdict, debug.end_ms + rng.gen_range(1_000..60_000));
        }
    }
    rows.sort_by_key(|r| r.updated_at_ms);
    rows
}

fn pick(rng: &mut impl Rng) -> &'static [&'static str] {
    let total: u32 = NORMAL_OUTCOMES.iter().map(|(_, w)| w).sum();
    let mut ticket = rng.gen_range(0..total);
    for (statuses, weight) in NORMAL_OUTCOMES {
        if ticket < weight {
            return statuses;
        }
        ticket -= weight;
    }
    unreachable!("tickets are below the total weight")
}
