//! A fake Kubernetes API server for unit tests of error paths a real one does not produce on
//! demand (a request that never answers, a conflict at a chosen moment). Each request goes to
//! a handler that sees its method, path and body; the handler's answer, JSON and a status code, is
//! what the client receives.

use std::future::Future;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;

/// What the fake server answers.
pub enum Answer {
    Json(StatusCode, serde_json::Value),
    /// Never answers.
    Hang,
}

/// A client whose every request is answered by `handler(method, path, body)`.
pub fn client<F, Fut>(handler: F) -> Client
where
    F: Fn(Method, String, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let handler = Arc::new(handler);
    let service = tower::service_fn(move |request: Request<Body>| {
        let handler = handler.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect_bytes().await.unwrap_or_default();
            let body = String::from_utf8_lossy(&body).into_owned();
            match handler(parts.method, parts.uri.path().to_owned(), body).await {
                Answer::Json(status, body) => {
                    let bytes = serde_json::to_vec(&body).unwrap_or_default();
                    let mut response = Response::new(Body::from(bytes));
                    *response.status_mut() = status;
                    Ok::<_, std::convert::Infallible>(response)
                }
                Answer::Hang => std::future::pending().await,
            }
        }
    });
    Client::new(service, "default")
}

/// The Status object the API server sends with an error code.
pub fn status(code: StatusCode, reason: &str) -> Answer {
    Answer::Json(
        code,
        serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": reason,
            "reason": reason,
            "code": code.as_u16(),
        }),
    )
}

/// The operator's shared context on `client` (a resync of 300 s), with its own metrics.
pub fn context(client: Client, topic_deletion_attempts: u32) -> crate::context::Context {
    let reporter = kube::runtime::events::Reporter {
        controller: "test".into(),
        instance: None,
    };
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let resync = std::time::Duration::from_secs(300);
    crate::context::Context::new(
        client,
        reporter,
        metrics,
        "img".into(),
        resync,
        topic_deletion_attempts,
    )
}

/// The watched bridge `ns/b` (uid `u1`) of examples/smart-locks.yaml, with `spec` changed by
/// `edit` and `metadata` fields added.
pub fn bridge(
    metadata: serde_json::Value,
    edit: impl FnOnce(&mut mkb_api::crd::MqttKafkaBridgeSpec),
) -> crate::bridge::Watched {
    let mut spec = crate::desired::tests::spec(include_str!("../../examples/smart-locks.yaml"));
    edit(&mut spec);
    let mut meta = serde_json::json!({"name": "b", "namespace": "ns", "uid": "u1"});
    if let (Some(meta), Some(extra)) = (meta.as_object_mut(), metadata.as_object()) {
        meta.extend(extra.clone());
    }
    let object = serde_json::json!({
        "apiVersion": "mqttkafka.io/v1alpha1",
        "kind": "MqttKafkaBridge",
        "metadata": meta,
        "spec": spec,
    });
    serde_json::from_value(object).expect("a guard reads any object")
}
