//! JSON request bodies read into their request structs. A body's struct is
//! its one definition: it derives `Deserialize` (the parsing) and
//! `utoipa::ToSchema` (the OpenAPI document), and a `validate` step of its
//! own turns it into the call's checked values.
//!
//! Reading never stops at the first problem: each field is a [`Given`],
//! which takes any JSON value (absent or null, a value of the field's type,
//! or a value of another type, kept so the message can name the field), and
//! the keys the struct does not have are collected by [`Object`] (the
//! struct's fields are the properties of its own schema). Validation then
//! reports every problem of the request.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::PartialSchema;

use crate::api::response::error::{ApiError, Problems};

/// A body field as sent. Reading it never fails, so every field of a body
/// is read and each problem is reported.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Given<T> {
    /// Absent, or JSON null.
    #[default]
    Absent,
    /// A value of the field's type.
    Value(T),
    /// A value of another type.
    Wrong(Value),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Given<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if value.is_null() {
            return Ok(Self::Absent);
        }
        Ok(match T::deserialize(&value) {
            Ok(typed) => Self::Value(typed),
            Err(_) => Self::Wrong(value),
        })
    }
}

impl<T> Given<T> {
    /// The value if given; a value of another type adds the problem
    /// `{name}: {expected}` (e.g. `readDeleted: must be true or false`).
    pub fn read(self, name: &str, expected: &str, problems: &mut Problems) -> Option<T> {
        match self {
            Self::Absent => None,
            Self::Value(value) => Some(value),
            Self::Wrong(_) => {
                problems.push(ApiError::InvalidParameter(format!("{name}: {expected}")));
                None
            }
        }
    }
}

/// What a string field must be.
pub const A_STRING: &str = "must be a string";
/// What a boolean field must be.
pub const A_BOOLEAN: &str = "must be true or false";
/// What a list field must be.
pub const STRINGS: &str = "must be an array of strings";

/// A JSON object read into `T`, with the keys `T` does not have (in the
/// order sent). As a field type ([`Given<Object<T>>`]) it reads a nested
/// object the same way.
#[derive(Clone, Debug, PartialEq)]
pub struct Object<T> {
    pub fields: T,
    pub unknown: Vec<String>,
}

impl<T: DeserializeOwned + PartialSchema> Object<T> {
    /// Reads `map` into `T`; keys that are not properties of `T`'s schema
    /// are set aside as unknown.
    pub fn from_map(mut map: Map<String, Value>) -> Result<Self, serde_json::Error> {
        let known = field_names::<T>();
        let unknown: Vec<String> = map
            .keys()
            .filter(|key| !known.iter().any(|k| k == *key))
            .cloned()
            .collect();
        for key in &unknown {
            map.remove(key);
        }
        let fields = T::deserialize(Value::Object(map))?;
        Ok(Self { fields, unknown })
    }
}

impl<'de, T: DeserializeOwned + PartialSchema> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        Self::from_map(map).map_err(D::Error::custom)
    }
}

/// The properties of `T`'s schema: the JSON names of its fields.
pub fn field_names<T: PartialSchema>() -> Vec<String> {
    match T::schema() {
        RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Why a body could not be read as an object at all.
#[derive(Debug)]
pub enum NotAnObject {
    /// Not JSON: where the parser stopped (1-based).
    Malformed { line: usize, column: usize },
    /// JSON, but not an object.
    OtherJson,
}

/// Reads `body`, which must be one JSON object, into `T`.
pub fn read_object<T: DeserializeOwned + PartialSchema>(
    body: &[u8],
) -> Result<Object<T>, NotAnObject> {
    let value: Value = serde_json::from_slice(body).map_err(|e| NotAnObject::Malformed {
        line: e.line(),
        column: e.column(),
    })?;
    let Value::Object(map) = value else {
        return Err(NotAnObject::OtherJson);
    };
    // Every field is a `Given`: reading the known keys cannot fail.
    Object::from_map(map).map_err(|_| NotAnObject::OtherJson)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use utoipa::ToSchema;

    use super::*;

    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        #[schema(value_type = Option<String>)]
        some_text: Given<String>,
        #[serde(default)]
        #[schema(value_type = Option<bool>)]
        flag: Given<bool>,
    }

    #[test]
    fn every_field_and_every_unknown_key_is_read() {
        let read = read_object::<Sample>(
            json!({"zeta": 1, "someText": 5, "flag": true, "alpha": null})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(read.unknown, ["zeta", "alpha"]);
        assert_eq!(read.fields.some_text, Given::Wrong(json!(5)));
        assert_eq!(read.fields.flag, Given::Value(true));
        let read = read_object::<Sample>(br#"{"someText": null}"#).unwrap();
        assert_eq!(read.fields.some_text, Given::Absent);
        assert_eq!(read.fields.flag, Given::Absent);
        let mut problems = Problems::default();
        assert_eq!(
            Given::<bool>::Wrong(json!("yes")).read("flag", A_BOOLEAN, &mut problems),
            None
        );
        assert_eq!(
            problems.finish().unwrap_err().to_string(),
            "flag: must be true or false"
        );
    }

    #[test]
    fn bodies_that_are_not_objects() {
        assert!(matches!(
            read_object::<Sample>(b"{"),
            Err(NotAnObject::Malformed { line: 1, column: 1 })
        ));
        assert!(matches!(
            read_object::<Sample>(b"[1]"),
            Err(NotAnObject::OtherJson)
        ));
    }
}
