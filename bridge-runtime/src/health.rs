//! Readiness: every component (a connection, a subscription) reports whether it is ready;
//! the pod is ready when all are.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One component's readiness flag.
#[derive(Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
}

/// All components, by name.
#[derive(Default)]
pub struct Health {
    components: Mutex<Vec<(String, Arc<AtomicBool>)>>,
}

impl Health {
    /// Registers a component, not ready until it says so.
    pub fn component(&self, name: &str) -> Readiness {
        let flag = Arc::new(AtomicBool::new(false));
        if let Ok(mut c) = self.components.lock() {
            c.push((name.to_owned(), flag.clone()));
        }
        Readiness(flag)
    }

    /// `Ok` when every component is ready, else the names of those that are not.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let components = self
            .components
            .lock()
            .map_err(|_| vec!["health state poisoned".to_owned()])?;
        let not_ready: Vec<String> = components
            .iter()
            .filter(|(_, f)| !f.load(Ordering::Relaxed))
            .map(|(n, _)| n.clone())
            .collect();
        if not_ready.is_empty() {
            Ok(())
        } else {
            Err(not_ready)
        }
    }
}
