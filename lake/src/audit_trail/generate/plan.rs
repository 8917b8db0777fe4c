//! The runs (sessions) of a generated data set: the time range is cut into
//! bands, each with one NORMAL run, and every third band also has a DEBUG
//! run taking part of its records, as a meter under test would.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::GenerateSpec;

/// Records per run, roughly; a data set has at least [`MIN_BANDS`] runs.
const ROWS_PER_BAND: u64 = 25_000;
const MIN_BANDS: u64 = 4;
const MAX_BANDS: u64 = 100_000;

/// The randomness of one aspect of a data set, from everything that makes
/// the data set what it is, so the same spec always gives the same data and
/// two meters (or seeds) never share event ids.
pub(crate) fn rng(spec: &GenerateSpec, stream: &str) -> ChaCha8Rng {
    let mut hash = Sha256::new();
    hash.update(spec.seed.to_le_bytes());
    hash.update(spec.tenant.as_str().as_bytes());
    hash.update([0]);
    for n in [spec.meter.0, spec.from_ms, spec.to_ms, spec.rows as i64] {
        hash.update(n.to_le_bytes());
    }
    hash.update(stream.as_bytes());
    ChaCha8Rng::from_seed(hash.finalize().into())
}

/// A run: its id, type and the time it covers.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub id: String,
    pub run_type: &'static str,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// The runs of one band of time.
#[derive(Clone, Debug)]
pub(crate) struct Band {
    pub normal: Run,
    pub debug: Option<Run>,
}

/// The bands of a data set, in time order.
pub(crate) fn bands(spec: &GenerateSpec) -> Vec<Band> {
    let count = (spec.rows / ROWS_PER_BAND).clamp(MIN_BANDS, MAX_BANDS);
    let mut next_id = rng(spec, "runs-ids").gen_range(1_000..90_000u64);
    let mut run = |run_type, start_ms, end_ms| {
        next_id += 1;
        Run {
            id: format!("R-{next_id:08}"),
            run_type,
            start_ms,
            end_ms,
        }
    };
    let span = (spec.to_ms - spec.from_ms).max(0) as i128;
    let at = |b: u64| spec.from_ms + (span * b as i128 / count as i128) as i64;
    (0..count)
        .map(|b| {
            let (start, end) = (at(b), at(b + 1));
            let normal = run("NORMAL", start, end);
            let debug = (b % 3 == 1).then(|| run("DEBUG", start, end));
            Band { normal, debug }
        })
        .collect()
}
