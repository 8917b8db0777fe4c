//! A route's query parameters as one struct, the one definition of them:
//! it derives `utoipa::IntoParams` (what the OpenAPI document lists) and
//! `Deserialize` (the typed values the handler gets), and [`read_query`]
//! reads the query string by the parameters the derive lists: their names,
//! which are required, single or arrays, the values an enumeration takes,
//! an integer's bounds, date-times and defaults. A parameter added to the
//! struct is documented and read alike; nothing else lists them.
//!
//! Every problem of a request is reported, each as its kind: a parameter
//! the route does not take (category 21), a required one missing (23), a
//! value that is not valid (20; a single-valued parameter given twice or
//! empty too). Arrays are taken as repeats (`a=1&a=2`), with brackets
//! (`a[]=1`) or comma separated (`a=1,2`).

use std::sync::OnceLock;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Uri;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::Required;
use utoipa::{IntoParams, OpenApi};

use crate::api::openapi::ApiDoc;
use crate::api::request::params::{parse_int, query_pairs};
use crate::api::request::time::parse_time;
use crate::api::response::error::{quoted, ApiError, ApiResult, Problems};

/// Most unknown parameters named in one answer.
const MAX_UNKNOWN_NAMED: usize = 5;

/// The query string of a request read into `T` ([`read_query`]); a request
/// with any problem is answered with all of them.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: IntoParams + DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        query_of(&parts.uri).map(Query)
    }
}

/// The query string of `uri` read into `T` ([`read_query`]), or every
/// problem it has.
pub fn query_of<T: IntoParams + DeserializeOwned>(uri: &Uri) -> ApiResult<T> {
    let pairs = query_pairs(uri)?;
    let mut problems = Problems::default();
    let params = read_query::<T>(&pairs, &mut problems);
    problems.finish()?;
    params.ok_or_else(|| ApiError::Internal("query parameters not read".into()))
}

/// The parameters of a route that takes none: any one given is refused.
#[derive(Debug, Deserialize)]
pub struct NoParams {}

impl IntoParams for NoParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        Vec::new()
    }
}

/// Reads `pairs` (the query string, in order, repeats kept) into `T` by
/// `T`'s parameters, adding every problem found to `problems`; `None` if
/// there was any.
pub fn read_query<T: IntoParams + DeserializeOwned>(
    pairs: &[(String, String)],
    problems: &mut Problems,
) -> Option<T> {
    let specs: Vec<Spec> = T::into_params(|| Some(ParameterIn::Query))
        .iter()
        .filter(|p| p.parameter_in == ParameterIn::Query)
        .map(Spec::of)
        .collect();
    let before = problems.count();
    let mut unknown: Vec<&str> = Vec::new();
    for (name, _) in pairs {
        if !specs.iter().any(|s| s.name == *name) && !unknown.contains(&name.as_str()) {
            unknown.push(name);
        }
    }
    for name in unknown.iter().take(MAX_UNKNOWN_NAMED) {
        problems.push(ApiError::UnknownField(format!(
            "unknown query parameter: {}",
            shown_name(name)
        )));
    }
    // Presence first (missing, repeated, empty), then the values.
    let mut given: Vec<(&Spec, Vec<&str>)> = Vec::new();
    for spec in &specs {
        let values: Vec<&str> = pairs
            .iter()
            .filter(|(n, _)| *n == spec.name)
            .map(|(_, v)| v.as_str())
            .collect();
        if spec.array {
            given.push((spec, items(&values)));
            continue;
        }
        match values.as_slice() {
            [] if spec.required => problems.push(ApiError::MissingParameter(format!(
                "{}: required",
                spec.name
            ))),
            [] => {}
            [""] => problems.push(ApiError::InvalidParameter(format!(
                "{}: must not be empty",
                spec.name
            ))),
            [value] => given.push((spec, vec![*value])),
            _ => problems.push(ApiError::InvalidParameter(format!(
                "{}: given more than once",
                spec.name
            ))),
        }
    }
    let mut object = Map::new();
    for (spec, values) in given {
        let mut checked: Vec<Value> = values
            .into_iter()
            .filter_map(|value| problems.check(spec.value.check(&spec.name, value)))
            .collect();
        let value = match spec.array {
            true => Value::Array(checked),
            false => match checked.pop() {
                Some(value) => value,
                None => continue,
            },
        };
        object.insert(spec.name.clone(), value);
    }
    for spec in &specs {
        if let (false, Some(default)) = (object.contains_key(&spec.name), &spec.default) {
            object.insert(spec.name.clone(), default.clone());
        }
    }
    if problems.count() > before {
        return None;
    }
    match T::deserialize(Value::Object(object)) {
        Ok(params) => Some(params),
        Err(e) => {
            problems.push(ApiError::Internal(format!(
                "query parameters do not fit their struct: {e}"
            )));
            None
        }
    }
}

/// The items of an array parameter: every value split at commas, trimmed,
/// empty items and repeats dropped.
fn items<'a>(values: &[&'a str]) -> Vec<&'a str> {
    let mut items: Vec<&str> = Vec::new();
    for item in values
        .iter()
        .copied()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|i| !i.is_empty())
    {
        if !items.contains(&item) {
            items.push(item);
        }
    }
    items
}

/// A parameter name the caller sent, as a message shows it: bare when
/// short, else cut like [`quoted`].
fn shown_name(name: &str) -> String {
    if name.chars().count() <= 40 {
        name.to_owned()
    } else {
        quoted(name)
    }
}

/// What reading takes of one parameter's definition.
#[derive(Debug)]
struct Spec {
    name: String,
    required: bool,
    /// Several values (each checked by `value`).
    array: bool,
    value: Rule,
    /// The value when absent.
    default: Option<Value>,
}

/// What a single value must be.
#[derive(Debug, Default, PartialEq)]
struct Rule {
    /// One of these (an enumeration).
    allowed: Option<Vec<String>>,
    /// An integer, within these bounds.
    integer: bool,
    minimum: Option<i64>,
    maximum: Option<i64>,
    /// An ISO-8601 time with zone.
    date_time: bool,
}

impl Spec {
    fn of(parameter: &Parameter) -> Self {
        let schema = parameter
            .schema
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or_default();
        let schema = resolve(&schema);
        let array = has_type(&schema, "array");
        let value = match array {
            true => Rule::of(&resolve(&schema["items"])),
            false => Rule::of(&schema),
        };
        Self {
            name: parameter.name.clone(),
            required: parameter.required == Required::True,
            array,
            value,
            default: schema.get("default").cloned(),
        }
    }
}

impl Rule {
    fn of(schema: &Value) -> Self {
        let bound = |key: &str| {
            let bound = &schema[key];
            bound.as_i64().or_else(|| bound.as_f64().map(|f| f as i64))
        };
        Self {
            allowed: schema["enum"].as_array().map(|values| {
                values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            }),
            integer: has_type(schema, "integer"),
            minimum: bound("minimum"),
            maximum: bound("maximum"),
            date_time: schema["format"] == "date-time",
        }
    }

    /// `value` of the parameter `name` as the JSON value its struct field
    /// reads, or what is wrong with it.
    fn check(&self, name: &str, value: &str) -> ApiResult<Value> {
        if let Some(allowed) = &self.allowed {
            if !allowed.iter().any(|a| a == value) {
                return Err(ApiError::InvalidParameter(format!(
                    "{name}: {} is not one of {}",
                    quoted(value),
                    allowed.join(", ")
                )));
            }
        }
        if self.integer {
            let n = parse_int(name, value)?;
            let message = match (self.minimum, self.maximum) {
                (Some(min), Some(max)) if n < min || n > max => {
                    format!("{name}: must be between {min} and {max}")
                }
                (Some(min), _) if n < min => format!("{name}: must be at least {min}"),
                (_, Some(max)) if n > max => format!("{name}: must be at most {max}"),
                _ => return Ok(Value::from(n)),
            };
            return Err(ApiError::InvalidParameter(message));
        }
        if self.date_time {
            let (_, understood) = parse_time(name, value)?;
            return Ok(Value::String(understood));
        }
        Ok(Value::String(value.to_owned()))
    }
}

/// Whether `schema`'s type is (or includes) `ty`.
fn has_type(schema: &Value, ty: &str) -> bool {
    match &schema["type"] {
        Value::String(one) => one == ty,
        Value::Array(types) => types.iter().any(|t| t == ty),
        _ => false,
    }
}

/// The document's component schemas, which parameters name by `$ref`.
fn components() -> &'static Value {
    static COMPONENTS: OnceLock<Value> = OnceLock::new();
    COMPONENTS.get_or_init(|| {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        doc["components"]["schemas"].clone()
    })
}

/// `schema` with what it refers to in place: a `$ref` by the component it
/// names, a `oneOf`/`anyOf`/`allOf` of one schema and null by that schema
/// (with the outer keys, e.g. `default`, kept).
fn resolve(schema: &Value) -> Value {
    if let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        return resolve(&components()[name]);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        let Some(members) = schema[key].as_array() else {
            continue;
        };
        let Some(one) = members.iter().find(|m| m["type"] != "null") else {
            continue;
        };
        let mut resolved = resolve(one);
        if let (Value::Object(inner), Value::Object(outer)) = (&mut resolved, schema) {
            for (k, v) in outer {
                if k != key && !inner.contains_key(k) {
                    inner.insert(k.clone(), v.clone());
                }
            }
        }
        return resolved;
    }
    schema.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::schema_names::{ExportType, RunStatus};

    /// Every kind of parameter the reader knows.
    #[derive(Debug, Deserialize, IntoParams, PartialEq)]
    #[into_params(parameter_in = Query)]
    #[serde(rename_all = "camelCase")]
    struct Sample {
        #[param(value_type = ExportType)]
        export_type: auditx_proto::RecordType,
        #[param(value_type = Option<ExportType>)]
        other_type: Option<auditx_proto::RecordType>,
        #[param(value_type = Option<Vec<RunStatus>>, style = Form, explode)]
        #[serde(default)]
        statuses: Vec<String>,
        #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 30)]
        size: u32,
        #[param(value_type = Option<String>, format = DateTime)]
        from: Option<String>,
        note: Option<String>,
    }

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn read(query: &[(&str, &str)]) -> Result<Sample, Vec<String>> {
        let mut problems = Problems::default();
        let read = read_query::<Sample>(&pairs(query), &mut problems);
        match problems.finish() {
            Ok(()) => Ok(read.unwrap()),
            Err(e) => Err(e.reasons().into_iter().map(|r| r.message).collect()),
        }
    }

    #[test]
    fn values_are_read_into_the_struct_with_defaults() {
        let read = read(&[
            ("exportType", "ERROR"),
            ("statuses", "COMPLETED,FAILED"),
            ("statuses", " COMPLETED ,"),
            ("from", "2025-07-01T00:00:00 0530"),
        ])
        .unwrap();
        assert_eq!(
            read,
            Sample {
                export_type: auditx_proto::RecordType::Error,
                other_type: None,
                statuses: vec!["COMPLETED".into(), "FAILED".into()],
                size: 30,
                from: Some("2025-07-01T00:00:00+0530".into()),
                note: None,
            }
        );
    }

    #[test]
    fn every_problem_is_reported_presence_first() {
        assert_eq!(
            read(&[
                ("zz", "1"),
                ("size", "0"),
                ("statuses", "DONE"),
                ("otherType", "x"),
                ("note", "a"),
                ("note", "b"),
                ("from", "2025-07-01T00:00:00"),
            ])
            .unwrap_err(),
            [
                "unknown query parameter: zz",
                "exportType: required",
                "note: given more than once",
                "otherType: \"x\" is not one of SAMPLE, ERROR",
                "statuses: \"DONE\" is not one of NEVER_RUN, TESTING, TESTING_FAILED, \
                 TESTING_PASSED, RUNNING, PAUSED, COMPLETED, FAILED, CANCELED, INITIALIZING, \
                 USAGE_PUSHING, PUSH_COMPLETED, CONSUME_COMPLETED",
                "size: must be between 1 and 100",
                "from: \"2025-07-01T00:00:00\" has no time zone (add Z or an offset such as +00:00)",
            ]
        );
        assert_eq!(
            read(&[("exportType", ""), ("size", "x")]).unwrap_err(),
            [
                "exportType: must not be empty",
                "size: \"x\" is not an integer"
            ]
        );
    }

    #[test]
    fn a_route_without_parameters_refuses_any() {
        let mut problems = Problems::default();
        assert!(read_query::<NoParams>(&[], &mut problems).is_some());
        read_query::<NoParams>(&pairs(&[("q", "1")]), &mut problems);
        assert_eq!(
            problems.finish().unwrap_err().to_string(),
            "unknown query parameter: q"
        );
    }
}
