//! Stopping a running query at its next batch, whatever its operators do.
//!
//! Dropping (aborting) a Tokio task stops it only when it next returns to
//! the runtime, and a DataFusion plan fed from memory may never do so: a
//! cross or nested-loop join under an aggregate produces batch after batch
//! without waiting on anything, the aggregate loops over them, and the
//! partition task holds its thread until the plan ends — for a runaway
//! query, never. Its thread of the query pool is lost to every other query.
//!
//! So every node of a query's physical plan gets a [`StopExec`] above it.
//! Its stream looks at the query's [`QueryStop`] before each batch it hands
//! on: once the query is stopped (cancelled, over its time limit, the
//! worker shutting down, or the query ended any other way) it answers an
//! error naming the reason. Every operator loops over its children's
//! batches through one of these, so each loop ends at its next batch, and
//! the error ends the partition task that runs it.
//!
//! The stream also spends Tokio's cooperative budget for each batch (as
//! DataFusion's `CooperativeExec` does at the leaves, which the default
//! `EnsureCooperative` rule keeps): a partition task busy with batches from
//! memory yields its thread every so often, so queries sharing the pool take
//! turns instead of waiting for a runaway to end.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result as DFResult, Statistics};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::{
    ChildStats, ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr,
    PlanProperties, ReplaceChildrenOptions, StatisticsArgs,
};
use futures::Stream;

/// The stop switch of one running query, shared by every [`StopExec`] of
/// its plan and by whoever may end it early. Clones share the switch.
#[derive(Clone, Debug, Default)]
pub struct QueryStop(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    stopped: AtomicBool,
    reason: OnceLock<String>,
}

impl QueryStop {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the query: every operator ends at its next batch with an
    /// error saying `reason`. The first reason given is the one kept.
    pub fn stop(&self, reason: impl Into<String>) {
        let _ = self.0.reason.set(reason.into());
        self.0.stopped.store(true, Ordering::Release);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
    }

    /// Why the query was stopped, once it is.
    pub fn reason(&self) -> Option<&str> {
        self.0.reason.get().map(String::as_str)
    }

    /// A guard that stops the query when dropped (with `reason`, unless it
    /// was stopped already): whatever way the caller ends, nothing of the
    /// query keeps running.
    pub fn on_drop(&self, reason: &'static str) -> StopOnDrop {
        StopOnDrop {
            stop: self.clone(),
            reason,
        }
    }

    fn check(&self) -> DFResult<()> {
        match self.is_stopped() {
            false => Ok(()),
            true => Err(DataFusionError::Execution(
                self.reason().unwrap_or("query stopped").to_owned(),
            )),
        }
    }

    /// `plan` with a [`StopExec`] above each of its nodes.
    pub fn guard(&self, plan: Arc<dyn ExecutionPlan>) -> DFResult<Arc<dyn ExecutionPlan>> {
        let guarded = plan.transform_up(|node| {
            Ok(Transformed::yes(
                Arc::new(StopExec::new(node, self.clone())) as Arc<dyn ExecutionPlan>,
            ))
        })?;
        Ok(guarded.data)
    }

    /// `stream`, ending with an error once the query is stopped.
    pub fn guard_stream(&self, stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        Box::pin(StopStream {
            inner: stream,
            stop: self.clone(),
        })
    }
}

/// Stops its query when dropped; see [`QueryStop::on_drop`].
pub struct StopOnDrop {
    stop: QueryStop,
    reason: &'static str,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.stop.stop(self.reason);
    }
}

/// A node passing its input's batches through unchanged until the query is
/// stopped; see the module's documentation.
#[derive(Debug)]
pub struct StopExec {
    input: Arc<dyn ExecutionPlan>,
    stop: QueryStop,
}

impl StopExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, stop: QueryStop) -> Self {
        Self { input, stop }
    }
}

impl DisplayAs for StopExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StopExec")
    }
}

impl ExecutionPlan for StopExec {
    fn name(&self) -> &str {
        "StopExec"
    }

    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }

    /// The input's own: the node changes neither rows nor their order.
    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    /// The same node over a new input (whose properties it shows, so
    /// there is nothing to recompute).
    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(format!(
                "StopExec takes one child, not {}",
                children.len()
            )));
        }
        Ok(Arc::new(StopExec::new(
            children.swap_remove(0),
            self.stop.clone(),
        )))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        self.stop.check()?;
        let inner = self.input.execute(partition, context)?;
        Ok(self.stop.guard_stream(inner))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DFResult<Arc<Statistics>> {
        Ok(Arc::clone(&input_stats[0]))
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }
}

struct StopStream {
    inner: SendableRecordBatchStream,
    stop: QueryStop,
}

impl Stream for StopStream {
    type Item = DFResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Err(stopped) = self.stop.check() {
            return Poll::Ready(Some(Err(stopped)));
        }
        // Out of budget: the task yields its thread here and comes back.
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        let next = self.inner.as_mut().poll_next(cx);
        if next.is_ready() {
            coop.made_progress();
        }
        next
    }
}

impl RecordBatchStream for StopStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;
    use futures::StreamExt;

    use super::*;

    /// A table of `rows` integers in batches of 100.
    fn numbers(rows: i64) -> Arc<MemTable> {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batches = (0..rows)
            .step_by(100)
            .map(|start| {
                let values: Vec<i64> = (start..(start + 100).min(rows)).collect();
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values))])
                    .unwrap()
            })
            .collect();
        Arc::new(MemTable::try_new(schema, vec![batches]).unwrap())
    }

    /// The runaway of the issue over memory: a 4-way cross join of 400
    /// rows under an aggregate, which never waits on anything.
    async fn runaway(stop: &QueryStop) -> SendableRecordBatchStream {
        let ctx = SessionContext::new();
        ctx.register_table("t", numbers(400)).unwrap();
        let frame = ctx
            .sql("SELECT sum(a.n + d.n) FROM t a, t b, t c, t d WHERE a.n % 2 <> d.n % 2")
            .await
            .unwrap();
        let plan = stop
            .guard(frame.clone().create_physical_plan().await.unwrap())
            .unwrap();
        stop.guard_stream(
            datafusion::physical_plan::execute_stream(plan, Arc::new(frame.task_ctx())).unwrap(),
        )
    }

    #[test]
    fn every_node_of_the_plan_is_guarded() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let ctx = SessionContext::new();
            ctx.register_table("t", numbers(10)).unwrap();
            let frame = ctx
                .sql("SELECT count(*) FROM t a JOIN t b ON a.n = b.n")
                .await
                .unwrap();
            let plan = frame.create_physical_plan().await.unwrap();
            let stop = QueryStop::new();
            let guarded = stop.guard(plan).unwrap();
            let mut nodes = 0;
            guarded
                .apply(|node| {
                    if node.name() != "StopExec" {
                        nodes += 1;
                        assert!(
                            node.children().iter().all(|c| c.name() == "StopExec"),
                            "{} has an unguarded child",
                            node.name()
                        );
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
                .unwrap();
            assert!(nodes > 3, "{nodes}");
            assert_eq!(guarded.name(), "StopExec");
        });
    }

    /// The runaway runs on a pool like the worker's query pool (two
    /// threads); the stop comes from outside it, as a cancel comes from the
    /// worker's own runtime. The query ends at its next batch, naming the
    /// reason, and leaves the pool's threads free.
    #[test]
    fn a_stopped_runaway_ends_at_its_next_batch_with_the_reason() {
        let pool = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let stop = QueryStop::new();
        let (ended, end) = std::sync::mpsc::channel();
        let running = stop.clone();
        pool.spawn(async move {
            let mut stream = runaway(&running).await;
            let outcome = loop {
                match stream.next().await {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Ok(e.to_string()),
                    None => break Err("the runaway ended by itself"),
                }
            };
            drop(stream);
            let _ = ended.send(outcome);
        });
        std::thread::sleep(Duration::from_millis(500));
        assert!(end.try_recv().is_err(), "the runaway ended before the stop");
        let stopped = Instant::now();
        stop.stop("query cancelled");
        let error = end
            .recv_timeout(Duration::from_secs(1))
            .expect("the runaway still runs a second after the stop")
            .unwrap();
        eprintln!("the runaway ended {:?} after the stop", stopped.elapsed());
        assert!(error.contains("query cancelled"), "{error}");

        // Its partition tasks end with it: the pool has nothing left to run.
        while pool.metrics().num_alive_tasks() > 0 {
            assert!(
                stopped.elapsed() < Duration::from_secs(1),
                "{} tasks of the query still run on the pool",
                pool.metrics().num_alive_tasks()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_first_reason_is_kept() {
        let stop = QueryStop::new();
        assert!(!stop.is_stopped() && stop.check().is_ok());
        {
            let _guard = stop.on_drop("query ended");
            stop.stop("query exceeded its time limit of 3 s");
        }
        assert!(stop.is_stopped());
        assert_eq!(stop.reason(), Some("query exceeded its time limit of 3 s"));
        let error = stop.check().unwrap_err().to_string();
        assert!(error.contains("time limit of 3 s"), "{error}");
    }
}
