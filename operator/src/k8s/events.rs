//! Events about a bridge. Failing to publish one is logged, never fatal.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
use tracing::{info, warn};

use crate::bridge::Bridge;
use crate::context::Context;

/// Event notes are cut here (the API server refuses notes over 1 KiB).
const MAX_NOTE: usize = 1000;

/// Logs `note` (info for Normal, warn for Warning) and publishes it as an Event about the
/// bridge.
pub async fn announce(
    ctx: &Context,
    bridge: &Bridge<'_>,
    type_: EventType,
    reason: &str,
    note: String,
) {
    match type_ {
        EventType::Normal => info!(bridge = %bridge.key(), "{note}"),
        EventType::Warning => warn!(bridge = %bridge.key(), "{note}"),
    }
    publish(ctx, bridge, type_, reason, note, None).await;
}

/// Publishes an Event about the bridge. Events about a child name it as the related object,
/// so each child has its own series. Every other Event (warnings, published only when their
/// message changes; topic changes) is a new Event object: a series would keep only its first
/// message.
pub async fn publish(
    ctx: &Context,
    bridge: &Bridge<'_>,
    type_: EventType,
    reason: &str,
    note: String,
    child: Option<ObjectReference>,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncated(note)),
        action: "Reconcile".to_owned(),
        secondary: child,
    };
    let reference = bridge.object_ref();
    let result = if type_ == EventType::Warning || event.secondary.is_none() {
        ctx.fresh_recorder().publish(&event, &reference).await
    } else {
        ctx.recorder.publish(&event, &reference).await
    };
    if let Err(e) = result {
        warn!(bridge = %bridge.name, error = %e, "cannot publish an Event");
    }
}

fn truncated(mut note: String) -> String {
    if note.len() > MAX_NOTE {
        let cut = (0..=MAX_NOTE)
            .rev()
            .find(|i| note.is_char_boundary(*i))
            .unwrap_or(0);
        note.truncate(cut);
        note.push('…');
    }
    note
}

#[cfg(test)]
mod tests {
    use super::truncated;

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let note = "é".repeat(600);
        let cut = truncated(note);
        assert!(cut.ends_with('…'));
        assert_eq!(cut.chars().count(), 501);
        assert_eq!(truncated("short".into()), "short");
    }
}
