//! SQL functions the seed's queries use that DataFusion lacks.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::clip;

const MILLIS_PER_DAY: i64 = 86_400_000;

/// `date(text | timestamp)`: the UTC day of an ISO-8601 date or timestamp,
/// as a `Timestamp(Millisecond, "UTC")` at midnight, so
/// `createddate > Date('2019-04-01')` compares timestamps with timestamps.
pub(super) fn date_udf() -> ScalarUDF {
    ScalarUDF::from(DateFunction {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateFunction {
    signature: Signature,
}

fn utc_millis() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

impl ScalarUDFImpl for DateFunction {
    fn name(&self) -> &str {
        "date"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [arg] = arg_types else {
            return plan_err!("date() takes one argument, got {}", arg_types.len());
        };
        match arg {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                Ok(vec![DataType::Utf8])
            }
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => Ok(vec![utc_millis()]),
            other => plan_err!("date() takes an ISO-8601 date string or a timestamp, not {other}"),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(utc_millis())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!("date() takes one argument");
        };
        match arg {
            ColumnarValue::Array(array) => Ok(ColumnarValue::Array(day_starts(array)?)),
            ColumnarValue::Scalar(scalar) => {
                let days = day_starts(&scalar.to_array()?)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                    &days, 0,
                )?))
            }
        }
    }
}

/// Midnight UTC of each value's day; NULL stays NULL.
fn day_starts(array: &ArrayRef) -> Result<ArrayRef> {
    let days: TimestampMillisecondArray = match array.data_type() {
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|text| text.map(parse_day).transpose())
            .collect::<Result<_>>()?,
        DataType::Timestamp(TimeUnit::Millisecond, _) => array
            .as_primitive::<TimestampMillisecondType>()
            .unary(|millis| millis.div_euclid(MILLIS_PER_DAY) * MILLIS_PER_DAY),
        DataType::Null => TimestampMillisecondArray::new_null(array.len()),
        other => return exec_err!("date() cannot take {other}"),
    };
    Ok(Arc::new(days.with_timezone("UTC")))
}

/// `2019-04-01`, `2019-04-01T10:00:00Z`, `2019-04-01T10:00:00+02:00`,
/// `2019-04-01 10:00:00[.fff]` (UTC) → milliseconds of that UTC day's start.
fn parse_day(text: &str) -> Result<i64> {
    let text = text.trim();
    let day = if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        day
    } else if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        time.with_timezone(&Utc).date_naive()
    } else if let Some(time) = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    {
        time.date()
    } else {
        return exec_err!(
            "date(): '{}' is not an ISO-8601 date such as 2019-04-01",
            clip(text, 40)
        );
    };
    Ok(day
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    const APRIL_1: i64 = 1_554_076_800_000;

    #[test]
    fn dates_and_timestamps_map_to_their_utc_day() {
        for text in [
            "2019-04-01",
            " 2019-04-01 ",
            "2019-04-01T00:00:00Z",
            "2019-04-01T23:59:59.999Z",
            "2019-04-02T01:00:00+02:00",
            "2019-04-01 12:30:00",
            "2019-04-01T12:30:00.5",
        ] {
            assert_eq!(parse_day(text).unwrap(), APRIL_1, "{text}");
        }
        let e = parse_day("April 1st").unwrap_err().strip_backtrace();
        assert!(e.contains("'April 1st' is not an ISO-8601 date"), "{e}");
    }

    #[test]
    fn arrays_keep_nulls_and_come_out_as_utc_millis() {
        let input: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![
            Some("2019-04-01"),
            None,
        ]));
        let out = day_starts(&input).unwrap();
        assert_eq!(out.data_type(), &utc_millis());
        let out = out.as_primitive::<TimestampMillisecondType>();
        assert_eq!(out.value(0), APRIL_1);
        assert!(out.is_null(1));

        let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![APRIL_1 + 3_600_000]));
        let out = day_starts(&times).unwrap();
        assert_eq!(
            out.as_primitive::<TimestampMillisecondType>().value(0),
            APRIL_1
        );
    }
}
