//! Parsing and validating a batch of table rows. Every message names the
//! 0-based row and the column, as the meter ingest's messages do.

use chrono::{DateTime, Datelike, NaiveDateTime};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::batch::json::{shown, shown_raw};
use crate::batch::stream::{for_each_object, Fields};
use crate::batch::IngestError;
use crate::tables::{Cell, ColumnType, TableDef};

fn invalid(row: usize, column: &str, message: String) -> IngestError {
    IngestError::InvalidRow {
        row,
        field: column.to_owned(),
        message,
    }
}

/// The message for a key that is not a column of `def`.
fn unknown_column(def: &TableDef, key: &str) -> String {
    let lower = key.to_ascii_lowercase();
    if def.column(&lower).is_some() {
        format!("unknown column; column names are lowercase ({lower})")
    } else {
        let names: Vec<&str> = def.columns.iter().map(|(name, _)| *name).collect();
        format!(
            "unknown column of {}; expected one of {}",
            def.name,
            names.join(", ")
        )
    }
}

/// Epoch milliseconds of an ISO-8601 time with a zone (`Z`, `+02:00` or
/// `+0200`; `T` or a space between date and time).
fn time_ms(text: &str) -> Result<i64, String> {
    let zoned = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%z"));
    if let Ok(time) = zoned {
        return Ok(time.timestamp_millis());
    }
    let quoted = shown(&Value::String(text.to_owned()));
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"));
    Err(match naive {
        Ok(_) => format!("{quoted} has no zone; add Z or an offset such as +02:00"),
        Err(_) => format!("{quoted} is not an ISO-8601 time with zone"),
    })
}

/// The cell of one column; a missing key or JSON null is NULL. The value
/// is parsed from its raw text only if it is a scalar: an object or array
/// (however large) is refused unread.
fn cell(
    row: usize,
    column: &str,
    ty: ColumnType,
    raw: Option<&RawValue>,
) -> Result<Cell, IngestError> {
    let Some(raw) = raw else {
        return Ok(Cell::Null);
    };
    let wrong = |expected: &str| {
        invalid(
            row,
            column,
            format!("expected {expected}, found {}", shown_raw(raw.get())),
        )
    };
    let value = match raw.get().as_bytes().first() {
        Some(b'{' | b'[') | None => None,
        Some(_) => serde_json::from_str::<Value>(raw.get()).ok(),
    };
    match (ty, value) {
        (ColumnType::Text, Some(Value::String(s))) => Ok(Cell::Text(s)),
        (ColumnType::Text, _) => Err(wrong("a string")),
        (ColumnType::Integer, Some(Value::Number(n))) => {
            match crate::batch::json::whole_number(&n) {
                Some(i) => Ok(Cell::Int(i)),
                None if n.is_f64() => Err(wrong("an integer")),
                None => Err(invalid(
                    row,
                    column,
                    format!("{n} is out of the 64-bit integer range"),
                )),
            }
        }
        (ColumnType::Integer, _) => Err(wrong("an integer")),
        (ColumnType::Int32, Some(Value::Number(n))) => match crate::batch::json::whole_number(&n) {
            Some(i) if i32::try_from(i).is_ok() => Ok(Cell::Int(i)),
            None if n.is_f64() => Err(wrong("an integer")),
            _ => Err(invalid(
                row,
                column,
                format!("{n} is out of the 32-bit integer range"),
            )),
        },
        (ColumnType::Int32, _) => Err(wrong("an integer")),
        (ColumnType::Boolean, Some(Value::Bool(b))) => Ok(Cell::Bool(b)),
        (ColumnType::Boolean, _) => Err(wrong("true or false")),
        (ColumnType::Timestamp, Some(Value::String(s))) => time_ms(&s)
            .map(Cell::Time)
            .map_err(|message| invalid(row, column, message)),
        (ColumnType::Timestamp, _) => Err(wrong("an ISO-8601 time with zone (a string)")),
    }
}

/// Parses a JSON array or NDJSON of `def`'s rows into cells in column
/// order, row by row as the body is read; `id_column` must be a non-empty
/// string.
pub(super) fn table_rows(
    def: &TableDef,
    id_column: usize,
    body: &[u8],
) -> Result<Vec<Vec<Cell>>, IngestError> {
    let names: Vec<&'static str> = def.columns.iter().map(|(name, _)| *name).collect();
    let unknown = |key: &str| unknown_column(def, key);
    let fields = Fields {
        names: &names,
        unknown: &unknown,
    };
    let mut rows = Vec::new();
    for_each_object(body, &fields, |object| {
        let row = object.index;
        let cells = def
            .columns
            .iter()
            .map(|(name, ty)| cell(row, name, *ty, object.get(name)))
            .collect::<Result<Vec<Cell>, IngestError>>()?;
        let id_name = def.columns[id_column].0;
        match &cells[id_column] {
            Cell::Null => return Err(invalid(row, id_name, "is required".into())),
            Cell::Text(id) if id.is_empty() => {
                return Err(invalid(row, id_name, "must not be empty".into()))
            }
            _ => {}
        }
        let mut cells = cells;
        fill_dates(def, row, &mut cells)?;
        rows.push(cells);
        Ok(())
    })?;
    Ok(rows)
}

/// The date parts of a row's creation, and their valid ranges.
const DATE_PARTS: [(&str, i64, i64); 3] = [("year", 1, 9999), ("month", 1, 12), ("day", 1, 31)];

/// `year`, `month` and `day` of a table that has them: each one not given
/// is derived from `createddate` (UTC), or from `timestamp` when the row
/// has no `createddate`, and stays NULL when the row has neither (such a
/// row's file goes to the top of the tenant's prefix, outside the
/// `year=`/`month=` directories). A given value must be in its range.
fn fill_dates(def: &TableDef, row: usize, cells: &mut [Cell]) -> Result<(), IngestError> {
    let time = ["createddate", "timestamp"]
        .iter()
        .filter_map(|c| def.index(c))
        .find_map(|i| match cells[i] {
            Cell::Time(ms) => DateTime::from_timestamp_millis(ms),
            _ => None,
        });
    for (part, low, high) in DATE_PARTS {
        let Some(i) = def.index(part) else {
            continue;
        };
        match (&cells[i], time) {
            (Cell::Int(n), _) if !(low..=high).contains(n) => {
                return Err(invalid(
                    row,
                    part,
                    format!("{n} is not a valid {part} ({low} to {high})"),
                ));
            }
            (Cell::Null, Some(time)) => {
                let value = match part {
                    "year" => time.year(),
                    "month" => time.month() as i32,
                    _ => time.day() as i32,
                };
                cells[i] = Cell::Int(i64::from(value));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_need_a_zone() {
        assert_eq!(time_ms("2019-06-30T04:29:06.571Z"), Ok(1_561_868_946_571));
        assert_eq!(
            time_ms("2019-06-30T06:29:06.571+02:00"),
            Ok(1_561_868_946_571)
        );
        assert_eq!(
            time_ms("2019-06-30T06:29:06.571+0200"),
            Ok(1_561_868_946_571)
        );
        // The seed's Workflow sample writes a space between date and time.
        assert_eq!(time_ms("2020-11-10 16:54:14Z"), Ok(1_605_027_254_000));
        assert_eq!(
            time_ms("2019-06-30T04:29:06.571"),
            Err(
                "\"2019-06-30T04:29:06.571\" has no zone; add Z or an offset such as +02:00".into()
            )
        );
        assert_eq!(
            time_ms("2019-06-30"),
            Err("\"2019-06-30\" is not an ISO-8601 time with zone".into())
        );
    }
}
