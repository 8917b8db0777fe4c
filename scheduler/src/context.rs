//! The services a scheduler process works with, shared by the API and the
//! background loops.

use std::sync::Arc;

use auditx_common::config::Config;
use auditx_common::queue::TaskQueue;
use auditx_common::readiness::Dependencies;
use auditx_common::s3::ObjectStore;
use auditx_common::state::StateStore;
use auditx_proto::Topology;
use tokio::sync::{Notify, Semaphore};

use crate::export::jobs::JobStore;
use crate::fleet::store_epoch::StoreEpoch;
use crate::query::jobs::QueryStore;
use crate::query::saved::SavedQueries;

#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub state: Arc<dyn StateStore>,
    pub queue: Arc<dyn TaskQueue>,
    pub store: ObjectStore,
    pub jobs: JobStore,
    pub queries: QueryStore,
    pub saved_queries: SavedQueries,
    pub topology: Topology,
    /// Wakes the tenant loop (a job was created or a lease may be free).
    pub wake: Arc<Notify>,
    /// Wakes the query loop (a data query was submitted).
    pub query_wake: Arc<Notify>,
    /// This replica's name, the owner of the leases it takes.
    pub replica: String,
    /// One permit per ingest call decoding, parsing or writing at once
    /// (`ingest.max_concurrent`).
    pub ingest_slots: Arc<Semaphore>,
    /// Whether the state store still has its history (see [`crate::fleet::epoch`]).
    pub epoch: Arc<StoreEpoch>,
    /// The key online-entries cursors are signed with, once read from the
    /// state store (`api::request::cursor::cursor_key`).
    pub cursor_key: Arc<tokio::sync::OnceCell<[u8; 32]>>,
}

impl Services {
    pub fn new(
        config: Arc<Config>,
        state: Arc<dyn StateStore>,
        queue: Arc<dyn TaskQueue>,
        store: ObjectStore,
    ) -> Self {
        let topology = Topology::new(config.rabbitmq.prefix.clone());
        let ingest_slots = Arc::new(Semaphore::new(config.ingest.max_concurrent.max(1)));
        Self {
            jobs: JobStore::new(state.clone()),
            queries: QueryStore::new(state.clone()),
            saved_queries: SavedQueries::new(state.clone()),
            config,
            state,
            queue,
            store,
            topology,
            wake: Arc::new(Notify::new()),
            query_wake: Arc::new(Notify::new()),
            replica: format!("scheduler-{}", uuid::Uuid::new_v4()),
            ingest_slots,
            epoch: Arc::new(StoreEpoch::default()),
            cursor_key: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// The dependencies `/readyz` probes.
    pub fn dependencies(&self) -> Dependencies {
        Dependencies {
            queue: self.queue.clone(),
            queue_name: self.topology.tasks(),
            state: self.state.clone(),
            store: self.store.clone(),
            bucket: self.config.s3.export_bucket.clone(),
        }
    }
}
