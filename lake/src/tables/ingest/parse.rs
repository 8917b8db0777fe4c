//! Parsing and validating a batch of table rows. Every message names the
//! 0-based row and the column, as the meter ingest's messages do.

use chrono::{DateTime, NaiveDateTime};
use serde_json::{Map, Value};

use crate::ingest::parse::{for_each_object, shown};
use crate::ingest::IngestError;
use crate::tables::{Cell, ColumnType, TableDef};

fn invalid(row: usize, column: &str, message: String) -> IngestError {
    IngestError::InvalidRow {
        row,
        field: column.to_owned(),
        message,
    }
}

/// Refuses a key that is not a column of `def`, naming the first one.
fn check_columns(
    def: &TableDef,
    row: usize,
    object: &Map<String, Value>,
) -> Result<(), IngestError> {
    let Some(unknown) = object.keys().find(|k| def.column(k).is_none()) else {
        return Ok(());
    };
    let lower = unknown.to_ascii_lowercase();
    let message = if def.column(&lower).is_some() {
        format!("unknown column; column names are lowercase ({lower})")
    } else {
        let names: Vec<&str> = def.columns.iter().map(|(name, _)| *name).collect();
        format!(
            "unknown column of {}; expected one of {}",
            def.name,
            names.join(", ")
        )
    };
    Err(invalid(row, unknown, message))
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

/// The cell of one column; a missing key or JSON null is NULL.
fn cell(
    row: usize,
    column: &str,
    ty: ColumnType,
    value: Option<&Value>,
) -> Result<Cell, IngestError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(Cell::Null);
    };
    let wrong = |expected: &str| {
        invalid(
            row,
            column,
            format!("expected {expected}, found {}", shown(value)),
        )
    };
    match (ty, value) {
        (ColumnType::Text, Value::String(s)) => Ok(Cell::Text(s.clone())),
        (ColumnType::Text, _) => Err(wrong("a string")),
        (ColumnType::Integer, Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Cell::Int(i)),
            None if n.is_f64() => Err(wrong("an integer")),
            None => Err(invalid(
                row,
                column,
                format!("{n} is out of the 64-bit integer range"),
            )),
        },
        (ColumnType::Integer, _) => Err(wrong("an integer")),
        (ColumnType::Timestamp, Value::String(s)) => time_ms(s)
            .map(Cell::Time)
            .map_err(|message| invalid(row, column, message)),
        (ColumnType::Timestamp, _) => Err(wrong("an ISO-8601 time with zone (a string)")),
    }
}

/// Parses a JSON array or NDJSON of `def`'s rows into cells in column
/// order; `id_column` must be a non-empty string.
pub(super) fn table_rows(
    def: &TableDef,
    id_column: usize,
    body: &[u8],
) -> Result<Vec<Vec<Cell>>, IngestError> {
    let mut rows = Vec::new();
    for_each_object(body, |row, object| {
        check_columns(def, row, object)?;
        let cells = def
            .columns
            .iter()
            .map(|(name, ty)| cell(row, name, *ty, object.get(*name)))
            .collect::<Result<Vec<Cell>, IngestError>>()?;
        let id_name = def.columns[id_column].0;
        match &cells[id_column] {
            Cell::Null => return Err(invalid(row, id_name, "is required".into())),
            Cell::Text(id) if id.is_empty() => {
                return Err(invalid(row, id_name, "must not be empty".into()))
            }
            _ => {}
        }
        rows.push(cells);
        Ok(())
    })?;
    Ok(rows)
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
