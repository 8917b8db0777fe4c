//! The guard: a data query is ONE read-only SELECT over the audit tables.
//!
//! It works on the parsed statement, not on the text: every statement kind
//! but a query is refused, and inside the query every relation must be one
//! of [`TABLES`] (or a CTE of the query itself), unqualified, and read as a
//! plain table — no table functions, no file paths or URLs. The session
//! that runs the query only holds the caller tenant's tables and forbids
//! DDL/DML again, so the guard is the first of two lines of defence and the
//! one whose messages users read.

use std::collections::HashSet;
use std::fmt::Display;
use std::ops::ControlFlow;

use datafusion::error::DataFusionError;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    visit_expressions, visit_relations, Expr, Ident, ObjectName, ObjectNamePart, Query, Select,
    SetExpr, Statement, TableFactor, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use datafusion::sql::sqlparser::parser::ParserError;

use super::error::message;
use super::{clip, SqlError};
use crate::tables::{table, TABLES};

/// Longest piece of user input echoed in a message.
const MAX_ECHO: usize = 60;

/// Parses `sql` with DataFusion's parser and dialect and returns its only
/// statement if it is a query.
pub(super) fn parse_query(sql: &str) -> Result<Query, SqlError> {
    let mut statements =
        DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(syntax_error)?;
    if statements.len() > 1 {
        return Err(refused(format_args!(
            "{} statements (a query is one statement)",
            statements.len()
        )));
    }
    let Some(statement) = statements.pop_front() else {
        return Err(SqlError::Syntax("the query is empty".into()));
    };
    match statement {
        DFStatement::Statement(statement) => match *statement {
            Statement::Query(query) => Ok(*query),
            other => Err(refused(statement_kind(&other))),
        },
        DFStatement::CreateExternalTable(_) => Err(refused("a CREATE EXTERNAL TABLE statement")),
        DFStatement::CopyTo(_) => Err(refused("a COPY statement")),
        DFStatement::Explain(_) => Err(refused("an EXPLAIN statement")),
        DFStatement::Reset(_) => Err(refused("a RESET statement")),
    }
}

/// Walks the whole query: relations, FROM items, nested statements.
pub(super) fn check_query(query: &Query) -> Result<(), SqlError> {
    let mut ctes = CteNames::default();
    let _ = query.visit(&mut ctes);
    match query.visit(&mut Guard { ctes: &ctes.0 }) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

/// Whether the query names the column `name` anywhere (`name` or
/// `table.name`, any case unless quoted): `SELECT *` does not name it.
pub(super) fn mentions_column(query: &Query, name: &str) -> bool {
    let names = |ident: &Ident| normalize(ident) == name;
    let found = visit_expressions(query, |expr| match expr {
        Expr::Identifier(ident) if names(ident) => ControlFlow::Break(()),
        Expr::CompoundIdentifier(idents) if idents.last().is_some_and(names) => {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    });
    found.is_break()
}

/// The tables of [`TABLES`] the query reads: relations of their name (a
/// CTE of the same name counts too; that costs its session a listing).
pub(super) fn referenced_tables(query: &Query) -> HashSet<&'static str> {
    let mut tables = HashSet::new();
    let _ = visit_relations(query, |name| {
        if let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() {
            if let Some(def) = table(&normalize(ident)) {
                tables.insert(def.name);
            }
        }
        ControlFlow::<()>::Continue(())
    });
    tables
}

/// `Refused`, with the rule the user broke.
fn refused(what: impl Display) -> SqlError {
    SqlError::Refused(format!(
        "refused {what}: only a single read-only SELECT over the audit tables is allowed"
    ))
}

fn syntax_error(e: DataFusionError) -> SqlError {
    let text = match e.find_root() {
        DataFusionError::SQL(parser_error, _) => match parser_error.as_ref() {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
            ParserError::RecursionLimitExceeded => "the query nests too deeply".into(),
        },
        other => other.message().into_owned(),
    };
    SqlError::Syntax(clip(&message(&text), 200))
}

/// `an INSERT INTO statement`, `a CREATE VIEW statement`, ...: the leading
/// keywords of the statement as sqlparser prints it.
fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text
        .split_whitespace()
        .take(4)
        .take_while(|word| ALL_KEYWORDS.binary_search(word).is_ok())
        .collect();
    match words.first() {
        None => "a statement that is not a query".into(),
        Some(first) if first.starts_with(['A', 'E', 'I', 'O', 'U']) => {
            format!("an {} statement", words.join(" "))
        }
        Some(_) => format!("a {} statement", words.join(" ")),
    }
}

/// The name DataFusion resolves an identifier to: unquoted ones lowercased.
pub(super) fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

/// Every CTE name the query defines, at any depth. Scoping is left to
/// DataFusion: a CTE named out of its scope resolves to no table of the
/// session and fails planning.
#[derive(Default)]
struct CteNames(HashSet<String>);

impl Visitor for CteNames {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            self.0
                .extend(with.cte_tables.iter().map(|cte| normalize(&cte.alias.name)));
        }
        ControlFlow::Continue(())
    }
}

struct Guard<'a> {
    ctes: &'a HashSet<String>,
}

impl Visitor for Guard<'_> {
    type Break = SqlError;

    /// A statement inside the query: `WITH x AS (INSERT ...)` and the like.
    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<SqlError> {
        ControlFlow::Break(refused(statement_kind(statement)))
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<SqlError> {
        if !query.locks.is_empty() {
            return ControlFlow::Break(refused("a locking clause (FOR UPDATE/SHARE)"));
        }
        if query.for_clause.is_some() || query.format_clause.is_some() || query.settings.is_some() {
            return ControlFlow::Break(refused("a FOR/FORMAT/SETTINGS clause"));
        }
        if !query.pipe_operators.is_empty() {
            return ControlFlow::Break(refused("pipe operators"));
        }
        check_set_expr(&query.body)
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<SqlError> {
        if select.into.is_some() {
            return ControlFlow::Break(refused("SELECT INTO (it creates a table)"));
        }
        if !select.lateral_views.is_empty() {
            return ControlFlow::Break(refused("LATERAL VIEW (a table function)"));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<SqlError> {
        let what = match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => format!("table function {}(...)", clip(&name.to_string(), MAX_ECHO)),
            TableFactor::Table { .. }
            | TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. } => return ControlFlow::Continue(()),
            TableFactor::TableFunction { .. } => "TABLE(...) table functions".into(),
            TableFactor::Function { name, .. } => {
                format!("table function {}(...)", clip(&name.to_string(), MAX_ECHO))
            }
            TableFactor::UNNEST { .. } => "UNNEST in FROM".into(),
            TableFactor::JsonTable { .. } | TableFactor::OpenJsonTable { .. } => {
                "JSON table functions".into()
            }
            TableFactor::XmlTable { .. } => "XMLTABLE".into(),
            TableFactor::Pivot { .. } | TableFactor::Unpivot { .. } => "PIVOT/UNPIVOT".into(),
            TableFactor::MatchRecognize { .. } => "MATCH_RECOGNIZE".into(),
            _ => "this kind of FROM item".into(),
        };
        ControlFlow::Break(refused(what))
    }

    fn pre_visit_relation(&mut self, name: &ObjectName) -> ControlFlow<SqlError> {
        match self.check_table_name(name) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }
}

impl Guard<'_> {
    fn check_table_name(&self, name: &ObjectName) -> Result<(), SqlError> {
        let shown = clip(&name.to_string(), MAX_ECHO);
        let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
            return Err(refused(format_args!(
                "the qualified name {shown} (catalogs and schemas are not reachable; \
                 name a table alone)"
            )));
        };
        if ident.quote_style == Some('\'') || ident.value.contains(['/', ':', '\\', '.']) {
            return Err(refused(format_args!(
                "reading the file or URL {shown} (only the audit tables can be read)"
            )));
        }
        let normalized = normalize(ident);
        if self.ctes.contains(&normalized) || table(&normalized).is_some() {
            return Ok(());
        }
        let known: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        Err(SqlError::Refused(format!(
            "unknown table {shown}: only a single read-only SELECT over the audit tables is \
             allowed; the tables are {}",
            known.join(", ")
        )))
    }
}

/// `TABLE t` names its table outside the relation visitor's reach.
fn check_set_expr(body: &SetExpr) -> ControlFlow<SqlError> {
    match body {
        SetExpr::Table(_) => {
            ControlFlow::Break(refused("the TABLE shorthand (write SELECT * FROM)"))
        }
        SetExpr::SetOperation { left, right, .. } => {
            check_set_expr(left)?;
            check_set_expr(right)
        }
        _ => ControlFlow::Continue(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str) -> Result<(), SqlError> {
        check_query(&parse_query(sql)?)
    }

    #[track_caller]
    fn assert_refused(sql: &str, fragment: &str) {
        match check(sql) {
            Err(SqlError::Refused(m)) => {
                assert!(m.contains(fragment), "{sql}: {m}");
                assert!(
                    m.contains("only a single read-only SELECT over the audit tables is allowed"),
                    "{sql}: {m}"
                );
            }
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_seed_queries_and_ordinary_selects_pass() {
        for sql in [
            "SELECT * FROM auditloginevent",
            "select * from AuditLoginEvent a join contact c on a.userid = c.id",
            r#"SELECT * FROM "auditsettingchangeevent""#,
            "SELECT count(*) FROM auditobjectchangeevent WHERE objectid IN (SELECT id FROM product)",
            "WITH recent AS (SELECT * FROM auditloginevent) SELECT * FROM recent r, Recent s",
            "SELECT * FROM (SELECT id FROM product) p",
            "SELECT 1",
            "SELECT id FROM product UNION ALL SELECT id FROM productrateplan;",
        ] {
            check(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn every_statement_but_a_query_is_refused() {
        for (sql, fragment) in [
            (
                "INSERT INTO auditloginevent VALUES ('x')",
                "refused an INSERT INTO statement",
            ),
            (
                "UPDATE auditloginevent SET status = 'x'",
                "UPDATE statement",
            ),
            ("DELETE FROM auditloginevent", "DELETE FROM statement"),
            (
                "MERGE INTO contact c USING product p ON c.id = p.id WHEN MATCHED THEN DELETE",
                "MERGE INTO statement",
            ),
            ("CREATE TABLE t (a INT)", "CREATE TABLE statement"),
            (
                "CREATE VIEW v AS SELECT * FROM contact",
                "CREATE VIEW statement",
            ),
            (
                "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://other/'",
                "CREATE EXTERNAL TABLE",
            ),
            ("DROP TABLE contact", "DROP TABLE statement"),
            ("COPY contact TO 's3://other/x.parquet'", "COPY statement"),
            ("SET datafusion.execution.batch_size = 1", "SET statement"),
            ("SHOW TABLES", "SHOW TABLES statement"),
            ("EXPLAIN SELECT * FROM contact", "EXPLAIN statement"),
            ("EXPLAIN ANALYZE SELECT * FROM contact", "EXPLAIN statement"),
            ("PREPARE p AS SELECT * FROM contact", "PREPARE statement"),
            ("EXECUTE p", "EXECUTE statement"),
            ("TRUNCATE TABLE contact", "TRUNCATE TABLE statement"),
        ] {
            assert_refused(sql, fragment);
        }
    }

    #[test]
    fn more_than_one_statement_is_refused() {
        assert_refused(
            "SELECT * FROM contact; DROP TABLE contact",
            "refused 2 statements",
        );
        assert_refused("SELECT 1; SELECT 2;", "2 statements");
    }

    #[test]
    fn qualified_names_are_refused() {
        for sql in [
            "SELECT * FROM datafusion.public.auditloginevent",
            "SELECT * FROM public.contact",
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM other.auditloginevent",
            "SELECT * FROM contact WHERE id IN (SELECT id FROM information_schema.columns)",
        ] {
            assert_refused(sql, "qualified name");
        }
    }

    #[test]
    fn table_functions_files_and_urls_are_refused() {
        for (sql, fragment) in [
            (
                "SELECT * FROM read_parquet('s3://lake/x.parquet')",
                "table function read_parquet",
            ),
            (
                "SELECT * FROM generate_series(1, 10)",
                "table function generate_series",
            ),
            (
                "SELECT * FROM 's3://lake/contact/tenant=other/a.parquet'",
                "file or URL",
            ),
            (
                r#"SELECT * FROM "s3://lake/contact/tenant=other/""#,
                "file or URL",
            ),
            (r#"SELECT * FROM "/etc/passwd""#, "file or URL"),
            (r#"SELECT * FROM "x.parquet""#, "file or URL"),
            ("SELECT * FROM TABLE(generate_series(1, 3))", "TABLE(...)"),
            ("SELECT * FROM UNNEST([1, 2])", "UNNEST"),
            ("SELECT * INTO newtable FROM contact", "SELECT INTO"),
            ("SELECT * FROM contact FOR UPDATE", "locking clause"),
        ] {
            assert_refused(sql, fragment);
        }
    }

    #[test]
    fn unknown_tables_are_refused_with_the_known_ones() {
        assert_refused(
            "SELECT * FROM meter_audit_trail",
            "unknown table meter_audit_trail",
        );
        assert_refused(
            r#"SELECT * FROM "AuditLoginEvent""#,
            "the tables are auditloginevent, ",
        );
        assert_refused("SELECT * FROM tables", "productrateplanchargetier");
        // A CTE is only a table to the query that defines it.
        assert_refused(
            "SELECT * FROM x WHERE id IN (SELECT id FROM contact)",
            "unknown table x",
        );
    }

    #[test]
    fn syntax_errors_carry_the_parser_message_clipped() {
        let e = check("SELEC * FROM contact").unwrap_err();
        assert!(
            matches!(&e, SqlError::Syntax(m) if m.contains("SELEC")),
            "{e:?}"
        );
        let long = format!("SELECT * FROM contact WHERE id = '{}", "x".repeat(5000));
        let SqlError::Syntax(m) = check(&long).unwrap_err() else {
            panic!()
        };
        assert!(m.chars().count() <= 201, "{m}");
        assert!(!m.contains("backtrace"));
        assert_eq!(
            check("  ;  ").unwrap_err(),
            SqlError::Syntax("the query is empty".into())
        );
    }

    #[test]
    fn long_names_are_not_echoed_whole() {
        let sql = format!("SELECT * FROM {}", "t".repeat(1000));
        let SqlError::Refused(m) = check(&sql).unwrap_err() else {
            panic!()
        };
        assert!(m.len() < 400, "{m}");
    }

    #[test]
    fn the_tables_a_query_reads_are_found_in_every_part_of_it() {
        let tables = |sql: &str| {
            let mut names: Vec<_> = referenced_tables(&parse_query(sql).unwrap())
                .into_iter()
                .collect();
            names.sort();
            names
        };
        assert_eq!(tables("SELECT 1"), Vec::<&str>::new());
        assert_eq!(
            tables("SELECT * FROM AuditLoginEvent WHERE id IN (SELECT id FROM contact)"),
            ["auditloginevent", "contact"]
        );
        assert_eq!(
            tables(
                "WITH x AS (SELECT * FROM product) SELECT * FROM x \
                 JOIN \"productrateplan\" p ON true UNION SELECT * FROM \"Contact\""
            ),
            ["product", "productrateplan"]
        );
        assert_eq!(
            tables(include_str!("../../tests/fixtures/seed/q5.sql")),
            [
                "auditobjectchangeevent",
                "product",
                "productrateplan",
                "productrateplancharge",
                "productrateplanchargetier"
            ]
        );
    }

    #[test]
    fn the_deleted_column_is_found_where_a_query_names_it() {
        let names = |sql: &str| mentions_column(&parse_query(sql).unwrap(), "deleted");
        assert!(names(
            "SELECT name, deleted FROM contact WHERE deleted = TRUE"
        ));
        assert!(names("SELECT c.DELETED FROM contact c"));
        assert!(names(
            "SELECT id FROM contact WHERE contact.deleted = FALSE"
        ));
        assert!(names(
            "SELECT (SELECT max(id) FROM product WHERE deleted) AS x FROM contact"
        ));
        assert!(!names("SELECT * FROM contact"));
        assert!(!names(
            "SELECT id AS deleted_id FROM contact WHERE name = 'deleted'"
        ));
        assert!(!names("SELECT \"Deleted\" FROM contact"));
    }
}
