//! A plan rule that computes a decorrelated subquery only for the outer
//! rows' keys, as DuckDB's "delim join" does.
//!
//! DataFusion turns a correlated scalar subquery into a left join with an
//! aggregate grouped by the correlated columns: `(SELECT max(concat(c1.…,
//! c2.…)) FROM contact c1, contact c2 WHERE c1.id = oldvalue AND c2.id =
//! newvalue)` becomes `outer LEFT JOIN (SELECT c1.id, c2.id, max(…) FROM
//! contact c1 CROSS JOIN contact c2 GROUP BY c1.id, c2.id)`: every pair of
//! contacts, whatever the outer rows hold (4 M groups for 2,000 contacts;
//! the seed's Account query took 30 times DuckDB's time).
//!
//! Only the groups whose keys an outer row holds can match, so when the
//! aggregate's input multiplies tables (a cross join), this rule joins the
//! distinct keys of the outer rows into it, each key to the table that
//! holds its column:
//!
//! ```text
//! outer LEFT JOIN Aggregate[GROUP BY c1.id, c2.id](c1 × c2) ON (x, y)
//!   →  outer LEFT JOIN Aggregate[…](DISTINCT (x, y) ⋈ c1 ON x = c1.id
//!                                                  ⋈ c2 ON y = c2.id) ON (x, y)
//! ```
//!
//! Each pair of rows meets at most one distinct key (the keys are the
//! groups), so the aggregates see the same rows for every group that can
//! match. The keys are read from the outer plan below any
//! left joins that only add columns to it (the other subqueries' joins),
//! so each such subquery reads the outer table once more, never more.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{
    col, Aggregate, Expr, Join, JoinType, LogicalPlan, LogicalPlanBuilder, Projection,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// The alias of the keys' subquery: marks an aggregate already restricted.
const KEYS: &str = "__auditx_outer_keys";

#[derive(Debug)]
pub(super) struct OuterKeys;

impl OptimizerRule for OuterKeys {
    fn name(&self) -> &str {
        "auditx_outer_keys"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(join) = &plan else {
            return Ok(Transformed::no(plan));
        };
        match restricted(join)? {
            Some(right) => {
                let left = Arc::unwrap_or_clone(Arc::clone(&join.left));
                let exprs = plan.expressions();
                Ok(Transformed::yes(
                    plan.with_new_exprs(exprs, vec![left, right])?,
                ))
            }
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// The join's right side with its aggregate restricted to the outer keys,
/// when the join is one this rule applies to.
fn restricted(join: &Join) -> Result<Option<LogicalPlan>> {
    if join.join_type != JoinType::Left || join.on.is_empty() || join.filter.is_some() {
        return Ok(None);
    }
    // The outer columns and, for each, the name it has on the right side.
    let mut pairs = Vec::new();
    for (left, right) in &join.on {
        let (Expr::Column(outer), Expr::Column(inner)) = (left, right) else {
            return Ok(None);
        };
        pairs.push((outer.clone(), inner.clone()));
    }
    let right = join.right.as_ref();
    let Some(aggregate) = aggregate_below(right) else {
        return Ok(None);
    };
    if !multiplies(&aggregate.input) {
        return Ok(None);
    }
    // Each join key, followed down to a group column of the aggregate.
    let mut group_of = Vec::new();
    for (_, inner) in &pairs {
        match group_column(right, inner) {
            Some(group) => group_of.push(group),
            None => return Ok(None),
        }
    }
    let groups: Vec<Column> = aggregate
        .group_expr
        .iter()
        .filter_map(|e| match e {
            Expr::Column(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    // The keys must be exactly the groups: then a group that matches no
    // outer key is one no outer row can join.
    if groups.len() != aggregate.group_expr.len()
        || groups.len() != group_of.len()
        || !groups.iter().all(|g| group_of.contains(g))
    {
        return Ok(None);
    }
    let outer_columns: Vec<Column> = pairs.iter().map(|(outer, _)| outer.clone()).collect();
    let base = outer_base(join.left.as_ref(), &outer_columns);
    let names: Vec<String> = (0..pairs.len()).map(|i| format!("k{i}")).collect();
    let keys = LogicalPlanBuilder::from(base.clone())
        .project(
            outer_columns
                .iter()
                .zip(&names)
                .map(|(c, name)| Expr::Column(c.clone()).alias(name)),
        )?
        .distinct()?
        .alias(KEYS)?
        .build()?;
    let key_columns: Vec<(Column, Column)> = names
        .iter()
        .zip(&group_of)
        .map(|(name, group)| (Column::new(Some(KEYS), name), group.clone()))
        .collect();
    let Some(input) = joined_with_keys(&aggregate.input, keys, &key_columns)? else {
        return Ok(None);
    };
    let restricted = LogicalPlan::Aggregate(Aggregate::try_new(
        Arc::new(input),
        aggregate.group_expr.clone(),
        aggregate.aggr_expr.clone(),
    )?);
    replace_aggregate(right, restricted).map(Some)
}

/// `input` (projections over a cross join of tables) with the keys joined
/// to each table on the key columns it holds: `keys ⋈ t1 ⋈ t2 …`, the
/// projections on top. `None` when a key column is not a column of one of
/// the tables.
fn joined_with_keys(
    input: &LogicalPlan,
    keys: LogicalPlan,
    key_columns: &[(Column, Column)],
) -> Result<Option<LogicalPlan>> {
    match input {
        LogicalPlan::Projection(projection) => {
            let mut below = Vec::new();
            for (key, column) in key_columns {
                let index = match projection.schema.index_of_column(column) {
                    Ok(index) => index,
                    Err(_) => return Ok(None),
                };
                let source = match &projection.expr[index] {
                    Expr::Column(c) => c.clone(),
                    Expr::Alias(alias) => match alias.expr.as_ref() {
                        Expr::Column(c) => c.clone(),
                        _ => return Ok(None),
                    },
                    _ => return Ok(None),
                };
                below.push((key.clone(), source));
            }
            let Some(inner) = joined_with_keys(&projection.input, keys, &below)? else {
                return Ok(None);
            };
            Ok(Some(LogicalPlan::Projection(Projection::try_new(
                projection.expr.clone(),
                Arc::new(inner),
            )?)))
        }
        LogicalPlan::Join(join) if is_cross(join) => {
            let mut tables = Vec::new();
            cross_inputs(input, &mut tables);
            let mut joined = 0;
            let mut plan = LogicalPlanBuilder::from(keys);
            for table in tables {
                let on: Vec<Expr> = key_columns
                    .iter()
                    .filter(|(_, column)| table.schema().has_column(column))
                    .map(|(key, column)| col(key.clone()).eq(Expr::Column(column.clone())))
                    .collect();
                joined += on.len();
                plan = if on.is_empty() {
                    plan.cross_join(table.clone())?
                } else {
                    plan.join_on(table.clone(), JoinType::Inner, on)?
                };
            }
            if joined != key_columns.len() {
                return Ok(None);
            }
            Ok(Some(plan.build()?))
        }
        _ => Ok(None),
    }
}

fn is_cross(join: &Join) -> bool {
    join.join_type == JoinType::Inner && join.on.is_empty() && join.filter.is_none()
}

/// The tables a tree of cross joins multiplies, left to right.
fn cross_inputs<'a>(plan: &'a LogicalPlan, tables: &mut Vec<&'a LogicalPlan>) {
    match plan {
        LogicalPlan::Join(join) if is_cross(join) => {
            cross_inputs(&join.left, tables);
            cross_inputs(&join.right, tables);
        }
        other => tables.push(other),
    }
}

/// The aggregate below the right side's aliases and projections.
fn aggregate_below(plan: &LogicalPlan) -> Option<&Aggregate> {
    match plan {
        LogicalPlan::Aggregate(aggregate) => Some(aggregate),
        LogicalPlan::SubqueryAlias(alias) => aggregate_below(&alias.input),
        LogicalPlan::Projection(projection) => aggregate_below(&projection.input),
        _ => None,
    }
}

/// Whether `plan` multiplies tables (an inner join without keys) and was
/// not restricted by this rule already.
fn multiplies(plan: &LogicalPlan) -> bool {
    let cross = plan
        .exists(|p| Ok(matches!(p, LogicalPlan::Join(j) if is_cross(j))))
        .unwrap_or(false);
    let done = plan
        .exists(|p| Ok(matches!(p, LogicalPlan::SubqueryAlias(a) if a.alias.table() == KEYS)))
        .unwrap_or(true);
    cross && !done
}

/// The aggregate's group column that `column` of `plan`'s output is:
/// followed through aliases (which rename the relation) and projections
/// (which may rename the column).
fn group_column(plan: &LogicalPlan, column: &Column) -> Option<Column> {
    match plan {
        LogicalPlan::SubqueryAlias(alias) => {
            let index = alias.schema.index_of_column(column).ok()?;
            let (relation, field) = alias.input.schema().qualified_field(index);
            group_column(&alias.input, &Column::new(relation.cloned(), field.name()))
        }
        LogicalPlan::Projection(projection) => {
            let index = projection.schema.index_of_column(column).ok()?;
            match &projection.expr[index] {
                Expr::Column(c) => group_column(&projection.input, c),
                Expr::Alias(alias) => match alias.expr.as_ref() {
                    Expr::Column(c) => group_column(&projection.input, c),
                    _ => None,
                },
                _ => None,
            }
        }
        LogicalPlan::Aggregate(aggregate) => {
            let index = aggregate.schema.index_of_column(column).ok()?;
            match aggregate.group_expr.get(index)? {
                Expr::Column(c) => Some(c.clone()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The outer plan below the left joins that only add columns to it: the
/// rows (and the key columns) are those of their left side.
fn outer_base(plan: &LogicalPlan, columns: &[Column]) -> LogicalPlan {
    if let LogicalPlan::Join(join) = plan {
        let left = join.left.schema();
        if join.join_type == JoinType::Left && columns.iter().all(|c| left.has_column(c)) {
            return outer_base(&join.left, columns);
        }
    }
    plan.clone()
}

/// `plan` with its aggregate (below aliases and projections) replaced.
fn replace_aggregate(plan: &LogicalPlan, aggregate: LogicalPlan) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Aggregate(_) => Ok(aggregate),
        LogicalPlan::SubqueryAlias(_) | LogicalPlan::Projection(_) => {
            let input = replace_aggregate(plan.inputs()[0], aggregate)?;
            plan.with_new_exprs(plan.expressions(), vec![input])
        }
        _ => Ok(plan.clone()),
    }
}
