//! What a token may do: its scopes (`scope`, space separated as in RFC
//! 8693, or a `scopes` array) and the one table saying which scope each
//! authenticated route needs.

use axum::http::Method;

/// One permission a token can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// List and read export jobs, presign their files, read entries and
    /// summaries online.
    ExportRead,
    /// Create and cancel export jobs.
    ExportWrite,
    /// List and read data queries.
    QueryRead,
    /// Submit and cancel data queries.
    QueryWrite,
    /// Write meter audit entries, runs and audit table rows.
    IngestWrite,
    /// See the fleet: the workers alive (the console's Fleet page).
    OpsRead,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::ExportRead,
        Scope::ExportWrite,
        Scope::QueryRead,
        Scope::QueryWrite,
        Scope::IngestWrite,
        Scope::OpsRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ExportRead => "export:read",
            Scope::ExportWrite => "export:write",
            Scope::QueryRead => "query:read",
            Scope::QueryWrite => "query:write",
            Scope::IngestWrite => "ingest:write",
            Scope::OpsRead => "ops:read",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Every scope, as a `scope` claim.
    pub fn all_text() -> String {
        join(&Scope::ALL)
    }
}

/// Scopes as a `scope` claim: names separated by single spaces.
pub fn join(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The scopes named by a `scope` claim and a `scopes` array; names this
/// server does not know are ignored.
pub fn granted(scope: &str, scopes: &[String]) -> Vec<Scope> {
    let mut granted = Vec::new();
    let names = scope
        .split_ascii_whitespace()
        .chain(scopes.iter().map(String::as_str));
    for scope in names.filter_map(Scope::parse) {
        if !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    granted
}

/// The scope each authenticated route needs, by method and route pattern
/// (as registered in `api::router`). A route missing here is refused, so a
/// new route cannot be reached before it is given a scope.
const ROUTE_SCOPES: &[(&str, &str, Scope)] = &[
    (
        "GET",
        "/meters/{meterId}/auditTrail/export",
        Scope::ExportRead,
    ),
    (
        "POST",
        "/meters/{meterId}/auditTrail/export",
        Scope::ExportWrite,
    ),
    (
        "GET",
        "/meters/{meterId}/auditTrail/export/{requestId}",
        Scope::ExportRead,
    ),
    (
        "DELETE",
        "/meters/{meterId}/auditTrail/export/{requestId}",
        Scope::ExportWrite,
    ),
    ("GET", "/meters/auditTrail/presignedUrl", Scope::ExportRead),
    (
        "GET",
        "/meters/{meterId}/auditTrail/entries",
        Scope::ExportRead,
    ),
    ("POST", "/meters/{meterId}/summary", Scope::ExportRead),
    ("GET", "/query/jobs", Scope::QueryRead),
    ("GET", "/query/jobs/{id}", Scope::QueryRead),
    ("POST", "/query/jobs", Scope::QueryWrite),
    ("DELETE", "/query/jobs/{id}", Scope::QueryWrite),
    ("GET", "/query/schema", Scope::QueryRead),
    ("GET", "/fleet/workers", Scope::OpsRead),
    ("GET", "/fleet/throughput", Scope::OpsRead),
    ("GET", "/query/saved", Scope::QueryRead),
    ("POST", "/query/saved", Scope::QueryWrite),
    ("PATCH", "/query/saved/{id}", Scope::QueryWrite),
    ("DELETE", "/query/saved/{id}", Scope::QueryWrite),
    (
        "POST",
        "/meters/{meterId}/auditTrail/entries",
        Scope::IngestWrite,
    ),
    ("POST", "/meters/{meterId}/runs", Scope::IngestWrite),
    ("POST", "/audit/tables/{table}/rows", Scope::IngestWrite),
];

/// The scope a call of `method` on the route `pattern` needs (HEAD as
/// GET), `None` for a route the table does not know.
pub fn required(method: &Method, pattern: &str) -> Option<Scope> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTE_SCOPES
        .iter()
        .find(|(m, p, _)| *m == method && *p == pattern)
        .map(|(_, _, scope)| *scope)
}

/// Every route of the table (the tests walk it).
pub fn routes() -> impl Iterator<Item = (&'static str, &'static str, Scope)> {
    ROUTE_SCOPES.iter().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_claims_are_space_separated_or_arrays() {
        assert_eq!(
            granted(" export:read  query:write nonsense export:read", &[]),
            vec![Scope::ExportRead, Scope::QueryWrite]
        );
        assert_eq!(
            granted("", &["ingest:write".into(), "EXPORT:READ".into()]),
            vec![Scope::IngestWrite]
        );
        assert_eq!(granted(&Scope::all_text(), &[]), Scope::ALL.to_vec());
    }

    #[test]
    fn every_route_has_one_scope_and_head_reads_like_get() {
        for (i, (method, pattern, _)) in routes().enumerate() {
            let same = routes()
                .skip(i + 1)
                .filter(|(m, p, _)| m == &method && p == &pattern)
                .count();
            assert_eq!(same, 0, "{method} {pattern} listed twice");
        }
        assert_eq!(
            required(&Method::HEAD, "/query/jobs"),
            Some(Scope::QueryRead)
        );
        assert_eq!(
            required(&Method::POST, "/query/jobs"),
            Some(Scope::QueryWrite)
        );
        assert_eq!(required(&Method::PUT, "/query/jobs"), None);
    }
}
