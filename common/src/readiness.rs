//! Readiness: does each dependency of a process answer? The scheduler's and
//! the worker's `/readyz` report every dependency by name, so an operator
//! sees which one is down, and answer 503 while any is.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::queue::TaskQueue;
use crate::s3::ObjectStore;
use crate::state::StateStore;

/// A probe that waits longer than this has failed anyway; answering keeps
/// hung probes from piling up.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A key nobody writes: reading it proves the state store (or the bucket)
/// answers.
const PROBE_KEY: &str = "readyz/probe";

/// What a process depends on, and how to probe each.
#[derive(Clone)]
pub struct Dependencies {
    pub queue: Arc<dyn TaskQueue>,
    /// A queue of the topology whose depth is asked for (the task queue).
    pub queue_name: String,
    pub state: Arc<dyn StateStore>,
    pub store: ObjectStore,
    /// A bucket the process needs (the export bucket).
    pub bucket: String,
}

/// The outcome of probing one dependency.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub up: bool,
    pub latency_ms: u64,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every dependency, by name: `broker` (RabbitMQ or the in-process queue),
/// `stateStore` (Redis or the in-process store) and `s3`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub dependencies: BTreeMap<&'static str, Probe>,
}

impl Readiness {
    /// `"broker: <why>; s3: <why>"` for the dependencies that are down.
    pub fn summary(&self) -> String {
        self.dependencies
            .iter()
            .filter(|(_, p)| !p.up)
            .map(|(name, p)| format!("{name}: {}", p.error.as_deref().unwrap_or("down")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

async fn probe<T, E: std::fmt::Display>(
    check: impl std::future::Future<Output = Result<T, E>>,
) -> Probe {
    let started = Instant::now();
    let error = match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    };
    Probe {
        up: error.is_none(),
        latency_ms: started.elapsed().as_millis() as u64,
        error,
    }
}

impl Dependencies {
    /// Probes every dependency at once.
    pub async fn check(&self) -> Readiness {
        let (broker, state, s3) = tokio::join!(
            probe(self.queue.depth(&self.queue_name)),
            probe(self.state.get(PROBE_KEY)),
            probe(self.store.head(&self.bucket, PROBE_KEY)),
        );
        let dependencies = BTreeMap::from([("broker", broker), ("stateStore", state), ("s3", s3)]);
        Readiness {
            ready: dependencies.values().all(|p| p.up),
            dependencies,
        }
    }
}

#[cfg(test)]
mod tests {
    use auditx_proto::Topology;

    use super::*;
    use crate::config::S3Config;
    use crate::queue::MemoryQueue;
    use crate::state::MemoryStore;

    fn dependencies(queue_name: String, s3_endpoint: &str) -> Dependencies {
        let topology = Topology::new("readiness-test");
        let store = ObjectStore::new(&S3Config {
            endpoint: Some(s3_endpoint.into()),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            ..S3Config::default()
        });
        Dependencies {
            queue: Arc::new(MemoryQueue::new(topology, 5)),
            queue_name,
            state: Arc::new(MemoryStore::new()),
            store,
            bucket: "exports".into(),
        }
    }

    #[tokio::test]
    async fn each_dependency_is_reported_by_name_and_any_down_one_makes_it_unready() {
        // Nothing listens on port 1: S3 is down; the queue is not declared.
        let deps = dependencies("no-such-queue".into(), "http://127.0.0.1:1");
        let readiness = deps.check().await;
        assert!(!readiness.ready);
        assert!(readiness.dependencies["stateStore"].up);
        assert!(!readiness.dependencies["broker"].up);
        assert!(!readiness.dependencies["s3"].up);
        let summary = readiness.summary();
        assert!(summary.starts_with("broker: "), "{summary}");
        assert!(summary.contains("; s3: "), "{summary}");
        let json = serde_json::to_value(&readiness).unwrap();
        assert_eq!(json["dependencies"]["stateStore"]["up"], true);
        assert!(json["dependencies"]["s3"]["error"].is_string(), "{json}");

        let tasks = Topology::new("readiness-test").tasks();
        let broker_up = dependencies(tasks, "http://127.0.0.1:1").check().await;
        assert!(broker_up.dependencies["broker"].up);
        assert!(!broker_up.ready);
    }
}
