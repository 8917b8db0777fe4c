//! A plan rule that keeps correlated columns of the same name apart.
//!
//! DataFusion 55 decorrelates `(SELECT max(...) FROM contact c1, contact c2
//! WHERE c1.id = oldvalue AND c2.id = newvalue)` into a join with the
//! subquery aliased `__scalar_sq_1`; both `c1.id` and `c2.id` become
//! `__scalar_sq_1.id` there, and the join compares `oldvalue` and `newvalue`
//! with the same column (the seed's Account query then finds no contact).
//! This rule runs before the optimizer: below a correlated filter whose
//! inner columns share a name it projects each of them under a unique
//! alias, filters on the aliases, and projects the original columns again,
//! so the plan's meaning is unchanged and the names survive decorrelation.

use std::collections::HashMap;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::optimizer::AnalyzerRule;

#[derive(Debug)]
pub(super) struct DistinctCorrelatedColumns;

impl AnalyzerRule for DistinctCorrelatedColumns {
    fn name(&self) -> &str {
        "distinct_correlated_columns"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(alias_colliding_columns)
            .map(|transformed| transformed.data)
    }
}

fn alias_colliding_columns(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Filter(filter) = &plan else {
        return Ok(Transformed::no(plan));
    };
    let colliding = colliding_columns(&filter.predicate);
    if colliding.is_empty() {
        return Ok(Transformed::no(plan));
    }
    let LogicalPlan::Filter(filter) = plan else {
        unreachable!("matched above")
    };
    let original: Vec<Expr> = filter
        .input
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let mut widened = original.clone();
    let mut renamed = HashMap::new();
    for (i, column) in colliding.into_iter().enumerate() {
        let alias = format!("__correlated_{i}_{}", column.name);
        widened.push(Expr::Column(column.clone()).alias(&alias));
        renamed.insert(column, Column::new_unqualified(alias));
    }
    let predicate = filter
        .predicate
        .transform(|expr| match &expr {
            Expr::Column(column) => match renamed.get(column) {
                Some(alias) => Ok(Transformed::yes(Expr::Column(alias.clone()))),
                None => Ok(Transformed::no(expr)),
            },
            _ => Ok(Transformed::no(expr)),
        })?
        .data;
    let plan = LogicalPlanBuilder::new_from_arc(filter.input)
        .project(widened)?
        .filter(predicate)?
        .project(original)?
        .build()?;
    Ok(Transformed::yes(plan))
}

/// Inner columns of the conjuncts that reference the outer query, when
/// another such column has the same name under another qualifier.
fn colliding_columns(predicate: &Expr) -> Vec<Column> {
    let mut correlated: Vec<Column> = Vec::new();
    for conjunct in split_conjunction(predicate) {
        if conjunct.contains_outer() {
            for column in conjunct.column_refs() {
                if !correlated.contains(column) {
                    correlated.push(column.clone());
                }
            }
        }
    }
    correlated
        .iter()
        .filter(|column| correlated.iter().filter(|c| c.name == column.name).count() > 1)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{RecordBatch, StringArray};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn run(sql: &str) -> String {
        let ctx = SessionContext::new();
        ctx.add_analyzer_rule(Arc::new(DistinctCorrelatedColumns));
        let strings = |values: &[&str]| Arc::new(StringArray::from(values.to_vec())) as _;
        ctx.register_batch(
            "contact",
            RecordBatch::try_from_iter([
                ("id", strings(&["t", "n", "x"])),
                ("name", strings(&["Tony", "Nick", "Xavier"])),
            ])
            .unwrap(),
        )
        .unwrap();
        ctx.register_batch(
            "change",
            RecordBatch::try_from_iter([
                ("old", strings(&["t", "n", "t"])),
                ("new", strings(&["n", "t", "gone"])),
            ])
            .unwrap(),
        )
        .unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    #[tokio::test]
    async fn same_named_correlated_columns_keep_their_own_values() {
        let out = run(
            "SELECT old, new, (SELECT max(concat(c1.name, ' -> ', c2.name)) FROM contact c1, \
             contact c2 WHERE c1.id = old AND c2.id = new) AS names FROM change ORDER BY old, new",
        )
        .await;
        assert_eq!(
            out,
            "+-----+------+--------------+\n\
             | old | new  | names        |\n\
             +-----+------+--------------+\n\
             | n   | t    | Nick -> Tony |\n\
             | t   | gone |              |\n\
             | t   | n    | Tony -> Nick |\n\
             +-----+------+--------------+"
        );
    }

    #[tokio::test]
    async fn exists_subqueries_keep_their_meaning() {
        let out = run(
            "SELECT old, new FROM change WHERE EXISTS (SELECT 1 FROM contact c1, contact c2 \
             WHERE c1.id = old AND c2.id = new AND c1.name < c2.name) ORDER BY old",
        )
        .await;
        assert_eq!(
            out,
            "+-----+-----+\n\
             | old | new |\n\
             +-----+-----+\n\
             | n   | t   |\n\
             +-----+-----+"
        );
    }
}
