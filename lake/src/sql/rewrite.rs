//! Rewrites that make queries written for the seed's data query service
//! behave the same on DataFusion. Both are idempotent: the rewritten text
//! rewrites to itself, so the worker can check the scheduler's output again.
//!
//! - Output column names keep the user's spelling. DataFusion lowercases
//!   unquoted identifiers, aliases included (`AS Username` → `username`);
//!   the aliases of the top-level SELECT get quoted, and ORDER BY items that
//!   name one of them are quoted the same way so they still resolve.
//! - Correlated scalar subqueries without aggregation (`(SELECT p.name FROM
//!   product p WHERE p.id = objectid)`) are not decorrelated by DataFusion
//!   (apache/datafusion#16137). Wrapping the single projected value in
//!   `max(...)` makes them aggregates, which DataFusion turns into a left
//!   join; no row still gives NULL, one row gives its value. (Where the
//!   source system would fail on several rows, the largest value is shown.)
//!   Correlated columns of the same name (`c1.id`, `c2.id`) need a plan rule
//!   on top, see `decorrelate.rs`.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::LazyLock;

use datafusion::functions_aggregate::all_default_aggregate_functions;
use datafusion::sql::sqlparser::ast::{
    Distinct, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, GroupByExpr, Ident, ObjectName, OrderByKind, Query, Select, SelectItem,
    SetExpr, Value, Visit, VisitMut, Visitor, VisitorMut,
};

use super::guard::normalize;

pub(super) fn rewrite(query: &mut Query) {
    quote_output_aliases(query);
    let _ = query.visit(&mut AggregateScalarSubqueries::default());
}

/// Quotes the aliases of the SELECT that names the output columns, and the
/// ORDER BY identifiers that resolve to them.
fn quote_output_aliases(query: &mut Query) {
    let Some(select) = output_select(&mut query.body) else {
        return;
    };
    let mut aliases: Vec<(String, Ident)> = Vec::new();
    for item in &mut select.projection {
        if let SelectItem::ExprWithAlias { alias, .. } = item {
            let resolved = normalize(alias);
            if alias.quote_style.is_none() {
                alias.quote_style = Some('"');
            }
            aliases.push((resolved, alias.clone()));
        }
    }
    let Some(order_by) = &mut query.order_by else {
        return;
    };
    let OrderByKind::Expressions(items) = &mut order_by.kind else {
        return;
    };
    for item in items {
        let Expr::Identifier(ident) = &mut item.expr else {
            continue;
        };
        if ident.quote_style.is_some() {
            continue;
        }
        let resolved = normalize(ident);
        if let Some((_, alias)) = aliases.iter().find(|(name, _)| *name == resolved) {
            *ident = alias.clone();
        }
    }
}

/// The SELECT whose projection names the output: the body itself, the
/// left-most branch of a set operation, or the inside of parentheses.
fn output_select(body: &mut SetExpr) -> Option<&mut Select> {
    match body {
        SetExpr::Select(select) => Some(select),
        SetExpr::SetOperation { left, .. } => output_select(left),
        SetExpr::Query(query) => output_select(&mut query.body),
        _ => None,
    }
}

/// Every aggregate function name DataFusion knows, with aliases, lowercase.
static AGGREGATES: LazyLock<HashSet<String>> = LazyLock::new(|| {
    all_default_aggregate_functions()
        .iter()
        .flat_map(|f| std::iter::once(f.name()).chain(f.aliases().iter().map(String::as_str)))
        .map(str::to_ascii_lowercase)
        .collect()
});

#[derive(Default)]
struct AggregateScalarSubqueries {
    /// Subqueries of `x = ANY (...)` / `ALL (...)`: sets, not scalars. Held
    /// by address only to recognise them when the visitor reaches them.
    set_operands: Vec<*const Query>,
}

impl VisitorMut for AggregateScalarSubqueries {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } => {
                if let Expr::Subquery(query) = right.as_ref() {
                    self.set_operands.push(&**query as *const Query);
                }
            }
            Expr::Subquery(query) => {
                let address = &**query as *const Query;
                if !self.set_operands.contains(&address) {
                    aggregate_single_value(query);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// `SELECT <value> FROM ... WHERE ...` → `SELECT max(<value>) FROM ...`,
/// for plain single-value subqueries only: no aggregate or window already,
/// no GROUP BY/HAVING, no ORDER BY/LIMIT (`ORDER BY t LIMIT 1` picks a row
/// on purpose), no nested query in the value, and a FROM clause.
fn aggregate_single_value(query: &mut Query) {
    if query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
        return;
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let plain_group_by = matches!(&select.group_by, GroupByExpr::Expressions(exprs, mods) if exprs.is_empty() && mods.is_empty());
    if !plain_group_by
        || select.having.is_some()
        || select.from.is_empty()
        || select.top.is_some()
        || matches!(select.distinct, Some(Distinct::On(_)))
        || select.projection.len() != 1
    {
        return;
    }
    let value = match &mut select.projection[0] {
        SelectItem::UnnamedExpr(value) | SelectItem::ExprWithAlias { expr: value, .. } => value,
        _ => return,
    };
    if !is_plain_value(value) {
        return;
    }
    let inner = std::mem::replace(value, Expr::value(Value::Null));
    *value = Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new("max")]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(inner))],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    });
}

/// No aggregate or window function in `value` itself (those inside nested
/// queries do not count), and no nested query at all.
fn is_plain_value(value: &Expr) -> bool {
    struct Finder;
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
            ControlFlow::Break(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Function(f) if is_aggregate_or_window(f) => ControlFlow::Break(()),
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    value.visit(&mut Finder).is_continue()
}

fn is_aggregate_or_window(f: &Function) -> bool {
    if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
        return true;
    }
    let Some(last) = f.name.0.last().and_then(|part| part.as_ident()) else {
        return false;
    };
    AGGREGATES.contains(&last.value.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::super::guard::parse_query;
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut query = parse_query(sql).unwrap();
        rewrite(&mut query);
        query.to_string()
    }

    #[test]
    fn top_level_aliases_are_quoted_and_order_by_follows_them() {
        assert_eq!(
            rewritten(
                "SELECT username AS Username, timestamp AS Timestamp, Objectid AS ObjectID, \
                 status FROM auditloginevent ORDER BY timestamp DESC, status LIMIT 10"
            ),
            r#"SELECT username AS "Username", timestamp AS "Timestamp", Objectid AS "ObjectID", status FROM auditloginevent ORDER BY "Timestamp" DESC, status LIMIT 10"#
        );
    }

    #[test]
    fn quoted_aliases_stay_and_only_match_their_exact_spelling() {
        assert_eq!(
            rewritten(r#"SELECT a AS "MixedCase", b AS lower FROM t ORDER BY mixedcase, LOWER"#),
            r#"SELECT a AS "MixedCase", b AS "lower" FROM t ORDER BY mixedcase, "lower""#
        );
    }

    #[test]
    fn nested_selects_keep_their_aliases() {
        assert_eq!(
            rewritten("SELECT Username FROM (SELECT username AS Username FROM t) s"),
            "SELECT Username FROM (SELECT username AS Username FROM t) s"
        );
        assert_eq!(
            rewritten("SELECT a AS A FROM t UNION ALL SELECT b AS B FROM u ORDER BY a"),
            r#"SELECT a AS "A" FROM t UNION ALL SELECT b AS B FROM u ORDER BY "A""#
        );
    }

    #[test]
    fn plain_scalar_subqueries_become_aggregates() {
        assert_eq!(
            rewritten(
                "SELECT CASE WHEN objecttype = 'ProductRatePlan' THEN (SELECT p.name FROM product p, \
                 productrateplan prp WHERE prp.id = objectid AND p.id = prp.productid) ELSE '' END \
                 AS info FROM auditobjectchangeevent"
            ),
            r#"SELECT CASE WHEN objecttype = 'ProductRatePlan' THEN (SELECT max(p.name) FROM product p, productrateplan prp WHERE prp.id = objectid AND p.id = prp.productid) ELSE '' END AS "info" FROM auditobjectchangeevent"#
        );
        assert_eq!(
            rewritten(
                "SELECT (SELECT Concat(firstname, ' ', lastname) AS n FROM contact WHERE id = newvalue) FROM t \
                 WHERE x = (SELECT id FROM contact WHERE (SELECT 1 FROM product) = 1)"
            ),
            "SELECT (SELECT max(Concat(firstname, ' ', lastname)) AS n FROM contact WHERE id = newvalue) FROM t \
             WHERE x = (SELECT max(id) FROM contact WHERE (SELECT max(1) FROM product) = 1)"
        );
    }

    #[test]
    fn other_subqueries_are_left_alone() {
        for sql in [
            "SELECT (SELECT count(*) FROM contact WHERE id = userid) FROM t",
            "SELECT (SELECT MAX(id) FROM contact WHERE id = userid) FROM t",
            "SELECT (SELECT id FROM contact GROUP BY id) FROM t",
            "SELECT (SELECT id FROM contact ORDER BY id LIMIT 1) FROM t",
            "SELECT (SELECT row_number() OVER () FROM contact) FROM t",
            "SELECT (SELECT userid) FROM t",
            "SELECT * FROM t WHERE x IN (SELECT id FROM contact)",
            "SELECT * FROM t WHERE EXISTS (SELECT id FROM contact)",
            "SELECT * FROM t WHERE x = ANY(SELECT id FROM contact)",
            "SELECT * FROM t WHERE x > ALL(SELECT id FROM contact)",
            "SELECT * FROM (SELECT id FROM contact) AS c",
        ] {
            let once = rewritten(sql);
            assert!(!once.contains("max("), "{sql} became {once}");
        }
        // A value holding a query stays; the inner query is rewritten alone.
        assert_eq!(
            rewritten("SELECT (SELECT (SELECT name FROM product) FROM contact) FROM t"),
            "SELECT (SELECT (SELECT max(name) FROM product) FROM contact) FROM t"
        );
    }

    #[test]
    fn the_rewrite_is_idempotent() {
        let sql = "SELECT (SELECT name FROM product WHERE id = objectid) AS Product, timestamp AS Timestamp \
                   FROM auditobjectchangeevent ORDER BY timestamp";
        let once = rewritten(sql);
        assert_eq!(rewritten(&once), once);
    }
}
