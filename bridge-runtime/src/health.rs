//! Readiness and liveness. Every component (a connection, a subscription, the dead-letter
//! topic) reports whether it is ready, and why not; the pod is ready when all are. The
//! process is alive until a part of it fails for good (a direction stopped, a fatal client
//! error); then `/healthz` says so while the rest drains and the process exits non-zero.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

struct Component {
    name: String,
    ready: AtomicBool,
    /// Why it is not ready, when there is more to say than its name.
    reason: Mutex<Option<String>>,
}

/// One component's readiness.
#[derive(Clone)]
pub struct Readiness(Arc<Component>);

impl Readiness {
    /// Ready or not, without a particular reason.
    pub fn set(&self, ready: bool) {
        if let Ok(mut r) = self.0.reason.lock() {
            *r = None;
        }
        self.0.ready.store(ready, Ordering::Relaxed);
    }

    /// Not ready, because of `reason` (shown by `/readyz`).
    pub fn not_ready(&self, reason: impl Into<String>) {
        if let Ok(mut r) = self.0.reason.lock() {
            *r = Some(reason.into());
        }
        self.0.ready.store(false, Ordering::Relaxed);
    }
}

/// All components, by name, and the failure that ends the process, if any.
#[derive(Default)]
pub struct Health {
    components: Mutex<Vec<Arc<Component>>>,
    failure: Mutex<Option<String>>,
}

impl Health {
    /// Registers a component, not ready until it says so.
    pub fn component(&self, name: &str) -> Readiness {
        let component = Arc::new(Component {
            name: name.to_owned(),
            ready: AtomicBool::new(false),
            reason: Mutex::new(None),
        });
        if let Ok(mut c) = self.components.lock() {
            c.push(component.clone());
        }
        Readiness(component)
    }

    /// `Ok` when every component is ready, else each one that is not, with its reason.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        if let Err(failure) = self.liveness() {
            return Err(vec![failure]);
        }
        let components = self
            .components
            .lock()
            .map_err(|_| vec!["health state poisoned".to_owned()])?;
        let not_ready: Vec<String> = components
            .iter()
            .filter(|c| !c.ready.load(Ordering::Relaxed))
            .map(|c| match c.reason.lock().ok().and_then(|r| r.clone()) {
                Some(reason) => format!("{} ({reason})", c.name),
                None => c.name.clone(),
            })
            .collect();
        if not_ready.is_empty() {
            Ok(())
        } else {
            Err(not_ready)
        }
    }

    /// Records the failure that ends the process (the first one counts).
    pub fn fail(&self, reason: &str) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert_with(|| reason.to_owned());
        }
    }

    /// `Err` with the reason once a part of the process has failed for good.
    pub fn liveness(&self) -> Result<(), String> {
        match self.failure.lock() {
            Ok(f) => f.clone().map_or(Ok(()), Err),
            Err(_) => Err("health state poisoned".to_owned()),
        }
    }
}

/// Ends the process over a failure no retry can fix: recorded for `/healthz`, and the stop
/// token cancelled so that everything drains; the process then exits 1.
#[derive(Clone)]
pub struct Failure {
    health: Arc<Health>,
    stop: CancellationToken,
}

impl Failure {
    pub fn new(health: Arc<Health>, stop: CancellationToken) -> Self {
        Self { health, stop }
    }

    pub fn fail(&self, reason: &str) {
        tracing::error!(%reason, "the bridge failed; draining what still runs, then exiting");
        self.health.fail(reason);
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_each_component_that_is_not_ready_with_its_reason() {
        let health = Health::default();
        let a = health.component("mqtt subscriber");
        let b = health.component("dead-letter topic");
        assert_eq!(
            health.readiness(),
            Err(vec![
                "mqtt subscriber".to_owned(),
                "dead-letter topic".to_owned()
            ])
        );
        a.set(true);
        b.not_ready("topic dlq does not exist");
        assert_eq!(
            health.readiness(),
            Err(vec![
                "dead-letter topic (topic dlq does not exist)".to_owned()
            ])
        );
        b.set(true);
        assert_eq!(health.readiness(), Ok(()));
    }

    #[test]
    fn a_failure_ends_liveness_and_readiness_and_the_first_one_counts() {
        let health = Health::default();
        health.component("x").set(true);
        assert_eq!(health.liveness(), Ok(()));
        health.fail("the MQTT → Kafka direction stopped");
        health.fail("later");
        assert_eq!(
            health.liveness(),
            Err("the MQTT → Kafka direction stopped".to_owned())
        );
        assert!(health.readiness().is_err());
    }
}
