//! The one reader of the times callers send (export and entries
//! parameters, summary bodies, ingest): ISO-8601 with a zone, in the
//! extended (`2025-07-01T00:00:00+05:30`) or the basic form
//! (`20250701T000000+0530`) and their mixes as Zuora's reference writes
//! them (`2025-07-01T00:00:00+0530`, `2025-10-01T0000+0000`).
//!
//! - date `YYYY-MM-DD` or `YYYYMMDD`, then `T` (a space before it is
//!   ignored, as in the reference's `2025-07-18 T00:00:00Z`) or one space;
//! - time `hh:mm[:ss]` or `hhmm[ss]`, seconds with an optional fraction
//!   (`.` or `,`, any number of digits, read to the nanosecond);
//! - zone `Z`, `±hh:mm`, `±hhmm` or `±hh`.
//!
//! A time without a zone is refused: it would mean another instant on
//! every server.
//!
//! And the one writer of the times auditx answers with: UTC with `Z`, to the
//! millisecond ([`iso_millis`]) or, where Zuora's reference shows whole
//! seconds, to the second ([`iso_seconds`]).

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, SecondsFormat, Utc};

/// Epoch milliseconds as `2025-07-23T18:46:48.775Z`.
pub fn iso_millis(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Epoch milliseconds as `2025-11-20T16:40:58Z` (to the second).
pub fn iso_seconds(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The current time as [`iso_millis`] writes it.
pub fn now_iso_millis() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Why a text is not a time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("has no time zone (add Z or an offset such as +00:00)")]
    NoZone,
    #[error("is not an ISO-8601 time with zone")]
    Invalid,
}

/// Reads `text` as described in the module documentation.
pub fn parse_iso_time(text: &str) -> Result<DateTime<FixedOffset>, TimeError> {
    let mut s = Scanner(text.as_bytes());
    let date = s.date().ok_or(TimeError::Invalid)?;
    if s.0.is_empty() {
        // A date alone is a day, not an instant.
        return Err(TimeError::NoZone);
    }
    if !s.separator() {
        return Err(TimeError::Invalid);
    }
    let time = s.time().ok_or(TimeError::Invalid)?;
    let offset = s.zone()?.ok_or(TimeError::NoZone)?;
    if !s.0.is_empty() {
        return Err(TimeError::Invalid);
    }
    date.and_time(time)
        .and_local_timezone(offset)
        .single()
        .ok_or(TimeError::Invalid)
}

struct Scanner<'a>(&'a [u8]);

impl Scanner<'_> {
    fn eat(&mut self, byte: u8) -> bool {
        match self.0.split_first() {
            Some((&b, rest)) if b == byte => {
                self.0 = rest;
                true
            }
            _ => false,
        }
    }

    /// Exactly `n` ASCII digits as a number.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let head = self.0.get(..n)?;
        if !head.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.0 = &self.0[n..];
        Some(head.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
    }

    fn date(&mut self) -> Option<NaiveDate> {
        let year = self.digits(4)?;
        let extended = self.eat(b'-');
        let month = self.digits(2)?;
        if extended && !self.eat(b'-') {
            return None;
        }
        let day = self.digits(2)?;
        NaiveDate::from_ymd_opt(year as i32, month, day)
    }

    /// `T`, spaces then `T` (the reference's own example
    /// `2025-07-18 T00:00:00Z`), or one space.
    fn separator(&mut self) -> bool {
        let spaces = self.0.iter().take_while(|b| **b == b' ').count();
        let after = &self.0[spaces..];
        match after.first() {
            Some(b'T' | b't') => {
                self.0 = &after[1..];
                true
            }
            Some(d) if d.is_ascii_digit() && spaces == 1 => {
                self.0 = after;
                true
            }
            _ => false,
        }
    }

    /// `hh:mm[:ss[.f]]` or `hhmm[ss[.f]]`.
    fn time(&mut self) -> Option<NaiveTime> {
        let hour = self.digits(2)?;
        let extended = self.eat(b':');
        let minute = self.digits(2)?;
        let mut second = 0;
        let mut nanos = 0;
        let has_seconds = if extended {
            self.eat(b':')
        } else {
            self.0.first().is_some_and(u8::is_ascii_digit)
        };
        if has_seconds {
            second = self.digits(2)?;
            if self.eat(b'.') || self.eat(b',') {
                let count = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
                if count == 0 {
                    return None;
                }
                for (i, d) in self.0[..count].iter().enumerate() {
                    if i < 9 {
                        nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
                    }
                }
                self.0 = &self.0[count..];
            }
        }
        NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)
    }

    /// `Z`, `±hh:mm`, `±hhmm` or `±hh`; `None` when the text ends here.
    fn zone(&mut self) -> Result<Option<FixedOffset>, TimeError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        if self.eat(b'Z') || self.eat(b'z') {
            return Ok(FixedOffset::east_opt(0));
        }
        let sign = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else {
            return Err(TimeError::Invalid);
        };
        let hours = self.digits(2).ok_or(TimeError::Invalid)?;
        let minutes = if self.0.is_empty() {
            0
        } else {
            self.eat(b':');
            self.digits(2).ok_or(TimeError::Invalid)?
        };
        if hours > 23 || minutes > 59 {
            return Err(TimeError::Invalid);
        }
        let seconds = sign * (hours * 3600 + minutes * 60) as i32;
        FixedOffset::east_opt(seconds)
            .map(Some)
            .ok_or(TimeError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        parse_iso_time(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .timestamp_millis()
    }

    /// 2025-07-01T00:00:00Z.
    const JULY: i64 = 1_751_328_000_000;

    #[test]
    fn extended_and_basic_forms_with_every_zone_form() {
        for text in [
            "2025-07-01T00:00:00Z",
            "2025-07-01T00:00:00z",
            "2025-07-01t00:00:00Z",
            "2025-07-01T00:00Z",
            "2025-07-01T00:00:00+00:00",
            "2025-07-01T00:00:00+0000",
            "2025-07-01T00:00:00+00",
            "2025-07-01T00:00:00-00:00",
            "2025-07-01T0000+0000",
            "2025-07-01T000000Z",
            "20250701T000000Z",
            "20250701T0000+0000",
            "20250701T00:00:00Z",
            "2025-07-01 00:00:00Z",
            "2025-07-18 T00:00:00Z".replace("18", "01").as_str(),
        ] {
            assert_eq!(ms(text), JULY, "{text}");
        }
        assert_eq!(ms("2025-07-01T05:30:00+0530"), JULY);
        assert_eq!(ms("2025-07-01T05:30:00+05:30"), JULY);
        assert_eq!(ms("2025-07-01T00:00:00+0530"), JULY - 19_800_000);
        assert_eq!(ms("2025-06-30T22:00:00-02"), JULY);
        assert_eq!(ms("2025-06-30T2200-0200"), JULY);
    }

    #[test]
    fn fractions_of_seconds() {
        assert_eq!(ms("2025-07-01T00:00:00.775Z"), JULY + 775);
        assert_eq!(ms("2025-07-01T00:00:00,5+00:00"), JULY + 500);
        assert_eq!(ms("20250701T000000.1+0000"), JULY + 100);
        let nanos = parse_iso_time("2025-07-01T00:00:00.123456789123Z").unwrap();
        assert_eq!(nanos.timestamp_subsec_nanos(), 123_456_789);
        assert_eq!(ms("2025-11-20T16:41:27.858661268Z") % 1000, 858);
    }

    #[test]
    fn the_offset_is_kept() {
        let time = parse_iso_time("2025-07-01T00:00:00+0530").unwrap();
        assert_eq!(time.offset().local_minus_utc(), 19_800);
        let time = parse_iso_time("2025-07-01T00:00:00-03").unwrap();
        assert_eq!(time.offset().local_minus_utc(), -10_800);
    }

    #[test]
    fn zone_less_times_are_refused_as_such() {
        for text in [
            "2025-07-01T00:00:00",
            "2025-07-01T00:00",
            "20250701T0000",
            "2025-07-01T00:00:00.5",
            "2025-07-01",
        ] {
            assert_eq!(parse_iso_time(text), Err(TimeError::NoZone), "{text}");
        }
    }

    #[test]
    fn malformed_times_are_refused() {
        for text in [
            "",
            "yesterday",
            "2025-07-01T",
            "2025-13-01T00:00:00Z",
            "2025-02-30T00:00:00Z",
            "2025-07-01T24:00:00Z",
            "2025-07-01T00:60:00Z",
            "2025-07-01T00:00:00+24:00",
            "2025-07-01T00:00:00+5",
            "2025-07-01T00:00:00+05:3",
            "2025-07-01T00:00:00.Z",
            "2025-07-01T00:00:00Zjunk",
            "2025-0701T00:00:00Z",
            "2025-07-01X00:00:00Z",
            "2025-07-01  00:00:00Z",
            "1753296408775",
        ] {
            assert_eq!(parse_iso_time(text), Err(TimeError::Invalid), "{text}");
        }
    }
}
