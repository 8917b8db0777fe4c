//! Waking a job's driver on this replica when a report of its job arrives
//! (the results consumer calls [`JobWakers::wake`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Wakes the drivers running on this replica when their reports arrive.
#[derive(Default)]
pub struct JobWakers {
    drivers: Mutex<HashMap<String, Arc<Notify>>>,
}

impl JobWakers {
    /// Registers a driver; it is forgotten when the guard drops.
    /// `key` is an export's request id, or a tenant's query driver key.
    pub fn register(self: &Arc<Self>, key: &str) -> WakerGuard {
        let notify = Arc::new(Notify::new());
        self.lock().insert(key.to_owned(), notify.clone());
        WakerGuard {
            wakers: self.clone(),
            id: key.to_owned(),
            notify,
        }
    }

    pub fn wake(&self, id: &str) {
        if let Some(notify) = self.lock().get(id) {
            notify.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.drivers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct WakerGuard {
    wakers: Arc<JobWakers>,
    id: String,
    notify: Arc<Notify>,
}

impl WakerGuard {
    pub fn notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}

impl Drop for WakerGuard {
    fn drop(&mut self) {
        self.wakers.lock().remove(&self.id);
    }
}
