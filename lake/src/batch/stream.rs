//! Reading a batch one object at a time, without ever building a
//! `serde_json::Value` of the batch or of a field: array elements and
//! NDJSON values are taken as raw text (`&RawValue`, borrowed from the body)
//! and each object is split into its fields, again as raw text. Memory is
//! the body plus the rows built from it, whatever the body holds: a batch
//! fails at its first non-object, its first unknown or repeated key, before
//! the rest is looked at.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::json::{cut, shown_raw};
use super::IngestError;

/// The keys the objects of a batch may have.
pub(crate) struct Fields<'f> {
    pub names: &'f [&'static str],
    /// The message for a key outside `names` (given the key, cut short).
    pub unknown: &'f dyn Fn(&str) -> String,
}

/// One object of a batch: its known fields present, as raw JSON text.
pub(crate) struct RawRow<'a> {
    /// 0-based position in the batch.
    pub index: usize,
    fields: Vec<(&'static str, &'a RawValue)>,
}

impl<'a> RawRow<'a> {
    /// The field's raw text; JSON null counts as absent.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.fields
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, raw)| *raw)
            .filter(|raw| raw.get() != "null")
    }

    pub fn invalid(&self, field: &str, message: impl Into<String>) -> IngestError {
        IngestError::InvalidRow {
            row: self.index,
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Calls `each` with every object of a JSON array or of NDJSON (values
/// separated by whitespace, so blank lines and pretty-printed objects are
/// fine), in order, stopping at the first error.
pub(crate) fn for_each_object<'a>(
    body: &'a [u8],
    fields: &Fields<'_>,
    mut each: impl FnMut(RawRow<'a>) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    if start.is_some_and(|i| body[i] == b'[') {
        return for_each_element(body, |row, raw| match object(row, raw, fields)? {
            Some(object) => each(object),
            None => Err(IngestError::Malformed(format!(
                "row {row}: expected a JSON object, found {}",
                shown_raw(raw.get())
            ))),
        });
    }
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<&'a RawValue>();
    let mut row = 0;
    loop {
        let before = values.byte_offset();
        let Some(raw) = values.next() else {
            return Ok(());
        };
        let raw =
            raw.map_err(|e| IngestError::Malformed(format!("row {row}: invalid JSON: {e}")))?;
        let Some(object) = object(row, raw, fields)? else {
            let at = before
                + body[before..]
                    .iter()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count();
            let line = 1 + body[..at].iter().filter(|&&b| b == b'\n').count();
            return Err(IngestError::Malformed(format!(
                "row {row} (line {line}): expected a JSON object, found {}",
                shown_raw(raw.get())
            )));
        };
        each(object)?;
        row += 1;
    }
}

/// Calls `each` with the raw text of every element of the JSON array
/// `body`, one at a time, as the array is read.
fn for_each_element<'a>(
    body: &'a [u8],
    each: impl FnMut(usize, &'a RawValue) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let mut failed = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let read = (&mut de)
        .deserialize_seq(Elements {
            each,
            failed: &mut failed,
        })
        .and_then(|()| de.end());
    match (failed, read) {
        (Some(error), _) => Err(error),
        (None, Ok(())) => Ok(()),
        (None, Err(e)) => Err(IngestError::Malformed(format!(
            "body is not a valid JSON array: {e}"
        ))),
    }
}

/// The visitor of the batch array: hands each element on as it is read. A
/// row's error is kept in `failed` (serde's error only stops the reading).
struct Elements<'s, F> {
    each: F,
    failed: &'s mut Option<IngestError>,
}

impl<'de, F> Visitor<'de> for Elements<'_, F>
where
    F: FnMut(usize, &'de RawValue) -> Result<(), IngestError>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut row = 0;
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if let Err(error) = (self.each)(row, raw) {
                *self.failed = Some(error);
                return Err(de::Error::custom("row rejected"));
            }
            row += 1;
        }
        Ok(())
    }
}

/// Splits `raw` into its fields if it is an object (`None` if not).
fn object<'a>(
    row: usize,
    raw: &'a RawValue,
    fields: &Fields<'_>,
) -> Result<Option<RawRow<'a>>, IngestError> {
    if !raw.get().starts_with('{') {
        return Ok(None);
    }
    let mut problem = None;
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let split = (&mut de).deserialize_map(ObjectFields {
        names: fields.names,
        problem: &mut problem,
    });
    let invalid = |field: String, message: String| IngestError::InvalidRow {
        row,
        field,
        message,
    };
    match (problem, split) {
        (Some(Problem::Unknown(key)), _) => {
            let message = (fields.unknown)(&key);
            Err(invalid(key, message))
        }
        (Some(Problem::Repeated(key)), _) => Err(invalid(key.into(), "appears twice".into())),
        (None, Ok(fields)) => Ok(Some(RawRow { index: row, fields })),
        // The text was read once already as a valid value: not expected.
        (None, Err(e)) => Err(IngestError::Malformed(format!(
            "row {row}: invalid JSON: {e}"
        ))),
    }
}

/// Why an object's fields were not all read.
enum Problem {
    /// A key outside the known names (cut short).
    Unknown(String),
    Repeated(&'static str),
}

/// The visitor of one object: known keys with their raw values, stopping
/// at the first unknown or repeated key (so an object of a million keys
/// costs nothing).
struct ObjectFields<'s, 'f> {
    names: &'f [&'static str],
    problem: &'s mut Option<Problem>,
}

impl<'de> Visitor<'de> for ObjectFields<'_, '_> {
    type Value = Vec<(&'static str, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Self::Value = Vec::with_capacity(self.names.len());
        while let Some(key) = map.next_key_seed(KeySeed { names: self.names })? {
            let problem = match key {
                Key::Known(name) if fields.iter().any(|(field, _)| *field == name) => {
                    Problem::Repeated(name)
                }
                Key::Known(name) => {
                    fields.push((name, map.next_value::<&'de RawValue>()?));
                    continue;
                }
                Key::Unknown(key) => Problem::Unknown(key),
            };
            *self.problem = Some(problem);
            return Err(de::Error::custom("field rejected"));
        }
        Ok(fields)
    }
}

enum Key {
    Known(&'static str),
    Unknown(String),
}

/// Reads a key as one of `names`, without keeping its text otherwise.
struct KeySeed<'f> {
    names: &'f [&'static str],
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match self.names.iter().copied().find(|name| *name == key) {
            Some(name) => Key::Known(name),
            None => Key::Unknown(cut(key)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 3] = ["a", "b", "c"];

    fn unknown(key: &str) -> String {
        format!("unknown field {key}")
    }

    /// Each row's fields as `name=raw`, or the error's message.
    fn read(body: &[u8]) -> Result<Vec<Vec<String>>, String> {
        let fields = Fields {
            names: &NAMES,
            unknown: &unknown,
        };
        let mut rows = Vec::new();
        for_each_object(body, &fields, |row| {
            assert_eq!(row.index, rows.len());
            rows.push(
                NAMES
                    .iter()
                    .filter_map(|n| row.get(n).map(|raw| format!("{n}={}", raw.get())))
                    .collect(),
            );
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        Ok(rows)
    }

    #[test]
    fn fields_are_raw_text_as_written() {
        let rows = read(br#"[{"b": {"z": 1.10, "y": [1e2]}, "a": -0.0, "c": null}, {}]"#).unwrap();
        assert_eq!(
            rows,
            [vec!["a=-0.0", "b={\"z\": 1.10, \"y\": [1e2]}"], vec![]]
        );
        let rows =
            read(b"{\"a\":\"x\\u00e9\"}\n\n{\"c\": 123456789012345678901234567890}").unwrap();
        assert_eq!(
            rows,
            [
                vec!["a=\"x\\u00e9\""],
                vec!["c=123456789012345678901234567890"]
            ]
        );
    }

    #[test]
    fn a_huge_array_of_non_objects_fails_at_row_0() {
        let body = format!("[{}0]", "0,".repeat(5_000_000));
        assert_eq!(
            read(body.as_bytes()).unwrap_err(),
            "row 0: expected a JSON object, found 0"
        );
        let nested = format!("[[{}0]]", "0,".repeat(5_000_000));
        let message = read(nested.as_bytes()).unwrap_err();
        assert!(
            message.starts_with("row 0: expected a JSON object, found [0,0,0,"),
            "{message}"
        );
        assert!(message.len() < 150, "{message}");
        let ndjson = "0\n".repeat(1_000_000);
        assert_eq!(
            read(ndjson.as_bytes()).unwrap_err(),
            "row 0 (line 1): expected a JSON object, found 0"
        );
    }

    #[test]
    fn rows_are_checked_as_they_are_read() {
        // Row 1 is rejected before the broken end of the array is reached.
        let mut seen = 0;
        let fields = Fields {
            names: &NAMES,
            unknown: &unknown,
        };
        let err = for_each_object(br#"[{"a":1}, {"a":2}, {"a":3}, oops"#, &fields, |row| {
            seen += 1;
            match row.index {
                1 => Err(row.invalid("a", "is two")),
                _ => Ok(()),
            }
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "row 1: a: is two");
        assert_eq!(seen, 2);
        assert_eq!(
            read(br#"[{"a":1}, oops"#).unwrap_err(),
            "body is not a valid JSON array: expected value at line 1 column 11"
        );
        assert_eq!(
            read(br#"[{"a":1}] x"#).unwrap_err(),
            "body is not a valid JSON array: trailing characters at line 1 column 11"
        );
    }

    #[test]
    fn unknown_and_repeated_keys_stop_the_object() {
        let many = format!("[{{\"a\":1,{}\"zz\":0}}]", "\"b\":0,".repeat(3));
        assert_eq!(
            read(many.as_bytes()).unwrap_err(),
            "row 0: b: appears twice"
        );
        let long_key = "k".repeat(10_000);
        let message = read(format!("[{{\"{long_key}\":1}}]").as_bytes()).unwrap_err();
        let shown = format!("{}…", "k".repeat(80));
        assert_eq!(message, format!("row 0: {shown}: unknown field {shown}"));
        assert_eq!(
            read(br#"{"a":1}{"d":2}"#).unwrap_err(),
            "row 1: d: unknown field d"
        );
        // Escaped keys are read unescaped.
        assert_eq!(read(br#"[{"\u0061":1}]"#).unwrap(), [vec!["a=1"]]);
    }
}
