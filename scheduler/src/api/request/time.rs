//! Times in requests: ISO-8601 with a zone, in the extended or basic form
//! Zuora's reference uses (`2025-07-01T00:00:00+0530`,
//! `2025-10-01T0000+0000`), everywhere a time is taken.

use auditx_common::time::parse_iso_time;
use chrono::{DateTime, FixedOffset};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::api::response::error::{quoted, ApiError, ApiResult};

/// An ISO-8601 time with zone, extended or basic form
/// ([`parse_iso_time`]). A `+` left unencoded in a query string arrives as
/// a space, so a space is read as `+` when that is the only thing wrong;
/// the returned text is the time as understood.
pub fn parse_time(name: &str, value: &str) -> ApiResult<(DateTime<FixedOffset>, String)> {
    let first = match parse_iso_time(value) {
        Ok(time) => return Ok((time, value.to_owned())),
        Err(e) => e,
    };
    let repaired = value.replace(' ', "+");
    parse_iso_time(&repaired)
        .map(|time| (time, repaired))
        .map_err(|_| ApiError::InvalidParameter(format!("{name}: {} {first}", quoted(value))))
}

/// A time a request gave: the instant and its text as understood. Read
/// from the text [`parse_time`] returns (the query reader puts it in place
/// of the value given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GivenTime {
    pub at: DateTime<FixedOffset>,
    pub text: String,
}

impl<'de> Deserialize<'de> for GivenTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let at = parse_iso_time(&text).map_err(D::Error::custom)?;
        Ok(Self { at, text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_need_a_zone_and_survive_unencoded_plus() {
        assert!(parse_time("t", "2025-07-23T18:46:48.775Z").is_ok());
        let (time, text) = parse_time("t", "2025-07-23T18:46:48 02:00").unwrap();
        assert_eq!(text, "2025-07-23T18:46:48+02:00");
        assert_eq!(time.timestamp(), 1_753_289_208);
        assert_eq!(
            parse_time("t", "2025-07-23T18:46:48")
                .unwrap_err()
                .to_string(),
            "t: \"2025-07-23T18:46:48\" has no time zone (add Z or an offset such as +00:00)"
        );
        assert_eq!(
            parse_time("t", "soon").unwrap_err().to_string(),
            "t: \"soon\" is not an ISO-8601 time with zone"
        );
        let (time, text) = parse_time("t", "2025-07-01T00:00:00 0530").unwrap();
        assert_eq!(text, "2025-07-01T00:00:00+0530");
        assert_eq!(time.offset().local_minus_utc(), 19_800);
        let (time, _) = parse_time("t", "2025-10-01T0000+0000").unwrap();
        assert_eq!(time.timestamp(), 1_759_276_800);
    }
}
