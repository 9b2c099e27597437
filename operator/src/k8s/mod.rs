//! Kubernetes I/O that reconciliation, the finalizer and the retirement share: applying and
//! deleting the bridge's objects, Events, and the referenced Secrets' values.

pub mod apply;
pub mod clients;
pub mod events;
pub mod secrets;
