//! The API server restarted while the operator reconciles a change: the operator rides it
//! out (same process, no restart) and the bridge converges on the new generation. In a file
//! of its own: the restart would disturb tests running beside it.

use testbed::env;
use testbed::operator::{bridge_writing_to, setup};

#[test]
fn an_api_server_restart_during_a_reconcile_leaves_the_bridge_converged() {
    let s = setup("apiserver-restart");
    s.apply(&bridge_writing_to("plant", "plant-state", ""));
    s.wait_ready("plant");
    let hash_before = s.config_hash("plant");

    // A change, and at once the API server goes away under the reconcile it starts.
    s.apply(&bridge_writing_to("plant", "plant-state-v2", ""));
    env().service("restart", "apiserver");

    let bridge = s.wait_ready("plant");
    assert_eq!(bridge["metadata"]["generation"], 2, "{bridge}");
    assert_ne!(
        s.config_hash("plant"),
        hash_before,
        "the StatefulSet carries the changed configuration"
    );
    let config = s
        .get("configmap/plant-config")
        .expect("the bridge's ConfigMap");
    assert!(
        config.to_string().contains("plant-state-v2"),
        "the rendered configuration has the new topic: {config}"
    );
    let mut operator = s.operator;
    assert!(
        operator.process.exit_status().is_none(),
        "the operator kept running through the restart"
    );
    let log = operator.process.log_text();
    assert!(!log.contains("panicked"), "{log}");
}
